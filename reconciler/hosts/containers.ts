// The runtime plane on a Docker host: networks and app containers. Every call checks
// before it acts (names are deterministic), so a retried activity does no harm.
//
// Each replica runs in the network namespace of its own "holder": a `sleep` in ml.ink's
// busybox image under runc, on the project network, with no capabilities, a read-only
// root and tiny limits. The app's gVisor sandbox joins it (`container:<holder>`) and
// takes its interface and address over. Docker sets a network namespace up in the start
// of the container that owns it (a hook that starts dockerd's binary again, a veth, an
// address): ~0.2 s of a gVisor container's ~0.35 s start here, and as long again for a
// holder. So each project network keeps two spare holders made beforehand; a replica's
// start renames it after itself and gives its interface the replica's MAC (the egress
// rules tell apps apart by it), ~25 ms, and a new spare is made once the rollout is done. The
// sandbox takes the address off the holder's interface and never gives it back, so
// Docker's restart policy could not bring an app back on it: the runtime host's
// supervisor (waker/supervisor.ts) puts the address back before it starts a replica that
// exited, and the reconciler replaces one that is not brought back (triggers.ts).
import type Docker from 'dockerode';
import { randomBytes } from 'node:crypto';
import { infraConfig } from '../../infra/config.js';
import { HOLDER_SUFFIX, holderName, networkName } from '../layout.js';
import { HELPER_KIND, LABEL, MANAGED_BY, type DesiredApp } from '../model.js';
import { flushNeighbour, setInterfaceMac } from './commands.js';
import { replicaMac } from './egress-rules.js';
import { must, type Host } from './host.js';

export { holderName } from '../layout.js';

export interface Started {
  id: string; name: string; ip: string;
  /** Where the start's time went, in ms (absent when the replica was running already); spare: its holder was the network's spare. */
  ms?: { holder: number; spare: boolean; create: number; start: number; address: number };
}

function statusOf(e: unknown): number | undefined {
  return (e as { statusCode?: number }).statusCode;
}

export async function ensureNetwork(docker: Docker, cluster: string, project: string, name: string): Promise<string> {
  try {
    return (await docker.getNetwork(name).inspect()).Id as string;
  } catch (e) {
    if (statusOf(e) !== 404) throw e;
  }
  try {
    const n = await docker.createNetwork({
      Name: name,
      Driver: 'bridge',
      CheckDuplicate: true,
      Labels: { [LABEL.managedBy]: MANAGED_BY, [LABEL.cluster]: cluster, [LABEL.kind]: HELPER_KIND.network, [LABEL.project]: project },
    });
    return n.id;
  } catch (e) {
    if (statusOf(e) === 409) return (await docker.getNetwork(name).inspect()).Id as string; // created meanwhile
    throw e;
  }
}

export async function removeNetwork(docker: Docker, name: string): Promise<void> {
  try {
    await docker.getNetwork(name).remove();
  } catch (e) {
    if (statusOf(e) !== 404) throw e;
  }
}

export interface ReplicaRequest {
  cluster: string;
  commit: string;
  app: DesiredApp;
  replica: number;
  container: string;
  network: string;
  /** Decrypted secret env; only ever passed to Docker. */
  secrets: Record<string, string>;
}

export type HolderRequest = Pick<ReplicaRequest, 'cluster' | 'app' | 'replica' | 'container' | 'network'>;

/** A holder's create request: on the project network, nothing else it could use. */
export function holderOptions(name: string, network: string, cluster: string, project: string, mac?: string): Docker.ContainerCreateOptions {
  return {
    name,
    Image: infraConfig().images.busybox,
    Cmd: ['sleep', '2147483647'],
    Labels: { [LABEL.managedBy]: MANAGED_BY, [LABEL.cluster]: cluster, [LABEL.kind]: HELPER_KIND.holder, [LABEL.project]: project },
    ...(mac ? { MacAddress: mac } : {}),
    HostConfig: {
      // Not runsc: a gVisor sandbox here would take the address itself.
      Runtime: 'runc',
      NetworkMode: network,
      NanoCpus: 50_000_000,
      Memory: 16 * 1024 * 1024,
      PidsLimit: 4,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      ReadonlyRootfs: true,
      Binds: [],
      RestartPolicy: { Name: 'no' },
      LogConfig: { Type: 'none', Config: {} },
    },
  };
}

