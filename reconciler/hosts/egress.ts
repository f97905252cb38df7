// Egress rules on a Docker host: resolve the plan's policy against live facts (bridges,
// subnets, names, Docker's upstream resolvers), then replace ml.ink's chains in one
// `iptables-restore --noflush` and make sure the hooks into DOCKER-USER and INPUT exist.
// Idempotent: running it twice gives the same rules; running it after a flush or a
// reboot puts them back. Only chains that start with ml.ink's prefix are ever touched.
import type Docker from 'dockerode';
import { createHash } from 'node:crypto';
import { LABEL, MANAGED_BY } from '../model.js';
import { iptables as iptablesCmd, iptablesRestore, readResolvConf, resolveName } from './commands.js';
import {
  chainPrefix, chains, hooks, parseDestination, renderEgress, replicaMac, splitHostPort,
  type Destination, type EgressPolicy, type ResolvedEgress,
} from './egress-rules.js';
import type { Host } from './host.js';

const DOCKER_FALLBACK_DNS = ['8.8.8.8', '8.8.4.4'];

/** Runs iptables (or iptables-restore with `input` on stdin) on the host, waiting for the xtables lock. */
async function iptables(host: Host, args: string[], input?: string): Promise<{ code: number; out: string }> {
  const r = await host.run(input === undefined ? iptablesCmd(args) : iptablesRestore(args, input));
  return { code: r.code, out: `${r.stdout}${r.stderr}`.trim() };
}

async function mustIptables(host: Host, args: string[], input?: string): Promise<string> {
  const r = await iptables(host, args, input);
  if (r.code !== 0) throw new Error(`on host ${host.name}: iptables${input === undefined ? '' : '-restore'} ${args.join(' ')} failed: ${r.out.split('\n').slice(-5).join(' | ')}`);
  return r.out;
}

/** The upstream resolvers Docker's embedded DNS forwards to on the host: its own, or Docker's fallback when it only has loopback ones. */
export function resolversIn(text: string): string[] {
  const found = [...text.matchAll(/^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/gm)].map((m) => m[1]!).filter((ip) => !ip.startsWith('127.'));
  return found.length ? [...new Set(found)] : DOCKER_FALLBACK_DNS;
}

/** Resolves 'host[:port]' entries to IPv4 destinations as the host sees them; entries that do not resolve are reported, not guessed. */
async function destinations(host: Host, entries: string[], problems: string[]): Promise<Destination[]> {
  const out: Destination[] = [];
  for (const entry of entries) {
    const direct = parseDestination(entry);
    if (direct) { out.push(direct); continue; }
    const { host: name, port } = splitHostPort(entry);
    if (name.startsWith('*.')) { problems.push(`${entry}: wildcard names cannot be enforced by address; list the names or addresses`); continue; }
    const r = await host.run(resolveName(name));
    const addrs = [...new Set([...r.stdout.matchAll(/^(\d+\.\d+\.\d+\.\d+)\s/gm)].map((m) => m[1]!))];
    if (r.code !== 0 || addrs.length === 0) { problems.push(`${entry}: does not resolve on host ${host.name}`); continue; }
    for (const a of addrs) out.push({ cidr: `${a}/32`, ...(port ? { port } : {}) });
  }
  return out;
}

/** The bridge interface and IPv4 subnets of a Docker network, or undefined when it does not exist. */
export async function bridgeOf(docker: Docker, network: string): Promise<{ bridge: string; subnets: string[] } | undefined> {
  try {
    const n = await docker.getNetwork(network).inspect();
    const bridge = (n.Options?.['com.docker.network.bridge.name'] as string | undefined) ?? `br-${(n.Id as string).slice(0, 12)}`;
    const subnets = ((n.IPAM?.Config ?? []) as Array<{ Subnet?: string }>).map((c) => c.Subnet ?? '').filter((s) => parseDestination(s));
    return { bridge, subnets };
  } catch (e) {
    if ((e as { statusCode?: number }).statusCode === 404) return undefined;
    throw e;
  }
}

