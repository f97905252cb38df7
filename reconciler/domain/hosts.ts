// list_hosts: the machines of the cluster as git declares them (mlink.yaml's hosts, the
// embedded `local` among them, and hosts/*.yaml), each with its health and what runs
// there as the reconciler sees it now. Read-only: hosts are added by a human with
// `mlink host add`, which pins the host's SSH key.
import type { HostHealth } from '../hosts/health.js';
import { listHosts as readHosts } from '../layout.js';
import { MAIN } from '../state/store.js';
import { clusterConfig } from './cluster.js';
import { RECONCILER_NOT_RUNNING, type LiveStateProvider } from './live-state.js';
import type { Ctx } from './write.js';

export type HostLive =
  | { known: false; reason: string }
  | ({ known: true; condition: HostConditionView } & Pick<HostHealth, 'ssh' | 'docker' | 'edge' | 'running'>);

/** A host's condition over time (the control plane's health checks). */
export interface HostConditionView { state: 'Ready' | 'Failing' | 'Lost' | 'Returning'; since?: string; failing_since?: string; check?: string }

export interface HostView {
  name: string;
  address: string;
  roles: string[];
  /** Where it is declared: mlink.yaml, or hosts/<name>.yaml. */
  path: string;
  ssh?: { user: string; port: number; host_key?: string };
  capacity?: { cpu: number; memory_mb: number };
  labels: Record<string, string>;
  schedulable: boolean;
  live: HostLive;
}

export async function listHosts(ctx: Ctx, live: LiveStateProvider): Promise<{ hosts: HostView[]; invalid: string[]; commit: string | null }> {
  const view = await ctx.store.view(MAIN);
  const config = await clusterConfig(view);
  const { items, invalid } = await readHosts(view);
  const health = new Map<string, HostHealth>();
  let why = RECONCILER_NOT_RUNNING;
  if (live.hosts) {
    try {
      for (const h of await live.hosts()) health.set(h.name, h);
    } catch (e) {
      why = `live state unknown: ${(e as Error).message}`;
    }
  }
  const liveOf = (name: string): HostLive => {
    const h = health.get(name);
    if (h) {
      const c = h.condition;
      const condition: HostConditionView = c
        ? { state: c.state, since: c.since, ...(c.failingSince ? { failing_since: c.failingSince } : {}), ...(c.check ? { check: c.check } : {}) }
        : { state: 'Ready' };
      return { known: true, ssh: h.ssh, docker: h.docker, ...(h.edge ? { edge: h.edge } : {}), running: h.running, condition };
    }
    return { known: false, reason: live.hosts && why === RECONCILER_NOT_RUNNING ? 'not in the reconciler\'s hosts yet: it takes the host on its next pass' : why };
  };
  const hosts: HostView[] = [
    ...config.spec.hosts.map((h) => ({
      name: h.name, address: h.address, roles: [...h.roles], path: 'mlink.yaml',
      ...(h.address !== 'local' ? { ssh: { user: h.ssh?.user ?? 'root', port: h.ssh?.port ?? 22 } } : {}),
      labels: {}, schedulable: true, live: liveOf(h.name),
    })),
    ...items.map(({ host: h, path }) => ({
      name: h.metadata.name, address: h.spec.address, roles: [...h.spec.roles], path,
      ssh: { user: h.spec.ssh.user ?? 'root', port: h.spec.ssh.port ?? 22, host_key: h.spec.ssh.hostKey },
      ...(h.spec.capacity ? { capacity: { cpu: h.spec.capacity.cpu, memory_mb: h.spec.capacity.memoryMb } } : {}),
      labels: h.spec.labels ?? {}, schedulable: h.spec.schedulable !== false, live: liveOf(h.metadata.name),
    })),
  ];
  return { hosts, invalid, commit: view.commit };
}