/** The Docker create request for one replica: zero-trust defaults, labels that identify it, its holder's network. */
export function createOptions(r: ReplicaRequest): Docker.ContainerCreateOptions {
  const { app } = r;
  const env = { ...app.env, ...r.secrets, PORT: String(app.port) };
  return {
    name: r.container,
    Image: app.image,
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    Labels: {
      [LABEL.managedBy]: MANAGED_BY,
      [LABEL.cluster]: r.cluster,
      [LABEL.kind]: 'App',
      [LABEL.project]: app.project,
      [LABEL.name]: app.name,
      [LABEL.specHash]: app.specHash,
      [LABEL.commit]: r.commit,
      [LABEL.replica]: String(r.replica),
    },
    HostConfig: {
      Runtime: app.runtime,
      NetworkMode: `container:${holderName(r.container)}`,
      NanoCpus: Math.round(app.resources.cpu * 1e9),
      Memory: app.resources.memoryMb * 1024 * 1024,
      MemorySwap: app.resources.memoryMb * 1024 * 1024,
      PidsLimit: app.resources.pids,
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      // No Docker socket, no host path: nothing from the host is mounted, ever.
      Binds: [],
      ReadonlyRootfs: app.readOnlyRoot !== false,
      ...(app.readOnlyRoot !== false ? { Tmpfs: { '/tmp': `rw,nosuid,nodev,size=${Math.max(16, Math.floor(app.resources.memoryMb / 4))}m` } } : {}),
      // A restart would find the holder's address gone (see the top of this file): the host's supervisor restarts it.
      RestartPolicy: { Name: 'no' },
      LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '2' } },
    },
  };
}

