// Egress rules, pure: chain names, MACs, the rendered iptables-restore text, the policy
// the diff derives and the plan's ensureEgress/removeEgress actions; the container
// request's zero-trust defaults.
import { describe, expect, it } from 'vitest';
import { diff, egressPolicies } from '../../reconciler/diff/diff.js';
import { createOptions, holderName, holderOptions } from '../../reconciler/hosts/containers.js';
import { chains, parseDestination, renderEgress, replicaMac, within, type ResolvedEgress } from '../../reconciler/hosts/egress-rules.js';
import type { DesiredApp, DesiredState, LiveState } from '../../reconciler/model.js';
import { plan } from '../../reconciler/plan/plan.js';
import { parseDenyList } from '../../reconciler/source/egress.js';

const app = (over: Partial<DesiredApp> = {}): DesiredApp => ({
  kind: 'App', project: 'shop', name: 'web', specHash: 'a'.repeat(64), image: 'img', port: 8080, env: {}, secretEnv: [],
  resources: { cpu: 0.5, memoryMb: 256, pids: 256 }, replicas: 2, runtime: 'runsc', domains: ['web.shop.localhost'], access: { allowCidrs: ['127.0.0.0/8'], redirectToHttps: true },
  health: { path: '/', intervalMs: 200, timeoutMs: 2000, retries: 5 }, egress: ['198.51.100.20:8080', '10.9.0.0/16'], readOnlyRoot: true,
  databases: [], placement: ['local', 'local'], ...over,
});

const resolved = (over: Partial<ResolvedEgress> = {}): ResolvedEgress => ({
  cluster: 'local',
  projects: [{ project: 'shop', bridge: 'br-0123456789ab', subnets: ['172.30.0.0/16'], apps: [{ name: 'web', macs: ['02:aa:bb:cc:dd:ee'], allow: [{ cidr: '198.51.100.20/32', port: 8080 }, { cidr: '10.9.0.0/16' }, { cidr: '0.0.0.0/0' }] }] }],
  deny: [{ cidr: '198.51.100.30/32' }],
  control: [{ cidr: '203.0.113.7/32' }],
  resolvers: ['10.255.255.53'],
  ...over,
});

describe('chain names and MACs', () => {
  it('fit in 28 characters and never collide across clusters', () => {
    const long = chains('a-very-long-cluster-name-indeed').project('an-even-longer-project-name-than-that');
    expect(long.length).toBeLessThanOrEqual(28);
    expect(chains('local').project('a-x')).not.toBe(chains('local-a').project('x'));
    expect(chains('local').forward).toBe('MLINK-local_FWD');
  });

  it('gives each replica of each spec its own locally administered unicast MAC', () => {
    const a = { project: 'shop', name: 'web', specHash: 'a'.repeat(64) };
    const macs = [replicaMac('local', a, 0), replicaMac('local', a, 1), replicaMac('local', { ...a, specHash: 'b'.repeat(64) }, 0)];
    expect(new Set(macs).size).toBe(3);
    for (const m of macs) expect(m).toMatch(/^02(:[0-9a-f]{2}){5}$/);
    expect(replicaMac('local', a, 0)).toBe(macs[0]);
  });
});

describe('destinations', () => {
  it('parses IPv4, CIDR and ports, and leaves names to the resolver', () => {
    expect(parseDestination('198.51.100.10')).toEqual({ cidr: '198.51.100.10/32' });
    expect(parseDestination('10.1.2.3/8:443')).toEqual({ cidr: '10.0.0.0/8', port: 443 });
    expect(parseDestination('api.example.com:443')).toBeUndefined();
    expect(parseDestination('300.1.1.1')).toBeUndefined();
    expect(within('10.9.0.0/16', '10.0.0.0/8')).toBe(true);
    expect(within('0.0.0.0/0', '10.0.0.0/8')).toBe(false);
  });

  it('reads deny lists with comments and names the bad line', () => {
    expect(parseDenyList('egress/tor.txt', '# tor exits\n198.51.100.30\n\npool.mining.example:3333 # pool\n')).toEqual(['198.51.100.30', 'pool.mining.example:3333']);
    expect(() => parseDenyList('egress/tor.txt', '1.2.3.4\nnot a host\n')).toThrow(/egress\/tor.txt: line 2/);
  });
});