/** Each database on the project's network: its address there and the MACs of the replicas bound to it. */
async function databaseFences(host: Host, cluster: string, p: EgressPolicy['projects'][number]): Promise<NonNullable<ResolvedEgress['projects'][number]['databases']>> {
  const out: NonNullable<ResolvedEgress['projects'][number]['databases']> = [];
  for (const d of p.databases ?? []) {
    const info = await host.docker.getContainer(d.container).inspect().catch(() => undefined);
    const ip = info?.State.Running ? info.NetworkSettings.Networks[p.network]?.IPAddress : undefined;
    // Not running, nothing listens: the activity that starts it fences it right after the start.
    if (!ip) continue;
    const clients = d.clients.flatMap((c) => Array.from({ length: c.replicas }, (_, r) => replicaMac(cluster, c, r)));
    out.push({ name: `${d.project}/${d.name}`, ip, clients });
  }
  return out;
}

export async function resolveEgress(host: Host, policy: EgressPolicy, resolvConf?: string): Promise<{ resolved: ResolvedEgress; problems: string[] }> {
  const problems: string[] = [];
  const projects: ResolvedEgress['projects'] = [];
  for (const p of policy.projects) {
    const net = await bridgeOf(host.docker, p.network);
    if (!net) continue; // no network, no traffic: the next pass picks it up
    const apps = [];
    for (const a of p.apps) {
      const macs = Array.from({ length: a.replicas }, (_, r) => replicaMac(policy.cluster, { project: p.project, name: a.name, specHash: a.specHash }, r));
      apps.push({ name: a.name, macs, allow: await destinations(host, a.allow, problems) });
    }
    projects.push({ project: p.project, ...net, apps, databases: await databaseFences(host, policy.cluster, p) });
  }
  const resolved: ResolvedEgress = {
    cluster: policy.cluster,
    projects,
    deny: await destinations(host, policy.deny, problems),
    control: await destinations(host, policy.control, problems),
    resolvers: resolversIn(resolvConf ?? (await host.run(readResolvConf())).stdout),
  };
  return { resolved, problems };
}

/** Every chain ml.ink owns for this cluster, as the host has them now. */
export async function ownedChains(host: Host, cluster: string): Promise<string[]> {
  const out = await mustIptables(host, ['-S']);
  const prefix = chainPrefix(cluster);
  return [...out.matchAll(/^-N (\S+)$/gm)].map((m) => m[1]!).filter((c) => c.startsWith(prefix));
}

async function ensureHook(host: Host, chain: string, rule: string[]): Promise<boolean> {
  if ((await iptables(host, ['-C', chain, ...rule])).code === 0) return false;
  await mustIptables(host, ['-I', chain, '1', ...rule]);
  return true;
}

/** Rules per chain in `iptables -S` output (or in an iptables-restore text). */
function ruleCounts(text: string, owned: string[]): Map<string, number> {
  const counts = new Map<string, number>(owned.map((c) => [c, 0]));
  for (const m of text.matchAll(/^-A (\S+) /gm)) if (counts.has(m[1]!)) counts.set(m[1]!, counts.get(m[1]!)! + 1);
  return counts;
}

/**
 * True when the host already has exactly these rules: the marker with their hash, the
 * same number of rules in every chain, the hooks, and no chain of ours left over. One
 * `iptables -S` instead of a restore on every pass; a flush or a deleted rule fails it.
 */
function upToDate(saved: string, restore: string, marker: string, wanted: string[], cluster: string): boolean {
  if (!saved.includes(marker)) return false;
  const want = ruleCounts(restore, wanted);
  const have = ruleCounts(saved, wanted);
  if ([...want].some(([c, n]) => have.get(c) !== n)) return false;
  if (!hooks(cluster).every((h) => saved.includes(`-A ${h.chain} ${h.rule.join(' ')}`))) return false;
  const prefix = chainPrefix(cluster);
  return [...saved.matchAll(/^-N (\S+)$/gm)].every((m) => !m[1]!.startsWith(prefix) || wanted.includes(m[1]!));
}

