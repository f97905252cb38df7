// diff pairs desired apps with live objects by identity; plan orders the actions. Pure:
// these tests need no hosts.
import { describe, expect, it } from 'vitest';
import { diff } from '../../reconciler/diff/diff.js';
import type { DesiredApp, DesiredResource, DesiredState, LiveContainer, LiveRoute, LiveState } from '../../reconciler/model.js';
import { plan, summarise } from '../../reconciler/plan/plan.js';

const app = (over: Partial<DesiredApp> = {}): DesiredApp => {
  const a: DesiredApp = {
    kind: 'App', project: 'default', name: 'web', specHash: 'a'.repeat(64), image: 'img:1', port: 8080, env: {}, secretEnv: [],
    resources: { cpu: 0.5, memoryMb: 256, pids: 256 }, replicas: 1, runtime: 'runsc', domains: ['web.default.localhost'], access: { allowCidrs: ['127.0.0.0/8'], redirectToHttps: true },
    health: { path: '/', intervalMs: 200, timeoutMs: 2000, retries: 150 }, databases: [], placement: [], ...over,
  };
  return { ...a, placement: over.placement ?? Array.from({ length: a.replicas }, () => 'local') };
};
const desired = (...resources: DesiredResource[]): DesiredState => ({ cluster: 'c1', commit: 'f'.repeat(40), baseDomain: 'localhost', resources, held: [] });
const web = { kind: 'App' as const, project: 'default', name: 'web' };
const container = (over: Partial<LiveContainer> = {}): LiveContainer => ({
  id: 'id0', name: 'mlink-c1-default-web-aaaaaaaaaa-0', host: 'local', key: web, specHash: 'a'.repeat(64),
  replica: 0, commit: 'e'.repeat(40), running: true, ip: '172.18.0.2', ...over,
});
const route = (over: Partial<LiveRoute> = {}): LiveRoute => ({
  file: 'mlink-c1--default--web.yaml', host: 'local', key: web, specHash: 'a'.repeat(64),
  domains: ['web.default.localhost'], servers: ['http://172.18.0.2:8080'], access: 'allow=127.0.0.0/8;redirect=true', ...over,
});
const live = (over: Partial<LiveState> = {}): LiveState => ({ containers: [], routes: [], networks: [], volumes: [], ...over });
const network = (project: string, host = 'local') => ({ id: `n-${project}`, name: `mlink-c1-${project}`, project, host });

describe('diff', () => {
  it('creates an app that does not run', () => {
    const d = diff(desired(app()), live());
    expect(d.changes).toEqual([{ key: web, kind: 'App', change: 'create', app: app(), reason: 'not running' }]);
    expect(d.networks.ensure).toEqual([{ host: 'local', project: 'default' }]);
  });

  it('leaves a running, routed app alone', () => {
    const d = diff(desired(app()), live({ containers: [container()], routes: [route()] }));
    expect(d.changes).toEqual([{ key: web, kind: 'App', change: 'unchanged', app: app() }]);
  });

  it('ensures only the project networks that do not exist', () => {
    const d = diff(desired(app(), app({ project: 'shop', name: 'cart' })), live({ networks: [network('default')] }));
    expect(d.networks.ensure).toEqual([{ host: 'local', project: 'shop' }]);
    expect(d.networks.remove).toEqual([]);
  });

  it('updates when the spec hash changed, naming old and new', () => {
    const d = diff(desired(app({ specHash: 'b'.repeat(64) })), live({ containers: [container()], routes: [route()] }));
    expect(d.changes[0]).toMatchObject({ change: 'update', stale: [container()], reason: `spec changed (${'a'.repeat(10)} -> ${'b'.repeat(10)})` });
  });

  it('heals a missing replica, a stopped one and a stale route', () => {
    const stopped = container({ id: 'id1', replica: 1, running: false, ip: undefined });
    const d = diff(desired(app({ replicas: 3 })), live({ containers: [container(), stopped], routes: [route()] }));
    expect(d.changes[0]).toMatchObject({ change: 'heal', stale: [stopped], reason: 'replica 1 stopped, replica 2 missing' });
    const moved = diff(desired(app()), live({ containers: [container({ ip: '172.18.0.9' })], routes: [route()] }));
    expect(moved.changes[0]).toMatchObject({ change: 'heal', reason: 'route out of date' });
    const hosts = diff(desired(app({ domains: ['new.example.test'] })), live({ containers: [container()], routes: [route()] }));
    expect(hosts.changes[0]).toMatchObject({ change: 'heal', reason: 'route hosts changed' });
  });

  it('scales down by retiring replicas above the count', () => {
    const extra = container({ id: 'id1', replica: 1, ip: '172.18.0.3' });
    const d = diff(desired(app()), live({ containers: [container(), extra], routes: [route()] }));
    expect(d.changes[0]).toMatchObject({ change: 'heal', stale: [extra] });
  });

  it('pairs by project and app name, not by container name', () => {
    // a regression: containers were once keyed by their container name, so every
    // running app looked like a stranger to prune
    const d = diff(desired(app()), live({ containers: [container({ name: 'anything-at-all' })], routes: [route()] }));
    expect(d.changes.map((a) => a.change)).toEqual(['unchanged']);
  });

  it('removes what git no longer describes, and the network of an empty project', () => {
    const d = diff(desired(), live({ containers: [container()], routes: [route()], networks: [network('default')] }));
    expect(d.changes).toEqual([{ key: web, kind: 'App', change: 'remove', containers: [container()], routes: [route()], reason: 'no longer in git' }]);
    expect(d.networks.remove).toEqual([{ host: 'local', name: 'mlink-c1-default', project: 'default' }]);
  });
});

