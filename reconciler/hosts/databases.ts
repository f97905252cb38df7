// The runtime plane for databases on a Docker host: the engine image (built there once),
// the data volume (made once, labelled, never removed by the reconciler), the server
// container on the project networks of the apps bound to it, fenced in by the egress
// rules right after it starts, and the wait until it accepts its app user's login.
// Every step checks before it acts, so a retried activity does no harm.
import type Docker from 'dockerode';
import { databaseContainerSpec, type DatabaseContainerInput } from '../databases/container-spec.js';
import type { Credentials } from '../databases/credentials.js';
import { ensureEngineImage } from '../databases/images.js';
import { livenessProbe, waitReady } from '../databases/ready.js';
import { ensureVolume, volumeExists } from '../databases/volumes.js';
import { databaseHostname, networkName } from '../layout.js';
import { LABEL, MANAGED_BY, type DesiredDatabase } from '../model.js';
import { replicaMac } from './egress-rules.js';
import type { Host } from './host.js';

/** How long a server may take from its start to its first login (a first start initialises its data). */
const READY_MS = 120_000;

export interface DatabaseStart {
  cluster: string;
  commit: string;
  db: DesiredDatabase;
  container: string;
  volume: string;
  credentials: Credentials;
  onProgress: (line: string) => void;
  /** Applies the egress rules with this server in them; called right after it starts, before its engine listens. */
  fence: () => Promise<void>;
}

/** The server's MAC: deterministic from identity and spec, like a replica's (egress-rules.ts). */
export function databaseMac(cluster: string, db: DesiredDatabase): string {
  return replicaMac(cluster, { project: db.project, name: `db.${db.name}`, specHash: db.specHash }, 0);
}

/**
 * Docker's own health check, from the engine's liveness probe (no login: a password in a
 * health check's command would show in `docker inspect`), so observe reads a server's
 * health from Docker on any host without asking the server itself. The activity that
 * starts a server waits for a real login (databases/ready.ts).
 */
export function healthcheck(engine: DesiredDatabase['engine']): Docker.HealthConfig {
  const probe = livenessProbe(engine)?.cmd ?? ['redis-cli', '--no-auth-warning', '-h', '127.0.0.1', '-p', '6379', 'PING'];
  const s = 1e9;
  return { Test: ['CMD', ...probe], Interval: 2 * s, Timeout: 5 * s, Retries: 3, StartPeriod: 120 * s };
}

/** The second volume of a Postgres database: its pgBackRest repository (WAL archive), kept like its data. */
export function walVolumeName(volume: string): string {
  return volume.replace(/-data$/, '-wal');
}

function statusOf(e: unknown): number | undefined {
  return (e as { statusCode?: number }).statusCode;
}

function volumeLabels(cluster: string, db: DesiredDatabase, role: 'data' | 'wal'): Record<string, string> {
  return {
    [LABEL.managedBy]: MANAGED_BY, [LABEL.cluster]: cluster, [LABEL.kind]: role === 'data' ? 'Database' : 'DatabaseWal',
    [LABEL.project]: db.project, [LABEL.name]: db.name, [LABEL.engine]: db.engine, [LABEL.engineVersion]: db.version,
  };
}

/** The server's container input: on its own project's network (the others are joined before the start), its data and WAL volumes, its labels. */
export function serverInput(cluster: string, commit: string, db: DesiredDatabase, container: string, volume: string, credentials: Credentials, image: { tag: string; upstream: string }): DatabaseContainerInput {
  const pitrVolume = db.engine === 'postgres' ? walVolumeName(volume) : undefined;
  return {
    name: container, engine: db.engine, image: image.tag, credentials, volume,
    ...(pitrVolume ? { pitrVolume } : {}),
    network: networkName(cluster, db.networks[0] ?? db.project), aliases: [databaseHostname(db)], mac: databaseMac(cluster, db),
    resources: db.resources, runtime: db.runtime,
    labels: {
      [LABEL.managedBy]: MANAGED_BY, [LABEL.cluster]: cluster, [LABEL.kind]: 'Database', [LABEL.project]: db.project, [LABEL.name]: db.name,
      [LABEL.specHash]: db.specHash, [LABEL.commit]: commit, [LABEL.engine]: db.engine, [LABEL.engineVersion]: image.upstream,
    },
  };
}

/** Each host's engine images as this worker last found them: a start asks Docker only whether the image is still there. */
const images = new Map<string, Awaited<ReturnType<typeof ensureEngineImage>>>();

async function engineImage(host: Host, engine: DesiredDatabase['engine'], onProgress: (l: string) => void): Promise<Awaited<ReturnType<typeof ensureEngineImage>>> {
  const key = `${host.name}/${engine}`;
  const known = images.get(key);
  if (known && (await host.docker.getImage(known.tag).inspect().then(() => true, () => false))) return known;
  const found = await ensureEngineImage(host.docker, engine, { host: host.name, onProgress });
  images.set(key, found);
  return found;
}

export async function startDatabase(host: Host, r: DatabaseStart): Promise<{ note: string; ms: Record<string, number> }> {
  const { docker } = host;
  const { db, cluster } = r;
  const t0 = Date.now();
  const image = await engineImage(host, db.engine, r.onProgress);
  const t1 = Date.now();
  const fresh = !(await volumeExists(docker, r.volume));
  await ensureVolume(docker, r.volume, volumeLabels(cluster, db, 'data'));
  const pitrVolume = db.engine === 'postgres' ? walVolumeName(r.volume) : undefined;
  if (pitrVolume) await ensureVolume(docker, pitrVolume, volumeLabels(cluster, db, 'wal'));
  const existing = await docker.getContainer(r.container).inspect().catch((e: unknown) => {
    if (statusOf(e) === 404) return undefined;
    throw e;
  });
  if (!existing?.State.Running) {
    if (existing) await docker.getContainer(r.container).remove({ force: true });
    const others = db.networks.slice(1).map((p) => networkName(cluster, p));
    const alias = databaseHostname(db);
    const spec = databaseContainerSpec(serverInput(cluster, r.commit, db, r.container, r.volume, r.credentials, image));
    const c = await docker.createContainer({ ...spec, Healthcheck: healthcheck(db.engine) });
    try {
      // Every network before the start: gVisor takes the interfaces it finds when the sandbox starts.
      for (const n of others) await docker.getNetwork(n).connect({ Container: c.id, EndpointConfig: { Aliases: [alias] } });
      await c.start();
    } catch (e) {
      await c.remove({ force: true }).catch(() => undefined);
      throw e;
    }
  }
  const t2 = Date.now();
  await r.fence();
  const t3 = Date.now();
  // Ready means the app user logs in; Docker's own health check (an interval later) only says it still answers.
  const ready = await waitReady(docker, r.container, db.engine, r.credentials, READY_MS);
  return {
    note: `${db.engine} ${image.upstream} (${image.tag}${image.built ? ', image built now' : ''}) ${existing?.State.Running ? 'already running' : 'started'} on ${host.name}, data on ${r.volume} (${fresh ? 'new' : 'kept'}), ready in ${ready.ms} ms`,
    ms: { image: t1 - t0, start: t2 - t1, fence: t3 - t2, ready: Date.now() - t3 },
  };
}

export async function waitDatabaseReady(host: Host, db: DesiredDatabase, container: string, credentials: Credentials, onTick: () => void): Promise<void> {
  const beat = setInterval(onTick, 2000);
  try {
    await waitReady(host.docker, container, db.engine, credentials, READY_MS);
  } finally {
    clearInterval(beat);
  }
}
