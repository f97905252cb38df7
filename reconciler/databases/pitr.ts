// Point-in-time recovery for Postgres with pgBackRest. A database created with a
// `pitrVolume` archives every WAL segment into the pgBackRest repository on that volume
// (archive_command = pgbackrest archive-push; a segment is closed at the latest after
// archive_timeout seconds when anything was written). `pitrBackup` takes the base
// backups the WAL replays onto; pitr-mirror.ts copies the repository to the control
// host. `restoreToTime` restores a backup into a database's volumes with a recovery
// target, then starts the server, which replays WAL up to that time and is promoted.
import type Docker from 'dockerode';
import { PITR_MOUNT, databaseContainerSpec, toolContainerSpec, type DatabaseContainerInput } from './container-spec.js';
import { ENGINES } from './engines.js';
import { execIn, execMust, execStream, tail } from './exec.js';
import { runDatabase } from './lifecycle.js';
import { readMirror, repoArchive } from './pitr-mirror.js';
import { logTail, waitReady } from './ready.js';
import { ensureVolume } from './volumes.js';

export const STANZA = 'main';
const PG = { user: 'postgres' } as const;

export interface PitrBackupInfo { label: string; type: string; start: string; stop: string }

/** Makes the stanza when missing and takes a base backup (full by default); pgBackRest expires what repo1-retention-full no longer keeps. */
export async function pitrBackup(docker: Docker, container: string, o: { type?: 'full' | 'diff' | 'incr'; retentionFull?: number } = {}): Promise<PitrBackupInfo & { ms: number }> {
  const t0 = Date.now();
  await execMust(docker, container, 'pgBackRest stanza-create', ['pgbackrest', `--stanza=${STANZA}`, 'stanza-create'], { ...PG, timeoutMs: 120_000 });
  const retention = o.retentionFull !== undefined ? [`--repo1-retention-full=${o.retentionFull}`] : [];
  await execMust(docker, container, 'pgBackRest backup', ['pgbackrest', `--stanza=${STANZA}`, ...retention, 'backup', `--type=${o.type ?? 'full'}`], { ...PG, timeoutMs: 6 * 3600_000 });
  const backups = await pitrBackups(docker, container);
  const last = backups[backups.length - 1];
  if (!last) throw new Error(`pgBackRest backup in ${container} reported success but its repository lists no backup`);
  return { ...last, ms: Date.now() - t0 };
}

/** The repository's base backups, oldest first. */
export async function pitrBackups(docker: Docker, container: string): Promise<PitrBackupInfo[]> {
  const out = await execMust(docker, container, 'pgBackRest info', ['pgbackrest', `--stanza=${STANZA}`, 'info', '--output=json'], PG);
  const info = JSON.parse(out) as Array<{ backup?: Array<{ label: string; type: string; timestamp: { start: number; stop: number } }> }>;
  return (info[0]?.backup ?? []).map((b) => ({
    label: b.label, type: b.type, start: new Date(b.timestamp.start * 1000).toISOString(), stop: new Date(b.timestamp.stop * 1000).toISOString(),
  }));
}

async function sql(docker: Docker, container: string, query: string): Promise<string> {
  return (await execMust(docker, container, 'a query as the superuser', ['psql', '-X', '-q', '-h', '/run/postgresql', '-d', 'postgres', '-tA', '-v', 'ON_ERROR_STOP=1', '-c', query], PG)).trim();
}

/** The WAL segment being written now. */
export async function currentWal(docker: Docker, container: string): Promise<string> {
  return sql(docker, container, 'SELECT pg_walfile_name(pg_current_wal_lsn())');
}

/** Waits until `segment` (or a later one) is archived; returns how long that took. */
export async function waitArchived(docker: Docker, container: string, segment: string, timeoutMs = 120_000): Promise<number> {
  const t0 = Date.now();
  let last = '';
  while (Date.now() - t0 < timeoutMs) {
    const [archived = '', failed = ''] = (await sql(docker, container, "SELECT coalesce(last_archived_wal, ''), coalesce(last_failed_wal, '') FROM pg_stat_archiver")).split('|');
    // Same timeline: segment names sort in WAL order.
    if (archived && archived.slice(8) >= segment.slice(8)) return Date.now() - t0;
    last = failed ? `the last failed segment is ${failed}` : `the last archived segment is ${archived || 'none'}`;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`WAL segment ${segment} of ${container} was not archived within ${timeoutMs} ms (${last})`);
}

