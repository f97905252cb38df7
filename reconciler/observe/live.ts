// observe: what runs now, read from Docker and the route directory. Only objects that
// carry ml.ink's labels for this cluster are seen; nothing else can be pruned.
import type Docker from 'dockerode';
import { readdir, readFile } from 'node:fs/promises';
import { readRoute } from '../edge/route.js';
import { holderName } from '../hosts/containers.js';
import { LABEL, MANAGED_BY, type LiveContainer, type LiveNetwork, type LiveRoute, type LiveState } from '../model.js';

export function clusterFilter(cluster: string): { label: string[] } {
  return { label: [`${LABEL.managedBy}=${MANAGED_BY}`, `${LABEL.cluster}=${cluster}`] };
}

export async function observeContainers(docker: Docker, cluster: string): Promise<LiveContainer[]> {
  const list = await docker.listContainers({ all: true, filters: clusterFilter(cluster) });
  // A replica's address is its network holder's (hosts/containers.ts), while the holder runs.
  const holders = new Map(list.filter((c) => c.Labels[LABEL.kind] === 'AppNet' && c.State === 'running').map((h) => [
    (h.Names[0] ?? '').replace(/^\//, ''), Object.values(h.NetworkSettings?.Networks ?? {}).map((n) => n.IPAddress).find((a) => !!a),
  ]));
  return list
    .filter((c) => c.Labels[LABEL.kind] === 'App')
    .map((c) => {
      const ip = holders.get(holderName((c.Names[0] ?? '').replace(/^\//, '')));
      return {
        id: c.Id,
        name: (c.Names[0] ?? '').replace(/^\//, ''),
        project: c.Labels[LABEL.project] ?? '',
        app: c.Labels[LABEL.name] ?? '',
        specHash: c.Labels[LABEL.specHash] ?? '',
        replica: Number(c.Labels[LABEL.replica] ?? 0),
        commit: c.Labels[LABEL.commit] ?? '',
        running: c.State === 'running',
        ...(ip ? { ip } : {}),
      };
    });
}

export async function observeNetworks(docker: Docker, cluster: string): Promise<LiveNetwork[]> {
  const list = await docker.listNetworks({ filters: clusterFilter(cluster) });
  return list.map((n) => ({ id: n.Id, name: n.Name, project: n.Labels?.[LABEL.project] ?? '' }));
}

export async function observeRoutes(routesDir: string, cluster: string): Promise<LiveRoute[]> {
  const prefix = `mlink-${cluster}--`;
  let files: string[];
  try {
    files = await readdir(routesDir);
  } catch {
    return [];
  }
  const out: LiveRoute[] = [];
  for (const f of files.filter((f) => f.startsWith(prefix) && f.endsWith('.yaml')).sort()) {
    const route = readRoute(f, await readFile(`${routesDir}/${f}`, 'utf8').catch(() => ''), cluster);
    if (route) out.push(route);
  }
  return out;
}

export async function observe(docker: Docker, routesDir: string, cluster: string): Promise<LiveState> {
  const [containers, networks, routes] = await Promise.all([
    observeContainers(docker, cluster),
    observeNetworks(docker, cluster),
    observeRoutes(routesDir, cluster),
  ]);
  return { containers, networks, routes };
}