/** Replaces the cluster's chains atomically, hooks them in, drops chains of projects that are gone. Returns what changed. */
export async function applyEgress(host: Host, resolved: ResolvedEgress): Promise<{ chains: string[]; hooked: string[]; dropped: string[]; unchanged: boolean }> {
  const rendered = renderEgress(resolved);
  const wanted = rendered.chains;
  const marker = `mlink-rules:${createHash('sha256').update(rendered.restore).digest('hex').slice(0, 16)}`;
  const forward = chains(resolved.cluster).forward;
  // a rule without a target at the end of the forward chain: it only carries the hash
  const restore = rendered.restore.replace(/\nCOMMIT\n$/, `\n-A ${forward} -m comment --comment ${marker}\nCOMMIT\n`);
  const saved = await iptables(host, ['-S']);
  if (saved.code !== 0 || !/^-N DOCKER-USER$/m.test(saved.out)) {
    throw new Error(`on host ${host.name}: the DOCKER-USER chain is missing: dockerd runs without iptables or is not up yet; start dockerd (mlink setup) and the next pass applies the rules`);
  }
  if (upToDate(saved.out, restore, marker, wanted, resolved.cluster)) return { chains: wanted, hooked: [], dropped: [], unchanged: true };
  await mustIptables(host, ['--noflush'], restore);
  const hooked: string[] = [];
  for (const h of hooks(resolved.cluster)) if (await ensureHook(host, h.chain, h.rule)) hooked.push(h.chain);
  const dropped = (await ownedChains(host, resolved.cluster)).filter((c) => !wanted.includes(c));
  for (const c of dropped) {
    await iptables(host, ['-F', c]);
    await iptables(host, ['-X', c]);
  }
  return { chains: wanted, hooked, dropped, unchanged: false };
}

/** Removes one project's chain and every rule that points at its bridge. */
export async function removeProjectEgress(host: Host, cluster: string, project: string): Promise<void> {
  const c = chains(cluster);
  const chain = c.project(project);
  const fwd = await iptables(host, ['-S', c.forward]);
  const bridges = [...fwd.out.matchAll(new RegExp(`^-A \\S+ -i (\\S+) .*-j ${chain.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'gm'))].map((m) => m[1]!);
  for (const [owner, list] of [[c.forward, fwd.out], [c.input, (await iptables(host, ['-S', c.input])).out]] as const) {
    for (const line of list.split('\n')) {
      const bridge = /^-A \S+ -i (\S+) /.exec(line)?.[1];
      if (!bridge || !bridges.includes(bridge)) continue;
      await iptables(host, ['-D', owner, ...splitRule(line.replace(/^-A \S+ /, ''))]);
    }
  }
  await iptables(host, ['-F', chain]);
  await iptables(host, ['-X', chain]);
}

/** Removes every rule and chain ml.ink owns for the cluster (uninstall, tests, a reboot-like reset). */
export async function removeClusterEgress(host: Host, cluster: string): Promise<void> {
  for (const h of hooks(cluster)) while ((await iptables(host, ['-D', h.chain, ...h.rule])).code === 0);
  const owned = await ownedChains(host, cluster);
  for (const c of owned) await iptables(host, ['-F', c]);
  for (const c of owned) await iptables(host, ['-X', c]);
}

/** Splits an `iptables -S` rule into argv, keeping quoted comments whole. */
function splitRule(rule: string): string[] {
  return [...rule.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!);
}

export interface EgressCheck { cluster: string; ok: boolean; detail: string }

/** For `mlink doctor`: every cluster with labelled project networks has its hooks, chains and one dispatch rule per bridge. */
export async function checkEgress(host: Host): Promise<EgressCheck[]> {
  const { docker } = host;
  const nets = await docker.listNetworks({ filters: { label: [`${LABEL.managedBy}=${MANAGED_BY}`] } });
  const byCluster = new Map<string, string[]>();
  for (const n of nets) {
    const cluster = n.Labels?.[LABEL.cluster];
    if (cluster) byCluster.set(cluster, [...(byCluster.get(cluster) ?? []), n.Name]);
  }
  const out: EgressCheck[] = [];
  for (const [cluster, names] of [...byCluster].sort()) {
    const missing: string[] = [];
    for (const h of hooks(cluster)) if ((await iptables(host, ['-C', h.chain, ...h.rule])).code !== 0) missing.push(`hook ${h.chain} -> ${h.rule[1]}`);
    const fwd = await iptables(host, ['-S', chains(cluster).forward]);
    let rules = 0;
    for (const name of names) {
      const net = await bridgeOf(docker, name);
      if (!net) continue;
      if (!fwd.out.includes(`-i ${net.bridge} `)) missing.push(`rules for ${name}`);
      rules += (await iptables(host, ['-S', chains(cluster).project(name.slice(`mlink-${cluster}-`.length))])).out.split('\n').length - 1;
    }
    out.push({
      cluster, ok: missing.length === 0,
      detail: missing.length ? `missing: ${missing.join(', ')}` : `${names.length} project network(s), ${rules} rule(s) in ${chainPrefix(cluster)}*`,
    });
  }
  return out;
}
