// The engine only composes: the state repo, the Temporal worker that runs the loop
// (load desired -> observe live -> diff -> plan -> run -> record status), the client
// that triggers it, and the triggers themselves. Each part lives in its own module.
import type { LiveStateProvider } from './domain/live-state.js';
import { clusterHosts } from './hosts/cluster.js';
import { readClusterConfig } from './source/desired.js';
import { loadClusterKey } from './state/secrets.js';
import { StateStore } from './state/store.js';
import { createLiveState } from './status/live-state.js';
import { ReconcilerClient } from './temporal/client.js';
import { startWorker, type WorkerHandle } from './temporal/worker.js';
import { driftTimer, watchMain, watchReplicaExits, type Stoppable } from './triggers.js';
import { tendHolders } from './hosts/containers.js';
import { ensureWaker } from './hosts/waker.js';
import { startHostMonitor } from './hosts/monitor.js';
import type { Logger } from './util/log.js';
import { BuildPlane } from './image-builds/build-plane.js';
import { registryRelay } from './hosts/registry-relay.js';
import { registryAddress } from '../infra/config.js';
import type { Host } from './hosts/host.js';
import type { Edge } from './edge/traefik.js';
import { dataDir } from './util/paths.js';
import { startAcme } from './names/acme.js';
import { backupSchedules } from './backups/schedule.js';
import { createBackupService } from './backups/service.js';
import { buildsOnCommit } from './image-builds/early.js';
import type { Limits } from './image-builds/docker-steps.js';
import { BuildRecords } from './image-builds/records.js';
import { SourceRepos } from './source-repos/source-repo.js';

/** Build limits unless the caller says otherwise: cpu cores, memory, wall time. */
export const BUILD_LIMITS: Limits = { cpu: 2, memoryMb: 2048, timeoutMs: 15 * 60_000 };

export interface EngineOptions {
  repoDir: string;
  keysDir: string;
  temporal: { address: string; namespace: string };
  routesDir: string;
  traefikApi: string;
  webPort: number;
  /** The local edge's websecure entrypoint (loopback). */
  httpsPort: number;
  /** Seconds between drift checks. */
  driftSeconds: number;
  drainMs?: number;
  /** The build role: where source repos and build records live. Without it, apps built from source fail with BuildFailed. */
  build?: { sourcesDir: string; buildsDir: string; limits?: Partial<Limits>; sandboxRuntime?: string };
  /** The backup store and the holds of operations in progress (default: the data dir's). */
  backupsDir?: string;
  holdsDir?: string;
  /** Where the hosts' conditions are kept (default: the data dir's health/). */
  healthDir?: string;
  /** Run a worker in this process (the embedded default); false to only trigger. */
  worker?: boolean;
  log: Logger;
}

