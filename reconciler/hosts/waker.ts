// Running a runtime host's waker (reconciler/waker/) through the host seam, the same for
// this machine and a host over SSH: its image (the host's Debian base, this machine's
// node binary and the waker bundled into one file), its container (host network, the
// host's Docker socket, its directory beside the edge's routes, restarted by Docker, so
// it needs no control plane), and the files the reconciler and the waker trade in that
// directory: each app's wake spec, written before its route; each app's state, and the
// supervisor's record of each replica it brings back, read by observe.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import tar from 'tar-stream';
import { infraConfig } from '../../infra/config.js';
import type { Edge } from '../edge/traefik.js';
import { holderName, networkName } from '../layout.js';
import { LABEL, MANAGED_BY, type DesiredApp } from '../model.js';
import { parseReplicaRecord, parseWakeState, replicaFile, specFile, stateFile, WAKER_PORT, WAKER_URL, wakeId, type ReplicaRecord, type WakeSpec, type WakeState } from '../waker/spec.js';
import { holderOptions } from './containers.js';
import { replicaMac } from './egress-rules.js';
import type { Host } from './host.js';

export const WAKER_CONTAINER = 'mlink-waker';
/** Where the waker sees the host's /var/run (the Docker socket's directory). */
const HOST_RUN = '/mlink-host-run';
const WAKER_KIND = 'Waker';
/** What a wake may take before requests get 503: the app's start-up health window, within bounds. */
const MIN_WAIT_MS = 30_000;
const MAX_WAIT_MS = 120_000;

/** The waker's directory on a runtime host: beside its edge's route files (…/routes -> …/waker). */
export function wakerDir(edge: Edge): string {
  return join(dirname(edge.routesDir), 'waker');
}

/** What the waker needs to wake `app`'s replicas on one host: their containers, and their holders as hosts/containers.ts makes them. */
export function wakeSpecOf(cluster: string, app: DesiredApp, containers: Array<{ container: string; replica: number }>): WakeSpec {
  const network = networkName(cluster, app.project);
  return {
    id: wakeId(cluster, app), cluster, project: app.project, name: app.name, specHash: app.specHash,
    idleTimeoutSeconds: app.scaleToZero!.idleTimeoutSeconds, port: app.port, network,
    health: { path: app.health.path, timeoutMs: app.health.timeoutMs },
    waitMs: Math.min(MAX_WAIT_MS, Math.max(MIN_WAIT_MS, app.health.retries * app.health.intervalMs)),
    replicas: containers.map((c) => ({
      container: c.container,
      holder: holderOptions(holderName(c.container), network, cluster, app.project, replicaMac(cluster, app, c.replica)) as WakeSpec['replicas'][number]['holder'],
    })),
  };
}

let bundled: Promise<string> | undefined;
/** The waker program as one ES module (esbuild, which tsx brings), made once per process. */
function bundle(): Promise<string> {
  bundled ??= (async () => {
    const { build } = await import('esbuild');
    const entry = fileURLToPath(new URL('../waker/main.ts', import.meta.url));
    const out = await build({ entryPoints: [entry], bundle: true, platform: 'node', format: 'esm', target: 'node20', write: false, legalComments: 'none' });
    return out.outputFiles[0]!.text;
  })();
  return bundled;
}

function buildContext(program: string, node: Buffer, base: string, busybox: string): NodeJS.ReadableStream {
  const pack = tar.pack();
  // busybox for `ip neigh flush` (Debian's minimal base has no iproute2).
  pack.entry({ name: 'Dockerfile' }, [
    `FROM ${base}`, `COPY --from=${busybox} /bin/busybox /usr/local/bin/busybox`, 'RUN ln -s busybox /usr/local/bin/ip',
    'COPY node /usr/local/bin/node', 'COPY main.mjs /waker/main.mjs', 'CMD ["/usr/local/bin/node", "/waker/main.mjs"]', '',
  ].join('\n'));
  pack.entry({ name: 'main.mjs' }, program);
  pack.entry({ name: 'node', mode: 0o755 }, node);
  pack.finalize();
  return pack;
}

