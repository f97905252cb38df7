// The pure parts of apps' names: route files with their access settings, certificate
// files, the records apps want, the pass's names action, and mlink.yaml's tls and dns
// settings, refused with the field named when they cannot be acted on.
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { ClusterConfig } from '../../schemas/index.js';
import { desiredRecords } from '../../reconciler/dns/app-records.js';
import { diffApp } from '../../reconciler/diff/app.js';
import { readCertFile, renderCertFile } from '../../reconciler/edge/app-tls.js';
import { readRoute, renderRoute } from '../../reconciler/edge/route.js';
import type { DesiredApp, DesiredState } from '../../reconciler/model.js';
import { namesAction } from '../../reconciler/names/plan.js';
import { compileNames, parseLifetime } from '../../reconciler/source/names.js';
import type { TreeView } from '../../reconciler/state/tree.js';
import { createRootCa, issueLeaf } from '../../reconciler/tls/ca.js';
import { infraConfig } from '../../infra/config.js';
import { traefikStaticConfig } from '../../infra/setup/services.js';
import { edgeStaticConfig } from '../../reconciler/hosts/provision-commands.js';

const access = { allowCidrs: ['10.0.0.0/8', '127.0.0.1/32'], redirectToHttps: true };
const spec = { cluster: 'c1', project: 'default', name: 'web', specHash: 'a'.repeat(64), router: 'mlink-c1-default-web', domains: ['web.internal.test'], servers: ['http://172.18.0.2:8080'] };

describe('route files with access settings', () => {
  it('renders HTTPS, a redirect and the allow-list, and reads back what diff needs', () => {
    const text = renderRoute({ ...spec, access: { ...access, httpsPort: 18443 } });
    const doc = parse(text) as { http: { routers: Record<string, { entryPoints: string[]; middlewares: string[]; tls?: object }>; middlewares: Record<string, unknown> } };
    expect(doc.http.routers['mlink-c1-default-web-secure']).toMatchObject({ entryPoints: ['websecure'], middlewares: ['mlink-c1-default-web-allow'], tls: {} });
    expect(doc.http.routers['mlink-c1-default-web-http']).toMatchObject({ entryPoints: ['web'], middlewares: ['mlink-c1-default-web-allow', 'mlink-c1-default-web-https'] });
    expect(doc.http.middlewares).toEqual({
      'mlink-c1-default-web-allow': { ipAllowList: { sourceRange: ['10.0.0.0/8', '127.0.0.1/32'] } },
      'mlink-c1-default-web-https': { redirectScheme: { scheme: 'https', permanent: true, port: '18443' } },
    });
    expect(readRoute('f.yaml', text, 'c1', 'local')).toMatchObject({ domains: spec.domains, servers: spec.servers, access: 'allow=10.0.0.0/8,127.0.0.1/32;redirect=true' });
  });

  it('a changed allow-list or redirect rewrites the route, and nothing else changes', () => {
    const app: DesiredApp = {
      kind: 'App', project: 'default', name: 'web', specHash: spec.specHash, image: 'i', port: 8080, env: {}, secretEnv: [], resources: { cpu: 1, memoryMb: 64, pids: 64 },
      replicas: 1, runtime: 'runsc', domains: spec.domains, access, health: { path: '/', intervalMs: 200, timeoutMs: 2000, retries: 5 }, databases: [], placement: ['local'],
    };
    const c = { id: 'x', name: 'n', host: 'local', key: { kind: 'App' as const, project: 'default', name: 'web' }, specHash: spec.specHash, replica: 0, commit: 'c', running: true, ip: '172.18.0.2' };
    const route = readRoute('f.yaml', renderRoute({ ...spec, access }), 'c1', 'local')!;
    expect(diffApp(app, [c], [route]).change).toBe('unchanged');
    const changed = diffApp({ ...app, access: { ...access, redirectToHttps: false } }, [c], [route]);
    expect(changed).toMatchObject({ change: 'heal', reason: 'route access settings changed', stale: [] });
    // a route written before access settings existed is brought up to date
    expect(diffApp(app, [c], [{ ...route, access: undefined }]).change).toBe('heal');
  });
});

