// Host health, pure: the condition a host's checks give it over time (Ready -> Failing ->
// Lost after the configured time -> Returning -> Ready once clean), what placement does
// with a lost host (its apps go elsewhere, its databases do not, and what fits nowhere
// says why), and the setting's bounds in mlink.yaml. No hosts.
import { describe, expect, it } from 'vitest';
import { conditionText, nextCondition, rejoined, schedulableIn, type HostCondition } from '../../reconciler/hosts/conditions.js';
import { stateText, type HostHealth } from '../../reconciler/hosts/health.js';
import type { DesiredApp, DesiredDatabase, DesiredResource, DesiredState, LiveContainer, LiveState } from '../../reconciler/model.js';
import { place, type PlacementHost } from '../../reconciler/placement.js';
import { SchemaError, validateClusterConfig } from '../../schemas/index.js';

const T0 = Date.parse('2026-12-03T16:00:00Z');
const s = (n: number): number => T0 + n * 1000;
const LOST_AFTER = 20_000;
const fail = { ok: false, failed: 'ssh: no answer within 3000 ms' };
const ok = { ok: true };

function walk(probes: Array<[number, { ok: boolean; failed?: string }]>): Array<{ state: string; transition?: string }> {
  let c: HostCondition | undefined;
  return probes.map(([t, p]) => {
    const r = nextCondition(c, p, s(t), LOST_AFTER);
    c = r.condition;
    return { state: c.state, ...(r.transition ? { transition: r.transition } : {}) };
  });
}

describe('host condition', () => {
  it('goes Failing at the first failed check and Lost once it has failed for the configured time', () => {
    expect(walk([[0, ok], [3, fail], [6, fail], [20, fail], [23, fail], [26, fail]])).toEqual([
      { state: 'Ready' }, { state: 'Failing', transition: 'failing' }, { state: 'Failing' }, { state: 'Failing' },
      { state: 'Lost', transition: 'lost' }, { state: 'Lost' },
    ]);
  });

  it('says since when and which check fails', () => {
    const failing = nextCondition(undefined, fail, s(3), LOST_AFTER).condition;
    expect(failing).toEqual({ state: 'Failing', since: '2026-12-03T16:00:03.000Z', failingSince: '2026-12-03T16:00:03.000Z', check: 'ssh: no answer within 3000 ms' });
    const lost = nextCondition(failing, { ok: false, failed: 'docker: no answer within 3000 ms' }, s(24), LOST_AFTER).condition;
    expect(lost).toEqual({ state: 'Lost', since: '2026-12-03T16:00:24.000Z', failingSince: '2026-12-03T16:00:03.000Z', check: 'docker: no answer within 3000 ms' });
    expect(conditionText(lost)).toBe('Lost since 2026-12-03T16:00:24.000Z (failing since 2026-12-03T16:00:03.000Z: docker: no answer within 3000 ms)');
    expect(schedulableIn(failing)).toBe(false);
    expect(schedulableIn(lost)).toBe(false);
    expect(schedulableIn(undefined)).toBe(true);
  });

  it('is Ready again after a blip shorter than the configured time, and moved nothing', () => {
    expect(walk([[0, fail], [3, fail], [6, ok], [9, fail]])).toEqual([
      { state: 'Failing', transition: 'failing' }, { state: 'Failing' }, { state: 'Ready', transition: 'recovered' }, { state: 'Failing', transition: 'failing' },
    ]);
  });

  it('comes back as Returning, takes no new work until a pass finds it clean, then is Ready', () => {
    const steps = walk([[0, fail], [21, fail], [40, ok], [43, ok]]);
    expect(steps.map((x) => x.state)).toEqual(['Failing', 'Lost', 'Returning', 'Returning']);
    expect(steps[2]!.transition).toBe('back');
    const returning: HostCondition = { state: 'Returning', since: '2026-12-03T16:00:40.000Z' };
    expect(schedulableIn(returning)).toBe(false);
    expect(rejoined(returning, s(45))).toEqual({ state: 'Ready', since: '2026-12-03T16:00:45.000Z' });
    expect(rejoined({ state: 'Lost', since: 'x' }, s(45))).toBeUndefined();
    expect(rejoined(undefined, s(45))).toBeUndefined();
  });

  it('is Lost again at once when a returning host fails again', () => {
    const r = nextCondition({ state: 'Returning', since: '2026-12-03T16:00:40.000Z' }, fail, s(43), LOST_AFTER);
    expect(r).toMatchObject({ condition: { state: 'Lost' }, transition: 'lost' });
  });
});

