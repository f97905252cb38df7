// The hosts of a cluster, by name, each connected once and reused: what the control
// plane's worker acts on. The cluster config names the hosts; the pool turns a name
// into a Host (hosts/host.ts) and, for runtime hosts, the edge that serves from it.
import type { ClusterHost } from '../../schemas/index.js';
import type { Edge } from '../edge/traefik.js';
import type { LiveState } from '../model.js';
import type { PlacementHost } from '../placement.js';
import { conditionText, schedulableIn, type HostCondition } from './conditions.js';
import { LocalHost, type Host } from './host.js';

export type Role = 'control' | 'build' | 'runtime';

export interface HostEntry {
  name: string;
  /** 'local' for this machine, else the address it is reached at over SSH. */
  address: string;
  roles: Role[];
  ssh?: { user?: string; port?: number; hostKey?: string };
  capacity?: { cpu: number; memoryMb: number };
  labels?: Record<string, string>;
  /** False while drained: nothing new is placed on it. */
  schedulable: boolean;
}

export interface HostPoolOptions {
  /** The local host's edge (the embedded default's Traefik). */
  localEdge: Edge;
  /** A Host for a machine that is not this one (SSH); without it only `address: local` hosts can be used. */
  connect?: (entry: HostEntry) => Host;
  /** The edge of a remote runtime host. */
  remoteEdge?: Edge;
  /** The registry as this machine reaches it (loopback in the embedded default). */
  localRegistry?: string;
  /** Called when the commit's registry address (mlink.yaml spec.registry) changes: the control plane serves its registry there. */
  onRegistry?: (address: string | undefined) => void;
}

export class HostPool {
  private entries = new Map<string, HostEntry>();
  private readonly live = new Map<string, Host>();
  private registry: string | undefined;
  /** What the health checks (monitor.ts) say of each host; none means Ready. */
  private readonly conditions = new Map<string, HostCondition>();
  /** Each runtime host's last observed live state: what a host that stops answering was running. */
  private readonly seen = new Map<string, LiveState>();
  private readonly listeners: Array<(host: string, c: HostCondition) => void> = [];
  /** When the health checks last ran (monitor.ts), as far as this process knows. */
  healthCheckedAt: string | undefined;

  constructor(private readonly opts: HostPoolOptions, hosts: HostEntry[] = []) {
    this.configure(hosts);
  }

  /** The embedded default: this machine, every role. */
  static local(edge: Edge): HostPool {
    return new HostPool({ localEdge: edge }, [{ name: 'local', address: 'local', roles: ['control', 'build', 'runtime'], schedulable: true }]);
  }

  /** Takes the hosts (and the registry address) a commit names; connections to hosts that left, or moved, or changed their pinned key, are closed. */
  configure(hosts: Array<HostEntry | ClusterHost>, registry?: string): void {
    if (registry !== this.registry) {
      this.registry = registry;
      this.opts.onRegistry?.(registry);
    }
    const next = new Map(hosts.map((h) => [h.name, { schedulable: true, ...h } as HostEntry]));
    const reach = (e?: HostEntry): string => JSON.stringify([e?.address, e?.ssh]);
    for (const [name, host] of this.live) {
      if (reach(this.entries.get(name)) !== reach(next.get(name))) { this.live.delete(name); void host.close(); }
    }
    this.entries = next;
  }

  names(role?: Role): string[] {
    return [...this.entries.values()].filter((e) => !role || e.roles.includes(role)).map((e) => e.name).sort();
  }

  entry(name: string): HostEntry {
    const e = this.entries.get(name);
    if (!e) throw new Error(`no host named ${JSON.stringify(name)} in this cluster (hosts: ${this.names().join(', ') || 'none'})`);
    return e;
  }

  get(name: string): Host {
    const hit = this.live.get(name);
    if (hit) return hit;
    const e = this.entry(name);
    let host: Host;
    if (e.address === 'local') host = new LocalHost(e.name);
    else if (this.opts.connect) host = this.opts.connect(e);
    else throw new Error(`host ${e.name} (${e.address}) is not this machine, and this worker has no SSH key to reach it`);
    this.live.set(name, host);
    return host;
  }

  /**
   * The control plane's registry as host `name` reaches it: this machine's own address for
   * it, the private address mlink.yaml names for any other host.
   */
  registryFor(name: string): string {
    const e = this.entry(name);
    if (e.address === 'local') {
      if (!this.opts.localRegistry) throw new Error('this worker knows no registry address for the local host');
      return this.opts.localRegistry;
    }
    if (!this.registry) throw new Error(`host ${name} (${e.address}) is another machine and reaches built images only through the control plane's registry on the private network: set mlink.yaml spec.registry.address to an address of this machine that ${name} reaches (host:port, for example 10.0.0.5:15000)`);
    return this.registry;
  }

  edge(name: string): Edge | undefined {
    const e = this.entry(name);
    if (!e.roles.includes('runtime')) return undefined;
    return e.address === 'local' ? this.opts.localEdge : this.opts.remoteEdge;
  }

  /** Runtime hosts with their edges, for observe and status: hosts that fail their health checks (Failing, Lost) are left out, so nothing waits on them. */
  runtime(): Array<{ host: Host; edge?: Edge }> {
    return this.names('runtime').filter((n) => this.answering(n)).map((n) => ({ host: this.get(n), edge: this.edge(n) }));
  }

  /** Names with `role`, Lost hosts left out. */
  usable(role?: Role): string[] {
    return this.names(role).filter((n) => this.conditions.get(n)?.state !== 'Lost');
  }

  /** `unreachable`: hosts this pass could not observe; nothing new goes there either. */
  placementHosts(unreachable: string[] = []): PlacementHost[] {
    return this.names('runtime').map((n) => {
      const e = this.entry(n);
      const c = this.conditions.get(n);
      const why = !e.schedulable ? 'drained' : unreachable.includes(n) ? 'not answering' : !schedulableIn(c) ? conditionText(c) : undefined;
      return { name: n, schedulable: !why, ...(why ? { unschedulable: why } : {}), ...(c?.state === 'Lost' ? { lost: conditionText(c) } : {}), ...(e.capacity ? { capacity: e.capacity } : {}) };
    });
  }

  condition(name: string): HostCondition | undefined {
    return this.conditions.get(name);
  }

  /** Sets a host's condition (the monitor's checks, a pass that found a returning host clean); listeners hear of state changes. */
  setCondition(name: string, c: HostCondition): void {
    const before = this.conditions.get(name)?.state ?? 'Ready';
    if (c.state === 'Ready') this.conditions.delete(name);
    else this.conditions.set(name, c);
    if (before !== c.state) for (const l of this.listeners) l(name, c);
  }

  /** Listens for state changes; returns the function that stops listening. */
  onCondition(listener: (host: string, c: HostCondition) => void): () => void {
    this.listeners.push(listener);
    return () => { const i = this.listeners.indexOf(listener); if (i >= 0) this.listeners.splice(i, 1); };
  }

  /** Whether the health checks say the host answers (not Failing, not Lost). */
  answering(name: string): boolean {
    const s = this.conditions.get(name)?.state;
    return s !== 'Failing' && s !== 'Lost';
  }

  /** The last live state observed on a host (kept across a host's loss: where its databases' data is). */
  lastSeen(name: string): LiveState | undefined {
    return this.seen.get(name);
  }

  remember(name: string, live: LiveState): void {
    this.seen.set(name, live);
  }

  async close(): Promise<void> {
    const all = [...this.live.values()];
    this.live.clear();
    await Promise.all(all.map((h) => h.close().catch(() => undefined)));
  }
}
