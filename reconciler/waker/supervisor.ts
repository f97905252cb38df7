// The runtime host's supervisor, inside its waker: a serving replica that exits (its
// process crashed, it was killed, dockerd stopped it) is started again on this host,
// with nothing from the control plane. A replica runs in its network holder's namespace
// (hosts/containers.ts), and its gVisor sandbox took the holder's address off the
// interface; so before the second start a short-lived helper in the holder's namespace
// (busybox `ip`, NET_ADMIN only) puts the address and the default route back. The
// replica comes back on the same address and MAC: its route and its egress rules hold
// as they are.
//
// Only a replica of the version its app's route serves is brought back (one of a new
// version that exits before its route moved is the rollout's to roll back), never one
// removed (the reconciler removes with force: Docker says `destroy` a moment after
// `die`), never one of a scale-to-zero app (its session wakes it on the next request).
// A replica that keeps exiting waits ever longer, as Docker's restart policy does: 0,
// 1, 2, 4 ... 60 s, counted again once it ran a minute. What it does is written to
// replicas/<container>.json, which observe reads: the reconciler leaves a replica being
// brought back to it.
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { routeServes } from '../edge/route-header.js';
import { LABEL, MANAGED_BY } from '../model.js';
import type { DockerApi, DockerEvent, Inspected } from './docker-api.js';
import { RAN_WELL_MS, replicaFile, restartDelayMs, routeFileOf, wakeId, type ReplicaRecord } from './spec.js';

/** How long after a `die` it looks: a removal's `destroy` comes within milliseconds. */
const GRACE_MS = 500;

export interface SupervisorOptions {
  docker: DockerApi;
  /** The waker's directory (replica records go to replicas/). */
  dir: string;
  /** The edge's route files on this host. */
  routesDir: string;
  /** A replica another part of the waker keeps (a scale-to-zero app's). */
  skip: (container: string) => boolean;
  save: (file: string, content: string) => Promise<void>;
  /** Runs a host command (the waker is in the host's network namespace); its exit code. */
  run: (argv: string[]) => Promise<number>;
  log: (msg: string, fields: Record<string, unknown>) => void;
  now?: () => number;
}

interface Tracked { restarts: number; timer?: NodeJS.Timeout; busy?: boolean }

const APP_LABELS = [`${LABEL.managedBy}=${MANAGED_BY}`, `${LABEL.kind}=App`];

export class Supervisor {
  private readonly tracked = new Map<string, Tracked>();
  private readonly removed = new Set<string>();
  private stream?: { close(): void };
  private closed = false;
  private readonly now: () => number;

  constructor(private readonly o: SupervisorOptions) {
    this.now = o.now ?? Date.now;
  }

  /** Follows Docker's events; after every (re)connect, looks at every replica once (dockerd may have stopped some meanwhile). */
  start(): void {
    if (this.closed) return;
    this.stream = this.o.docker.events(APP_LABELS, (e) => this.onEvent(e), (why) => {
      if (this.closed) return;
      this.o.log('docker events lost; again in 1 s', { why });
      setTimeout(() => this.start(), 1000).unref();
    });
    void this.sweep().catch((e: Error) => this.o.log('replica sweep failed', { error: e.message }));
  }

  close(): void {
    this.closed = true;
    this.stream?.close();
    for (const t of this.tracked.values()) clearTimeout(t.timer);
  }