describe('the STATE column of mlink host list', () => {
  const h = (over: Partial<HostHealth>): HostHealth => ({ name: 'rt1', address: '10.0.0.21', roles: ['runtime'], schedulable: true, ssh: { ok: true }, docker: { ok: true }, running: {}, checkedAt: '2026-12-03T16:00:30.000Z', ...over });
  const now = Date.parse('2026-12-03T16:00:31Z');
  it('says Ready, or Lost since when with the failing check, and drained', () => {
    expect(stateText(h({}), now)).toBe('Ready');
    expect(stateText(h({ schedulable: false, condition: { state: 'Lost', since: '2026-12-03T16:00:24.000Z', failingSince: '2026-12-03T16:00:03.000Z', check: 'ssh: no answer within 3000 ms' } }), now))
      .toBe(`${lostText}, drained`);
  });
  it('says when the checks look stopped', () => {
    expect(stateText(h({ checkedAt: '2026-12-03T15:50:00.000Z' }), now)).toBe('Ready, (health checks last ran 631 s ago: is `mlink up` running?)');
    expect(stateText(h({ checkedAt: undefined }), now)).toBe('Ready, (no health checks yet: is `mlink up` running?)');
  });
});

const app = (over: Partial<DesiredApp> = {}): DesiredApp => ({
  kind: 'App', project: 'default', name: 'web', specHash: 'a'.repeat(64), image: 'img:1', port: 8080, env: {}, secretEnv: [],
  resources: { cpu: 0.5, memoryMb: 256, pids: 256 }, replicas: 1, runtime: 'runsc', domains: ['web.default.localhost'], access: { allowCidrs: ['127.0.0.0/8'], redirectToHttps: true },
  health: { path: '/', intervalMs: 200, timeoutMs: 2000, retries: 150 }, databases: [], placement: [], ...over,
});
const db = (over: Partial<DesiredDatabase> = {}): DesiredDatabase => ({
  kind: 'Database', project: 'default', name: 'notes', specHash: 'd'.repeat(64), engine: 'postgres', version: '15',
  resources: { cpu: 0.5, memoryMb: 256, pids: 256 }, runtime: 'runsc', host: '', port: 5432, networks: ['default'], clients: [], ...over,
});
const desired = (...resources: DesiredResource[]): DesiredState => ({ cluster: 'c1', commit: 'f'.repeat(40), baseDomain: 'localhost', resources, held: [] });
const live = (over: Partial<LiveState> = {}): LiveState => ({ containers: [], routes: [], networks: [], volumes: [], ...over });
const lostText = 'Lost since 2026-12-03T16:00:24.000Z (failing since 2026-12-03T16:00:03.000Z: ssh: no answer within 3000 ms)';
const hosts: PlacementHost[] = [
  { name: 'rt1', schedulable: false, unschedulable: lostText, lost: lostText, capacity: { cpu: 2, memoryMb: 1024 } },
  { name: 'rt2', schedulable: true, capacity: { cpu: 2, memoryMb: 1024 } },
];

