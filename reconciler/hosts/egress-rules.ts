// Egress rules as plain data: which chains ml.ink owns on a host, and the iptables-restore
// text that fills them. Pure (no Node imports): the plan imports these types, the tests
// compare the rendered text, and hosts/egress.ts is the only place that runs iptables.
//
// Forwarded traffic from a project's bridge goes DOCKER-USER -> <c>_FWD -> <c>_<project>:
//   1. replies to connections already allowed             RETURN (Docker's rules go on)
//   2. a database on the network, from its bound apps      RETURN; from anyone else REJECT
//   3. the project's own subnet                            RETURN
//   4. deny lists from mlink.yaml                          REJECT  (win over every allow)
//   5. control-plane hosts                                 REJECT
//   6. DNS (53) to the resolvers Docker's embedded DNS forwards to     RETURN
//   7. allow entries that lie inside a special range, per app         RETURN
//   8. cloud metadata 169.254/16 and private ranges        REJECT
//   9. the rest of each app's allow list                   RETURN
//  10. everything else                                     REJECT
// Apps are told apart by MAC address: the reconciler gives every replica a MAC derived
// from its identity and spec hash, so the rules need no container addresses. Traffic from
// a project's bridge to the host itself (INPUT -> <c>_IN) is rejected unless it answers a
// connection the host opened (Traefik, health checks): apps never reach the control
// plane's ports (MCP, Temporal, Traefik's API, the registry, dockerd) on any host address.

export interface EgressApp { name: string; specHash: string; replicas: number; allow: string[] }
/** A database on a project's network and the apps bound to it (of any project whose network it joins). */
export interface EgressDatabase { project: string; name: string; container: string; clients: Array<{ project: string; name: string; specHash: string; replicas: number }> }
export interface EgressProject { project: string; network: string; apps: EgressApp[]; databases?: EgressDatabase[] }

/** What the plan hands the ensureEgress activity: desired, not yet resolved. */
export interface EgressPolicy {
  cluster: string;
  projects: EgressProject[];
  /** Entries from the deny-list files named in mlink.yaml. */
  deny: string[];
  /** Addresses of hosts with the control role (other than `local`). */
  control: string[];
}

/** One destination: an IPv4 network with an optional TCP/UDP port. */
export interface Destination { cidr: string; port?: number }

/** The policy with live facts filled in: bridges, subnets, resolved names, resolvers. */
export interface ResolvedEgress {
  cluster: string;
  projects: Array<{
    project: string; bridge: string; subnets: string[];
    apps: Array<{ macs: string[]; allow: Destination[]; name: string }>;
    /** Databases on this network with their address here and the MACs of the replicas bound to them. */
    databases?: Array<{ name: string; ip: string; clients: string[] }>;
  }>;
  deny: Destination[];
  control: Destination[];
  resolvers: string[];
}

export const METADATA = '169.254.0.0/16';
export const PRIVATE_RANGES = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'];
const REJECT = '-j REJECT --reject-with icmp-admin-prohibited';

/** FNV-1a, 32 bits, with a seed: enough to spread names; not a security property. */
function fnv(text: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function hex(n: number, len: number): string {
  return n.toString(16).padStart(8, '0').slice(0, len);
}

/** A name that fits in a chain name: itself when short, else a prefix and a hash. */
function tag(name: string, max: number): string {
  return name.length <= max ? name : `${name.slice(0, max - 6)}-${hex(fnv(name), 5)}`;
}

/** Chain names (iptables allows 28 characters). `_` never occurs in a DNS label, so clusters cannot collide. */
export function chainPrefix(cluster: string): string {
  return `MLINK-${tag(cluster, 8)}_`;
}

export function chains(cluster: string): { forward: string; input: string; deny: string; project: (p: string) => string } {
  const prefix = chainPrefix(cluster);
  return { forward: `${prefix}FWD`, input: `${prefix}IN`, deny: `${prefix}DENY`, project: (p) => `${prefix}${tag(p, 28 - prefix.length)}` };
}

/** The MAC of one replica: locally administered, unicast, from cluster, app identity, spec hash and replica. */
export function replicaMac(cluster: string, app: { project: string; name: string; specHash: string }, replica: number): string {
  const key = `${cluster}/${app.project}/${app.name}/${app.specHash}/${replica}`;
  const bytes = hex(fnv(key), 8) + hex(fnv(key, 0x01234567), 2);
  return `02:${bytes.match(/../g)!.join(':')}`;
}

function ipv4(text: string): number[] | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) return undefined;
  return parts.map(Number);
}

/** Parses 'IPv4', 'IPv4/prefix', optionally ':port'. Host names return undefined (resolve them first). */
export function parseDestination(entry: string): Destination | undefined {
  const m = /^([0-9.]+)(?:\/(\d{1,2}))?(?::(\d{1,5}))?$/.exec(entry.trim());
  if (!m || !ipv4(m[1]!)) return undefined;
  const prefix = m[2] === undefined ? 32 : Number(m[2]);
  const port = m[3] === undefined ? undefined : Number(m[3]);
  if (prefix > 32 || (port !== undefined && (port < 1 || port > 65535))) return undefined;
  return { cidr: `${network(m[1]!, prefix)}/${prefix}`, ...(port ? { port } : {}) };
}

