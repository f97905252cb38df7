// Egress rules on a Docker host: resolve the plan's policy against live facts (bridges,
// subnets, names, Docker's upstream resolvers), then replace ml.ink's chains in one
// `iptables-restore --noflush` and make sure the hooks into DOCKER-USER and INPUT exist.
// Idempotent: running it twice gives the same rules; running it after a flush or a
// reboot puts them back. Only chains that start with ml.ink's prefix are ever touched.
import type Docker from 'dockerode';
import { createHash } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { LABEL, MANAGED_BY } from '../model.js';
import {
  chainPrefix, chains, hooks, parseDestination, renderEgress, replicaMac, splitHostPort,
  type Destination, type EgressPolicy, type ResolvedEgress,
} from './egress-rules.js';

const DOCKER_FALLBACK_DNS = ['8.8.8.8', '8.8.4.4'];

/** Runs iptables (or iptables-restore with `input` on stdin), waiting for the xtables lock. */
function iptables(args: string[], input?: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(input === undefined ? 'iptables' : 'iptables-restore', ['-w', ...args], { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, out: out.trim() }));
    if (input !== undefined) {
      child.stdin!.on('error', () => undefined); // it exited early; its exit code says why
      child.stdin!.end(input);
    }
  });
}

async function mustIptables(args: string[], input?: string): Promise<string> {
  const r = await iptables(args, input);
  if (r.code !== 0) throw new Error(`iptables${input === undefined ? '' : '-restore'} ${args.join(' ')} failed: ${r.out.split('\n').slice(-5).join(' | ')}`);
  return r.out;
}

/** The upstream resolvers Docker's embedded DNS forwards to: the host's, or Docker's fallback when the host only has loopback ones. */
export async function dockerResolvers(file = '/etc/resolv.conf'): Promise<string[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const found = [...text.matchAll(/^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/gm)].map((m) => m[1]!).filter((ip) => !ip.startsWith('127.'));
  return found.length ? [...new Set(found)] : DOCKER_FALLBACK_DNS;
}