/**
 * Closes the WAL segment in use and waits until it is archived: every commit made before
 * this call is then in the repository. Returns the time it was called (a restorable time).
 */
export async function flushWal(docker: Docker, container: string, timeoutMs = 120_000): Promise<{ until: Date; segment: string; ms: number }> {
  const until = new Date();
  const t0 = Date.now();
  // With no WAL since the last switch this switches nothing and names the segment before the current one, archived already or about to be.
  const segment = await sql(docker, container, 'SELECT pg_walfile_name(pg_switch_wal())');
  await waitArchived(docker, container, segment, timeoutMs);
  return { until, segment, ms: Date.now() - t0 };
}

/** pgBackRest's --target form: "2026-12-03 09:15:10.123+00". */
export function pgbackrestTime(t: Date): string {
  return t.toISOString().replace('T', ' ').replace('Z', '+00');
}

export interface RestoreToTimeOptions {
  target: Date;
  /** The database to restore into, with its pitrVolume: new volumes, or the same database's with its old container removed first. */
  into: DatabaseContainerInput;
  volumeLabels: Record<string, string>;
  /** Fill the repository volume from the control host's copy first (a new database, or the source host lost). */
  mirror?: { dir: string; identity: string };
  timeoutMs?: number;
}

export interface RestoredToTime { ms: { restore: number; start: number; recovery: number; total: number }; log: string }

/** Restores the database to `target` and starts it; resolves once it is promoted (read-write) and the app's user can log in. */
export async function restoreToTime(docker: Docker, o: RestoreToTimeOptions): Promise<RestoredToTime> {
  const t0 = Date.now();
  const { into } = o;
  if (!into.pitrVolume) throw new Error('into.pitrVolume: a point-in-time restore needs the repository volume (the same one archive_command writes to)');
  databaseContainerSpec(into); // checks the input before anything is made
  if (o.mirror) {
    const m = await readMirror(o.mirror.dir);
    if (Object.keys(m.files).length === 0) throw new Error(`the control host holds no copy of the pgBackRest repository in ${o.mirror.dir}: sync it first (syncPitrRepo)`);
    if (m.restorableUntil && o.target.getTime() > Date.parse(m.restorableUntil)) {
      throw new Error(`at: ${o.target.toISOString()} is after the newest restorable time of the copy (${m.restorableUntil}); sync the repository after flushWal, or pick an earlier time`);
    }
  }
  // The restore rewrites the data directory: nothing may be running on it.
  for (const v of [into.volume, into.pitrVolume]) {
    const users = await docker.listContainers({ filters: { volume: [v] } });
    if (users.length) throw new Error(`RestoreFailed: ${into.name}: ${users.map((c) => c.Names[0]?.replace(/^\//, '')).join(', ')} is running on the volume ${v}; stop and remove it first`);
  }
  await ensureVolume(docker, into.volume, o.volumeLabels);
  await ensureVolume(docker, into.pitrVolume, o.volumeLabels);
  const e = ENGINES.postgres;
  // A sandbox of the engine's image on both volumes, kept alive for two execs: untar the
  // copy (as postgres, so the files are the server's: putArchive would chown them to a
  // user looked up on the Docker host), then pgbackrest restore.
  const tool = toolContainerSpec({
    name: `${into.name}-pitr-restore`, engine: 'postgres', image: into.image, labels: into.labels, runtime: into.runtime,
    volumes: { [e.dataDir]: into.volume, [PITR_MOUNT]: into.pitrVolume }, cmd: ['sleep', '86400'],
  });
  await docker.getContainer(tool.name!).remove({ force: true }).catch(() => undefined);
  const c = await docker.createContainer(tool);
  let log = '';
  try {
    await c.start();
    if (o.mirror) {
      const manifest = await readMirror(o.mirror.dir);
      const s = await execStream(docker, c.id, ['tar', '-C', PITR_MOUNT, '-xf', '-'], { ...PG, stdin: repoArchive(o.mirror.dir, manifest, o.mirror.identity) });
      s.stdout.resume();
      const r = await s.done;
      if (r.code !== 0) throw new Error(`RestoreFailed: ${into.name}: copying the pgBackRest repository into ${into.pitrVolume} failed (tar exit ${r.code}): ${tail(r.stderr)}`);
    }
    // --delta rewrites only what differs in an existing data directory and is ignored on an empty one.
    // No server runs on the volume (checked above): a postmaster.pid is a killed server's.
    const r = await execIn(docker, c.id, ['bash', '-c', `mkdir -p -m 0700 ${e.dataDir}/pgdata && rm -f ${e.dataDir}/pgdata/postmaster.pid && exec pgbackrest --stanza=${STANZA} restore --delta --type=time --target="$1" --target-action=promote`, 'restore', pgbackrestTime(o.target)], { ...PG, timeoutMs: 6 * 3600_000 });
    log = `${r.stdout.toString('utf8')}${r.stderr}`;
    if (r.code !== 0) throw new Error(`RestoreFailed: ${into.name}: pgbackrest restore to ${o.target.toISOString()} exited ${r.code}: ${tail(log, 6)}`);
  } finally {
    await c.remove({ force: true }).catch(() => undefined);
  }
  const t1 = Date.now();
  await runDatabase(docker, into, { volumeLabels: o.volumeLabels, wait: false });
  const t2 = Date.now();
  await waitPromoted(docker, into.name, o.timeoutMs ?? 300_000);
  // The entrypoint leaves roles alone while a recovery is pending: the password is set now.
  await execMust(docker, into.name, 'setting the app role on the restored cluster', ['bash', '-c', APPLY_ROLE], PG);
  await waitReady(docker, into.name, 'postgres', into.credentials, 60_000);
  const t3 = Date.now();
  return { ms: { restore: t1 - t0, start: t2 - t1, recovery: t3 - t2, total: t3 - t0 }, log };
}

