// A replica its host's supervisor brings back (waker/supervisor.ts), as the pure parts
// see it: the diff leaves it to the host (no replacement racing the restart, its route
// keeps its address), the backoff doubles as Docker's restart policy does, and the
// supervisor's route file name is the reconciler's. The restarts themselves, with real
// Docker and runsc, are in test/integration/replica-supervisor.test.ts.
import { describe, expect, it } from 'vitest';
import { diff } from '../../reconciler/diff/diff.js';
import { plan } from '../../reconciler/plan/plan.js';
import { routeFileName } from '../../reconciler/layout.js';
import type { DesiredApp, DesiredState, LiveContainer, LiveRoute, LiveState } from '../../reconciler/model.js';
import { parseReplicaRecord, restartDelayMs, routeFileOf, wakeId } from '../../reconciler/waker/spec.js';

const app: DesiredApp = {
  kind: 'App', project: 'default', name: 'web', specHash: 'a'.repeat(64), image: 'img:1', port: 8080, env: {}, secretEnv: [],
  resources: { cpu: 0.5, memoryMb: 256, pids: 256 }, replicas: 2, runtime: 'runsc', domains: ['web.default.localhost'], access: { allowCidrs: ['127.0.0.0/8'], redirectToHttps: true },
  health: { path: '/', intervalMs: 200, timeoutMs: 2000, retries: 150 }, databases: [], placement: ['local', 'local'],
};
const web = { kind: 'App' as const, project: 'default', name: 'web' };
const desired: DesiredState = { cluster: 'c1', commit: 'f'.repeat(40), baseDomain: 'localhost', resources: [app], held: [] };
const replica = (r: number, over: Partial<LiveContainer> = {}): LiveContainer => ({
  id: `id${r}`, name: `mlink-c1-default-web-aaaaaaaaaa-${r}`, host: 'local', key: web, specHash: 'a'.repeat(64),
  replica: r, commit: 'e'.repeat(40), running: true, ip: `172.18.0.${r + 2}`, ...over,
});
const route: LiveRoute = {
  file: 'mlink-c1--default--web.yaml', host: 'local', key: web, specHash: 'a'.repeat(64), domains: ['web.default.localhost'],
  servers: ['http://172.18.0.2:8080', 'http://172.18.0.3:8080'], access: 'allow=127.0.0.0/8;redirect=true',
};
const live = (containers: LiveContainer[]): LiveState => ({ containers, routes: [route], networks: [{ id: 'n', name: 'mlink-c1-default', project: 'default', host: 'local' }], volumes: [] });

describe('a replica its host brings back', () => {
  it('is left to the host: no replacement, and its route keeps its address', () => {
    const restarting = replica(1, { running: false, restarting: { restarts: 0, exitCode: 137, nextAt: '2026-12-03T10:00:00.500Z' } });
    expect(diff(desired, live([replica(0), restarting])).changes[0]).toMatchObject({ change: 'unchanged' });
  });

  it('leaves the route while it waits a backoff (it keeps exiting), and is not replaced either', () => {
    const looping = replica(1, { running: false, restarting: { restarts: 3, exitCode: 1, nextAt: '2026-12-03T10:00:04.500Z' } });
    const d = diff(desired, live([replica(0), looping]));
    expect(d.changes[0]).toMatchObject({ change: 'heal', stale: [], reason: 'route out of date' });
    const actions = plan(d, { cluster: 'c1', commit: 'f'.repeat(40) }).resources[0]!.actions;
    expect(actions.map((a) => a.type)).toEqual(['startReplica', 'waitHealthy', 'writeRoute']);
    expect(actions.find((a) => a.type === 'startReplica')).toMatchObject({ replica: 0 });
    expect(actions.find((a) => a.type === 'writeRoute')).toMatchObject({ containers: ['mlink-c1-default-web-aaaaaaaaaa-0'] });
  });

  it('is neither started nor replaced by a heal for another reason, and keeps its route place when its start is now', () => {
    const now = replica(1, { running: false, restarting: { restarts: 0, exitCode: 137, nextAt: '2026-12-03T10:00:00.500Z' } });
    const d = diff({ ...desired, resources: [{ ...app, domains: ['web.default.localhost', 'www.default.localhost'] }] }, live([replica(0), now]));
    expect(d.changes[0]).toMatchObject({ change: 'heal', reason: 'route hosts changed' });
    const actions = plan(d, { cluster: 'c1', commit: 'f'.repeat(40) }).resources[0]!.actions;
    expect(actions.filter((a) => a.type === 'startReplica' || a.type === 'removeContainer').map((a) => ('replica' in a ? a.replica : a.type))).toEqual([0]);
    expect(actions.find((a) => a.type === 'writeRoute')).toMatchObject({ containers: ['mlink-c1-default-web-aaaaaaaaaa-0', 'mlink-c1-default-web-aaaaaaaaaa-1'] });
  });

  it('is replaced when no supervisor says it brings it back (its holder went, or the host has none)', () => {
    const stopped = replica(1, { running: false });
    expect(diff(desired, live([replica(0), stopped])).changes[0]).toMatchObject({ change: 'heal', stale: [stopped], reason: 'replica 1 stopped, route out of date' });
  });

  it('waits 0, 1, 2, 4 ... 60 s between restarts, as Docker backs off', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 12].map(restartDelayMs)).toEqual([0, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]);
  });

  it("finds the app's route under the reconciler's name for it", () => {
    expect(routeFileOf(wakeId('c1', web))).toBe(routeFileName('c1', web));
  });

  it('reads only records it wrote', () => {
    const r = { container: 'x', state: 'restarting', restarts: 1, lastExit: { code: 1, at: '2026-12-03T10:00:00Z' }, nextAt: '2026-12-03T10:00:01Z' };
    expect(parseReplicaRecord(JSON.stringify(r))).toEqual(r);
    expect(parseReplicaRecord('{"container":"x","state":"sleeping"}')).toBeUndefined();
    expect(parseReplicaRecord('{ half')).toBeUndefined();
  });
});