/** Resolves 'host[:port]' entries to IPv4 destinations; entries that do not resolve are reported, not guessed. */
async function destinations(entries: string[], problems: string[]): Promise<Destination[]> {
  const out: Destination[] = [];
  for (const entry of entries) {
    const direct = parseDestination(entry);
    if (direct) { out.push(direct); continue; }
    const { host, port } = splitHostPort(entry);
    if (host.startsWith('*.')) { problems.push(`${entry}: wildcard names cannot be enforced by address; list the names or addresses`); continue; }
    try {
      const addrs = await lookup(host, { all: true, family: 4 });
      for (const a of addrs) out.push({ cidr: `${a.address}/32`, ...(port ? { port } : {}) });
    } catch (e) {
      problems.push(`${entry}: does not resolve (${(e as { code?: string }).code ?? (e as Error).message})`);
    }
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

export async function resolveEgress(docker: Docker, policy: EgressPolicy, resolvConf?: string): Promise<{ resolved: ResolvedEgress; problems: string[] }> {
  const problems: string[] = [];
  const projects: ResolvedEgress['projects'] = [];
  for (const p of policy.projects) {
    const net = await bridgeOf(docker, p.network);
    if (!net) continue; // no network, no traffic: the next pass picks it up
    const apps = [];
    for (const a of p.apps) {
      const macs = Array.from({ length: a.replicas }, (_, r) => replicaMac(policy.cluster, { project: p.project, name: a.name, specHash: a.specHash }, r));
      apps.push({ name: a.name, macs, allow: await destinations(a.allow, problems) });
    }
    projects.push({ project: p.project, ...net, apps });
  }
  const resolved: ResolvedEgress = {
    cluster: policy.cluster,
    projects,
    deny: await destinations(policy.deny, problems),
    control: await destinations(policy.control, problems),
    resolvers: await dockerResolvers(resolvConf),
  };
  return { resolved, problems };
}

/** Every chain ml.ink owns for this cluster, as the host has them now. */
export async function ownedChains(cluster: string): Promise<string[]> {
  const out = await mustIptables(['-S']);
  const prefix = chainPrefix(cluster);
  return [...out.matchAll(/^-N (\S+)$/gm)].map((m) => m[1]!).filter((c) => c.startsWith(prefix));
}

async function ensureHook(chain: string, rule: string[]): Promise<boolean> {
  if ((await iptables(['-C', chain, ...rule])).code === 0) return false;
  await mustIptables(['-I', chain, '1', ...rule]);
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
export async function applyEgress(resolved: ResolvedEgress): Promise<{ chains: string[]; hooked: string[]; dropped: string[]; unchanged: boolean }> {
  const rendered = renderEgress(resolved);
  const wanted = rendered.chains;
  const marker = `mlink-rules:${createHash('sha256').update(rendered.restore).digest('hex').slice(0, 16)}`;
  const forward = chains(resolved.cluster).forward;
  // a rule without a target at the end of the forward chain: it only carries the hash
  const restore = rendered.restore.replace(/\nCOMMIT\n$/, `\n-A ${forward} -m comment --comment ${marker}\nCOMMIT\n`);
  const saved = await iptables(['-S']);
  if (saved.code !== 0 || !/^-N DOCKER-USER$/m.test(saved.out)) {
    throw new Error('the DOCKER-USER chain is missing: dockerd runs without iptables or is not up yet; start dockerd (mlink setup) and the next pass applies the rules');
  }
  if (upToDate(saved.out, restore, marker, wanted, resolved.cluster)) return { chains: wanted, hooked: [], dropped: [], unchanged: true };
  await mustIptables(['--noflush'], restore);
  const hooked: string[] = [];
  for (const h of hooks(resolved.cluster)) if (await ensureHook(h.chain, h.rule)) hooked.push(h.chain);
  const dropped = (await ownedChains(resolved.cluster)).filter((c) => !wanted.includes(c));
  for (const c of dropped) {
    await iptables(['-F', c]);
    await iptables(['-X', c]);
  }
  return { chains: wanted, hooked, dropped, unchanged: false };
}

/** Removes one project's chain and every rule that points at its bridge. */
export async function removeProjectEgress(cluster: string, project: string): Promise<void> {
  const c = chains(cluster);
  const chain = c.project(project);
  const fwd = await iptables(['-S', c.forward]);
  const bridges = [...fwd.out.matchAll(new RegExp(`^-A \\S+ -i (\\S+) .*-j ${chain.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'gm'))].map((m) => m[1]!);
  for (const [owner, list] of [[c.forward, fwd.out], [c.input, (await iptables(['-S', c.input])).out]] as const) {
    for (const line of list.split('\n')) {
      const bridge = /^-A \S+ -i (\S+) /.exec(line)?.[1];
      if (!bridge || !bridges.includes(bridge)) continue;
      await iptables(['-D', owner, ...splitRule(line.replace(/^-A \S+ /, ''))]);
    }
  }
  await iptables(['-F', chain]);
  await iptables(['-X', chain]);
}

/** Removes every rule and chain ml.ink owns for the cluster (uninstall, tests, a reboot-like reset). */
export async function removeClusterEgress(cluster: string): Promise<void> {
  for (const h of hooks(cluster)) while ((await iptables(['-D', h.chain, ...h.rule])).code === 0);
  const owned = await ownedChains(cluster);
  for (const c of owned) await iptables(['-F', c]);
  for (const c of owned) await iptables(['-X', c]);
}

/** Splits an `iptables -S` rule into argv, keeping quoted comments whole. */
function splitRule(rule: string): string[] {
  return [...rule.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!);
}

export interface EgressCheck { cluster: string; ok: boolean; detail: string }

/** For `mlink doctor`: every cluster with labelled project networks has its hooks, chains and one dispatch rule per bridge. */
export async function checkEgress(docker: Docker): Promise<EgressCheck[]> {
  const nets = await docker.listNetworks({ filters: { label: [`${LABEL.managedBy}=${MANAGED_BY}`] } });
  const byCluster = new Map<string, string[]>();
  for (const n of nets) {
    const cluster = n.Labels?.[LABEL.cluster];
    if (cluster) byCluster.set(cluster, [...(byCluster.get(cluster) ?? []), n.Name]);
  }
  const out: EgressCheck[] = [];
  for (const [cluster, names] of [...byCluster].sort()) {
    const missing: string[] = [];
    for (const h of hooks(cluster)) if ((await iptables(['-C', h.chain, ...h.rule])).code !== 0) missing.push(`hook ${h.chain} -> ${h.rule[1]}`);
    const fwd = await iptables(['-S', chains(cluster).forward]);
    let rules = 0;
    for (const name of names) {
      const net = await bridgeOf(docker, name);
      if (!net) continue;
      if (!fwd.out.includes(`-i ${net.bridge} `)) missing.push(`rules for ${name}`);
      rules += (await iptables(['-S', chains(cluster).project(name.slice(`mlink-${cluster}-`.length))])).out.split('\n').length - 1;
    }
    out.push({
      cluster, ok: missing.length === 0,
      detail: missing.length ? `missing: ${missing.join(', ')}` : `${names.length} project network(s), ${rules} rule(s) in ${chainPrefix(cluster)}*`,
    });
  }
  return out;
}
