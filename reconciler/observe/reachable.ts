// observe, across hosts that may not answer: each runtime host is read within a deadline,
// so one that hangs (killed, cut off) neither blocks nor fails the pass. A host that does
// not answer in time, or fails the control plane's health checks, is `unreachable`: its
// part is what it ran when last seen, and the pass acts on nothing there. A Lost host is
// not asked at all; only where its databases' data is (its volumes, last seen) is kept,
// so a database is never made again elsewhere on an empty volume.
import type { HostPool } from '../hosts/pool.js';
import type { LiveState } from '../model.js';
import { within } from '../util/deadline.js';
import { observeHost } from './live.js';

export const OBSERVE_TIMEOUT_MS = 5000;

const EMPTY: LiveState = { containers: [], routes: [], networks: [], volumes: [] };

export interface Observed { live: LiveState; unreachable: Array<{ host: string; error: string }>; lost: string[] }

export async function observeReachable(hosts: HostPool, cluster: string, timeoutMs = OBSERVE_TIMEOUT_MS): Promise<Observed> {
  const lost = hosts.names('runtime').filter((n) => hosts.condition(n)?.state === 'Lost');
  const unreachable: Observed['unreachable'] = [];
  const parts = await Promise.all(hosts.usable('runtime').map(async (name) => {
    // Failing its health checks: not asked (it would cost the pass the deadline), taken as last seen.
    const c = hosts.condition(name);
    if (c?.state === 'Failing') {
      unreachable.push({ host: name, error: c.check ?? 'failing its health checks' });
      return hosts.lastSeen(name) ?? EMPTY;
    }
    try {
      const part = await within(timeoutMs, 'observe', observeHost(hosts.get(name), hosts.edge(name), cluster));
      hosts.remember(name, part);
      return part;
    } catch (e) {
      unreachable.push({ host: name, error: (e as Error).message });
      return hosts.lastSeen(name) ?? EMPTY;
    }
  }));
  for (const name of lost) parts.push({ ...EMPTY, volumes: hosts.lastSeen(name)?.volumes ?? [] });
  return {
    live: {
      containers: parts.flatMap((p) => p.containers),
      routes: parts.flatMap((p) => p.routes),
      networks: parts.flatMap((p) => p.networks),
      volumes: parts.flatMap((p) => p.volumes),
    },
    unreachable: unreachable.sort((a, b) => a.host.localeCompare(b.host)),
    lost,
  };
}
