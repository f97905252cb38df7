// The runtime plane on a Docker host: networks and app containers. Every call checks
// before it acts (names are deterministic), so a retried activity does no harm.
import type Docker from 'dockerode';
import { execFile } from 'node:child_process';
import { LABEL, MANAGED_BY, type DesiredApp } from '../model.js';
import { replicaMac } from './egress-rules.js';

export interface Started {
  id: string; name: string; ip: string;
  /** Where the start's time went, in ms (absent when the replica was running already). */
  ms?: { create: number; start: number; address: number };
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
      Labels: { [LABEL.managedBy]: MANAGED_BY, [LABEL.cluster]: cluster, [LABEL.kind]: 'Network', [LABEL.project]: project },
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

/** The Docker create request for one replica: zero-trust defaults, labels that identify it. */
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
    ExposedPorts: { [`${app.port}/tcp`]: {} },
    // Egress rules tell apps apart by this MAC (hosts/egress-rules.ts).
    MacAddress: replicaMac(r.cluster, app, r.replica),
    HostConfig: {
      Runtime: app.runtime,
      NetworkMode: r.network,
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
      RestartPolicy: { Name: 'unless-stopped' },
      LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '2' } },
    },
  };
}

/** The container's address on `network`; Docker can report it a moment after start. */
async function addressOf(docker: Docker, id: string, network: string, timeoutMs = 5000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await docker.getContainer(id).inspect();
    const ip = info.NetworkSettings.Networks[network]?.IPAddress ?? '';
    if (ip || !info.State.Running || Date.now() > deadline) return ip;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Starts one replica, or finds it already running. A stopped leftover of the same name is replaced. */
export async function startReplica(docker: Docker, r: ReplicaRequest): Promise<Started> {
  const existing = docker.getContainer(r.container);
  try {
    const info = await existing.inspect();
    if (info.State.Running && info.Config.Labels[LABEL.specHash] === r.app.specHash) {
      return { id: info.Id, name: r.container, ip: await addressOf(docker, info.Id, r.network) };
    }
    await existing.remove({ force: true });
  } catch (e) {
    if (statusOf(e) !== 404) throw e;
  }
  let container: Docker.Container;
  const t0 = Date.now();
  try {
    container = await docker.createContainer(createOptions(r));
  } catch (e) {
    if (statusOf(e) !== 409) throw e;
    container = docker.getContainer(r.container); // a retry of this activity created it
  }
  const t1 = Date.now();
  try {
    await container.start();
  } catch (e) {
    if (statusOf(e) !== 304) {
      await container.remove({ force: true }).catch(() => undefined); // no orphan that never ran
      throw e;
    }
  }
  const t2 = Date.now();
  const ip = await addressOf(docker, container.id, r.network);
  await forgetNeighbour(ip);
  return { id: container.id, name: r.container, ip, ms: { create: t1 - t0, start: t2 - t1, address: Date.now() - t2 } };
}

/**
 * Drops the host's ARP entry for a reused address. Each replica has its own MAC (the
 * egress rules match on it), so when a new container takes the IP of one removed a
 * moment ago, the host (and Traefik on it) would keep sending to the old MAC until the
 * entry went stale: 20-30 s of health checks and requests answered by nobody.
 */
async function forgetNeighbour(ip: string): Promise<void> {
  if (!ip) return;
  await new Promise<void>((resolve) => execFile('ip', ['neigh', 'flush', 'to', ip], () => resolve()));
}

export async function removeContainer(docker: Docker, idOrName: string): Promise<void> {
  try {
    await docker.getContainer(idOrName).remove({ force: true });
  } catch (e) {
    if (statusOf(e) !== 404) throw e;
  }
}

export async function containerAddresses(docker: Docker, names: string[], network: string): Promise<string[]> {
  return Promise.all(names.map((n) => addressOf(docker, n, network)));
}

/** Polls at this pace while a process starts (most answer within a second), then at the app's interval. */
const FAST_POLL_MS = 20;
const FAST_WINDOW_MS = 3000;

/** Polls GET http://ip:port/path until it answers 2xx or 3xx, within the app's window (retries x interval); throws with the last answer. */
export async function waitHealthy(url: string, health: DesiredApp['health'], stillRunning: () => Promise<boolean>, onTick: () => void = () => undefined): Promise<void> {
  let last = 'no answer yet';
  const t0 = Date.now();
  const deadline = t0 + health.retries * health.intervalMs;
  let checked = t0;
  for (let tries = 1; ; tries++) {
    onTick();
    try {
      const res = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(health.timeoutMs) });
      await res.arrayBuffer();
      if (res.status >= 200 && res.status < 400) return;
      last = `HTTP ${res.status}`;
    } catch (e) {
      last = (e as Error).cause ? String((e as { cause: { code?: string } }).cause.code ?? (e as Error).message) : (e as Error).message;
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
