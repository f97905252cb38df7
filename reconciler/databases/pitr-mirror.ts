// The control host's copy of a Postgres database's pgBackRest repository. The repository
// itself is a second volume of the database container, where archive_command pushes
// WAL as it is written; `syncPitrRepo` copies what is new or changed out of it through
// the Docker API (an exec's `find` to list, an exec's `tar` to read), each file
// age-encrypted to the cluster's recipients, and drops what pgBackRest expired.
// `repoArchive` turns the copy back into a tar stream for putArchive, decrypted, owned
// by the engine's user, for a restore into a new repository volume.
//
// Layout: <root>/<project>/<name>/pitr/{manifest.json, files/<repo path>.age}.
import { Decrypter, Encrypter } from 'age-encryption';
import type Docker from 'dockerode';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadable } from 'node:stream/web';
import tar from 'tar-stream';
import { databaseDir } from './backup-store.js';
import { Digest } from './backups.js';
import { PITR_MOUNT } from './container-spec.js';
import { ENGINES } from './engines.js';
import { execMust, execStream, tail } from './exec.js';

export interface MirrorFile { size: number; mtime: number; sha256: string }

export interface MirrorManifest {
  /** When the last sync finished. */
  syncedAt?: string;
  /** Everything committed before this time was archived when the copy was last synced (set by a sync after flushWal). */
  restorableUntil?: string;
  files: Record<string, MirrorFile>;
}

export interface SyncResult { fetched: number; removed: number; bytes: number; ms: number; files: number }

export function pitrDir(root: string, project: string, name: string): string {
  return join(databaseDir(root, project, name), 'pitr');
}

const toWeb = (r: Readable): ReadableStream<Uint8Array> => Readable.toWeb(r) as unknown as ReadableStream<Uint8Array>;
const fromWeb = (r: ReadableStream<Uint8Array>): Readable => Readable.fromWeb(r as unknown as WebReadable<Uint8Array>);

/** A repository path from the container, refused when it could escape the mirror. */
function safePath(p: string): string {
  const n = posix.normalize(p);
  if (!n || n.startsWith('/') || n.startsWith('..') || n.includes('/../') || n.includes('\0')) throw new Error(`the repository lists an unsafe path "${p}"`);
  return n;
}

export async function readMirror(dir: string): Promise<MirrorManifest> {
  try {
    return JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as MirrorManifest;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { files: {} };
    throw new Error(`${join(dir, 'manifest.json')} cannot be read: ${(e as Error).message}`);
  }
}

async function writeMirror(dir: string, m: MirrorManifest): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(join(dir, '.manifest.json.tmp'), JSON.stringify(m, null, 1) + '\n', { mode: 0o600 });
  await rename(join(dir, '.manifest.json.tmp'), join(dir, 'manifest.json'));
}

const syncing = new Map<string, Promise<SyncResult>>();

/**
 * Brings the copy in `dir` up to date with the repository volume of `container`.
 * `restorableUntil`: a time up to which every commit is known to be archived (flushWal's).
 * Syncs of one directory never overlap: a second call waits for the first, then runs.
 */
export async function syncPitrRepo(docker: Docker, container: string, o: { dir: string; recipients: string[]; restorableUntil?: Date }): Promise<SyncResult> {
  const before = syncing.get(o.dir);
  const run = (async () => {
    await before?.catch(() => undefined);
    return syncOnce(docker, container, o);
  })();
  syncing.set(o.dir, run);
  try {
    return await run;
  } finally {
    if (syncing.get(o.dir) === run) syncing.delete(o.dir);
  }
}

