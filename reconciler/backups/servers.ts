// Where a database's server runs now, found by its labels on the cluster's runtime hosts:
// what a backup dumps from and a restore loads into.
import type { HostPool } from '../hosts/pool.js';
import type { Host } from '../hosts/host.js';
import { LABEL, MANAGED_BY } from '../model.js';

export interface Server { host: Host; container: string; engine: string; image: string; running: boolean }

export async function findServer(hosts: HostPool, cluster: string, project: string, name: string): Promise<Server | undefined> {
  // Hosts that answer their health checks only: a lost host's server is not reachable to dump or restore.
  for (const { host } of hosts.runtime()) {
    const list = await host.docker.listContainers({
      all: true,
      filters: { label: [`${LABEL.managedBy}=${MANAGED_BY}`, `${LABEL.cluster}=${cluster}`, `${LABEL.kind}=Database`, `${LABEL.project}=${project}`, `${LABEL.name}=${name}`] },
    });
    const c = list.sort((a, b) => Number(b.State === 'running') - Number(a.State === 'running') || b.Created - a.Created)[0];
    if (c) return { host, container: (c.Names[0] ?? c.Id).replace(/^\//, ''), engine: c.Labels[LABEL.engine] ?? '', image: c.Image, running: c.State === 'running' };
  }
  return undefined;
}
