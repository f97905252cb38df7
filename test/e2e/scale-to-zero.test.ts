// Scale-to-zero as a new user meets it: apps created over MCP with a 30 s idle timeout
// go to sleep when nobody asks for them (no container of theirs runs), and wake on the
// next request through Traefik: an API client gets the app's own answer, a browser the
// waiting page and then the app, 100 requests at once all succeed, a WebSocket keeps
// its app awake, and the host's waker wakes apps with `mlink up` stopped. Sleeping is
// desired state: the drift check leaves it be, get_app and `mlink status` say Sleeping,
// a deploy updates a sleeping app without waking it, and turning scale_to_zero off wakes it.
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { holderName } from '../../reconciler/hosts/containers.js';
import { replicaMac } from '../../reconciler/hosts/egress-rules.js';
import { LABEL } from '../../reconciler/model.js';
import { must } from '../../infra/proc.js';
import { cfg, docker, eventually, runId } from '../support/infra.js';
import { ensureWebImage } from '../support/images.js';
import { call, connectAgent, startUp, tearDown, stopUp, upEnv, type Up } from '../support/mlink-up.js';

const cluster = `s2z${runId}`.slice(0, 30);
const IDLE_S = 30;
let up: Up;
let agent: Client;
let image: string;

async function running(name: string): Promise<Array<{ Id: string; Names: string[]; Labels: Record<string, string> }>> {
  return docker.listContainers({ filters: { label: [`${LABEL.cluster}=${cluster}`, `${LABEL.name}=${name}`] } });
}

async function all(name: string): Promise<Array<{ Id: string; Names: string[]; State: string; Labels: Record<string, string> }>> {
  return docker.listContainers({ all: true, filters: { label: [`${LABEL.cluster}=${cluster}`, `${LABEL.name}=${name}`] } });
}

const hostOf = (name: string): string => `${name}.default.localhost`;

function get(name: string, headers: Record<string, string> = {}, timeoutMs = 60_000): Promise<{ status: number; headers: Record<string, unknown>; body: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const req = request({ host: cfg.traefik.host, port: cfg.traefik.webPort, path: '/', headers: { host: hostOf(name), ...headers }, timeout: timeoutMs, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, ms: Date.now() - t0 }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer for ${name} in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** A WebSocket through Traefik to the app's /ws, counting the frames it sends (one a second). */
function openWebSocket(name: string): Promise<{ ticks: () => number; close: () => void; open: () => boolean }> {
  const key = randomBytes(16).toString('base64');
  return new Promise((resolve, reject) => {
    const req = request({
      host: cfg.traefik.host, port: cfg.traefik.webPort, path: '/ws', agent: false,
      headers: { host: hostOf(name), connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-key': key, 'sec-websocket-version': '13' },
    });
    req.on('upgrade', (res, socket: Socket) => {
      const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      if (res.headers['sec-websocket-accept'] !== accept) { socket.destroy(); reject(new Error('the handshake answer is not for this key')); return; }
      let text = '';
      let open = true;
      socket.on('data', (d: Buffer) => { text += d.toString('latin1'); });
      socket.on('close', () => { open = false; });
      resolve({ ticks: () => text.split('tick ').length - 1, close: () => socket.destroy(), open: () => open });
    });
    req.on('response', (res) => reject(new Error(`no upgrade: HTTP ${res.statusCode}`)));
    req.on('error', reject);
    req.end();
  });
}

/** An SSE stream through Traefik from the app's /events, counting its events (one a second). */
function openEventStream(name: string): Promise<{ ticks: () => number; close: () => void; open: () => boolean }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: cfg.traefik.host, port: cfg.traefik.webPort, path: '/events', agent: false, headers: { host: hostOf(name), accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200 || !/text\/event-stream/.test(String(res.headers['content-type']))) { res.resume(); reject(new Error(`no event stream: HTTP ${res.statusCode}`)); return; }
      let text = '';
      let open = true;
      res.setEncoding('utf8').on('data', (d: string) => { text += d; });
      res.on('close', () => { open = false; });
      resolve({ ticks: () => text.split('data: tick ').length - 1, close: () => req.destroy(), open: () => open });
    });
    req.on('error', reject);
    req.end();
  });
}

async function status(name: string): Promise<{ phase?: string; sleep?: { state: string; since: string; last_request?: string; idle_timeout_seconds: number } }> {
  return (await call<{ live: { phase?: string; sleep?: { state: string; since: string; last_request?: string; idle_timeout_seconds: number } } }>(agent, 'get_app', { name })).live;
}