/** The address on `network` of a running container; Docker can report it a moment after start. */
async function addressOf(docker: Docker, id: string, network: string, timeoutMs = 5000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await docker.getContainer(id).inspect().catch((e: unknown) => {
      if (statusOf(e) === 404) return undefined;
      throw e;
    });
    if (!info) return '';
    const ip = info.NetworkSettings.Networks[network]?.IPAddress ?? '';
    if (ip || !info.State.Running || Date.now() > deadline) return ip;
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Holder { id: string; name: string; ip: string; pid: number }

/** How many spare holders each project network keeps: two, so deploys back to back each find one made. */
const SPARES = 2;
interface Spare { name: string; making: Promise<Holder>; ready?: Holder }
/** Each host's project networks' spare holders (`<host>/<network>`), being made or ready (made by this process, never joined). */
const spares = new Map<string, Spare[]>();
const spareKey = (host: Host, network: string): string => `${host.name}/${network}`;
/**
 * Holders this process is giving to a replica (`<host>/<holder>`), until the replica is
 * created. A spare can be older than the sweep's minimum age when it is taken, and on a
 * host over SSH the replica's create can take seconds: the sweep must not see it unused.
 */
const taking = new Set<string>();

/** Makes a holder: an earlier container of that name is removed first (a sandbox may have taken its address). */
async function makeHolder(docker: Docker, opts: Docker.ContainerCreateOptions): Promise<Holder> {
  await removeContainer(docker, opts.name!);
  const c = await docker.createContainer(opts);
  try {
    await c.start();
    const info = await c.inspect();
    const network = String(opts.HostConfig!.NetworkMode);
    const ip = info.NetworkSettings.Networks[network]?.IPAddress || await addressOf(docker, c.id, network);
    if (!ip) throw new Error(`the network holder ${opts.name} got no address on ${network}`);
    return { id: c.id, name: opts.name!, ip, pid: info.State.Pid };
  } catch (e) {
    await c.remove({ force: true }).catch(() => undefined);
    throw e;
  }
}

/** Starts making `network` spare holders up to SPARES (the rollOut asks once its route moved, out of its way). */
export function keepSpare(host: Host, cluster: string, project: string, network: string): void {
  const key = spareKey(host, network);
  const list = spares.get(key) ?? [];
  spares.set(key, list);
  while (list.length < SPARES) {
    const name = `mlink-${cluster}-${project}-spare-${randomBytes(4).toString('hex')}`;
    const spare: Spare = { name, making: makeHolder(host.docker, holderOptions(name, network, cluster, project)) };
    spare.making.then((h) => { spare.ready = h; }, () => {
      const at = list.indexOf(spare);
      if (at >= 0) list.splice(at, 1);
    });
    list.push(spare);
  }
}

/** Takes one of `network`'s spares: a ready one first, else the one furthest along. */
function takeSpare(host: Host, network: string): Promise<Holder> | undefined {
  const list = spares.get(spareKey(host, network)) ?? [];
  const at = Math.max(0, list.findIndex((x) => x.ready));
  return list.splice(at, 1)[0]?.making;
}

/** Removes `network`'s spare holders (before the network goes). */
export async function dropSpare(host: Host, network: string): Promise<void> {
  const list = spares.get(spareKey(host, network)) ?? [];
  spares.delete(spareKey(host, network));
  for (const spare of list) {
    const h = await spare.making.catch(() => undefined);
    if (h) await removeContainer(host.docker, h.id);
  }
}

/** The replica's holder: the network's spare, renamed after the replica and given its MAC; else a new one. */
async function takeHolder(host: Host, r: HolderRequest): Promise<Holder & { spare: boolean }> {
  const { docker } = host;
  const name = holderName(r.container);
  const mac = replicaMac(r.cluster, r.app, r.replica);
  taking.add(`${host.name}/${name}`);
  const spare = await takeSpare(host, r.network)?.catch(() => undefined);
  if (spare) {
    try {
      await removeContainer(docker, name);
      await docker.getContainer(spare.id).rename({ name });
      // Still the same process (a dockerd restart stops it, and its pid could be anyone's now)?
      const now = await docker.getContainer(spare.id).inspect();
      if (!now.State.Running || now.State.Pid !== spare.pid) throw new Error(`the spare holder ${spare.name} stopped`);
      // Its interface takes the replica's MAC before the sandbox copies it.
      await must(host, setInterfaceMac(spare.pid, mac));
      return { ...spare, name, spare: true };
    } catch {
      await removeContainer(docker, spare.id); // gone with a dockerd restart, say: make one
    }
  }
  return { ...(await makeHolder(docker, holderOptions(name, r.network, r.cluster, r.app.project, mac))), spare: false };
}

/** Starts one replica, or finds it already running. A stopped leftover of the same name is replaced, and its holder with it. */
export async function startReplica(host: Host, r: ReplicaRequest): Promise<Started> {
  const { docker } = host;
  const existing = docker.getContainer(r.container);
  try {
    const info = await existing.inspect();
    if (info.State.Running && info.Config.Labels[LABEL.specHash] === r.app.specHash) {
      // A retry of an attempt that died between the start and the flush below: flushed here, or its health checks go to an old MAC for 20-30 s.
      const ip = await addressOf(docker, holderName(r.container), r.network);
      await forgetNeighbour(host, ip);
      return { id: info.Id, name: r.container, ip };
    }
    await existing.remove({ force: true });
  } catch (e) {
    if (statusOf(e) !== 404) throw e;
  }
  const t0 = Date.now();
  let holder: Holder & { spare: boolean };
  let container: Docker.Container;
  let t1: number;
  try {
    holder = await takeHolder(host, r);
    t1 = Date.now();
    try {
      container = await docker.createContainer(createOptions(r));
    } catch (e) {
      if (statusOf(e) !== 409) throw e;
      // A retry of this activity created it: kept only if it joins this holder (its own may be gone).
      container = docker.getContainer(r.container);
      const mode = (await container.inspect()).HostConfig.NetworkMode ?? '';
      if (mode !== `container:${holder.id}`) {
        await container.remove({ force: true });
        container = await docker.createContainer(createOptions(r));
      }
    }
  } finally {
    taking.delete(`${host.name}/${holderName(r.container)}`);
  }
  const t2 = Date.now();
  try {
    await container.start();
  } catch (e) {
    if (statusOf(e) !== 304) {
      await removeReplica(docker, container.id, r.container); // no orphan that never ran
      throw e;
    }
  }
  const t3 = Date.now();
  await forgetNeighbour(host, holder.ip);
  return {
    id: container.id, name: r.container, ip: holder.ip,
    ms: { holder: t1 - t0, spare: holder.spare, create: t2 - t1, start: t3 - t2, address: Date.now() - t3 },
  };
}

/** Makes one replica and leaves it stopped: a sleeping app's new version, which its host's waker starts on the next request (hosts/waker.ts). */
export async function createReplica(host: Host, r: ReplicaRequest): Promise<void> {
  const info = await host.docker.getContainer(r.container).inspect().catch((e: unknown) => {
    if (statusOf(e) === 404) return undefined;
    throw e;
  });
  if (info?.Config.Labels[LABEL.specHash] === r.app.specHash) return;
  if (info) await removeContainer(host.docker, r.container);
  try {
    await host.docker.createContainer(createOptions(r));
  } catch (e) {
    if (statusOf(e) !== 409) throw e; // a retry of this activity created it
  }
}

/**
 * Drops the host's ARP entry for a reused address. Each replica has its own MAC (the
 * egress rules match on it), so when a new container takes the IP of one removed a
 * moment ago, the host (and Traefik on it) would keep sending to the old MAC until the
 * entry went stale: 20-30 s of health checks and requests answered by nobody.
 */
async function forgetNeighbour(host: Host, ip: string): Promise<void> {
  if (ip) await host.run(flushNeighbour(ip)).catch(() => undefined);
}

export async function removeContainer(docker: Docker, idOrName: string): Promise<void> {
  try {
    await docker.getContainer(idOrName).remove({ force: true });
  } catch (e) {
    if (statusOf(e) !== 404) throw e;
  }
}

/**
 * Removes a replica (by id or name) and then its network holder (by the replica's name),
 * unless a new replica of that name runs on it already: a pass that replaces a stopped
 * replica starts the new one (on a new holder) before it removes the old one by id.
 */
export async function removeReplica(docker: Docker, idOrName: string, name: string): Promise<void> {
  await removeContainer(docker, idOrName);
  const successor = await docker.getContainer(name).inspect().catch(() => undefined);
  if (!successor) await removeContainer(docker, holderName(name));
}

/** The replicas' addresses (their holders'); '' for one whose holder is not running. */
export async function containerAddresses(docker: Docker, names: string[], network: string): Promise<string[]> {
  return Promise.all(names.map((n) => addressOf(docker, holderName(n), network)));
}

/**
 * Removes holders nothing uses: a replica's whose replica is gone (removed by hand, or
 * its start failed) and spares this process did not make (left by an earlier one).
 * Only those older than `minAgeMs`, so none is taken from a start in progress.
 */
export async function sweepHolders(host: Host, cluster: string, minAgeMs = 60_000): Promise<string[]> {
  const { docker } = host;
  const mine = new Set([...spares.entries()].filter(([k]) => k.startsWith(`${host.name}/`)).flatMap(([, list]) => list.map((x) => x.name)));
  const all = await docker.listContainers({ all: true, filters: { label: [`${LABEL.managedBy}=${MANAGED_BY}`, `${LABEL.cluster}=${cluster}`] } });
  const nameOf = (c: Docker.ContainerInfo): string => (c.Names[0] ?? '').replace(/^\//, '');
  const replicas = new Set(all.filter((c) => c.Labels[LABEL.kind] === 'App').map(nameOf));
  const removed: string[] = [];
  for (const h of all.filter((c) => c.Labels[LABEL.kind] === HELPER_KIND.holder)) {
    const name = nameOf(h);
    const used = taking.has(`${host.name}/${name}`) || (name.endsWith(HOLDER_SUFFIX) ? replicas.has(name.slice(0, -HOLDER_SUFFIX.length)) : mine.has(name));
    if (used || Date.now() - h.Created * 1000 < minAgeMs) continue;
    await removeContainer(docker, h.Id);
    removed.push(name);
  }
  return removed;
}

/** Removes holders nothing uses and makes each project network with replicas a spare (at start-up and every drift check). */
export async function tendHolders(host: Host, cluster: string): Promise<void> {
  await sweepHolders(host, cluster);
  const apps = await host.docker.listContainers({ filters: { label: [`${LABEL.managedBy}=${MANAGED_BY}`, `${LABEL.cluster}=${cluster}`, `${LABEL.kind}=App`] } });
  for (const project of new Set(apps.map((c) => c.Labels[LABEL.project] ?? ''))) {
    if (project) keepSpare(host, cluster, project, networkName(cluster, project));
  }
}

/** Removes every holder on `network` (it goes: its project has no replicas left). */
export async function removeNetworkHolders(host: Host, cluster: string, network: string): Promise<void> {
  await dropSpare(host, network);
  const list = await host.docker.listContainers({ all: true, filters: { label: [`${LABEL.cluster}=${cluster}`, `${LABEL.kind}=${HELPER_KIND.holder}`], network: [network] } });
  await Promise.all(list.map((h) => removeContainer(host.docker, h.Id)));
}

/** Polls at this pace while a process starts (most answer within a second), then at the app's interval. */
const FAST_POLL_MS = 20;
const FAST_WINDOW_MS = 3000;

/** Polls GET http://ip:port/path (from the replica's host) until it answers 2xx or 3xx, within the app's window (retries x interval); throws with the last answer. */
export async function waitHealthy(host: Host, url: string, health: DesiredApp['health'], stillRunning: () => Promise<boolean>, onTick: () => void = () => undefined): Promise<void> {
  let last = 'no answer yet';
  const t0 = Date.now();
  const deadline = t0 + health.retries * health.intervalMs;
  let checked = t0;
  for (let tries = 1; ; tries++) {
    onTick();
    try {
      // As the replica's host sees it: its bridge address is reachable there, not always from here.
      const res = await host.request(url, { timeoutMs: health.timeoutMs });
      if (res.status >= 200 && res.status < 400) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = (e as { code?: string }).code ?? (e as Error).message;
    }
    if (Date.now() >= deadline) throw new Error(`${url} did not answer 2xx/3xx within ${Math.round((deadline - t0) / 1000)} s (${tries} tries, last: ${last})`);
    // Whether it crashed: asked of Docker at most every 100 ms, not at every fast poll.
    if (Date.now() - checked >= 100) {
      checked = Date.now();
      if (!(await stillRunning())) throw new Error(`container exited before ${url} answered (last: ${last})`);
    }
    await new Promise((r) => setTimeout(r, Date.now() - t0 < FAST_WINDOW_MS ? Math.min(FAST_POLL_MS, health.intervalMs) : health.intervalMs));
  }
}

export async function containerLogsTail(docker: Docker, name: string, lines = 10): Promise<string> {
  try {
    const buf = await docker.getContainer(name).logs({ stdout: true, stderr: true, tail: lines });
    return buf.toString('utf8').replace(/[\x00-\x08]/g, '').trim();
  } catch {
    return '';
  }
}