describe('placement with a lost host', () => {
  it('places the apps of a lost host on the host that remains', () => {
    // What ran on rt1 is not observed any more (a lost host is not asked); the app goes to rt2.
    const { desired: d, unplaced } = place(desired(app()), live(), hosts);
    expect(unplaced).toEqual([]);
    expect((d.resources[0] as DesiredApp).placement).toEqual(['rt2']);
  });

  it('says what fits nowhere, naming the lost host and what the other one lacks', () => {
    const big = app({ resources: { cpu: 1, memoryMb: 2048, pids: 256 } });
    const { unplaced } = place(desired(big), live(), hosts);
    expect(unplaced).toEqual([{ kind: 'App', project: 'default', name: 'web', reason: `replica 0 fits on no runtime host: rt2 would need memory 1024 MiB more than its 1024 MiB; rt1 is ${lostText}` }]);
    expect(place(desired(app()), live(), [hosts[0]!]).unplaced[0]!.reason).toBe(`replica 0 fits on no runtime host: no schedulable runtime host (rt1 is ${lostText})`);
  });

  it('does not move a database whose data is on the lost host: HostLost, with the remedy; its apps wait for it', () => {
    const volume = { name: 'mlink-c1-db-default-notes-data', host: 'rt1', key: { kind: 'Database' as const, project: 'default', name: 'notes' }, engine: 'postgres', version: '15.14', createdAt: '' };
    const bound = app({ databases: [{ project: 'default', name: 'notes', envPrefix: 'DATABASE', port: 5432 }] as DesiredApp['databases'] });
    const { desired: d, unplaced } = place(desired(db(), bound), live({ volumes: [volume] }), hosts);
    expect(d.resources).toEqual([]);
    expect(unplaced[0]).toMatchObject({ kind: 'Database', name: 'notes', phase: 'HostLost' });
    expect(unplaced[0]!.reason).toContain(`its data is on host rt1, which is ${lostText}`);
    expect(unplaced[0]!.reason).toContain('restore_database name=notes project=default into=<a new name>');
    expect(unplaced[1]).toMatchObject({ kind: 'App', name: 'web' });
    expect(unplaced[1]!.reason).toMatch(/^database default\/notes it binds is not placed \(HostLost: its data is on host rt1/);
    expect(d.held.map((h) => h.name).sort()).toEqual(['notes', 'web']);
  });

  it('keeps a drained host\'s database where its data is (only a lost host holds it off)', () => {
    const volume = { name: 'v', host: 'rt1', key: { kind: 'Database' as const, project: 'default', name: 'notes' }, engine: 'postgres', version: '15', createdAt: '' };
    const drained: PlacementHost[] = [{ name: 'rt1', schedulable: false, unschedulable: 'drained' }, hosts[1]!];
    const running: LiveContainer = { id: 'x', name: 'n', host: 'rt1', key: { kind: 'Database', project: 'default', name: 'notes' }, specHash: '', replica: 0, commit: '', running: true };
    expect((place(desired(db()), live({ volumes: [volume], containers: [running] }), drained).desired.resources[0] as DesiredDatabase).host).toBe('rt1');
  });
});

describe('mlink.yaml spec.hostHealth', () => {
  const config = (hostHealth: unknown): unknown => ({
    apiVersion: 'mlink.ink/v1', kind: 'Cluster', metadata: { name: 'c1' },
    spec: { baseDomain: 'localhost', hosts: [{ name: 'local', address: 'local', roles: ['control', 'build', 'runtime'] }], hostHealth, secrets: { recipients: [`age1${'q'.repeat(58)}`] } },
  });

  it('takes a check interval and a time to Lost', () => {
    expect(validateClusterConfig('mlink.yaml', config({ checkIntervalSeconds: 2, lostAfterSeconds: 10 })).spec.hostHealth).toEqual({ checkIntervalSeconds: 2, lostAfterSeconds: 10 });
  });

  it('refuses bad values, naming the field and the fix', () => {
    expect(() => validateClusterConfig('mlink.yaml', config({ lostAfterSeconds: 4, checkIntervalSeconds: 3 }))).toThrow(/spec\.hostHealth\.lostAfterSeconds 4 is less than twice spec\.hostHealth\.checkIntervalSeconds \(3\): give lostAfterSeconds of at least 6/);
    expect(() => validateClusterConfig('mlink.yaml', config({ lostAfterSeconds: 0 }))).toThrow(SchemaError);
    expect(() => validateClusterConfig('mlink.yaml', config({ lostAfterSeconds: 0 }))).toThrow(/lostAfterSeconds/);
    expect(() => validateClusterConfig('mlink.yaml', config({ checkIntervalSeconds: 1.5 }))).toThrow(/checkIntervalSeconds/);
    expect(() => validateClusterConfig('mlink.yaml', config({ lostAfter: 10 }))).toThrow(/lostAfter/);
  });
});