describe('renderEgress', () => {
  const { restore, chains: owned } = renderEgress(resolved());
  const rules = restore.split('\n').filter((l) => l.startsWith('-A MLINK-local_shop '));
  const at = (re: RegExp): number => rules.findIndex((l) => re.test(l));

  it('replaces exactly the chains ml.ink owns', () => {
    expect(owned).toEqual(['MLINK-local_FWD', 'MLINK-local_IN', 'MLINK-local_DENY', 'MLINK-local_shop']);
    expect(restore.startsWith('*filter\n:MLINK-local_FWD - [0:0]\n')).toBe(true);
    expect(restore).toContain('-A MLINK-local_FWD -i br-0123456789ab -m comment --comment "mlink local/shop" -j MLINK-local_shop');
    expect(restore).toContain('-A MLINK-local_IN -i br-0123456789ab -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN');
    expect(restore).toMatch(/-A MLINK-local_IN -i br-0123456789ab .*-j REJECT/);
    expect(restore).toContain('-A MLINK-local_DENY -d 198.51.100.30/32 -m comment --comment "deny list" -j REJECT --reject-with icmp-admin-prohibited');
  });

  it('orders: replies, own network, deny lists, control plane, DNS, inside-range allows, metadata and private, other allows, default deny', () => {
    const order = [
      at(/ctstate RELATED,ESTABLISHED -j RETURN/), at(/-d 172.30.0.0\/16 .*RETURN/), at(/-j MLINK-local_DENY$/), at(/-d 203.0.113.7\/32 .*REJECT/),
      at(/-d 10.255.255.53\/32 -p udp --dport 53/), at(/mac-source 02:aa:bb:cc:dd:ee -d 10.9.0.0\/16/), at(/-d 169.254.0.0\/16 .*REJECT/),
      at(/-d 10.0.0.0\/8 .*REJECT/), at(/mac-source 02:aa:bb:cc:dd:ee -d 198.51.100.20\/32 -p tcp --dport 8080/), at(/mac-source .* -d 0.0.0.0\/0/), at(/default deny/),
    ];
    expect(order.every((i) => i >= 0), rules.join('\n')).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(rules.at(-1)).toMatch(/default deny.*REJECT/);
    for (const r of ['172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10']) expect(rules.some((l) => l.includes(`-d ${r} `) && l.includes('REJECT'))).toBe(true);
  });

  it('is the same text for the same facts (idempotent apply)', () => {
    expect(renderEgress(resolved()).restore).toBe(restore);
  });
});

describe('policy and plan', () => {
  const desired: DesiredState = { cluster: 'local', commit: 'c1', baseDomain: 'localhost', resources: [app()], held: [], egress: { deny: ['198.51.100.30'], control: ['203.0.113.7'] } };
  const live: LiveState = { containers: [], routes: [], networks: [{ id: 'n1', name: 'mlink-local-old', project: 'old', host: 'local' }], volumes: [] };

  it('covers desired projects with their apps and live-only networks with none, per host', () => {
    expect(egressPolicies(desired, live)).toEqual([{
      host: 'local',
      policy: {
        cluster: 'local',
        projects: [
          { project: 'old', network: 'mlink-local-old', apps: [], databases: [] },
          { project: 'shop', network: 'mlink-local-shop', apps: [{ name: 'web', specHash: 'a'.repeat(64), replicas: 2, allow: ['198.51.100.20:8080', '10.9.0.0/16'] }], databases: [] },
        ],
        deny: ['198.51.100.30'],
        control: ['203.0.113.7'],
      },
    }]);
  });

  it('reapplies egress in prepare on every pass, even when nothing changed, and removes it after the network', () => {
    const p = plan(diff(desired, live), { cluster: 'local', commit: 'c1' });
    expect(p.prepare.map((a) => a.type)).toEqual(['ensureNetwork', 'ensureEgress']);
    expect(p.cleanup).toEqual([
      { type: 'removeNetwork', host: 'local', network: 'mlink-local-old', reason: 'project old has nothing left on local' },
      { type: 'removeEgress', host: 'local', project: 'old', reason: 'project old is gone from local' },
    ]);
  });
});

describe('createOptions', () => {
  const req = { cluster: 'local', commit: 'c1', app: app(), replica: 1, container: 'c', network: 'mlink-local-shop', secrets: {} };

  it('runs sandboxed: gVisor, limits, no capabilities, no new privileges, read-only root with a tmpfs, no host mounts', () => {
    const o = createOptions(req);
    expect(o.HostConfig?.NetworkMode).toBe(`container:${holderName('c')}`);
    expect(o.HostConfig?.RestartPolicy).toEqual({ Name: 'no' });
    expect(o.HostConfig).toMatchObject({
      Runtime: 'runsc', NanoCpus: 5e8, Memory: 256 * 1024 * 1024, PidsLimit: 256, CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'],
      ReadonlyRootfs: true, Tmpfs: { '/tmp': 'rw,nosuid,nodev,size=64m' }, Binds: [],
    });
    expect(o.HostConfig?.Privileged).toBeFalsy();
    expect(o.HostConfig?.Mounts).toBeUndefined();
    expect(JSON.stringify(o)).not.toContain('docker.sock');
  });

  it("runs the replica's network holder with nothing it could use, on the project network, with the replica's MAC", () => {
    const o = holderOptions(holderName('c'), req.network, 'local', 'shop', replicaMac('local', req.app, 1));
    expect(o.MacAddress).toBe(replicaMac('local', req.app, 1));
    expect(o.Cmd).toEqual(['sleep', '2147483647']);
    expect(o.HostConfig).toMatchObject({
      Runtime: 'runc', NetworkMode: 'mlink-local-shop', CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'], ReadonlyRootfs: true, Binds: [], PidsLimit: 4,
    });
    expect(o.HostConfig?.Privileged).toBeFalsy();
  });

  it('leaves the root writable only when the manifest says so', () => {
    const o = createOptions({ ...req, app: app({ readOnlyRoot: false }) });
    expect(o.HostConfig?.ReadonlyRootfs).toBe(false);
    expect(o.HostConfig?.Tmpfs).toBeUndefined();
  });
});
