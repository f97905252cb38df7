// Databases as a kind of their own, pure: paired with their server and volume by
// identity, planned so data is never in a change, ordered before the apps bound to
// them, and placed with their data. No hosts.
import { describe, expect, it } from 'vitest';
import { resolveBindings } from '../../reconciler/diff/bindings.js';
import { diff } from '../../reconciler/diff/diff.js';
import { diffDatabase } from '../../reconciler/diff/database.js';
import type { DesiredApp, DesiredDatabase, DesiredResource, DesiredState, LiveContainer, LiveState, LiveVolume } from '../../reconciler/model.js';
import { buildHostFor, place } from '../../reconciler/placement.js';
import { plan } from '../../reconciler/plan/plan.js';

const db = (over: Partial<DesiredDatabase> = {}): DesiredDatabase => ({
  kind: 'Database', project: 'default', name: 'notes', specHash: 'd'.repeat(64), engine: 'postgres', version: '15',
  resources: { cpu: 0.5, memoryMb: 256, pids: 256 }, runtime: 'runsc', host: 'local', port: 5432, networks: ['default'], clients: [], ...over,
});
const app = (over: Partial<DesiredApp> = {}): DesiredApp => ({
  kind: 'App', project: 'default', name: 'web', specHash: 'a'.repeat(64), image: 'img:1', port: 8080, env: {}, secretEnv: [],
  resources: { cpu: 0.5, memoryMb: 256, pids: 256 }, replicas: 1, runtime: 'runsc', domains: ['web.default.localhost'], access: { allowCidrs: ['127.0.0.0/8'], redirectToHttps: true },
  health: { path: '/', intervalMs: 200, timeoutMs: 2000, retries: 150 }, databases: [], placement: ['local'], ...over,
});
const notes = { kind: 'Database' as const, project: 'default', name: 'notes' };
const server = (over: Partial<LiveContainer> = {}): LiveContainer => ({
  id: 'db0', name: `mlink-c1-db-default-notes-${'d'.repeat(10)}`, host: 'local', key: notes, specHash: 'd'.repeat(64), replica: 0,
  commit: 'e'.repeat(40), running: true, healthy: true, ip: '172.18.0.9', ...over,
});
const volume = (over: Partial<LiveVolume> = {}): LiveVolume => ({ name: 'mlink-c1-db-default-notes-data', host: 'local', key: notes, engine: 'postgres', version: '15.14', createdAt: '2026-12-01T00:00:00Z', ...over });
const desired = (...resources: DesiredResource[]): DesiredState => ({ cluster: 'c1', commit: 'f'.repeat(40), baseDomain: 'localhost', resources, held: [] });
const live = (over: Partial<LiveState> = {}): LiveState => ({ containers: [], routes: [], networks: [], volumes: [], ...over });
const ctx = { cluster: 'c1', commit: 'f'.repeat(40) };

