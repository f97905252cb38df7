// Streamable HTTP transport at /mcp, over HTTPS when given a certificate. Each request
// carries a bearer token from the tokens file; the token decides the agent identity, its
// projects, review mode and access. Stateless: every POST gets a fresh server bound to
// the caller's identity, so one agent's session can never act as another. A POST whose
// request asks for progress (or whose token set a log level) is answered with an SSE
// stream, so notifications reach the client before the result. Host and Origin must be
// names this endpoint answers to (DNS-rebinding protection).
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isJSONRPCRequest, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { isIP, type AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { createDomain, type LiveStateProvider } from '../reconciler/domain/index.js';
import { StateStore } from '../reconciler/state/store.js';
import { verifyToken, type AgentPolicy } from '../reconciler/state/tokens.js';
import { log } from '../reconciler/util/log.js';
import { INVALID_REQUEST, IdScanner, MAX_MESSAGE_BYTES, checkText, errorAnswer, tooLarge, type JsonRpcError } from './jsonrpc.js';
import { buildServer } from './server.js';
import { LevelsByKey, type LogLevelStore } from './session.js';
import type { Certificate, CertificateSource } from './tls.js';

export { ensureAgentToken, issueToken, defaultTokensFile } from '../reconciler/state/tokens.js';

export const LOOPBACK_HOSTS = ['localhost', '127.0.0.1', '[::1]', '::1'];
/** Largest request body read (the same limit as a stdio line). */
export const MAX_BODY_BYTES = MAX_MESSAGE_BYTES;

export interface HttpServerOptions {
  repoDir: string;
  tokensFile: string;
  host?: string;
  port?: number;
  liveState?: LiveStateProvider;
  /** Host names (without port) accepted in Host and Origin, instead of the defaults (see endpointHosts). */
  allowedHosts?: string[];
  /** Names accepted besides the defaults (`--allow-host`). */
  extraHosts?: string[];
  /** Serve HTTPS with the certificate this source gives. */
  tls?: CertificateSource;
}

export interface RunningHttpServer { url: string; allowedHosts: string[]; certificate?: string; close(): Promise<void> }

function hostname(value: string): string {
  const v = value.toLowerCase();
  if (v.startsWith('[')) return v.slice(0, v.indexOf(']') + 1);
  return v.split(':')[0] ?? '';
}

function answer(res: ServerResponse, status: number, body: JsonRpcError | JsonRpcError[], headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function reject(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  answer(res, status, errorAnswer(null, -32000, message), headers);
}

type Body = { text: string } | { tooLarge: JsonRpcError };

/** The body's text; past the limit the rest is read but not kept, only scanned for the request's id. */
async function readBody(req: IncomingMessage): Promise<Body> {
  const chunks: Buffer[] = [];
  let size = 0;
  let scanner: IdScanner | null = null;
  for await (const chunk of req) {
    const c = chunk as Buffer;
    size += c.length;
    if (scanner) { scanner.feed(c); continue; }
    chunks.push(c);
    if (size > MAX_BODY_BYTES) {
      scanner = new IdScanner();
      for (const k of chunks) scanner.feed(k);
      chunks.length = 0;
    }
  }
  return scanner ? { tooLarge: tooLarge(scanner.id, size) } : { text: Buffer.concat(chunks).toString('utf8') };
}

/** Why a request may not proceed (Host/Origin), or null. Host names compare case-insensitively. */
export function originProblem(req: IncomingMessage, allowed: string[]): string | null {
  const names = allowed.map((a) => a.toLowerCase());
  const host = req.headers.host;
  if (!host || !names.includes(hostname(host))) return `Host ${JSON.stringify(host ?? '')} is not allowed (allowed: ${allowed.join(', ')})`;
  const origin = req.headers.origin;
  if (origin) {
    let name: string;
    try { name = new URL(origin).hostname.toLowerCase(); } catch { return `Origin ${JSON.stringify(origin)} is not a URL`; }
    const bracketed = name.includes(':') && !name.startsWith('[') ? `[${name}]` : name;
    if (!names.includes(name) && !names.includes(bracketed)) return `Origin ${JSON.stringify(origin)} is not allowed (allowed hosts: ${allowed.join(', ')})`;
  }
  return null;
}

/**
 * The Host names an endpoint answers to unless told otherwise: loopback, the address it
 * listens on (every address of this machine for 0.0.0.0 or ::), and the names its
 * certificate is valid for. Any other name is refused, so a DNS-rebinding page cannot
 * reach it.
 */
export function endpointHosts(listenHost: string, certificateNames: string[] = []): string[] {
  const h = listenHost.replace(/^\[|\]$/g, '').toLowerCase();
  const wildcard = h === '0.0.0.0' || h === '::' || h === '';
  const own = wildcard
    ? Object.values(networkInterfaces()).flat().flatMap((i) => (i && (h !== '0.0.0.0' || i.family === 'IPv4') ? [i.address] : []))
    : [h];
  const bracket = (a: string): string[] => (a.includes(':') ? [`[${a}]`, a] : [a]);
  return [...new Set([...LOOPBACK_HOSTS, ...own.flatMap(bracket), ...certificateNames.filter((n) => !n.startsWith('*')).flatMap(bracket)])];
}

async function authenticate(req: IncomingMessage, tokensFile: string): Promise<{ agent: AgentPolicy; key: string } | null> {
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  if (!m?.[1]) return null;
  const agent = await verifyToken(tokensFile, m[1]);
  return agent ? { agent, key: createHash('sha256').update(m[1]).digest('hex') } : null;
}

/** A request asks for a stream when it gives a progress token, or is a tool call from a client that set a log level. */
function wantsStream(message: JSONRPCMessage, levels: LogLevelStore): boolean {
  if (!isJSONRPCRequest(message)) return false;
  if (message.params?._meta?.progressToken !== undefined) return true;
  return message.method === 'tools/call' && levels.get() !== undefined;
}

/** The URL agents are given: a name the certificate covers when there is one, else the address listened on. */
function endpointUrl(scheme: string, addr: AddressInfo, cert: Certificate | undefined): string {
  const wildcard = addr.address === '0.0.0.0' || addr.address === '::';
  const named = cert?.names.find((n) => !n.startsWith('*') && isIP(n) === 0);
  let host = addr.address;
  if (cert && !cert.names.includes(addr.address)) host = named ?? cert.names.find((n) => isIP(n) !== 0) ?? host;
  if (wildcard && host === addr.address) {
    host = Object.values(networkInterfaces()).flat().find((i) => i && !i.internal && i.family === 'IPv4')?.address ?? '127.0.0.1';
  }
  return `${scheme}://${isIP(host) === 6 ? `[${host}]` : host}:${addr.port}/mcp`;
}

/** How often the endpoint asks its certificate source for a newer certificate. */
const TLS_RELOAD_MS = 60 * 60_000;

export async function startHttpServer(opts: HttpServerOptions): Promise<RunningHttpServer> {
  const store = StateStore.open(opts.repoDir);
  const cert = opts.tls ? await opts.tls.load() : undefined;
  const listenHost = opts.host ?? '127.0.0.1';
  const allowed = [...new Set([...(opts.allowedHosts ?? endpointHosts(listenHost, cert?.names)), ...(opts.extraHosts ?? [])].map((h) => h.toLowerCase()))];
  const levels = new LevelsByKey();
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    void serve(req, res).catch((err: unknown) => {
      log.error('http request failed', { err });
      if (!res.headersSent) reject(res, 500, 'internal error');
    });
  };
  const http = cert ? createHttpsServer({ cert: cert.cert, key: cert.key }, handler) : createServer(handler);
  // A renewed certificate (the internal CA's are short-lived, a file may be replaced) is taken without a restart.
  const renewal = cert && opts.tls ? setInterval(() => {
    void opts.tls!.load().then((next) => {
      if (next.cert !== cert.cert) { (http as ReturnType<typeof createHttpsServer>).setSecureContext({ cert: next.cert, key: next.key }); cert.cert = next.cert; log.info('endpoint certificate renewed', { certificate: next.describe }); }
    }, (e: unknown) => log.warn('endpoint certificate could not be renewed; the current one stays', { error: e }));
  }, TLS_RELOAD_MS) : undefined;
  renewal?.unref();
  http.on('close', () => clearInterval(renewal));

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/mcp') return reject(res, 404, 'not found: the MCP endpoint is /mcp');
    const problem = originProblem(req, allowed);
    if (problem) return reject(res, 403, problem);
    const caller = await authenticate(req, opts.tokensFile);
    if (!caller) return reject(res, 401, 'missing or unknown bearer token; ask the operator for one (`mlink token add NAME`)', { 'www-authenticate': 'Bearer realm="mlink"' });
    if (req.method !== 'POST') return reject(res, 405, 'this server is stateless: only POST is supported', { allow: 'POST' });
    const body = await readBody(req);
    if ('tooLarge' in body) {
      log.warn('mcp message refused', { agent: caller.agent.name, id: body.tooLarge.id, reason: body.tooLarge.error.message });
      return answer(res, 413, body.tooLarge);
    }
    const checked = checkText(body.text);
    if ('errors' in checked) {
      // A batch gets a batch of answers (one per request in it); anything else one answer.
      const first = checked.errors[0] ?? errorAnswer(null, INVALID_REQUEST, 'Invalid Request: a malformed JSON-RPC response');
      log.warn('mcp message refused', { agent: caller.agent.name, id: first.id, reason: first.error.message });
      return answer(res, 400, checked.batch ? checked.errors : first);
    }
    const level = levels.store(caller.key);
    const server = buildServer(createDomain({ store, agent: caller.agent, liveState: opts.liveState }), { logLevel: level });
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: !wantsStream(checked.message, level) });
    res.on('close', () => { void transport.close(); void server.close(); });
    await server.connect(transport);
    await transport.handleRequest(req, res, checked.message);
  }

  await new Promise<void>((resolve, rejectListen) => {
    http.once('error', rejectListen);
    http.listen(opts.port ?? 0, listenHost, () => resolve());
  });
  const addr = http.address() as AddressInfo;
  return {
    url: endpointUrl(cert ? 'https' : 'http', addr, cert),
    allowedHosts: allowed,
    ...(cert ? { certificate: cert.describe } : {}),
    close: () => new Promise<void>((resolve) => { http.closeAllConnections(); http.close(() => resolve()); }),
  };
}