describe('plan', () => {
  const ctx = { cluster: 'c1', commit: 'f'.repeat(40) };

  it('starts, checks health, routes, then drains and removes the old containers', () => {
    const p = plan(diff(desired(app({ specHash: 'b'.repeat(64), replicas: 2 })), live({ containers: [container()], routes: [route()] })), ctx, { drainMs: 750 });
    expect(p.prepare.filter((a) => a.type === 'ensureNetwork')).toEqual([{ type: 'ensureNetwork', host: 'local', project: 'default', network: 'mlink-c1-default', reason: 'resources of this project join it' }]);
    const r = p.resources[0]!;
    expect(r.actions.map((a) => a.type)).toEqual(['startReplica', 'startReplica', 'waitHealthy', 'writeRoute', 'drain', 'removeContainer']);
    expect(r.actions[0]).toMatchObject({ host: 'local', container: `mlink-c1-default-web-${'b'.repeat(10)}-0`, network: 'mlink-c1-default' });
    expect(r.actions[3]).toMatchObject({ file: 'mlink-c1--default--web.yaml', router: 'mlink-c1-default-web' });
    expect(r.actions[4]).toMatchObject({ type: 'drain', ms: 750 });
    expect(r.actions[5]).toMatchObject({ type: 'removeContainer', host: 'local', id: 'id0', reason: 'replaced' });
    expect(summarise(p)).toEqual([`update App default/web: spec changed (${'a'.repeat(10)} -> ${'b'.repeat(10)}) (startReplica -> startReplica -> waitHealthy -> writeRoute -> drain -> removeContainer)`]);
  });

  it('removes the route before the containers, so traffic stops first', () => {
    const p = plan(diff(desired(), live({ containers: [container()], routes: [route()] })), ctx);
    expect(p.resources[0]!.actions.map((a) => a.type)).toEqual(['removeRoute', 'removeContainer']);
  });

  it('plans nothing for a converged cluster', () => {
    const p = plan(diff(desired(app()), live({ containers: [container()], routes: [route()] })), ctx);
    expect(p.resources).toEqual([]);
    expect(p.unchanged).toEqual(['App default/web']);
  });

  it('takes the route away for zero replicas', () => {
    const p = plan(diff(desired(app({ replicas: 0 })), live({ containers: [container()], routes: [route()] })), ctx);
    expect(p.resources[0]!.actions.map((a) => a.type)).toEqual(['removeRoute', 'drain', 'removeContainer']);
  });
});