async function syncOnce(docker: Docker, container: string, o: { dir: string; recipients: string[]; restorableUntil?: Date }): Promise<SyncResult> {
  const t0 = Date.now();
  if (o.recipients.length === 0) throw new Error('syncing the pgBackRest repository: no age recipients (mlink.yaml spec.secrets.recipients)');
  const manifest = await readMirror(o.dir);
  const listing = await execMust(docker, container, 'listing the pgBackRest repository', ['find', PITR_MOUNT, '-type', 'f', '-printf', '%P\\t%s\\t%T@\\n'], { user: 'postgres' });
  const remote = new Map<string, { size: number; mtime: number }>();
  for (const line of listing.split('\n')) {
    const [p, size, mtime] = line.split('\t');
    if (p && size && mtime) remote.set(safePath(p), { size: Number(size), mtime: Math.floor(Number(mtime)) });
  }
  const want = [...remote].filter(([p, r]) => { const l = manifest.files[p]; return !l || l.size !== r.size || l.mtime !== r.mtime; }).map(([p]) => p);
  let bytes = 0;
  if (want.length) {
    // --ignore-failed-read: a WAL file pgBackRest expired since the listing is skipped, not an error.
    const s = await execStream(docker, container, ['tar', '-C', PITR_MOUNT, '--ignore-failed-read', '-cf', '-', '--null', '-T', '-'], { user: 'postgres', stdin: want.join('\0') + '\0' });
    const extract = tar.extract();
    extract.on('entry', (h, body, next) => {
      if (h.type !== 'file') { body.resume(); body.on('end', next); return; }
      const p = safePath(h.name);
      const out = join(o.dir, 'files', `${p}.age`);
      const plain = new Digest();
      const enc = new Encrypter();
      for (const r of o.recipients) enc.addRecipient(r);
      (async () => {
        await mkdir(dirname(out), { recursive: true, mode: 0o700 });
        const encrypted = await enc.encrypt(toWeb(body.pipe(plain)));
        await pipeline(fromWeb(encrypted), createWriteStream(`${out}.partial`, { mode: 0o600 }));
        await rename(`${out}.partial`, out);
        manifest.files[p] = { size: plain.bytes, mtime: Math.floor((h.mtime ?? new Date()).getTime() / 1000), sha256: plain.hex() };
        bytes += plain.bytes;
      })().then(() => next(), (err: unknown) => next(err as Error));
    });
    await Promise.all([
      pipeline(s.stdout, extract),
      s.done.then((r) => { if (r.code !== 0) throw new Error(`reading the pgBackRest repository in ${container} failed (tar exit ${r.code}): ${tail(r.stderr)}`); }),
    ]);
  }
  let removed = 0;
  for (const p of Object.keys(manifest.files)) {
    if (remote.has(p)) continue;
    await rm(join(o.dir, 'files', `${p}.age`), { force: true });
    delete manifest.files[p];
    removed++;
  }
  manifest.syncedAt = new Date().toISOString();
  if (o.restorableUntil) manifest.restorableUntil = o.restorableUntil.toISOString();
  await writeMirror(o.dir, manifest);
  return { fetched: want.length, removed, bytes, ms: Date.now() - t0, files: Object.keys(manifest.files).length };
}

/**
 * The copy as a tar stream for putArchive at the repository's mount point: directories
 * first, every entry owned by the Postgres user, each file decrypted and checked against
 * its SHA-256 on the way (a mismatch fails the stream).
 */
export function repoArchive(dir: string, manifest: MirrorManifest, identity: string): Readable {
  const uid = ENGINES.postgres.uid;
  const pack = tar.pack();
  const paths = Object.keys(manifest.files).sort();
  const dirs = new Set<string>();
  for (const p of paths) for (let d = posix.dirname(p); d !== '.'; d = posix.dirname(d)) dirs.add(d);
  (async () => {
    for (const d of [...dirs].sort()) pack.entry({ name: d, type: 'directory', mode: 0o750, uid, gid: uid });
    for (const p of paths) {
      const f = manifest.files[p]!;
      const dec = new Decrypter();
      dec.addIdentity(identity);
      const plain = fromWeb(await dec.decrypt(toWeb(createReadStream(join(dir, 'files', `${p}.age`)))));
      const check = new Digest();
      await new Promise<void>((resolve, reject) => {
        const entry = pack.entry({ name: p, size: f.size, mode: 0o640, uid, gid: uid, mtime: new Date(f.mtime * 1000) }, (err) => (err ? reject(err) : resolve()));
        pipeline(plain, check, entry).catch(reject);
      });
      if (check.hex() !== f.sha256) throw new Error(`the copy of ${p} does not match its SHA-256: the file in ${dir} is damaged`);
    }
    pack.finalize();
  })().catch((err: unknown) => pack.destroy(err as Error));
  return pack;
}
