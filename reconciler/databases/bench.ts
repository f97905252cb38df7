// What `npm run bench:database` compares ml.ink's database paths with: a bare run of the
// same engine image to its first query, and bare pg_dump -Fc / pg_restore against the
// same server, streamed through the same Docker API with nothing added (no compression
// step, checksum or encryption of ml.ink's own). Plus a seeder for a sized database.
import type Docker from 'dockerode';
import { createReadStream, createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { serverEnv, type Credentials } from './credentials.js';
import { ENGINES } from './engines.js';
import { execMust, execStream, tail } from './exec.js';
import { waitReady } from './ready.js';

/**
 * `docker run` of the engine image with only what it needs to start (the credentials'
 * env and the network; default runtime unless given, no limits, no volume of ml.ink's),
 * timed from the create request to the first authenticated query. The container is
 * removed afterwards.
 */
export async function bareRunToFirstQuery(docker: Docker, o: {
  name: string; image: string; credentials: Credentials; network: string; labels: Record<string, string>; runtime?: string; timeoutMs?: number;
  /** A named volume for the data, as `docker run -v NAME:/var/lib/mlink/data` (runsc's default --overlay2=root:self keeps a container's own root filesystem writes in a gVisor memory filesystem backed by one host file: without a volume the bare server is fast and not durable). Removed afterwards. */
  volume?: string;
  /** The same limits ml.ink's server gets, for a like-with-like comparison. */
  resources?: { cpu: number; memoryMb: number; pids: number };
}): Promise<{ ms: number }> {
  const t0 = Date.now();
  const c = await docker.createContainer({
    name: o.name, Image: o.image, Labels: o.labels,
    Env: Object.entries(serverEnv(o.credentials)).map(([k, v]) => `${k}=${v}`),
    HostConfig: {
      NetworkMode: o.network, ...(o.runtime ? { Runtime: o.runtime } : {}), ...(o.volume ? { Binds: [`${o.volume}:${ENGINES[o.credentials.engine].dataDir}`] } : {}),
      ...(o.resources ? { NanoCpus: Math.round(o.resources.cpu * 1e9), Memory: o.resources.memoryMb * 1024 * 1024, PidsLimit: o.resources.pids } : {}),
    },
  });
  try {
    await c.start();
    await waitReady(docker, o.name, o.credentials.engine, o.credentials, o.timeoutMs ?? 120_000);
    return { ms: Date.now() - t0 };
  } finally {
    await c.remove({ force: true, v: true }).catch(() => undefined);
    if (o.volume) await docker.getVolume(o.volume).remove({ force: true }).catch(() => undefined);
  }
}

/** Fills the app's database with about `mb` MiB of rows (table bench_rows, owned by the app's user). */
export async function seedPostgres(docker: Docker, container: string, mb: number): Promise<{ rows: number; bytes: number; ms: number }> {
  const t0 = Date.now();
  // ~150 bytes a row on disk: an id, a timestamp and 100 characters of hex (compresses about 2:1, like real text).
  const rows = Math.round((mb * 1024 * 1024) / 150);
  const script = `psql -X -q -v ON_ERROR_STOP=1 -h /run/postgresql -d "$MLINK_DB_NAME" <<SQL
CREATE TABLE IF NOT EXISTS bench_rows (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), body text NOT NULL);
ALTER TABLE bench_rows OWNER TO "$MLINK_DB_USER";
INSERT INTO bench_rows (id, body) SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) || substr(md5((g * 31)::text), 1, 4) FROM generate_series(1, ${rows}) g;
VACUUM ANALYZE bench_rows;
SQL`;
  await execMust(docker, container, 'seeding bench_rows', ['bash', '-c', script], { user: 'postgres', timeoutMs: 3600_000 });
  return { rows, bytes: await postgresSize(docker, container), ms: Date.now() - t0 };
}

/** pg_database_size of the app's database. */
export async function postgresSize(docker: Docker, container: string): Promise<number> {
  const out = await execMust(docker, container, 'reading the database size', ['bash', '-c', 'psql -X -h /run/postgresql -d "$MLINK_DB_NAME" -tA -c "SELECT pg_database_size(current_database())"'], { user: 'postgres' });
  return Number(out.trim());
}

/** Bare `pg_dump -Fc` (its default zlib compression) of the app's database, streamed to `file`. */
export async function bareDump(docker: Docker, container: string, file: string): Promise<{ bytes: number; ms: number }> {
  const t0 = Date.now();
  const s = await execStream(docker, container, ['bash', '-c', 'exec pg_dump -h /run/postgresql -Fc -d "$MLINK_DB_NAME"'], { user: 'postgres' });
  const out = createWriteStream(file);
  await pipeline(s.stdout, out);
  const r = await s.done;
  if (r.code !== 0) throw new Error(`bare pg_dump in ${container} exited ${r.code}: ${tail(r.stderr)}`);
  return { bytes: out.bytesWritten, ms: Date.now() - t0 };
}

/**
 * Waits until the server's WAL archiver has caught up (no segment waiting in
 * archive_status): a restore writes as much WAL as data, which pgBackRest's
 * archive-push compresses and stores after it, so the one measured next would share
 * the CPU with the previous one's archiving. Each restore starts from the same quiet server.
 */
export async function waitArchived(docker: Docker, container: string, timeoutMs = 600_000): Promise<{ ms: number }> {
  const t0 = Date.now();
  const ask = (sql: string): Promise<string> => execMust(docker, container, 'asking the WAL archiver', ['bash', '-c', `psql -X -h /run/postgresql -d postgres -tA -c "${sql}"`], { user: 'postgres' });
  await ask('CHECKPOINT');
  for (;;) {
    const ready = Number((await ask("SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'")).trim());
    if (ready === 0) return { ms: Date.now() - t0 };
    if (Date.now() - t0 > timeoutMs) throw new Error(`${container}: ${ready} WAL segment(s) still waiting to be archived after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Bare `pg_restore --clean --if-exists` of `file` into the app's database, streamed in. */
export async function bareRestore(docker: Docker, container: string, file: string): Promise<{ ms: number }> {
  const t0 = Date.now();
  const s = await execStream(docker, container, ['bash', '-c', 'exec pg_restore -h /run/postgresql --clean --if-exists --no-owner --no-acl --role="$MLINK_DB_USER" -d "$MLINK_DB_NAME"'], { user: 'postgres', stdin: createReadStream(file) });
  s.stdout.resume();
  const r = await s.done;
  if (r.code !== 0) throw new Error(`bare pg_restore in ${container} exited ${r.code}: ${tail(r.stderr)}`);
  return { ms: Date.now() - t0 };
}

/** MB/s from bytes and ms, two decimals. */
export function throughput(bytes: number, ms: number): number {
  return Math.round((bytes / 1024 / 1024 / (ms / 1000)) * 100) / 100;
}
