// diff: pair desired resources with what runs, by identity (kind, project, name), and
// say what differs and why. Each kind diffs its own (diff/app.ts, diff/database.ts);
// live objects whose identity git no longer names are prune candidates, unless git
// still holds that identity at a commit that cannot be applied (then they are left be).
// Pure: no I/O, deterministic, imported by workflows.
import type { EgressPolicy } from '../hosts/egress-rules.js';
import { databaseContainerName, networkName } from '../layout.js';
import {
  appsOf, databasesOf, keyFields, keyOf, type DesiredResource, type DesiredState, type Kind, type LiveContainer, type LiveRoute, type LiveState,
  type LiveVolume, type ResourceKey,
} from '../model.js';
import { diffApp, type AppChange } from './app.js';
import { diffDatabase, type DatabaseChange } from './database.js';

export type { AppChange } from './app.js';
export type { DatabaseChange } from './database.js';

/** One resource's change; every change names the resource it is for. */
export type Change = { key: ResourceKey } & (({ kind: 'App' } & AppChange) | ({ kind: 'Database' } & DatabaseChange));

/** A resource's live objects, as observe found them. */
export interface Observed { containers: LiveContainer[]; routes: LiveRoute[]; volume?: LiveVolume }

type DesiredOf<K extends Kind> = Extract<DesiredResource, { kind: K }>;

/**
 * Each kind pairs its own desired and live objects, and says what pruning one git no
 * longer names means (an app's go; a database's server goes, its data stays). A new
 * kind adds its entry here and its own diff file, and touches nothing else in this file.
 */
const KINDS: { [K in Kind]: { diff(r: DesiredOf<K>, o: Observed): Change; prune(key: ResourceKey, o: Observed): Change } } = {
  App: {
    diff: (r, o) => ({ key: keyFields(r), kind: 'App', ...diffApp(r, o.containers, o.routes) }),
    prune: (key, o) => ({ key, kind: 'App', change: 'remove', containers: o.containers, routes: o.routes, reason: 'no longer in git' }),
  },
  Database: {
    diff: (r, o) => ({ key: keyFields(r), kind: 'Database', ...diffDatabase(r, o.containers, o.volume) }),
    prune: (key, o) => ({
      key, kind: 'Database', change: 'remove', containers: o.containers,
      reason: `no longer in git; its data is retained${o.volume ? ` on volume ${o.volume.name}` : ''} until a human purges it (mlink db purge)`,
    }),
  },
};

function diffOne(r: DesiredResource, o: Observed): Change {
  return (KINDS[r.kind].diff as (r: DesiredResource, o: Observed) => Change)(r, o);
}

export interface Diff {
  changes: Change[];
  /** Project networks, per host, that must exist / are no longer used. */
  networks: { ensure: Array<{ host: string; project: string }>; remove: Array<{ host: string; name: string; project: string }> };
  /** Egress rules per runtime host, for every project network that exists there or will. */
  egress: Array<{ host: string; policy: EgressPolicy }>;
}

function groupBy<T>(items: T[], key: (t: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const i of items) m.set(key(i), [...(m.get(key(i)) ?? []), i]);
  return m;
}

/** Which project networks each host needs: an app replica's project, a database's own project and its clients'. */
function neededNetworks(desired: DesiredState): Array<{ host: string; project: string }> {
  const out = new Map<string, { host: string; project: string }>();
  const need = (host: string, project: string): void => { out.set(`${host}/${project}`, { host, project }); };
  for (const a of appsOf(desired.resources)) for (const host of a.placement.slice(0, a.replicas)) need(host, a.project);
  for (const d of databasesOf(desired.resources)) for (const p of d.networks) need(d.host, p);
  return [...out.values()].sort((x, y) => `${x.host}/${x.project}`.localeCompare(`${y.host}/${y.project}`));
}

/** Who may reach what, per host: the project networks there (desired, and live-only ones with no app: deny all until removed). */
export function egressPolicies(desired: DesiredState, live: LiveState): Diff['egress'] {
  const hosts = new Map<string, Map<string, EgressPolicy['projects'][number]>>();
  const project = (host: string, p: string): EgressPolicy['projects'][number] => {
    const projects = hosts.get(host) ?? new Map();
    hosts.set(host, projects);
    const entry = projects.get(p) ?? { project: p, network: networkName(desired.cluster, p), apps: [], databases: [] };
    projects.set(p, entry);
    return entry;
  };
  for (const n of live.networks) project(n.host, n.project);
  for (const { host, project: p } of neededNetworks(desired)) project(host, p);
  for (const a of appsOf(desired.resources)) {
    for (const host of new Set(a.placement.slice(0, a.replicas))) {
      project(host, a.project).apps.push({ name: a.name, specHash: a.specHash, replicas: a.replicas, allow: a.egress ?? [] });
    }
  }
  const apps = new Map(appsOf(desired.resources).map((a) => [keyOf(a), a]));
  for (const d of databasesOf(desired.resources)) {
    for (const p of d.networks) {
      const clients = d.clients
        .filter((c) => c.project === p)
        .map((c) => apps.get(keyOf({ kind: 'App', ...c })))
        .filter((a): a is NonNullable<typeof a> => !!a)
        .map((a) => ({ project: a.project, name: a.name, specHash: a.specHash, replicas: a.replicas }));
      project(d.host, p).databases!.push({ project: d.project, name: d.name, container: databaseContainerName(desired.cluster, d), clients });
    }
  }
  return [...hosts].sort(([a], [b]) => a.localeCompare(b)).map(([host, projects]) => ({
    host,
    policy: {
      cluster: desired.cluster,
      projects: [...projects.values()].sort((x, y) => x.project.localeCompare(y.project)),
      deny: desired.egress?.deny ?? [],
      control: desired.egress?.control ?? [],
    },
  }));
}

export function diff(desired: DesiredState, live: LiveState): Diff {
  const containers = groupBy(live.containers, (c) => keyOf(c.key));
  const routes = groupBy(live.routes, (r) => keyOf(r.key));
  const volumes = new Map(live.volumes.map((v) => [keyOf(v.key), v]));
  const wanted = new Set([...desired.resources, ...desired.held].map(keyOf));
  const observed = (k: string): Observed => ({ containers: containers.get(k) ?? [], routes: routes.get(k) ?? [], ...(volumes.has(k) ? { volume: volumes.get(k)! } : {}) });
  const changes: Change[] = desired.resources.map((r) => diffOne(r, observed(keyOf(r))));
  // Live objects whose identity git no longer names (nor holds) are prune candidates; a volume alone is data, never pruned.
  const gone = new Map<string, ResourceKey>();
  for (const o of [...live.containers, ...live.routes]) if (!wanted.has(keyOf(o.key))) gone.set(keyOf(o.key), keyFields(o.key));
  for (const [k, key] of [...gone].sort(([a], [b]) => a.localeCompare(b))) changes.push(KINDS[key.kind].prune(key, observed(k)));
  const needed = neededNetworks(desired);
  // A held resource keeps what it runs, its network (and the holders on it) included.
  const heldProjects = new Set(desired.held.map((h) => h.project));
  const has = (host: string, p: string): boolean => heldProjects.has(p) || needed.some((n) => n.host === host && n.project === p);
  return {
    changes,
    networks: {
      // Only networks that do not exist: every ensure is a local activity on a pass's way to its first container.
      ensure: needed.filter((n) => !live.networks.some((l) => l.host === n.host && l.project === n.project)),
      remove: live.networks.filter((n) => !has(n.host, n.project)).map((n) => ({ host: n.host, name: n.name, project: n.project })),
    },
    egress: egressPolicies(desired, live),
  };
}