export interface Engine {
  cluster: string;
  liveState: LiveStateProvider;
  trigger(reason: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startEngine(opts: EngineOptions): Promise<Engine> {
  const store = StateStore.open(opts.repoDir);
  const config = await readClusterConfig(await store.view());
  const cluster = config.metadata.name;
  const edge: Edge = { routesDir: opts.routesDir, api: opts.traefikApi, address: '127.0.0.1', httpsPort: opts.httpsPort };
  const log = opts.log.child({ cluster });
  const relay = registryRelay(registryAddress(), log.child({ component: 'registry' }));
  const serveRegistry = (address: string | undefined): void => void relay.serveAt(address).catch((e: unknown) => log.error('cannot serve the registry on the private network', { address, error: e }));
  const hosts = await clusterHosts(await store.view(), edge, { onRegistry: serveRegistry, ...(opts.healthDir ? { healthDir: opts.healthDir } : {}) });
  serveRegistry(config.spec.registry?.address);
  const backupsRoot = opts.backupsDir ?? dataDir().backups;
  const holdsDir = opts.holdsDir ?? dataDir().holds;
  const stops: Array<() => Promise<void>> = [];
  let worker: WorkerHandle | undefined;
  let builder: BuildPlane | undefined;
  // The embedded default: this process also runs the worker, and with it the host's replicas.
  const runsWorker = opts.worker !== false;
  try {
    if (runsWorker) {
      builder = opts.build ? new BuildPlane(hosts, {
        cluster, log: log.child({ component: 'build' }),
        sources: new SourceRepos(opts.build.sourcesDir),
        records: new BuildRecords(opts.build.buildsDir),
        sandboxRuntime: opts.build.sandboxRuntime ?? 'runsc',
        limits: { ...BUILD_LIMITS, ...opts.build.limits },
      }) : undefined;
      if (builder) {
        const b = builder;
        await b.removeLeftovers().catch((e: unknown) => log.warn('could not remove old build sandboxes', { error: e }));
        stops.push(() => b.close());
      }
      // ACME's challenge responder lives beside the worker that orders the certificates.
      const acme = await startAcme({ keysDir: opts.keysDir, log: log.child({ component: 'acme' }) });
      stops.push(() => acme.close());
      worker = await startWorker({
        address: opts.temporal.address,
        namespace: opts.temporal.namespace,
        deps: {
          cluster, store, hosts, log, backupsRoot, holdsDir,
          identity: async () => (await loadClusterKey(opts.keysDir)).identity,
          names: { keysDir: opts.keysDir, stateDir: dataDir().names, acme },
          ...(builder ? { builder } : {}),
        },
      });
      const w = worker;
      stops.unshift(() => w.stop());
    }
    const client = await ReconcilerClient.connect({ ...opts.temporal, cluster, drainMs: opts.drainMs });
    stops.push(() => client.close());
    if (await client.endStuckRun()) log.warn('ended a reconcile run that could not make progress; starting a fresh one');
    const trigger = async (reason: string): Promise<void> => {
      try {
        await client.trigger(reason);
        log.debug('reconcile requested', { reason });
      } catch (e) {
        log.error('could not request a reconcile', { reason, error: e });
      }
    };
    const early = builder ? buildsOnCommit({ store, cluster, builder, log }) : undefined;
    const schedules = runsWorker ? backupSchedules({ store, cluster, client, log: log.child({ component: 'backups' }) }) : undefined;
    if (schedules) stops.unshift(() => schedules.stop());
    const reschedule = (): void => void schedules?.refresh().catch((e: unknown) => log.warn('could not read the backup schedules', { error: e }));
    // Hosts failing their health checks are left out: nothing here waits on them (the monitor says when they are back).
    const runtime = (): Array<{ host: Host; edge?: Edge }> => hosts.names('runtime').filter((n) => hosts.answering(n)).flatMap((n) => {
      try { return [{ host: hosts.get(n), edge: hosts.edge(n) }]; } catch (e) { log.warn('cannot reach a runtime host', { host: n, error: e }); return []; }
    });
    const tend = (): void => {
      for (const { host, edge: hostEdge } of runtime()) {
        void tendHolders(host, cluster).catch((e: unknown) => log.warn('could not tend the network holders', { host: host.name, error: e }));
        // Its waker's supervisor brings back replicas that exit, with or without this process.
        if (hostEdge) void ensureWaker(host, hostEdge).catch((e: unknown) => log.warn('could not run the waker', { host: host.name, error: e }));
      }
    };
    // One replica-exit watcher per runtime host the newest pass knows (hosts come and go with commits).
    const watchers = new Map<string, { host: Host; watcher: Stoppable }>();
    const watch = (): void => {
      if (!runsWorker) return;
      const now = runtime().filter((t) => t.edge);
      for (const [name, w] of watchers) {
        if (!now.some((t) => t.host === w.host)) { void w.watcher.stop(); watchers.delete(name); }
      }
      for (const t of now) {
        if (!watchers.has(t.host.name)) watchers.set(t.host.name, { host: t.host, watcher: watchReplicaExits(t.host, t.edge!, cluster, (why) => void trigger(why)) });
      }
    };
    watch();
    stops.unshift(async () => { for (const w of watchers.values()) await w.watcher.stop(); watchers.clear(); });
    // Host health: a host Lost, back, or clean again after it came back asks for a pass at once.
    if (runsWorker) {
      hosts.onCondition((host, c) => { if (c.state !== 'Failing') void trigger(`host ${host} is ${c.state}`); });
      const monitor = startHostMonitor({ pool: hosts, store, cluster, dir: opts.healthDir ?? dataDir().health, log: log.child({ component: 'hosts' }) });
      stops.unshift(() => monitor.stop());
    }
    stops.push(() => relay.close());
    const triggers: Stoppable[] = [
      watchMain(store.gitdir, () => {
        early?.().catch((e: unknown) => log.warn('could not start the builds of a new commit', { error: e }));
        reschedule();
        void trigger('commit');
        // A commit may add or remove hosts: the pass configures the pool, the watchers follow.
        setTimeout(watch, 3000).unref();
      }),
      driftTimer(opts.driftSeconds, () => void (async () => {
        if (await client.endStuckRun().catch(() => false)) log.warn('ended a reconcile run that could not make progress; starting a fresh one');
        if (runsWorker) { tend(); watch(); }
        await trigger('drift');
      })()),
    ];
    stops.unshift(...triggers.map((t) => () => t.stop()));
    await trigger('start');
    reschedule();
    if (runsWorker) tend();
    stops.push(() => hosts.close());
    const liveState = createLiveState({
      cluster, store, hosts, webPort: opts.webPort, httpsPort: opts.httpsPort, planOptions: { drainMs: opts.drainMs ?? 1000 },
      sync: () => trigger('sync'),
      backups: createBackupService(client, backupsRoot),
      ...(opts.build ? { builds: new BuildRecords(opts.build.buildsDir) } : {}),
    });
    log.info('reconciler running', { repo: opts.repoDir, temporal: opts.temporal.address, driftSeconds: opts.driftSeconds, worker: runsWorker });
    return {
      cluster,
      liveState,
      trigger,
      async stop() {
        for (const s of stops) await s().catch((e: unknown) => log.warn('stopping', { error: e }));
      },
    };
  } catch (e) {
    for (const s of stops) await s().catch(() => undefined);
    throw e;
  }
}