// Reads the names and the verifier from the container's environment, so neither is in the exec's command line.
const APPLY_ROLE = `set -eu
owner=$(psql -X -q -h /run/postgresql -d postgres -tA -v ON_ERROR_STOP=1 -c "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '$MLINK_DB_NAME'")
if [ "$owner" != "$MLINK_DB_USER" ]; then
  echo "the restored cluster has no database $MLINK_DB_NAME owned by $MLINK_DB_USER (owner: \${owner:-none}); a point-in-time copy keeps the source's user and database names: give it the source's credentials" >&2
  exit 1
fi
psql -X -q -h /run/postgresql -d postgres -v ON_ERROR_STOP=1 <<SQL
ALTER ROLE "$MLINK_DB_USER" WITH LOGIN NOSUPERUSER PASSWORD '$MLINK_DB_VERIFIER';
SQL`;

/** Waits until recovery has ended and the server is read-write; names the cause when it stopped short of its target. */
export async function waitPromoted(docker: Docker, container: string, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    const r = await execIn(docker, container, ['psql', '-X', '-q', '-h', '/run/postgresql', '-d', 'postgres', '-tA', '-c', 'SELECT pg_is_in_recovery()'], PG).catch(() => undefined);
    if (r?.code === 0 && r.stdout.toString().trim() === 'f') return;
    const logs = await logTail(docker, container, 40).catch(() => '');
    if (logs.includes('recovery ended before configured recovery target was reached')) {
      throw new Error(`RestoreFailed: ${container}: the archive ends before the recovery target: the WAL up to that time was never archived or not copied; ${tail(logs, 3)}`);
    }
    await new Promise((res) => setTimeout(res, 200));
  }
  throw new Error(`RestoreFailed: ${container}: recovery did not finish within ${timeoutMs} ms: ${tail(await logTail(docker, container, 10), 4)}`);
}