  private onEvent(e: DockerEvent): void {
    const id = e.Actor?.ID ?? e.id;
    if (!id) return;
    if (e.Action === 'destroy') {
      this.removed.add(id);
      setTimeout(() => this.removed.delete(id), 60_000).unref();
      const t = this.tracked.get(id);
      clearTimeout(t?.timer);
      this.tracked.delete(id);
      const name = e.Actor?.Attributes?.name;
      if (name) void this.forget(name);
      return;
    }
    if (e.Action !== 'die') return;
    const exitCode = Number(e.Actor?.Attributes?.exitCode ?? NaN);
    const name = e.Actor?.Attributes?.name;
    const t = this.tracked.get(id);
    // Said at once, so a reconcile pass that looks meanwhile leaves it to this host (dropped again if it is not one to bring back).
    if (name && !this.o.skip(name) && !t?.timer && !t?.busy) {
      const restarts = t?.restarts ?? 0;
      void this.record({ container: name, state: 'restarting', restarts, lastExit: { code: exitCode, at: new Date(this.now()).toISOString() }, nextAt: new Date(this.now() + GRACE_MS + restartDelayMs(restarts)).toISOString() }).catch(() => undefined);
    }
    this.later(id, GRACE_MS, exitCode);
  }

  /** Every replica that is down now, as if each had just exited. */
  async sweep(): Promise<void> {
    const list = await this.o.docker.list(APP_LABELS);
    for (const c of list.filter((x) => x.State === 'exited')) this.later(c.Id, GRACE_MS, NaN);
  }

  private later(id: string, ms: number, exitCode: number): void {
    const t = this.tracked.get(id) ?? { restarts: 0 };
    this.tracked.set(id, t);
    if (t.timer || t.busy) return;
    t.timer = setTimeout(() => { t.timer = undefined; void this.consider(id, exitCode).catch((e: Error) => this.failed(id, exitCode, e)); }, ms);
    t.timer.unref();
  }

  /** A restart that could not be made is tried again, later each time. */
  private failed(id: string, exitCode: number, e: Error): void {
    const t = this.tracked.get(id);
    this.o.log('replica restart failed', { container: id.slice(0, 12), error: e.message });
    if (!t || this.closed) return;
    t.restarts++;
    this.later(id, Math.max(GRACE_MS, restartDelayMs(t.restarts)), exitCode);
  }

