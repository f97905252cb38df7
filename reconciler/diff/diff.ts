// diff: pair desired apps with what runs, by identity, and say what differs and why.
// Pure: no I/O, deterministic, imported by workflows.
import type { EgressPolicy } from '../hosts/egress-rules.js';
import { appKey, liveKey, networkName, type DesiredApp, type DesiredState, type LiveContainer, type LiveRoute, type LiveState } from '../model.js';

export type AppChange =
  | { kind: 'create'; app: DesiredApp; reason: string }
  | { kind: 'update'; app: DesiredApp; stale: LiveContainer[]; reason: string }
  | { kind: 'heal'; app: DesiredApp; stale: LiveContainer[]; reason: string }
  | { kind: 'remove'; project: string; name: string; containers: LiveContainer[]; route?: LiveRoute; reason: string }
  | { kind: 'unchanged'; app: DesiredApp };

export interface Diff {
  apps: AppChange[];
  /** Projects with at least one desired app: their network must exist. */
  networks: { ensure: string[]; remove: Array<{ name: string; project: string }> };
  /** Egress rules for every project network that exists or will: apps' allow lists, deny lists, control plane. */
  egress?: EgressPolicy;
}

/** Who may reach what: desired projects with their apps, and live-only project networks with none (deny all until removed). */
export function egressPolicy(desired: DesiredState, live: LiveState): EgressPolicy {
  const projects = new Map<string, EgressPolicy['projects'][number]>();
  for (const n of live.networks) projects.set(n.project, { project: n.project, network: n.name, apps: [] });
  for (const a of desired.apps) {
    const p = projects.get(a.project) ?? { project: a.project, network: networkName(desired.cluster, a.project), apps: [] };
    p.network = networkName(desired.cluster, a.project);
    p.apps.push({ name: a.name, specHash: a.specHash, replicas: a.replicas, allow: a.egress ?? [] });
    projects.set(a.project, p);
  }
  return {
    cluster: desired.cluster,
    projects: [...projects.values()].sort((x, y) => x.project.localeCompare(y.project)),
    deny: desired.egress?.deny ?? [],
    control: desired.egress?.control ?? [],
  };
}

function groupBy<T>(items: T[], key: (t: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const i of items) m.set(key(i), [...(m.get(key(i)) ?? []), i]);
  return m;
}

function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && [...a].sort().join('\n') === [...b].sort().join('\n');
}

function diffApp(app: DesiredApp, containers: LiveContainer[], route: LiveRoute | undefined): AppChange {
  const current = containers.filter((c) => c.specHash === app.specHash);
  const other = containers.filter((c) => c.specHash !== app.specHash);
  if (containers.length === 0 && !route) return { kind: 'create', app, reason: 'not running' };
  if (current.length === 0 && other.length > 0) {
    return { kind: 'update', app, stale: other, reason: `spec changed (${other[0]!.specHash.slice(0, 10)} -> ${app.specHash.slice(0, 10)})` };
  }
  const problems: string[] = [];
  const stale = [...other];
  const byReplica = groupBy(current, (c) => String(c.replica));
  for (let r = 0; r < app.replicas; r++) {
    const here = byReplica.get(String(r)) ?? [];
    if (!here.some((c) => c.running)) problems.push(here.length ? `replica ${r} stopped` : `replica ${r} missing`);
    stale.push(...here.filter((c) => !c.running));
  }
  const extra = current.filter((c) => c.replica >= app.replicas);
  if (extra.length) {
    problems.push(`${extra.length} replica(s) above ${app.replicas}`);
    stale.push(...extra);
  }
  if (other.length) problems.push(`${other.length} container(s) of an older spec`);
  const servers = current.filter((c) => c.running && c.replica < app.replicas && c.ip).map((c) => `http://${c.ip}:${app.port}`);
  if (app.replicas > 0) {
    if (!route) problems.push('route missing');
    else if (!sameSet(route.servers, servers) || route.specHash !== app.specHash) problems.push('route out of date');
    else if (!sameSet(route.hosts, app.hosts)) problems.push('route hosts changed');
  } else if (route) {
    problems.push('route present for 0 replicas');
  }
  if (problems.length === 0) return { kind: 'unchanged', app };
  return { kind: 'heal', app, stale, reason: problems.join(', ') };
}

export function diff(desired: DesiredState, live: LiveState): Diff {
  const containers = groupBy(live.containers, liveKey);
  const routes = new Map(live.routes.map((r) => [liveKey(r), r]));
  const wanted = new Set(desired.apps.map((a) => appKey(a.project, a.name)));
  const apps: AppChange[] = desired.apps.map((a) => diffApp(a, containers.get(appKey(a.project, a.name)) ?? [], routes.get(appKey(a.project, a.name))));
  const gone = new Set([...containers.keys(), ...routes.keys()].filter((k) => !wanted.has(k)));
  for (const key of [...gone].sort()) {
    const [project, name] = key.split('/') as [string, string];
    apps.push({ kind: 'remove', project, name, containers: containers.get(key) ?? [], route: routes.get(key), reason: 'no longer in git' });
  }
  const projects = [...new Set(desired.apps.map((a) => a.project))].sort();
  return {
    apps,
    networks: {
      // Only networks that do not exist: every ensure is a local activity on a pass's way to its first container.
      ensure: projects.filter((p) => !live.networks.some((n) => n.project === p)),
      remove: live.networks.filter((n) => !projects.includes(n.project)).map((n) => ({ name: n.name, project: n.project })),
    },
    egress: egressPolicy(desired, live),
  };
}
