// The waker's front: every request of a scale-to-zero app comes here from its host's
// edge (the route adds WAKE_HEADER) and is passed to one of the app's replicas. While
// the app sleeps, a browser gets the waiting page and everything else is held until the
// app answers (then it gets the app's own answer), for at most the app's wait, then 503
// with Retry-After. Upgrades (WebSocket) are piped both ways and count as open while
// they last. Requests without the header are the waker's own API, on the host's loopback.
import { Agent, createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { waitingPage, wantsPage } from './page.js';
import type { Session } from './session.js';
import { WAKE_HEADER } from './spec.js';

const RETRY_AFTER_S = 2;
/** Kept-alive connections per app, made anew after each wake (those to the replicas that slept are dead). */
const agents = new Map<string, { generation: number; agent: Agent }>();
function agentOf(s: Session): Agent {
  const had = agents.get(s.spec.id);
  if (had?.generation === s.generation) return had.agent;
  had?.agent.destroy();
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  agents.set(s.spec.id, { generation: s.generation, agent });
  return agent;
}

export interface Sessions { get(id: string): Session | undefined; list(): Session[] }

function plain(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) { res.destroy(); return; }
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(`${text}\n`);
}

/** The app's replicas once it answers, or undefined when the wait runs out (the wake goes on). */
async function readyWithin(s: Session, ms: number): Promise<string[] | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([s.ready(), new Promise<undefined>((r) => { timer = setTimeout(() => r(undefined), ms); })]);
  } finally {
    clearTimeout(timer);
  }
}

function forwardHeaders(req: IncomingMessage): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) if (k !== WAKE_HEADER && v !== undefined) out[k] = v;
  return out;
}

function pass(s: Session, req: IncomingMessage, res: ServerResponse, retried = false): void {
  const target = s.target();
  const up = request({ host: target, port: s.spec.port, method: req.method, path: req.url, headers: forwardHeaders(req), agent: agentOf(s) }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.rawHeaders as unknown as Record<string, string>);
    answer.pipe(res);
  });
  up.on('error', (e) => {
    // A replica replaced meanwhile (new address): ask Docker once more, for requests that can be sent again.
    const again = !retried && !res.headersSent && (req.method === 'GET' || req.method === 'HEAD') && ['ECONNREFUSED', 'EHOSTUNREACH', 'ECONNRESET'].includes((e as NodeJS.ErrnoException).code ?? '');
    if (again) void s.refresh().then((ok) => (ok ? pass(s, req, res, true) : plain(res, 502, `${s.spec.name}: no replica answers`)), () => plain(res, 502, e.message));
    else plain(res, 502, `${s.spec.name}: ${e.message}`);
  });
  res.on('close', () => { if (!res.writableFinished) up.destroy(); });
  req.pipe(up);
}

async function onRequest(sessions: Sessions, req: IncomingMessage, res: ServerResponse, api: (req: IncomingMessage, res: ServerResponse) => Promise<void>): Promise<void> {
  const id = req.headers[WAKE_HEADER];
  if (typeof id !== 'string') return api(req, res);
  const s = sessions.get(id);
  if (!s) return plain(res, 502, `no scale-to-zero app ${id} on this host`);
  const close = s.open();
  res.on('close', close);
  if (!s.awake && wantsPage(req.headers.accept) && (req.method === 'GET' || req.method === 'HEAD')) {
    s.ready().catch(() => undefined); // the wake starts now; the page asks again
    res.writeHead(503, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'retry-after': String(RETRY_AFTER_S) });
    res.end(waitingPage(s.spec.name, RETRY_AFTER_S));
    return;
  }
  try {
    if (!(await readyWithin(s, s.spec.waitMs))) return plain(res, 503, `${s.spec.name} is still starting; try again`, { 'retry-after': String(RETRY_AFTER_S) });
  } catch (e) {
    return plain(res, 503, `${s.spec.name} could not start: ${(e as Error).message}`, { 'retry-after': String(RETRY_AFTER_S * 5) });
  }
  pass(s, req, res);
}

async function onUpgrade(sessions: Sessions, req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
  const id = req.headers[WAKE_HEADER];
  const s = typeof id === 'string' ? sessions.get(id) : undefined;
  if (!s) { socket.end('HTTP/1.1 502 Bad Gateway\r\nconnection: close\r\n\r\n'); return; }
  const close = s.open();
  socket.on('close', close);
  socket.on('error', () => socket.destroy());
  let ready: string[] | undefined;
  try { ready = await readyWithin(s, s.spec.waitMs); } catch { ready = undefined; }
  if (!ready || socket.destroyed) { socket.end(`HTTP/1.1 503 Service Unavailable\r\nretry-after: ${RETRY_AFTER_S}\r\nconnection: close\r\n\r\n`); return; }
  const up = connect(s.spec.port, s.target(), () => {
    const lines = [`${req.method} ${req.url} HTTP/1.1`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() !== WAKE_HEADER) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
    up.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head.length) up.write(head);
    up.pipe(socket).pipe(up);
  });
  up.on('error', () => socket.destroy());
  socket.on('close', () => up.destroy());
  up.on('close', () => socket.destroy());
}

export function wakerServer(sessions: Sessions, api: (req: IncomingMessage, res: ServerResponse) => Promise<void>): Server {
  const server = createServer((req, res) => { onRequest(sessions, req, res, api).catch((e: Error) => plain(res, 500, e.message)); });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => { onUpgrade(sessions, req, socket, head).catch(() => socket.destroy()); });
  server.keepAliveTimeout = 65_000;
  return server;
}