describe('certificate files', () => {
  it('round-trips a leaf; ignores another cluster\'s and anything unreadable', async () => {
    const ca = await createRootCa();
    const leaf = await issueLeaf(ca, ['web.internal.test'], { days: 1 });
    const text = renderCertFile({ cluster: 'c1', project: 'default', name: 'web', cert: { chainPem: leaf.certPem, keyPem: leaf.keyPem }, issuer: 'internal' });
    expect(readCertFile('f', text, 'c1', 'local')).toMatchObject({ key: { kind: 'App', project: 'default', name: 'web' }, dnsNames: ['web.internal.test'], issuer: expect.stringContaining('ml.ink internal CA'), notAfter: leaf.notAfter.toISOString().replace(/\.\d+Z$/, '.000Z'), issuedBy: 'internal' });
    expect(readCertFile('f', text, 'c2', 'local')).toBeUndefined();
    expect(readCertFile('f', text.replace(/MII[A-Za-z0-9+/]{10}/, 'xxxx'), 'c1', 'local')).toBeUndefined();
  });

  it('backdates a short leaf by a tenth of its life at most, so its renewal is still ahead', async () => {
    const ca = await createRootCa();
    const now = new Date('2026-12-01T00:00:00Z');
    const leaf = await issueLeaf(ca, ['web.internal.test'], { days: 60 / 86_400, now });
    const info = readCertFile('f', renderCertFile({ cluster: 'c1', project: 'p', name: 'n', cert: { chainPem: leaf.certPem, keyPem: leaf.keyPem }, issuer: 'internal' }), 'c1', 'h')!;
    expect(new Date(info.notAfter).getTime() - now.getTime()).toBe(60_000);
    expect(now.getTime() - new Date(info.notBefore).getTime()).toBe(6000);
  });
});

describe('records apps want', () => {
  const app = (name: string, domains: string[], hosts: string[]) => ({ kind: 'App' as const, project: 'p', name, domains, hosts });
  it('points each name in the zone at its edges, and says why others get none', () => {
    const addr: Record<string, string> = { a: '10.0.0.1', b: '10.0.0.2' };
    const { records, skipped } = desiredRecords([
      app('web', ['web.internal.test', 'web.elsewhere.test'], ['b', 'a']), app('wild', ['*.internal.test'], ['a']),
      app('idle', ['idle.internal.test'], []), app('web2', ['web.internal.test'], ['a']), app('v6', ['v6.internal.test'], ['c']),
    ], 'internal.test.', (h) => addr[h]);
    expect(records).toEqual([{ name: 'web.internal.test', addresses: ['10.0.0.1', '10.0.0.2'], resource: 'App/p/web' }]);
    expect(skipped.map((s) => `${s.name} ${s.reason}`)).toEqual([
      'idle.internal.test no replica runs, so no edge serves it',
      'v6.internal.test its edges (c) have no IPv4 address to publish',
      'web.elsewhere.test not inside the zone internal.test that mlink.yaml spec.dns manages',
      'web.internal.test another app already has web.internal.test', // the first by identity keeps it
      '*.internal.test wildcard names are not published (only A records for exact names)',
    ]);
  });

  it('follows the placement: the edges of the replicas that run', () => {
    const desired = { cluster: 'c1', commit: 'f', baseDomain: 'localhost', held: [{ kind: 'App' as const, project: 'p', name: 'held' }], resources: [
      { kind: 'App', project: 'p', name: 'web', domains: ['web.internal.test'], replicas: 2, placement: ['h2', 'h1', 'h3'] },
    ] } as unknown as DesiredState;
    expect(namesAction(desired, { issuer: { kind: 'internal', leafSeconds: 60 } })).toMatchObject({
      type: 'ensureNames', apps: [{ kind: 'App', project: 'p', name: 'web', domains: ['web.internal.test'], hosts: ['h1', 'h2'] }], held: [{ kind: 'App', project: 'p', name: 'held' }],
    });
  });
});

