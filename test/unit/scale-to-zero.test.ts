// Scale-to-zero's pure parts: the route that leads to the waker, the diff that reads
// sleep as desired state, the plan that updates a sleeping app without waking it, the
// waiting page, and the waker's session logic (one start however many ask; idleness from
// its own count of open requests and connections). Replicas in the session tests are a
// fake: the real ones are in test/e2e/scale-to-zero.test.ts.
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { diff } from '../../reconciler/diff/diff.js';
import { readRoute, renderRoute } from '../../reconciler/edge/route.js';
import type { DesiredApp, DesiredState, LiveContainer, LiveRoute, LiveState } from '../../reconciler/model.js';
import { plan } from '../../reconciler/plan/plan.js';
import { waitingPage, wantsPage } from '../../reconciler/waker/page.js';
import { Session, type Replicas } from '../../reconciler/waker/session.js';
import { WAKE_HEADER, WAKER_URL, type WakeSpec, type WakeState } from '../../reconciler/waker/spec.js';

const app = (over: Partial<DesiredApp> = {}): DesiredApp => ({
  kind: 'App', project: 'default', name: 'web', specHash: 'a'.repeat(64), image: 'img:1', port: 8080, env: {}, secretEnv: [],
  resources: { cpu: 0.5, memoryMb: 256, pids: 256 }, replicas: 1, runtime: 'runsc', domains: ['web.default.localhost'], access: { allowCidrs: ['127.0.0.0/8'], redirectToHttps: true },
  health: { path: '/', intervalMs: 200, timeoutMs: 2000, retries: 150 }, databases: [], placement: ['local'],
  scaleToZero: { idleTimeoutSeconds: 30 }, ...over,
});
const web = { kind: 'App' as const, project: 'default', name: 'web' };
const desired = (a: DesiredApp): DesiredState => ({ cluster: 'c1', commit: 'f'.repeat(40), baseDomain: 'localhost', resources: [a], held: [] });
const container = (over: Partial<LiveContainer> = {}): LiveContainer => ({
  id: 'id0', name: 'mlink-c1-default-web-aaaaaaaaaa-0', host: 'local', key: web, specHash: 'a'.repeat(64),
  replica: 0, commit: 'e'.repeat(40), running: true, ip: '172.18.0.2', ...over,
});
const route = (over: Partial<LiveRoute> = {}): LiveRoute => ({
  file: 'mlink-c1--default--web.yaml', host: 'local', key: web, specHash: 'a'.repeat(64), domains: ['web.default.localhost'],
  servers: [WAKER_URL], wake: { idleTimeoutSeconds: 30 }, sleep: { state: 'awake', since: '2026-12-03T10:00:00.000Z' }, access: 'allow=127.0.0.0/8;redirect=true', ...over,
});
const live = (over: Partial<LiveState> = {}): LiveState => ({ containers: [], routes: [], networks: [{ id: 'n', name: 'mlink-c1-default', project: 'default', host: 'local' }], volumes: [], ...over });
const sleeping = { state: 'sleeping' as const, since: '2026-12-03T10:00:30.000Z', lastRequest: '2026-12-03T10:00:00.000Z' };

