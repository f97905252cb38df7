// observe: what runs now on each runtime host: containers, volumes and networks from its
// Docker, routes from its edge's directory. Only objects that carry ml.ink's labels for
// this cluster are seen; nothing else can be pruned. Every object carries its host.
import type Docker from 'dockerode';
import { readRoute } from '../edge/route.js';
import type { Edge } from '../edge/traefik.js';
import type { Host } from '../hosts/host.js';
import { readReplicaRecords, readWakeStates } from '../hosts/waker.js';
import { wakeId } from '../waker/spec.js';
import { CERT_FILE_SUFFIX, KINDS, holderName } from '../layout.js';
import { HELPER_KIND, LABEL, MANAGED_BY, type Kind, type LiveContainer, type LiveNetwork, type LiveRoute, type LiveState, type LiveVolume } from '../model.js';

export function clusterFilter(cluster: string, ...more: string[]): { label: string[] } {
  return { label: [`${LABEL.managedBy}=${MANAGED_BY}`, `${LABEL.cluster}=${cluster}`, ...more] };
}

const RESOURCE_KINDS = new Set<string>(KINDS);

function healthOf(status: string): boolean | undefined {
  if (/\(healthy\)/.test(status)) return true;
  if (/\(unhealthy\)/.test(status)) return false;
  return undefined;
}

export async function observeContainers(host: Host, cluster: string): Promise<LiveContainer[]> {
  const list = await host.docker.listContainers({ all: true, filters: clusterFilter(cluster) });
  const nameOf = (c: Docker.ContainerInfo): string => (c.Names[0] ?? '').replace(/^\//, '');
  const addressesOf = (c: Docker.ContainerInfo): Record<string, string> =>
    Object.fromEntries(Object.entries(c.NetworkSettings?.Networks ?? {}).filter(([, n]) => !!n.IPAddress).map(([net, n]) => [net, n.IPAddress]));
  // A replica's addresses are its network holder's (hosts/containers.ts), while the holder runs.
  const holders = new Map(list.filter((c) => c.Labels[LABEL.kind] === HELPER_KIND.holder && c.State === 'running').map((h) => [nameOf(h), addressesOf(h)]));
  return list
    .filter((c) => RESOURCE_KINDS.has(c.Labels[LABEL.kind] ?? ''))
    .map((c) => {
      const kind = c.Labels[LABEL.kind] as Kind;
      // A container that joined a holder's namespace has the holder's addresses; any other its own.
      const addresses = holders.get(holderName(nameOf(c))) ?? addressesOf(c);
      const ip = Object.values(addresses)[0];
      const healthy = c.State === 'running' ? healthOf(c.Status) : undefined;
      return {
        id: c.Id,
        name: nameOf(c),
        host: host.name,
        key: { kind, project: c.Labels[LABEL.project] ?? '', name: c.Labels[LABEL.name] ?? '' },
        specHash: c.Labels[LABEL.specHash] ?? '',
        replica: Number(c.Labels[LABEL.replica] ?? 0),
        commit: c.Labels[LABEL.commit] ?? '',
        running: c.State === 'running',
        ...(healthy !== undefined ? { healthy } : {}),
        ...(ip ? { ip, addresses } : {}),
      };
    });
}

export async function observeNetworks(host: Host, cluster: string): Promise<LiveNetwork[]> {
  const list = await host.docker.listNetworks({ filters: clusterFilter(cluster) });
  return list.map((n) => ({ id: n.Id, name: n.Name, project: n.Labels?.[LABEL.project] ?? '', host: host.name }));
}

export async function observeVolumes(host: Host, cluster: string): Promise<LiveVolume[]> {
  const { Volumes } = await host.docker.listVolumes({ filters: clusterFilter(cluster, `${LABEL.kind}=Database`) });
  return (Volumes ?? []).map((v) => ({
    name: v.Name,
    host: host.name,
    key: { kind: 'Database' as const, project: v.Labels?.[LABEL.project] ?? '', name: v.Labels?.[LABEL.name] ?? '' },
    engine: v.Labels?.[LABEL.engine] ?? '',
    version: v.Labels?.[LABEL.engineVersion] ?? '',
    createdAt: (v as { CreatedAt?: string }).CreatedAt ?? '',
  }));
}

export async function observeRoutes(host: Host, edge: Edge, cluster: string): Promise<LiveRoute[]> {
  const prefix = `mlink-${cluster}--`;
  const files = await host.files.list(edge.routesDir);
  const out: LiveRoute[] = [];
  for (const f of files.filter((f) => f.startsWith(prefix) && f.endsWith('.yaml') && !f.endsWith(CERT_FILE_SUFFIX)).sort()) {
    const route = readRoute(f, (await host.files.read(`${edge.routesDir}/${f}`)) ?? '', cluster, host.name);
    if (route) out.push(route);
  }
  // A route to the waker carries what the waker says of its app (asleep is desired, not drift).
  const states = out.some((r) => r.wake) ? await readWakeStates(host, edge, cluster) : new Map();
  for (const r of out) {
    const s = r.wake ? states.get(wakeId(cluster, r.key)) : undefined;
    if (s) r.sleep = { state: s.state, since: s.since, ...(s.lastRequest ? { lastRequest: s.lastRequest } : {}), ...(s.error ? { error: s.error } : {}) };
  }
  return out;
}

/** A supervisor's word that it brings a replica back counts this long past its next try (then it is drift again: the waker may be gone). */
const RESTART_SLACK_MS = 15_000;

/** Marks the stopped replicas the host's supervisor is bringing back, by its records. */
async function markRestarting(host: Host, edge: Edge, containers: LiveContainer[]): Promise<void> {
  const down = containers.filter((c) => c.key.kind === 'App' && !c.running);
  const records = await readReplicaRecords(host, edge, down.map((c) => c.name)).catch(() => new Map());
  const now = Date.now();
  for (const c of down) {
    const r = records.get(c.name);
    if (r?.state === 'restarting' && r.nextAt && Date.parse(r.nextAt) + RESTART_SLACK_MS > now) c.restarting = { restarts: r.restarts, exitCode: r.lastExit.code, nextAt: r.nextAt };
  }
}

/** One host's part of the live state. */
export async function observeHost(host: Host, edge: Edge | undefined, cluster: string): Promise<LiveState> {
  const [containers, networks, volumes, routes] = await Promise.all([
    observeContainers(host, cluster),
    observeNetworks(host, cluster),
    observeVolumes(host, cluster),
    edge ? observeRoutes(host, edge, cluster) : Promise.resolve([]),
  ]);
  if (edge) await markRestarting(host, edge, containers);
  return { containers, networks, volumes, routes };
}

/** The live state of every runtime host, as one. */
export async function observe(targets: Array<{ host: Host; edge?: Edge }>, cluster: string): Promise<LiveState> {
  const parts = await Promise.all(targets.map((t) => observeHost(t.host, t.edge, cluster)));
  return {
    containers: parts.flatMap((p) => p.containers),
    routes: parts.flatMap((p) => p.routes),
    networks: parts.flatMap((p) => p.networks),
    volumes: parts.flatMap((p) => p.volumes),
  };
}
