// The waker program: one per runtime host, in a container of its own with the host's
// network and Docker socket (hosts/waker.ts runs it). It needs nothing from the control
// plane: the specs the reconciler wrote (apps/*.json in its directory) say which apps it
// wakes, and it keeps serving and waking them while `mlink up` is stopped. Its
// supervisor (supervisor.ts) brings back the other apps' replicas that exit.
//
//   MLINK_WAKER_DIR (default /var/lib/mlink-waker), MLINK_WAKER_LISTEN (127.0.0.1:18090),
//   MLINK_ROUTES_DIR (the edge's route files, read only; default beside the waker's directory)
import { watch } from 'node:fs';
import { readdir, readFile, rm } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { DockerApi } from './docker-api.js';
import { wakerServer } from './proxy.js';
import { dockerReplicas, run, writeAtomic } from './runtime.js';
import { Supervisor } from './supervisor.js';
import { Session } from './session.js';
import { parseWakeState, stateFile, type WakeSpec } from './spec.js';

const dir = process.env.MLINK_WAKER_DIR ?? '/var/lib/mlink-waker';
const [listenHost, listenPort] = (process.env.MLINK_WAKER_LISTEN ?? '127.0.0.1:18090').split(':') as [string, string];

function log(msg: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ at: new Date().toISOString(), msg, ...fields })}\n`);
}

const dockerApi = new DockerApi(process.env.MLINK_DOCKER_SOCKET);
const docker = dockerReplicas(dockerApi, dir, log);
const lastState = new Map<string, string>();
// Every change of state in the log: when an app slept, woke (and how long that took), or why it could not.
const replicas: typeof docker = {
  ...docker,
  save: async (s) => {
    if (lastState.get(s.id) !== s.state) log(`app ${s.state}`, { app: s.id, since: s.since, ...(s.error ? { error: s.error } : {}) });
    lastState.set(s.id, s.state);
    await docker.save(s);
  },
};
const sessions = new Map<string, Session>();
const texts = new Map<string, string>();

/** Reads apps/*.json: new apps are adopted as they run, changed ones updated, removed ones forgotten. */
async function load(): Promise<void> {
  const files = (await readdir(join(dir, 'apps')).catch(() => [] as string[])).filter((f) => f.endsWith('.json'));
  const seen = new Set<string>();
  for (const f of files) {
    const id = f.slice(0, -'.json'.length);
    seen.add(id);
    const text = await readFile(join(dir, 'apps', f), 'utf8').catch(() => '');
    if (!text || texts.get(id) === text) continue;
    let spec: WakeSpec;
    try { spec = JSON.parse(text) as WakeSpec; } catch { continue; } // being written: the next look reads it whole
    texts.set(id, text);
    const known = sessions.get(id);
    if (known) {
      await known.update(spec);
      log('app updated', { app: id, specHash: spec.specHash.slice(0, 12), state: known.state.state });
    } else {
      const s = new Session(spec, replicas);
      await s.adopt(parseWakeState(await readFile(join(dir, stateFile(id)), 'utf8').catch(() => null)));
      sessions.set(id, s);
      log('app adopted', { app: id, specHash: spec.specHash.slice(0, 12), state: s.state.state, idleTimeoutSeconds: spec.idleTimeoutSeconds });
    }
  }
  for (const id of [...sessions.keys()].filter((k) => !seen.has(k))) {
    sessions.delete(id);
    texts.delete(id);
    await rm(join(dir, stateFile(id)), { force: true });
    log('app forgotten', { app: id });
  }
}

let loading: Promise<void> | undefined;
let again = false;
function reload(): Promise<void> {
  if (loading) { again = true; return loading; }
  loading = load().catch((e: Error) => log('load failed', { error: e.message })).finally(() => {
    loading = undefined;
    if (again) { again = false; void reload(); }
  });
  return loading;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(`${JSON.stringify(body)}\n`);
}

/** The waker's own API: what it serves (a deploy waits until it serves the new spec) and sleep now (benchmarks). */
async function api(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://waker');
  if (req.method === 'GET' && url.pathname === '/_mlink/health') return json(res, 200, { ok: true, apps: sessions.size });
  if (req.method === 'GET' && url.pathname === '/_mlink/apps') {
    await reload();
    return json(res, 200, { apps: [...sessions.values()].map((s) => ({ ...s.status(), serves: s.serves(s.spec.specHash) })) });
  }
  const m = /^\/_mlink\/apps\/([^/]+)\/sleep$/.exec(url.pathname);
  if (req.method === 'POST' && m) {
    const s = sessions.get(decodeURIComponent(m[1]!));
    if (!s) return json(res, 404, { error: `no app ${m[1]}` });
    await s.tick(true);
    return json(res, 200, s.status());
  }
  json(res, 404, { error: 'not a waker path' });
}

const server = wakerServer({ get: (id) => sessions.get(id), list: () => [...sessions.values()] }, api);
server.listen(Number(listenPort), listenHost, () => log('waker listening', { listen: `${listenHost}:${listenPort}`, dir }));

try {
  watch(join(dir, 'apps'), () => void reload());
} catch {
  // no apps/ yet: the timer below reads it once made
}
setInterval(() => void reload(), 1000).unref();
setInterval(() => {
  for (const s of sessions.values()) {
    void s.tick().catch((e: Error) => log('sleep failed', { app: s.spec.id, error: e.message }));
  }
}, 1000);
void reload();

// Scale-to-zero apps' replicas are their sessions' (a crashed one wakes on the next request); the supervisor keeps the others.
const supervisor = new Supervisor({
  docker: dockerApi, dir, routesDir: process.env.MLINK_ROUTES_DIR ?? join(dirname(dir), 'routes'),
  skip: (container) => [...sessions.values()].some((s) => s.spec.replicas.some((r) => r.container === container)),
  save: writeAtomic, run, log,
});
// After the specs are read: a sweep at start must know which replicas are sessions'.
void reload().then(() => supervisor.start());
process.on('SIGTERM', () => { supervisor.close(); server.close(() => process.exit(0)); });