describe('the route of a scale-to-zero app', () => {
  it('leads to the waker with the app named in a request header, and reads back as such', () => {
    const text = renderRoute({
      cluster: 'c1', project: 'default', name: 'web', specHash: 'a'.repeat(64), router: 'mlink-c1-default-web', domains: ['web.default.localhost'],
      servers: [WAKER_URL], wake: { id: 'c1--default--web', header: WAKE_HEADER, idleTimeoutSeconds: 30 }, access: { allowCidrs: ['127.0.0.0/8'], redirectToHttps: true },
    });
    const yaml = parse(text) as { http: { routers: Record<string, { middlewares: string[] }>; middlewares: Record<string, { headers: { customRequestHeaders: Record<string, string> } }> } };
    // HTTPS reaches the waker with the app named; plain HTTP only redirects, behind the allow-list.
    expect(yaml.http.routers['mlink-c1-default-web-secure']!.middlewares).toEqual(['mlink-c1-default-web-allow', 'mlink-c1-default-web-wake']);
    expect(yaml.http.routers['mlink-c1-default-web-http']!.middlewares).toEqual(['mlink-c1-default-web-allow', 'mlink-c1-default-web-https']);
    expect(yaml.http.middlewares['mlink-c1-default-web-wake']!.headers.customRequestHeaders).toEqual({ [WAKE_HEADER]: 'c1--default--web' });
    const read = readRoute('mlink-c1--default--web.yaml', text, 'c1', 'local');
    expect(read).toMatchObject({ servers: [WAKER_URL], wake: { idleTimeoutSeconds: 30 } });
    expect(readRoute('f.yaml', renderRoute({ cluster: 'c1', project: 'default', name: 'web', specHash: 'x', router: 'r', domains: ['d.test'], servers: ['http://1.2.3.4:80'], access: { allowCidrs: ['127.0.0.0/8'], redirectToHttps: true } }), 'c1', 'local')!.wake).toBeUndefined();
  });
});

describe('diff and plan of a scale-to-zero app', () => {
  it('leaves a sleeping app asleep: its stopped replica is desired state', () => {
    const d = diff(desired(app()), live({ containers: [container({ running: false, ip: undefined })], routes: [route({ sleep: sleeping })] }));
    expect(d.changes[0]).toMatchObject({ change: 'unchanged' });
    const waking = diff(desired(app()), live({ containers: [container({ running: false, ip: undefined })], routes: [route({ sleep: { ...sleeping, state: 'waking' } })] }));
    expect(waking.changes[0]).toMatchObject({ change: 'unchanged' });
  });

  it('replaces a replica that stopped while its app was awake (a crash, not sleep)', () => {
    const stopped = container({ running: false, ip: undefined });
    const d = diff(desired(app()), live({ containers: [stopped], routes: [route()] }));
    expect(d.changes[0]).toMatchObject({ change: 'heal', stale: [stopped], reason: 'replica 0 stopped' });
    expect(plan(d, { cluster: 'c1', commit: 'f'.repeat(40) }).resources[0]!.actions.map((a) => a.type)).toEqual(['startReplica', 'waitHealthy', 'writeRoute', 'drain', 'removeContainer']);
  });

  it('updates a sleeping app without waking it: the new replica is made, not started', () => {
    const old = container({ running: false, ip: undefined });
    const d = diff(desired(app({ specHash: 'b'.repeat(64) })), live({ containers: [old], routes: [route({ sleep: sleeping })] }));
    expect(d.changes[0]).toMatchObject({ change: 'update', asleep: ['local'], reason: `spec changed (${'a'.repeat(10)} -> ${'b'.repeat(10)}) while asleep` });
    const actions = plan(d, { cluster: 'c1', commit: 'f'.repeat(40) }).resources[0]!.actions;
    expect(actions.map((a) => a.type)).toEqual(['createReplica', 'writeRoute', 'drain', 'removeContainer']);
    expect(actions[1]).toMatchObject({ containers: ['mlink-c1-default-web-bbbbbbbbbb-0'] });
  });

  it('moves the route when scale-to-zero is turned on, changed or off', () => {
    const direct = route({ servers: ['http://172.18.0.2:8080'], wake: undefined, sleep: undefined });
    expect(diff(desired(app()), live({ containers: [container()], routes: [direct] })).changes[0]).toMatchObject({ change: 'heal', reason: 'route out of date' });
    expect(diff(desired(app({ scaleToZero: { idleTimeoutSeconds: 60 } })), live({ containers: [container()], routes: [route()] })).changes[0]).toMatchObject({ change: 'heal', reason: 'scale-to-zero changed' });
    // off while asleep: it is started (a stopped replica is drift again) and routed directly
    const off = diff(desired(app({ scaleToZero: undefined })), live({ containers: [container({ running: false, ip: undefined })], routes: [route({ sleep: sleeping })] }));
    expect(off.changes[0]).toMatchObject({ change: 'heal', reason: 'replica 0 stopped, route out of date' });
    expect(plan(off, { cluster: 'c1', commit: 'f'.repeat(40) }).resources[0]!.actions.map((a) => a.type)).toEqual(['startReplica', 'waitHealthy', 'writeRoute', 'drain', 'removeContainer']);
  });
});

