// Compiling an App against the cluster defaults, route files written and read back,
// status notes, and the drift schedule: the reconciler's pure pieces.
import { describe, expect, it } from 'vitest';
import type { App, ClusterConfig } from '../../schemas/index.js';
import { readRoute, renderRoute } from '../../reconciler/edge/route.js';
import { StalledError } from '../../reconciler/errors.js';
import { compileApp, type AppInputs } from '../../reconciler/source/app.js';
import { expired } from '../../reconciler/source/desired.js';
import { parseNote, renderNote, type StatusRecord } from '../../reconciler/status/record.js';
import { driftSchedule } from '../../reconciler/triggers.js';

const cluster: ClusterConfig = {
  apiVersion: 'mlink.ink/v1', kind: 'Cluster', metadata: { name: 'c1' },
  spec: {
    baseDomain: 'apps.internal', hosts: [{ name: 'local', address: 'local', roles: ['control', 'build', 'runtime'] }],
    defaults: { runtime: 'runsc', resources: { cpu: 1, memoryMb: 512, pids: 200 }, replicas: 2 },
    projects: { legacy: { runtime: 'runc' } }, secrets: { recipients: ['age1x'] },
  },
};
const app = (spec: Partial<App['spec']> = {}, project = 'default'): App => ({
  apiVersion: 'mlink.ink/v1', kind: 'App', metadata: { name: 'web', project }, spec: { source: { image: 'img:1' }, port: 8080, ...spec },
});

const none = (secretOids: Record<string, string> = {}): AppInputs => ({ cluster, secretOids, databases: new Map(), credentialOids: new Map() });

describe('compileApp', () => {
  it('fills in cluster defaults and the default host name', () => {
    const a = compileApp(app({ resources: { memoryMb: 128 } }), none());
    expect(a).toMatchObject({ runtime: 'runsc', replicas: 2, resources: { cpu: 1, memoryMb: 128, pids: 200 }, domains: ['web.default.apps.internal'] });
  });

  it('runs a project under runc only when the cluster config allows it', () => {
    expect(compileApp(app({}, 'legacy'), none()).runtime).toBe('runc');
    expect(compileApp(app({}, 'other'), none()).runtime).toBe('runsc');
  });

  it('changes the spec hash for what changes a container, not for replicas or routes', () => {
    const base = compileApp(app(), none()).specHash;
    expect(compileApp(app({ env: { A: '1' } }), none()).specHash).not.toBe(base);
    expect(compileApp(app({ source: { image: 'img:2' } }), none()).specHash).not.toBe(base);
    expect(compileApp(app({ replicas: 5, domains: ['x.example.test'] }), none()).specHash).toBe(base);
  });

  it('changes the spec hash when a secret value changes (by its blob id), never holding the value', () => {
    const one = compileApp(app({ secretEnv: ['TOKEN'] }), none({ TOKEN: '1'.repeat(40) }));
    const two = compileApp(app({ secretEnv: ['TOKEN'] }), none({ TOKEN: '2'.repeat(40) }));
    expect(one.specHash).not.toBe(two.specHash);
    expect(one.secretEnv).toEqual(['TOKEN']);
  });

  it('polls health quickly for at least 30 s, longer when the manifest asks', () => {
    expect(compileApp(app(), none()).health).toEqual({ path: '/', intervalMs: 200, timeoutMs: 2000, retries: 150 });
    expect(compileApp(app({ healthCheck: { path: '/healthz', intervalSeconds: 10, retries: 6 } }), none()).health).toMatchObject({ path: '/healthz', retries: 300 });
  });

  it('stalls an app built from source with a BuildFailed reason', () => {
    expect(() => compileApp(app({ source: { git: { url: 'https://git.example.test/x.git', ref: 'main' } } }), none())).toThrow(StalledError);
  });
});

describe('ephemeral apps', () => {
  it('expire at expiresAt and not before', () => {
    const a = app({ expiresAt: '2026-11-28T12:00:00Z' });
    expect(expired(a, new Date('2026-11-28T11:59:59Z'))).toBe(false);
    expect(expired(a, new Date('2026-11-28T12:00:00Z'))).toBe(true);
    expect(expired(app(), new Date('2100-01-01T00:00:00Z'))).toBe(false);
  });
});

describe('route files', () => {
  const spec = { cluster: 'c1', project: 'default', name: 'web', specHash: 'a'.repeat(64), router: 'mlink-c1-default-web', domains: ['a.test', 'b.test'], servers: ['http://172.18.0.2:8080', 'http://172.18.0.3:8080'], access: { allowCidrs: ['10.0.0.0/8'], redirectToHttps: true, httpsPort: 18443 } };

  it('reads back what it writes', () => {
    const text = renderRoute(spec);
    expect(text).toContain('rule: Host(`a.test`) || Host(`b.test`)');
    expect(readRoute('f.yaml', text, 'c1', 'h1')).toEqual({ file: 'f.yaml', host: 'h1', key: { kind: 'App', project: 'default', name: 'web' }, specHash: spec.specHash, domains: spec.domains, servers: spec.servers, access: 'allow=10.0.0.0/8;redirect=true' });
  });

  it('ignores files of another cluster and files ml.ink did not write', () => {
    expect(readRoute('f.yaml', renderRoute(spec), 'c2', 'h1')).toBeUndefined();
    expect(readRoute('f.yaml', 'http:\n  routers: {}\n', 'c1', 'h1')).toBeUndefined();
  });
});

describe('status notes', () => {
  it('round-trips the record a human reads in git log --notes', () => {
    const r: StatusRecord = {
      commit: 'c'.repeat(40), phase: 'Degraded', message: '1 of 2 change(s) failed', at: '2026-11-28T00:00:00.000Z', trigger: 'commit', unchanged: 3,
      resources: [{ kind: 'App', project: 'p', name: 'a', change: 'create', result: 'failed', phase: 'HealthCheckFailed', message: 'GET / timed out' }],
    };
    const text = renderNote(r);
    expect(text.split('\n')[0]).toBe(`ml.ink Degraded ${'c'.repeat(12)} at 2026-11-28T00:00:00.000Z (commit): 1 of 2 change(s) failed`);
    expect(parseNote(text)).toEqual({ ...r, commit: '' });
  });
});

describe('drift schedule', () => {
  it('uses a seconds field under a minute and minutes above', () => {
    expect(driftSchedule(5)).toBe('*/5 * * * * *');
    expect(driftSchedule(300)).toBe('0 */5 * * * *');
    expect(() => driftSchedule(0)).toThrow(/whole number of seconds/);
  });
});