  /** Whether the replica is one to bring back: down, not removed, of the version its route serves, not a sleeping app's. */
  private async wanted(c: Inspected): Promise<boolean> {
    const l = c.Config.Labels ?? {};
    const name = c.Name.replace(/^\//, '');
    if (c.State.Running || this.removed.has(c.Id) || c.State.Status === 'removing' || c.State.Status === 'dead') return false;
    if (l[LABEL.kind] !== 'App' || this.o.skip(name)) return false;
    const cluster = l[LABEL.cluster] ?? '';
    const app = { project: l[LABEL.project] ?? '', name: l[LABEL.name] ?? '' };
    const file = routeFileOf(wakeId(cluster, app));
    const text = await readFile(join(this.o.routesDir, file), 'utf8').catch(() => '');
    const route = routeServes(text, cluster);
    return !!route && !route.wake && route.specHash === l[LABEL.specHash];
  }

  private async consider(id: string, exitCode: number): Promise<void> {
    const t = this.tracked.get(id);
    if (!t || this.closed) return;
    const c = await this.o.docker.inspect(id);
    if (!c || !(await this.wanted(c))) {
      if (!c?.State.Running) this.tracked.delete(id);
      if (c && !c.State.Running) await this.forget(c.Name.replace(/^\//, ''));
      return;
    }
    const name = c.Name.replace(/^\//, '');
    const code = Number.isNaN(exitCode) ? c.State.ExitCode : exitCode;
    const ran = Date.parse(c.State.FinishedAt) - Date.parse(c.State.StartedAt);
    if (ran >= RAN_WELL_MS) t.restarts = 0;
    const delay = restartDelayMs(t.restarts);
    const lastExit = { code, at: c.State.FinishedAt };
    if (delay > 0) {
      await this.record({ container: name, state: 'restarting', restarts: t.restarts, lastExit, nextAt: new Date(this.now() + delay).toISOString() });
      this.o.log('replica exited again; restarting later', { container: name, exitCode: code, restarts: t.restarts, inMs: delay });
      t.timer = setTimeout(() => { t.timer = undefined; void this.restart(id, name, lastExit).catch((e: Error) => this.failed(id, code, e)); }, delay);
      t.timer.unref();
      return;
    }
    await this.restart(id, name, lastExit);
  }

  private async restart(id: string, name: string, lastExit: ReplicaRecord['lastExit']): Promise<void> {
    const t = this.tracked.get(id);
    if (!t || this.closed || t.busy) return;
    t.busy = true;
    try {
      const c = await this.o.docker.inspect(id);
      if (!c || !(await this.wanted(c))) return;
      const t0 = this.now();
      await this.record({ container: name, state: 'restarting', restarts: t.restarts, lastExit, nextAt: new Date(t0).toISOString() });
      const mode = c.HostConfig.NetworkMode ?? '';
      let ip = '';
      if (mode.startsWith('container:')) {
        const holder = await this.o.docker.inspect(mode.slice('container:'.length));
        if (!holder?.State.Running) {
          await this.record({ container: name, state: 'given-up', restarts: t.restarts, lastExit, reason: 'its network holder is not running; the reconciler replaces the replica' });
          this.o.log('replica not restarted: its network holder is gone', { container: name });
          return;
        }
        ip = await this.readdress(holder);
      }
      await this.o.docker.start(id);
      t.restarts++;
      // Same address, same MAC: a stale neighbour entry would only be the same one. Dropped anyway, as a wake does.
      if (ip) await this.o.run(['ip', 'neigh', 'flush', 'to', ip]);
      await this.record({ container: name, state: 'running', restarts: t.restarts, lastExit });
      this.o.log('replica restarted', { container: name, exitCode: lastExit.code, restarts: t.restarts, ip, ms: this.now() - t0 });
    } finally {
      t.busy = false;
    }
  }

  /** Puts the holder's address and default route back on its interface (the last sandbox took them); the address. */
  private async readdress(holder: Inspected): Promise<string> {
    const [network, net] = Object.entries(holder.NetworkSettings.Networks)[0] ?? [];
    if (!network || !net?.IPAddress || !net.IPPrefixLen) throw new Error(`holder ${holder.Name} has no address on its network`);
    const { IPAddress: ip, IPPrefixLen: len, Gateway: gw } = net;
    const helper = `${holder.Name.replace(/^\//, '')}-readdress`;
    const script = [
      `ip -4 addr show dev eth0 | grep -q 'inet ${ip}/' || ip addr add ${ip}/${len} dev eth0`,
      ...(gw ? [`ip route replace default via ${gw} dev eth0`] : []),
    ].join(' && ');
    await this.o.docker.remove(helper);
    await this.o.docker.create({
      name: helper,
      Image: holder.Config.Image,
      Cmd: ['sh', '-c', script],
      Labels: { [LABEL.managedBy]: MANAGED_BY, [LABEL.kind]: 'Readdress', ...(holder.Config.Labels?.[LABEL.cluster] ? { [LABEL.cluster]: holder.Config.Labels[LABEL.cluster] } : {}) },
      HostConfig: { Runtime: 'runc', NetworkMode: `container:${holder.Id}`, CapDrop: ['ALL'], CapAdd: ['NET_ADMIN'], ReadonlyRootfs: true, LogConfig: { Type: 'none', Config: {} } },
    });
    try {
      await this.o.docker.start(helper);
      const code = await this.o.docker.wait(helper);
      if (code !== 0) throw new Error(`putting ${ip}/${len} back on ${holder.Name}'s interface exited ${code}`);
    } finally {
      await this.o.docker.remove(helper).catch(() => undefined);
    }
    return ip;
  }

  private forget(container: string): Promise<void> {
    return rm(join(this.o.dir, replicaFile(container)), { force: true }).catch(() => undefined);
  }

  private record(r: ReplicaRecord): Promise<void> {
    return this.o.save(join(this.o.dir, replicaFile(r.container)), `${JSON.stringify(r)}\n`);
  }
}