describe('diffDatabase', () => {
  it('creates a server that is not there, using retained data when its volume is', () => {
    expect(diffDatabase(db(), [], undefined)).toMatchObject({ change: 'create', reason: 'not running' });
    expect(diffDatabase(db(), [], volume())).toMatchObject({ change: 'create', volume: volume(), reason: 'not running; its retained data (since 2026-12-01T00:00:00Z) is used again' });
  });

  it('is unchanged while its server answers; waits while it starts; heals one that stopped or stopped answering', () => {
    expect(diffDatabase(db(), [server()], volume())).toEqual({ change: 'unchanged', db: db() });
    expect(diffDatabase(db(), [server({ healthy: undefined })], volume())).toMatchObject({ change: 'heal', starting: true, stale: [] });
    expect(diffDatabase(db(), [server({ running: false, healthy: undefined })], volume())).toMatchObject({ change: 'heal', reason: 'server stopped' });
    expect(diffDatabase(db(), [server({ healthy: false })], volume())).toMatchObject({ change: 'heal', reason: 'server does not answer its health check' });
  });

  it('replaces the server on the same data when the spec changes', () => {
    const d = diffDatabase(db({ specHash: 'e'.repeat(64) }), [server()], volume());
    expect(d).toMatchObject({ change: 'update', stale: [server()] });
  });

  it('refuses another engine or release on the same data, naming the way to do it', () => {
    const d = diffDatabase(db({ engine: 'mysql', version: '10.11' }), [server()], volume());
    expect(d).toMatchObject({ change: 'stalled' });
    expect((d as { reason: string }).reason).toMatch(/written by postgres 15.14; changing to mysql 10.11 in place is not supported: create a new database .*\(backup_database, then restore_database/);
  });

  it('never moves data: a database whose volume is on another host stalls', () => {
    expect(diffDatabase(db({ host: 'b' }), [], volume({ host: 'a' }))).toMatchObject({ change: 'stalled', reason: expect.stringMatching(/its data is on host a, not on b/) });
  });
});

describe('plan with databases', () => {
  it('stops the old server before the new one starts (one server per volume), and never plans anything for the volume', () => {
    const p = plan(diff(desired(db({ specHash: 'e'.repeat(64) })), live({ containers: [server()], volumes: [volume()] })), ctx);
    expect(p.resources[0]!.actions.map((a) => a.type)).toEqual(['removeContainer', 'startDatabase']);
    expect(p.resources[0]!.actions[1]).toMatchObject({ host: 'local', container: `mlink-c1-db-default-notes-${'e'.repeat(10)}`, volume: 'mlink-c1-db-default-notes-data' });
    expect(JSON.stringify(p)).not.toMatch(/removeVolume/);
  });

  it('removes the server of a database that left git and keeps its data', () => {
    const p = plan(diff(desired(), live({ containers: [server()], volumes: [volume()] })), ctx);
    expect(p.resources).toEqual([expect.objectContaining({ key: notes, change: 'remove', actions: [expect.objectContaining({ type: 'removeContainer', id: 'db0' })] })]);
    expect(p.resources[0]!.reason).toMatch(/its data is retained on volume mlink-c1-db-default-notes-data until a human purges it/);
    expect(plan(diff(desired(), live({ volumes: [volume()] })), ctx).resources).toEqual([]);
  });

  it('orders an app after the databases it binds, and lets it go at once when they answer', () => {
    const bound = app({ databases: [{ project: 'default', name: 'notes', engine: 'postgres', envPrefix: 'DATABASE', port: 5432 }] });
    const fresh = plan(diff(desired(db(), bound), live()), ctx);
    expect(fresh.resources.map((r) => [r.key.kind, r.after])).toEqual([['Database', []], ['App', ['Database default/notes']]]);
    expect(fresh.ready).toEqual([]);
    const running = plan(diff(desired(db(), bound), live({ containers: [server()], volumes: [volume()] })), ctx);
    expect(running.ready).toEqual(['Database default/notes']);
  });

  it('fences each database on every network it joins: bound apps by their MACs, nobody else', () => {
    const bound = (project: string) => app({ project, databases: [{ project: 'default', name: 'notes', engine: 'postgres', envPrefix: 'DATABASE', port: 5432 }] });
    const d = diff(desired(db({ networks: ['default', 'shop'], clients: [{ project: 'default', name: 'web' }, { project: 'shop', name: 'web' }] }), bound('default'), bound('shop'), app({ name: 'other' })), live());
    const projects = d.egress[0]!.policy.projects;
    expect(projects.map((p) => [p.project, p.databases?.map((x) => [x.container, x.clients.map((c) => `${c.project}/${c.name}`)])])).toEqual([
      ['default', [[`mlink-c1-db-default-notes-${'d'.repeat(10)}`, ['default/web']]]],
      ['shop', [[`mlink-c1-db-default-notes-${'d'.repeat(10)}`, ['shop/web']]]],
    ]);
  });

  it('keeps what runs of a resource git holds but cannot apply (an app bound to a database git lacks)', () => {
    const c: LiveContainer = { ...server(), id: 'w0', key: { kind: 'App', project: 'default', name: 'web' }, name: 'w', specHash: 'a'.repeat(64), healthy: undefined };
    const d = diff({ ...desired(), held: [{ kind: 'App', project: 'default', name: 'web' }] }, live({ containers: [c], networks: [{ id: 'n', name: 'mlink-c1-default', project: 'default', host: 'local' }] }));
    expect(d.changes).toEqual([]);
    expect(d.networks.remove).toEqual([]);
  });
});

describe('bindings', () => {
  const bound = app({ databases: [{ project: 'default', name: 'notes', engine: 'postgres', envPrefix: 'DATABASE', port: 5432 }] });
  const at = (ip: string): LiveContainer => server({ addresses: { 'mlink-c1-default': ip } });

  it('waits while its database does not run, and keeps what runs of it', () => {
    const r = resolveBindings(desired(db(), bound), live());
    expect(r.waiting).toEqual([{ kind: 'App', project: 'default', name: 'web', reason: 'database default/notes is not running yet; this starts once it answers' }]);
    expect(r.desired.resources.map((x) => x.kind)).toEqual(['Database']);
    expect(r.desired.held).toEqual([{ kind: 'App', project: 'default', name: 'web' }]);
  });

  it("gives the app its database's address on the app's network, and a new spec when that address changes", () => {
    const one = resolveBindings(desired(db(), bound), live({ containers: [at('172.18.0.9')] })).desired.resources[1] as DesiredApp;
    expect(one.databases[0]!.address).toBe('172.18.0.9');
    const again = resolveBindings(desired(db(), bound), live({ containers: [at('172.18.0.9')] })).desired.resources[1] as DesiredApp;
    const moved = resolveBindings(desired(db(), bound), live({ containers: [at('172.18.0.10')] })).desired.resources[1] as DesiredApp;
    expect(again.specHash).toBe(one.specHash);
    expect(moved.specHash).not.toBe(one.specHash);
    expect(one.specHash).not.toBe(bound.specHash);
  });

  it('places a bound app on its database\'s host', () => {
    const hosts = [{ name: 'a', schedulable: true }, { name: 'b', schedulable: true }];
    const { desired: d } = place(desired(db({ host: '' }), { ...bound, replicas: 2, placement: [] }), live({ volumes: [volume({ host: 'b' })] }), hosts);
    expect((d.resources.find((r) => r.kind === 'App') as DesiredApp).placement).toEqual(['b', 'b']);
  });
});

describe('placement', () => {
  const hosts = [
    { name: 'a', schedulable: true, capacity: { cpu: 2, memoryMb: 1024 } },
    { name: 'b', schedulable: true, capacity: { cpu: 2, memoryMb: 1024 } },
  ];

  it('names a build host per app built from source: stable, and a new build host takes only some apps', () => {
    const apps = Array.from({ length: 60 }, (_, i) => `app${i}`);
    const two = apps.map((n) => buildHostFor('p', n, ['b1', 'b2']));
    expect(new Set(two)).toEqual(new Set(['b1', 'b2']));
    expect(apps.map((n) => buildHostFor('p', n, ['b2', 'b1']))).toEqual(two);
    const three = apps.map((n) => buildHostFor('p', n, ['b1', 'b2', 'b3']));
    const moved = three.filter((h, i) => h !== two[i]);
    expect(moved.every((h) => h === 'b3')).toBe(true);
    expect(moved.length).toBeGreaterThan(5);
    expect(moved.length).toBeLessThan(40);
    expect(buildHostFor('p', 'x', [])).toBeUndefined();
    const built = app({ placement: [], build: { key: 'k', repo: { project: 'default', name: 'web' }, commit: 'c'.repeat(40), path: '' } });
    expect((place(desired(built), live(), hosts, ['b1', 'b2']).desired.resources[0] as DesiredApp).buildHost).toBe(buildHostFor('default', 'web', ['b1', 'b2']));
  });

  it('spreads the replicas of one app over hosts', () => {
    const { desired: d } = place(desired(app({ replicas: 2, placement: [] })), live(), hosts);
    expect((d.resources[0] as DesiredApp).placement).toEqual(['a', 'b']);
  });

  it('keeps a replica where it runs while that host is schedulable and it fits, and moves it when not', () => {
    const running: LiveContainer = { ...server(), key: { kind: 'App', project: 'default', name: 'web' }, host: 'b', healthy: undefined };
    expect((place(desired(app({ placement: [] })), live({ containers: [running] }), hosts).desired.resources[0] as DesiredApp).placement).toEqual(['b']);
    const drained = [hosts[0]!, { ...hosts[1]!, schedulable: false }];
    expect((place(desired(app({ placement: [] })), live({ containers: [running] }), drained).desired.resources[0] as DesiredApp).placement).toEqual(['a']);
  });

  it('keeps a database with its data, on its volume\'s host', () => {
    const { desired: d } = place(desired(db({ host: '' })), live({ volumes: [volume({ host: 'b' })] }), hosts);
    expect((d.resources[0] as DesiredDatabase).host).toBe('b');
  });

  it('says which resource fits nowhere and how much is missing, and holds it (what runs of it stays)', () => {
    const big = app({ placement: [], resources: { cpu: 1, memoryMb: 2048, pids: 256 } });
    const r = place(desired(big), live(), hosts);
    expect(r.unplaced).toEqual([{ kind: 'App', project: 'default', name: 'web', reason: 'replica 0 fits on no runtime host: a would need memory 1024 MiB more than its 1024 MiB; b would need memory 1024 MiB more than its 1024 MiB' }]);
    expect(r.desired.resources).toEqual([]);
    expect(r.desired.held).toEqual([{ kind: 'App', project: 'default', name: 'web' }]);
  });
});