describe('the waiting page', () => {
  it('names the app (escaped), refreshes itself, and is for browsers only', () => {
    const page = waitingPage('<b>&co', 2);
    expect(page).toContain('<h1>&#60;b&#62;&#38;co is starting</h1>');
    expect(page).toContain('<meta http-equiv="refresh" content="2">');
    expect(wantsPage('text/html,application/xhtml+xml;q=0.9,*/*;q=0.8')).toBe(true);
    expect(wantsPage('application/json')).toBe(false);
    expect(wantsPage('*/*')).toBe(false);
    expect(wantsPage(undefined)).toBe(false);
  });
});

describe('the waker\'s session of one app', () => {
  const spec: WakeSpec = {
    id: 'c1--default--web', cluster: 'c1', project: 'default', name: 'web', specHash: 'a', idleTimeoutSeconds: 30, port: 8080,
    network: 'mlink-c1-default', health: { path: '/', timeoutMs: 1000 }, waitMs: 1000, replicas: [{ container: 'c', holder: { name: 'c-net' } }],
  };
  function fake(opts: { runs?: boolean; answers?: boolean } = {}): Replicas & { starts: number; stops: number; saved: WakeState[] } {
    let runs = opts.runs ?? false;
    const f = {
      starts: 0, stops: 0, saved: [] as WakeState[],
      start: async () => { f.starts++; await new Promise((r) => setTimeout(r, 20)); runs = true; return ['10.0.0.2']; },
      stop: async () => { f.stops++; runs = false; },
      running: async () => (runs ? ['10.0.0.2'] : []),
      answers: async () => opts.answers ?? true,
      save: async (s: WakeState) => { f.saved.push(s); },
    };
    return f;
  }

  it('starts a sleeping app once for many requests at once, and says sleeping before it stops', async () => {
    let now = 0;
    const r = fake();
    const s = new Session(spec, r, () => now);
    await s.adopt();
    expect(s.state.state).toBe('sleeping');
    const all = await Promise.all(Array.from({ length: 100 }, () => s.ready()));
    expect(r.starts).toBe(1);
    expect(all.every((t) => t[0] === '10.0.0.2')).toBe(true);
    expect(r.saved.map((x) => x.state)).toEqual(['sleeping', 'waking', 'awake']);
    now = 29_000;
    await s.tick();
    expect(s.state.state).toBe('awake');
    now = 30_000;
    await s.tick();
    expect(s.state.state).toBe('sleeping');
    expect(r.stops).toBe(1);
  });

  it('stays awake while a connection is open, and counts idleness from its close', async () => {
    let now = 0;
    const r = fake({ runs: true });
    const s = new Session(spec, r, () => now);
    await s.adopt();
    const close = s.open();
    now = 600_000;
    await s.tick();
    expect(s.state.state).toBe('awake');
    close();
    now = 629_000;
    await s.tick();
    expect(s.state.state).toBe('awake');
    now = 630_000;
    await s.tick();
    expect(s.status()).toMatchObject({ state: 'sleeping', lastRequest: new Date(0).toISOString() });
  });

  it('goes back to sleep, saying why, when the app does not answer within its wait', async () => {
    const r = fake({ answers: false });
    const s = new Session(spec, r);
    await s.adopt();
    await expect(s.ready()).rejects.toThrow(/did not answer 2xx\/3xx within 1 s/);
    expect(s.state).toMatchObject({ state: 'sleeping', error: expect.stringMatching(/^wake failed/) });
    expect(r.stops).toBe(1);
  });
});