/** Splits 'host', 'host:port' into the name and port, for the resolver. */
export function splitHostPort(entry: string): { host: string; port?: number } {
  const m = /^(.*?)(?::(\d{1,5}))?$/.exec(entry.trim())!;
  return { host: m[1]!, ...(m[2] ? { port: Number(m[2]) } : {}) };
}

function toInt(ip: string): number {
  return ipv4(ip)!.reduce((a, b) => a * 256 + b, 0);
}

function network(ip: string, prefix: number): string {
  const n = prefix === 0 ? 0 : Math.floor(toInt(ip) / 2 ** (32 - prefix)) * 2 ** (32 - prefix);
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

/** Is `inner` wholly inside `outer`? Both CIDRs. */
export function within(inner: string, outer: string): boolean {
  const [ia, ip] = inner.split('/') as [string, string];
  const [oa, op] = outer.split('/') as [string, string];
  return Number(ip) >= Number(op) && network(ia, Number(op)) === network(oa, Number(op));
}

function special(cidr: string): boolean {
  return [METADATA, ...PRIVATE_RANGES].some((r) => within(cidr, r));
}

function match(d: Destination): string[] {
  const dst = `-d ${d.cidr}`;
  return d.port ? [`${dst} -p tcp --dport ${d.port}`, `${dst} -p udp --dport ${d.port}`] : [dst];
}

function comment(text: string): string {
  return `-m comment --comment "${text.replace(/[^A-Za-z0-9 ./:_-]/g, '')}"`;
}

/** The iptables-restore input (for `iptables-restore --noflush`) that replaces every chain ml.ink owns for this cluster. */
export function renderEgress(r: ResolvedEgress): { restore: string; chains: string[] } {
  const c = chains(r.cluster);
  const lines: string[] = [];
  const add = (chain: string, rule: string): number => lines.push(`-A ${chain} ${rule}`);
  const owned = [c.forward, c.input, c.deny];
  for (const d of r.deny) for (const m of match(d)) add(c.deny, `${m} ${comment('deny list')} ${REJECT}`);
  for (const p of [...r.projects].sort((a, b) => a.project.localeCompare(b.project))) {
    const chain = c.project(p.project);
    owned.push(chain);
    add(c.forward, `-i ${p.bridge} ${comment(`mlink ${r.cluster}/${p.project}`)} -j ${chain}`);
    add(c.input, `-i ${p.bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`);
    add(c.input, `-i ${p.bridge} ${comment(`mlink ${r.cluster}/${p.project}: no app reaches the host`)} ${REJECT}`);
    add(chain, '-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN');
    for (const db of p.databases ?? []) {
      for (const mac of db.clients) add(chain, `-d ${db.ip}/32 -m mac --mac-source ${mac} ${comment(`database ${db.name}: bound app`)} -j RETURN`);
      add(chain, `-d ${db.ip}/32 ${comment(`database ${db.name}: bound apps only`)} ${REJECT}`);
    }
    for (const s of p.subnets) add(chain, `-d ${s} ${comment('own project network')} -j RETURN`);
    add(chain, `-j ${c.deny}`);
    for (const d of r.control) for (const m of match(d)) add(chain, `${m} ${comment('control plane')} ${REJECT}`);
    for (const ns of r.resolvers) for (const proto of ['udp', 'tcp']) add(chain, `-d ${ns}/32 -p ${proto} --dport 53 ${comment('dns')} -j RETURN`);
    const allows = p.apps.flatMap((a) => a.macs.flatMap((mac) => a.allow.map((d) => ({ app: a.name, mac, d }))));
    const allowRule = (x: (typeof allows)[number]): void => {
      for (const m of match(x.d)) add(chain, `-m mac --mac-source ${x.mac} ${m} ${comment(`allow ${x.app}`)} -j RETURN`);
    };
    allows.filter((x) => special(x.d.cidr)).forEach(allowRule);
    add(chain, `-d ${METADATA} ${comment('cloud metadata')} ${REJECT}`);
    for (const range of PRIVATE_RANGES) add(chain, `-d ${range} ${comment('private range')} ${REJECT}`);
    allows.filter((x) => !special(x.d.cidr)).forEach(allowRule);
    add(chain, `${comment('default deny')} ${REJECT}`);
  }
  const restore = ['*filter', ...owned.map((ch) => `:${ch} - [0:0]`), ...lines, 'COMMIT', ''].join('\n');
  return { restore, chains: owned };
}

/** The jumps that hook ml.ink's chains into the host's: forwarded traffic and traffic to the host. */
export function hooks(cluster: string): Array<{ chain: string; rule: string[] }> {
  const c = chains(cluster);
  return [
    { chain: 'DOCKER-USER', rule: ['-j', c.forward] },
    { chain: 'INPUT', rule: ['-j', c.input] },
  ];
}