describe('mlink.yaml tls and dns', () => {
  const view = (files: Record<string, string> = {}): TreeView => ({ blobOid: async (p: string) => (p in files ? 'oid-' + p : null), readText: async (p: string) => files[p] ?? null } as unknown as TreeView);
  const cluster = (spec: Partial<ClusterConfig['spec']>): ClusterConfig => ({ apiVersion: 'mlink.ink/v1', kind: 'Cluster', metadata: { name: 'c1' }, spec: { baseDomain: 'localhost', hosts: [], secrets: { recipients: [] }, ...spec } });

  it('reads lifetimes from 60 s to 398 days', () => {
    expect(parseLifetime('30d')).toBe(2_592_000);
    expect(parseLifetime('90s')).toBe(90);
    expect(() => parseLifetime('59s')).toThrow('spec.tls.leafLifetime: "59s" must be a number and s, m, h or d, from 60s to 398d');
    expect(() => parseLifetime('399d')).toThrow(/from 60s to 398d/);
  });

  it('compiles the defaults: internal CA, 30-day leaves, no DNS', async () => {
    expect(await compileNames(view(), cluster({}))).toEqual({ issuer: { kind: 'internal', leafSeconds: 2_592_000 } });
  });

  it('refuses settings it would not act on, naming the field', async () => {
    await expect(compileNames(view(), cluster({ tls: { issuer: 'acme', acme: { directoryUrl: 'https://ca.test/dir' }, leafLifetime: '1d' } }))).rejects.toThrow(/spec\.tls\.leafLifetime applies to the internal issuer only/);
    await expect(compileNames(view(), cluster({ tls: { acme: { directoryUrl: 'https://ca.test/dir' } } }))).rejects.toThrow(/spec\.tls\.acme is set but spec\.tls\.issuer is internal/);
    await expect(compileNames(view(), cluster({ tls: { issuer: 'acme' } }))).rejects.toThrow(/spec\.tls\.acme is missing/);
    await expect(compileNames(view(), cluster({ tls: { issuer: 'acme', acme: { directoryUrl: 'https://ca.test/dir', caFile: 'tls/acme-roots.pem' } } }))).rejects.toThrow(/caFile names tls\/acme-roots\.pem, which is not a PEM certificate file in the state repo/);
    await expect(compileNames(view(), cluster({ access: { allowCidrs: ['10.0.0.0/40'] } }))).rejects.toThrow(/spec\.access\.allowCidrs\[0\]: "10\.0\.0\.0\/40" is not an IP network/);
    await expect(compileNames(view(), cluster({ dns: { server: '127.0.0.1', zone: 'internal.test', tsigKey: { name: 'k' } } }))).rejects.toThrow(/the TSIG key's secret dns\/tsig\.age is missing; run `mlink dns configure`/);
  });

  it('compiles DNS with the secret left encrypted (only its blob id)', async () => {
    expect(await compileNames(view({ 'dns/tsig.age': 'x' }), cluster({ dns: { server: '127.0.0.1', zone: 'internal.test.', tsigKey: { name: 'k' } } }))).toEqual({
      issuer: { kind: 'internal', leafSeconds: 2_592_000 },
      dns: { server: '127.0.0.1', port: 53, zone: 'internal.test', ttl: 300, tsig: { name: 'k', algorithm: 'hmac-sha256' }, secretOid: 'oid-dns/tsig.age' },
    });
  });
});

describe('edges speak HTTPS', () => {
  it('the embedded default has a websecure entrypoint on loopback whose routers speak TLS; a host\'s own edge has it on :443', () => {
    const cfg = infraConfig();
    type Static = { entryPoints: Record<string, { address: string; http?: { tls?: object } }> };
    const local = parse(traefikStaticConfig({ web: `127.0.0.1:${cfg.traefik.webPort}`, websecure: `127.0.0.1:${cfg.traefik.websecurePort}`, api: '127.0.0.1:18081', routesDir: '/r', writtenBy: 'test' })) as Static;
    expect(local.entryPoints.websecure).toEqual({ address: `127.0.0.1:${cfg.traefik.websecurePort}`, http: { tls: {} } });
    expect(local.entryPoints.web).toEqual({ address: `127.0.0.1:${cfg.traefik.webPort}` });
    const remote = parse(edgeStaticConfig({ version: 'v3', webAddress: ':80', apiAddress: '127.0.0.1:18081', routesDir: '/var/lib/mlink/routes' })) as Static;
    expect(remote.entryPoints.websecure).toEqual({ address: ':443', http: { tls: {} } });
  });
});