/** `mlink/waker:<hash>` of the program and node binary: the same waker is built once per host. */
async function ensureImage(host: Host): Promise<string> {
  const program = await bundle();
  const node = readFileSync(process.execPath);
  const tag = `mlink/waker:${createHash('sha256').update(program).update(node).digest('hex').slice(0, 16)}`;
  if (await host.docker.getImage(tag).inspect().then(() => true, () => false)) return tag;
  const stream = await host.docker.buildImage(buildContext(program, node, infraConfig().images.debian, infraConfig().images.busybox) as never, { t: tag, rm: true, forcerm: true, pull: false } as never);
  let failure: string | undefined;
  await new Promise<void>((resolve, reject) => {
    host.docker.modem.followProgress(stream as unknown as NodeJS.ReadableStream, (err: Error | null) => (err ? reject(err) : resolve()), (e: Record<string, unknown>) => {
      if (typeof e.error === 'string') failure = e.error;
    });
  });
  if (failure) throw new Error(`on host ${host.name}: the waker image did not build: ${failure}`);
  return tag;
}

async function answers(host: Host): Promise<boolean> {
  return host.request(`${WAKER_URL}/_mlink/health`, { timeoutMs: 1000 }).then((r) => r.status === 200, () => false);
}

async function runWaker(host: Host, edge: Edge): Promise<void> {
  const image = await ensureImage(host);
  const dir = wakerDir(edge);
  const info = await host.docker.getContainer(WAKER_CONTAINER).inspect().catch(() => undefined);
  if (info?.State.Running && info.Config.Image === image && info.HostConfig.Binds?.some((b) => b.startsWith(`/var/run:${HOST_RUN}`))) {
    if (await answers(host)) return;
  } else {
    if (info) await host.docker.getContainer(WAKER_CONTAINER).remove({ force: true }).catch(() => undefined);
    await host.files.write(join(dir, 'README'), 'ml.ink waker: apps/ (wake specs, written by the reconciler), state/ (written by the waker)\n');
    try {
      const c = await host.docker.createContainer({
        name: WAKER_CONTAINER,
        Image: image,
        Env: [`MLINK_WAKER_DIR=${dir}`, `MLINK_WAKER_LISTEN=127.0.0.1:${WAKER_PORT}`, `MLINK_ROUTES_DIR=${edge.routesDir}`, `MLINK_DOCKER_SOCKET=${HOST_RUN}/docker.sock`],
        // One per host, for every cluster on it (like the edge): no cluster label, so pruning one cluster leaves it.
        Labels: { [LABEL.managedBy]: MANAGED_BY, [LABEL.kind]: WAKER_KIND },
        HostConfig: {
          Runtime: 'runc',
          // The host's network: it listens on the host's loopback for the edge and reaches every replica's bridge address.
          NetworkMode: 'host',
          // The Docker socket's directory, not the socket: dockerd makes a new socket when it restarts, and with
          // live-restore the waker outlives that; a bind of the file would keep the old one, refused for good.
          // The route files, read only: its supervisor brings back only replicas of the version their route serves.
          Binds: [`/var/run:${HOST_RUN}`, `${dir}:${dir}`, `${edge.routesDir}:${edge.routesDir}:ro`],
          Memory: 128 * 1024 * 1024,
          // Only to drop a stale neighbour entry for a woken or restarted replica's address.
          CapAdd: ['NET_ADMIN'],
          RestartPolicy: { Name: 'always' },
          LogConfig: { Type: 'json-file', Config: { 'max-size': '5m', 'max-file': '2' } },
        },
      });
      await c.start();
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode !== 409) throw e; // another worker made it meanwhile
    }
  }
  const deadline = Date.now() + 15_000;
  while (!(await answers(host))) {
    if (Date.now() > deadline) throw new Error(`on host ${host.name}: the waker (${WAKER_CONTAINER}) does not answer at ${WAKER_URL}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const running = new Map<string, Promise<void>>();
/** Makes sure the host's waker runs this version and answers; asked once per host and process, again after a failure. */
export function ensureWaker(host: Host, edge: Edge): Promise<void> {
  let p = running.get(host.name);
  if (!p) {
    p = runWaker(host, edge);
    running.set(host.name, p);
    p.catch(() => running.delete(host.name));
  }
  return p;
}

interface WakerApp extends WakeState { serves: boolean }

export async function wakerApps(host: Host): Promise<WakerApp[]> {
  const r = await host.request(`${WAKER_URL}/_mlink/apps`, { timeoutMs: 5000 });
  if (r.status !== 200) throw new Error(`on host ${host.name}: the waker answered ${r.status} for its apps`);
  return (JSON.parse(r.body) as { apps: WakerApp[] }).apps;
}

/** Writes the app's wake spec and waits until the waker serves it (a deploy removes old replicas only then). */
export async function writeWakeSpec(host: Host, edge: Edge, spec: WakeSpec, onTick: () => void = () => undefined): Promise<void> {
  // The first time on a host its image is built there (the node binary goes over the wire): the activity keeps heartbeating.
  const ticks = setInterval(onTick, 1000);
  try {
    await ensureWaker(host, edge);
  } finally {
    clearInterval(ticks);
  }
  await host.files.write(join(wakerDir(edge), specFile(spec.id)), `${JSON.stringify(spec, null, 2)}\n`);
  const deadline = Date.now() + 15_000;
  for (;;) {
    onTick();
    const app = (await wakerApps(host).catch(() => [])).find((a) => a.id === spec.id);
    if (app?.specHash === spec.specHash && app.serves) return;
    if (Date.now() > deadline) throw new Error(`on host ${host.name}: the waker did not take ${spec.id} at spec ${spec.specHash.slice(0, 12)} in 15 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Removes an app's wake spec (its route no longer leads to the waker); the waker forgets it and its state. */
export async function removeWakeSpec(host: Host, edge: Edge, id: string): Promise<void> {
  await host.files.remove(join(wakerDir(edge), specFile(id)));
}

/** Puts an app to sleep now, as its idle timeout would (benchmarks; an operator's "sleep it"). */
export async function sleepNow(host: Host, id: string): Promise<WakeState> {
  const r = await host.request(`${WAKER_URL}/_mlink/apps/${encodeURIComponent(id)}/sleep`, { method: 'POST', timeoutMs: 30_000 });
  if (r.status !== 200) throw new Error(`on host ${host.name}: the waker could not put ${id} to sleep: HTTP ${r.status} ${r.body.trim()}`);
  return JSON.parse(r.body) as WakeState;
}

/** What the host's waker says of each app of `cluster` (by wake id): read from its files, so it answers while the waker restarts. */
export async function readWakeStates(host: Host, edge: Edge, cluster: string): Promise<Map<string, WakeState>> {
  const dir = join(wakerDir(edge), 'state');
  const files = (await host.files.list(dir)).filter((f) => f.startsWith(`${cluster}--`) && f.endsWith('.json'));
  const out = new Map<string, WakeState>();
  await Promise.all(files.map(async (f) => {
    const s = parseWakeState(await host.files.read(join(wakerDir(edge), stateFile(f.slice(0, -'.json'.length)))));
    if (s) out.set(s.id, s);
  }));
  return out;
}

/** Wake specs of `cluster` on the host (by id): `mlink prune` removes them with the cluster's routes. */
export async function clusterWakeSpecs(host: Host, edge: Edge, cluster: string): Promise<string[]> {
  return (await host.files.list(join(wakerDir(edge), 'apps'))).filter((f) => f.startsWith(`${cluster}--`) && f.endsWith('.json')).map((f) => f.slice(0, -'.json'.length));
}

/** What the host's supervisor says of these replicas (by container name), from its records; only the ones it has a record of. */
export async function readReplicaRecords(host: Host, edge: Edge, containers: string[]): Promise<Map<string, ReplicaRecord>> {
  const out = new Map<string, ReplicaRecord>();
  if (!containers.length) return out;
  const have = new Set(await host.files.list(join(wakerDir(edge), 'replicas')));
  await Promise.all(containers.filter((c) => have.has(`${c}.json`)).map(async (c) => {
    const r = parseReplicaRecord(await host.files.read(join(wakerDir(edge), replicaFile(c))));
    if (r) out.set(c, r);
  }));
  return out;
}