const asleep = async (name: string): Promise<true | undefined> => ((await running(name)).length === 0 ? true : undefined);

beforeAll(async () => {
  image = await ensureWebImage();
  up = await startUp({ cluster, drift: 2, args: ['--git-port', '0'] }); // other clusters on this host may hold the default
  agent = await connectAgent(up);
}, 120_000);

afterAll(async () => {
  await tearDown(up, agent);
}, 60_000);

describe('scale-to-zero', () => {
  // a: plain request, b: browser, c: 100 at once, d: WebSocket, h: SSE, e: deployed while asleep, f: mlink up stopped, g: turned off.
  const sleepers = ['a', 'b', 'c', 'e', 'f', 'g'];
  const held = ['d', 'h'];
  let ws: Awaited<ReturnType<typeof openWebSocket>>;
  let sse: Awaited<ReturnType<typeof openEventStream>>;
  let openedAt = 0;
  const awake: Record<string, boolean[]> = { d: [], h: [] };
  let watchHeld: Promise<void> | undefined;

  it(`puts apps idle for their ${IDLE_S} s timeout to sleep: no container of theirs runs, and the drift check leaves them asleep`, async () => {
    await Promise.all([...sleepers, ...held].map((name) => call(agent, 'create_app', {
      // Plain HTTP to the waker (WebSocket and SSE included), as before HTTPS came: no redirect.
      name, source: { image }, port: 8080, env: { GREETING: `${name}1` }, scale_to_zero: { idle_timeout_seconds: IDLE_S }, https_redirect: false, wait: 60,
    })));
    for (const name of [...sleepers, ...held]) expect((await get(name)).body).toMatch(new RegExp(`^${name}1 from `));
    const lastRequest = Date.now();
    [ws, sse] = await Promise.all([openWebSocket('d'), openEventStream('h')]);
    openedAt = Date.now();
    watchHeld = (async () => {
      while (Date.now() - openedAt < 2 * IDLE_S * 1000) {
        for (const name of held) awake[name]!.push((await running(name)).length === 1);
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    // Well inside the timeout they still run; once it has passed, nothing of them does.
    await new Promise((r) => setTimeout(r, (IDLE_S - 10) * 1000 - (Date.now() - lastRequest)));
    for (const name of sleepers) expect((await running(name)).length, `${name} before its timeout`).toBe(1);
    await Promise.all(sleepers.map((name) => eventually(`${name} asleep`, () => asleep(name), 30_000)));
    expect(Date.now() - lastRequest).toBeGreaterThanOrEqual(IDLE_S * 1000);
    for (const name of sleepers) {
      // its container stays, made again and never started (the waker starts it); its network holder goes
      await eventually(`${name}'s holder gone`, async () => {
        const [c] = await all(name);
        const h = await docker.getContainer(holderName(c!.Names[0]!.slice(1))).inspect().catch(() => undefined);
        return c!.State === 'created' && !h ? true : undefined;
      }, 10_000);
    }
    // asleep is desired state: forced passes and the 2 s drift checks start nothing
    await call(agent, 'sync', {});
    await new Promise((r) => setTimeout(r, 6000));
    for (const name of sleepers) expect((await running(name)).length, `${name} after drift checks`).toBe(0);
    const a = await status('a');
    expect(a.phase).toBe('Sleeping');
    expect(a.sleep).toMatchObject({ state: 'sleeping', idle_timeout_seconds: IDLE_S });
    expect(Date.parse(a.sleep!.since)).toBeGreaterThan(lastRequest);
    expect(Date.parse(a.sleep!.last_request!)).toBeLessThanOrEqual(lastRequest);
    const listed = await call<{ apps: Array<{ name: string; live: { phase?: string } }> }>(agent, 'list_apps', {});
    expect(listed.apps.find((x) => x.name === 'a')?.live.phase).toBe('Sleeping');
    expect(listed.apps.find((x) => x.name === 'd')?.live.phase).toBe('Running');
    const table = await must('node', ['bin/mlink.js', 'status'], { env: upEnv(up.home) });
    expect(table).toMatch(/^default\/a\s+Sleeping\s+.*sleeping since \S+, last request /m);
  }, 180_000);

  it('answers a plain HTTP request at a sleeping app with 200 and the app\'s own content', async () => {
    const r = await get('a');
    expect(r.status).toBe(200);
    expect(r.body).toMatch(/^a1 from /);
    const [c] = await running('a');
    expect((await status('a')).phase).toBe('Running');
    // it woke with its own MAC, which the egress rules know it by
    const info = await docker.getContainer(c!.Id).inspect();
    const mac = replicaMac(cluster, { project: 'default', name: 'a', specHash: c!.Labels[LABEL.specHash]! }, 0);
    expect(Object.values(info.NetworkSettings.Networks).map((n) => n.MacAddress)).toEqual([mac]);
  }, 60_000);

  it('shows a browser the waiting page with the app\'s name, then the app', async () => {
    const html = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' };
    const first = await get('b', html);
    expect(first.status).toBe(503);
    expect(first.headers['content-type']).toMatch(/text\/html/);
    expect(first.headers['retry-after']).toBe('2');
    expect(first.body).toContain('<h1>b is starting</h1>');
    expect(first.body).toMatch(/<meta http-equiv="refresh" content="2">/);
    // as the page's refresh would ask again
    const page = await eventually('b answers the browser itself', async () => {
      const r = await get('b', html);
      return r.status === 200 ? r : undefined;
    }, 30_000);
    expect(page.body).toMatch(/^b1 from /);
  }, 60_000);

  it('serves all of 100 requests arriving at once at a sleeping app, starting it once', async () => {
    const answers = await Promise.all(Array.from({ length: 100 }, () => get('c').catch((e: Error) => ({ status: 0, body: e.message, ms: 0 }))));
    const failed = answers.filter((r) => r.status !== 200 || !/^c1 from /.test(r.body));
    expect(failed.map((r) => `${r.status} ${r.body.trim()}`)).toEqual([]);
    expect((await all('c')).map((c) => c.State)).toEqual(['running']);
    expect(new Set(answers.map((r) => r.body)).size).toBe(1); // one replica answered them all
  }, 90_000);

  it('updates a sleeping app without waking it; the next request starts the new version', async () => {
    const before = (await all('e'))[0]!;
    await call(agent, 'update_app', { name: 'e', env: { GREETING: 'e2' } });
    const made = await eventually('e\'s new version is made, stopped, the old one gone', async () => {
      const list = await all('e');
      return list.length === 1 && list[0]!.Id !== before.Id ? list[0] : undefined;
    }, 30_000);
    expect(made.State).toBe('created');
    expect((await status('e')).phase).toBe('Sleeping');
    await new Promise((r) => setTimeout(r, 4000)); // two drift checks: still asleep
    expect((await running('e')).length).toBe(0);
    const r = await get('e');
    expect(r.status).toBe(200);
    expect(r.body).toMatch(/^e2 from /);
  }, 60_000);

  it('wakes a sleeping app when scale_to_zero is turned off, and routes to it directly', async () => {
    expect((await running('g')).length).toBe(0);
    await call(agent, 'update_app', { name: 'g', scale_to_zero: null });
    await eventually('g runs and is routed directly, without a request', async () => ((await running('g')).length === 1 && !(await status('g')).sleep ? true : undefined), 30_000);
    const r = await eventually('g serves', async () => { const x = await get('g'); return x.status === 200 ? x : undefined; }, 20_000);
    expect(r.body).toMatch(/^g1 from /);
    const s = await status('g');
    expect(s.phase).toBe('Running');
    expect(s.sleep).toBeUndefined();
  }, 60_000);

  it('keeps an app awake while a WebSocket, or an SSE stream, to it stays open for twice its timeout', async () => {
    await watchHeld;
    for (const [name, conn] of [['d', ws], ['h', sse]] as const) {
      expect(conn.open(), name).toBe(true);
      expect(conn.ticks(), name).toBeGreaterThanOrEqual(2 * IDLE_S - 5);
      expect(awake[name]!.length, name).toBeGreaterThan(IDLE_S);
      expect(awake[name]!.every(Boolean), name).toBe(true);
      conn.close();
    }
  }, 120_000);

  it('wakes a sleeping app with `mlink up` stopped: the host\'s waker needs no control plane', async () => {
    expect((await running('f')).length).toBe(0);
    await stopUp(up);
    const r = await get('f');
    expect(r.status).toBe(200);
    expect(r.body).toMatch(/^f1 from /);
  }, 60_000);
});
