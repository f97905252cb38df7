// Streamable HTTP transport at /mcp. Each request carries a bearer token from the tokens
// file; the token decides the agent identity, its projects, review mode and access.
// Stateless: every POST gets a fresh server bound to the caller's identity, so one
// agent's session can never act as another. Host and Origin must be loopback unless
// the caller widens them (DNS-rebinding protection).
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createDomain, type LiveStateProvider } from '../reconciler/domain/index.js';
import { StateStore } from '../reconciler/state/store.js';
import { verifyToken, type AgentPolicy } from '../reconciler/state/tokens.js';
import { log } from '../reconciler/util/log.js';
import { buildServer } from './server.js';

export { ensureAgentToken, issueToken, defaultTokensFile } from '../reconciler/state/tokens.js';

export const LOOPBACK_HOSTS = ['localhost', '127.0.0.1', '[::1]', '::1'];
/** Largest request body read; tool inputs are bounded far below this by their schemas. */
export const MAX_BODY_BYTES = 16 * 1024 * 1024;

export interface HttpServerOptions {
  repoDir: string;
  tokensFile: string;
  host?: string;
  port?: number;
  liveState?: LiveStateProvider;
  /** Host names (without port) accepted in Host and Origin; default loopback only. */
  allowedHosts?: string[];
}

export interface RunningHttpServer { url: string; close(): Promise<void> }

function hostname(value: string): string {
  if (value.startsWith('[')) return value.slice(0, value.indexOf(']') + 1);
  return value.split(':')[0] ?? '';
}

function reject(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message }, id: null }));
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw Object.assign(new Error(`request body is larger than ${MAX_BODY_BYTES} bytes`), { status: 413 });
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw Object.assign(new Error('request body is not JSON'), { status: 400 });
  }
}

/** Why a request may not proceed (Host/Origin), or null. */
export function originProblem(req: IncomingMessage, allowed: string[]): string | null {
  const host = req.headers.host;
  if (!host || !allowed.includes(hostname(host))) return `Host ${JSON.stringify(host ?? '')} is not allowed (allowed: ${allowed.join(', ')})`;
  const origin = req.headers.origin;
  if (origin) {
    let name: string;
    try { name = new URL(origin).hostname; } catch { return `Origin ${JSON.stringify(origin)} is not a URL`; }
    const bracketed = name.includes(':') && !name.startsWith('[') ? `[${name}]` : name;
    if (!allowed.includes(name) && !allowed.includes(bracketed)) return `Origin ${JSON.stringify(origin)} is not allowed (allowed hosts: ${allowed.join(', ')})`;
  }
  return null;
}

async function authenticate(req: IncomingMessage, tokensFile: string): Promise<AgentPolicy | null> {
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  return m?.[1] ? verifyToken(tokensFile, m[1]) : null;
}

export async function startHttpServer(opts: HttpServerOptions): Promise<RunningHttpServer> {
  const store = StateStore.open(opts.repoDir);
  const allowed = opts.allowedHosts ?? LOOPBACK_HOSTS;
  const http = createServer((req, res) => {
    void serve(req, res).catch((err: unknown) => {
      log.error('http request failed', { err });
      if (!res.headersSent) reject(res, 500, 'internal error');
    });
  });

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/mcp') return reject(res, 404, 'not found: the MCP endpoint is /mcp');
    const problem = originProblem(req, allowed);
    if (problem) return reject(res, 403, problem);
    const agent = await authenticate(req, opts.tokensFile);
    if (!agent) return reject(res, 401, 'missing or unknown bearer token; ask the operator for one (`mlink token add NAME`)', { 'www-authenticate': 'Bearer realm="mlink"' });
    if (req.method !== 'POST') return reject(res, 405, 'this server is stateless: only POST is supported', { allow: 'POST' });
    let body: unknown;
    try { body = await readBody(req); } catch (err) {
      return reject(res, (err as { status?: number }).status ?? 400, (err as Error).message);
    }
    const server = buildServer(createDomain({ store, agent, liveState: opts.liveState }));
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => { void transport.close(); void server.close(); });
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  }

  await new Promise<void>((resolve, rejectListen) => {
    http.once('error', rejectListen);
    http.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const addr = http.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}/mcp`,
    close: () => new Promise<void>((resolve) => { http.closeAllConnections(); http.close(() => resolve()); }),
  };
}
