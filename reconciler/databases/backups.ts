// Backups and restores as streams through the Docker API: the dump comes out of the
// database container on an exec's stdout, is checksummed and age-encrypted on the way
// into the control host's backup store, and goes back in on an exec's stdin. Nothing is
// written on the Docker host but the database itself. The age identity is used only on
// the way into a container; no password is needed (see dumps.ts).
import { Decrypter, Encrypter } from 'age-encryption';
import type Docker from 'dockerode';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadable } from 'node:stream/web';
import { commitBackup, dumpFile, newBackupId, readMeta, stageBackup, type BackupMeta } from './backup-store.js';
import { DUMP_FORMAT, abandonLoadCommand, afterRestoreCommand, dumpCommand, finishRestoreCommand, inventoryCommand, loadCommand, loadIsDestructive, parseInventory, restartAfterLoad, type Inventory } from './dumps.js';
import { engineOf, type EngineName } from './engines.js';
import { execDetached, execIn, execMust, execStream, tail } from './exec.js';

export type BackupPhase = 'BackupFailed' | 'ChecksumMismatch' | 'DecryptFailed' | 'RestoreFailed';

/** A backup or restore that failed, naming the phase, the resource and the cause. */
export class BackupError extends Error {
  override name = 'BackupError';
  constructor(readonly phase: BackupPhase, readonly resource: string, message: string, options?: { cause?: unknown }) {
    super(`${phase}: ${resource}: ${message}`, options);
  }
}

/** Passes bytes through, counting them and hashing them with SHA-256. */
export class Digest extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }

  hex(): string {
    return this.hash.copy().digest('hex');
  }
}

const toWeb = (r: Readable): ReadableStream<Uint8Array> => Readable.toWeb(r) as unknown as ReadableStream<Uint8Array>;
const fromWeb = (r: ReadableStream<Uint8Array>): Readable => Readable.fromWeb(r as unknown as WebReadable<Uint8Array>);

export async function readInventory(docker: Docker, container: string, engine: EngineName): Promise<Inventory> {
  const c = inventoryCommand(engine);
  return parseInventory(engine, await execMust(docker, container, `reading the ${engine} inventory`, c.cmd, { user: c.user, timeoutMs: 120_000 }));
}

export interface BackupOptions {
  /** The backup store's root directory on the control host. */
  root: string;
  project: string;
  name: string;
  /** age recipients (the cluster's, from mlink.yaml spec.secrets.recipients). */
  recipients: string[];
  /** Recorded in meta.json: ensureEngineImage's version and tag. */
  engineVersion?: string;
  image?: string;
}

/** Dumps the database in `container` into the store; returns its meta (no drill yet). */
export async function backupDatabase(docker: Docker, container: string, engine: string, o: BackupOptions): Promise<BackupMeta> {
  const e = engineOf(engine).name;
  const resource = `${o.project}/${o.name}`;
  if (o.recipients.length === 0) throw new BackupError('BackupFailed', resource, 'no age recipients: set mlink.yaml spec.secrets.recipients');
  const started = new Date();
  const id = newBackupId(started, randomBytes(3).toString('hex'));
  const source = await readInventory(docker, container, e).catch((err: unknown) => {
    throw new BackupError('BackupFailed', resource, `the server in ${container} cannot be read: ${(err as Error).message}`, { cause: err });
  });
  const staged = await stageBackup(o.root, o.project, o.name, id);
  try {
    const cmd = dumpCommand(e);
    const dump = await execStream(docker, container, cmd.cmd, { user: cmd.user });
    const payload = new Digest();
    const enc = new Encrypter();
    for (const r of o.recipients) enc.addRecipient(r);
    const file = new Digest();
    const encrypted = await enc.encrypt(toWeb(dump.stdout.pipe(payload)));
    dump.stdout.on('error', (err) => payload.destroy(err));
    await pipeline(fromWeb(encrypted), file, createWriteStream(join(staged, 'dump.age'), { mode: 0o600 }));
    const r = await dump.done;
    if (r.code !== 0) throw new BackupError('BackupFailed', resource, `the dump in ${container} exited ${r.code}: ${tail(r.stderr)}`);
    if (payload.bytes === 0) throw new BackupError('BackupFailed', resource, `the dump in ${container} wrote nothing: ${tail(r.stderr) || 'no error output'}`);
    const finished = new Date();
    const meta: BackupMeta = {
      id, project: o.project, name: o.name, engine: e,
      ...(o.engineVersion ? { engineVersion: o.engineVersion } : {}), ...(o.image ? { image: o.image } : {}),
      format: DUMP_FORMAT[e], compression: 'zstd', encryption: { type: 'age', recipients: [...o.recipients] },
      startedAt: started.toISOString(), finishedAt: finished.toISOString(), durationMs: finished.getTime() - started.getTime(),
      size: file.bytes, sha256: file.hex(), payloadSize: payload.bytes, payloadSha256: payload.hex(), source,
    };
    await commitBackup(o.root, meta, staged);
    return meta;
  } catch (err) {
    await rm(staged, { recursive: true, force: true });
    if (err instanceof BackupError) throw err;
    throw new BackupError('BackupFailed', resource, (err as Error).message, { cause: err });
  }
}

/** Reads dump.age and compares its SHA-256 with meta.json's; throws ChecksumMismatch naming both. */
export async function verifyBackupFile(root: string, meta: BackupMeta): Promise<void> {
  const file = dumpFile(root, meta.project, meta.name, meta.id);
  const resource = `${meta.project}/${meta.name} backup ${meta.id}`;
  const size = await stat(file).then((s) => s.size, () => -1);
  if (size < 0) throw new BackupError('ChecksumMismatch', resource, 'dump.age is missing');
  const d = new Digest();
  await pipeline(createReadStream(file), d, new Transform({ transform: (_c, _e, cb) => cb() }));
  if (d.hex() !== meta.sha256 || size !== meta.size) {
    throw new BackupError('ChecksumMismatch', resource, `dump.age is damaged: its SHA-256 is ${d.hex().slice(0, 16)}… (${size} bytes), meta.json says ${meta.sha256.slice(0, 16)}… (${meta.size} bytes)`);
  }
}

export interface RestoreOptions {
  root: string;
  project: string;
  name: string;
  /** The backup id (list_backups; defaultRestoreBackup picks the newest verified one). */
  id: string;
  /** The cluster's age identity (AGE-SECRET-KEY-1...). */
  identity: string;
  /** How long a Redis restart may take to serve again. Default 120 s. */
  timeoutMs?: number;
}

export interface Restored {
  id: string;
  bytes: number;
  ms: number;
  /** Where the time went: the file's checksum, the streamed load, putting it in place (a restart for Redis). */
  phases: { verify: number; load: number; finish: number };
}

/**
 * Restores a backup into the running database in `container` (the same database, or a
 * new one of the same engine): decrypted and streamed in, and put in place only when
 * the file's and the stream's checksums both match meta.json's.
 */
export async function restoreBackup(docker: Docker, container: string, engine: string, o: RestoreOptions): Promise<Restored> {
  const e = engineOf(engine).name;
  const t0 = Date.now();
  const meta = await readMeta(o.root, o.project, o.name, o.id);
  const resource = `${container} from ${o.project}/${o.name} backup ${o.id}`;
  if (meta.engine !== e) throw new BackupError('RestoreFailed', resource, `the backup is a ${meta.engine} dump and ${container} runs ${e}; restore it into a ${meta.engine} database`);
  // A load that overwrites the app's data (MariaDB's) waits for the file's checksum; the
  // others load beside it and the checksum is checked, while streaming, before anything is put in place.
  if (loadIsDestructive(e)) await verifyBackupFile(o.root, meta);
  const t1 = Date.now();
  const dec = new Decrypter();
  dec.addIdentity(o.identity);
  const fileDigest = new Digest();
  const fileIn = createReadStream(dumpFile(o.root, o.project, o.name, o.id));
  fileIn.on('error', (err) => fileDigest.destroy(err));
  let plain: ReadableStream<Uint8Array>;
  try {
    plain = await dec.decrypt(toWeb(fileIn.pipe(fileDigest)));
  } catch (err) {
    if (!loadIsDestructive(e)) await verifyBackupFile(o.root, meta); // a damaged file: say so
    throw new BackupError('DecryptFailed', resource, `dump.age cannot be decrypted with the cluster key: ${(err as Error).message}`, { cause: err });
  }
  const payload = new Digest();
  const input = fromWeb(plain);
  let decryptError: Error | undefined;
  input.on('error', (err) => { decryptError = err; payload.destroy(err); });
  payload.on('error', () => undefined); // seen through decryptError and the exec's stdin
  const load = loadCommand(e);
  const abandon = async (): Promise<void> => {
    const a = abandonLoadCommand(e);
    if (a) await execIn(docker, container, a.cmd, { user: a.user }).catch(() => undefined);
  };
  const damaged = async (): Promise<void> => {
    if (fileDigest.hex() !== meta.sha256 || fileDigest.bytes !== meta.size) {
      throw new BackupError('ChecksumMismatch', resource, `dump.age is damaged: its SHA-256 is ${fileDigest.hex().slice(0, 16)}… (${fileDigest.bytes} bytes), meta.json says ${meta.sha256.slice(0, 16)}… (${meta.size} bytes); nothing was put in place`);
    }
  };
  let r: { code: number; stderr: string };
  try {
    const s = await execStream(docker, container, load.cmd, { user: load.user, stdin: input.pipe(payload) });
    s.stdout.resume();
    r = await s.done;
  } catch (err) {
    await abandon();
    if (decryptError) {
      if (!loadIsDestructive(e)) await verifyBackupFile(o.root, meta);
      throw new BackupError('DecryptFailed', resource, `dump.age failed to decrypt part-way: ${decryptError.message}`, { cause: decryptError });
    }
    throw new BackupError('RestoreFailed', resource, (err as Error).message, { cause: err });
  }
  if (decryptError) {
    await abandon();
    if (!loadIsDestructive(e)) await verifyBackupFile(o.root, meta);
    throw new BackupError('DecryptFailed', resource, `dump.age failed to decrypt part-way: ${decryptError.message}`, { cause: decryptError });
  }
  try {
    await damaged();
  } catch (err) {
    await abandon();
    throw err;
  }
  if (r.code !== 0) {
    await abandon();
    throw new BackupError('RestoreFailed', resource, `the load exited ${r.code}: ${tail(r.stderr)}`);
  }
  if (payload.hex() !== meta.payloadSha256) {
    await abandon();
    throw new BackupError('ChecksumMismatch', resource, `the decrypted dump's SHA-256 ${payload.hex().slice(0, 16)}… is not meta.json's ${meta.payloadSha256.slice(0, 16)}…; nothing was put in place`);
  }
  const t2 = Date.now();
  const finish = finishRestoreCommand(e);
  if (finish) await execMust(docker, container, 'putting the restored database in place', finish.cmd, { user: finish.user });
  const after = afterRestoreCommand(e);
  if (after) await execDetached(docker, container, after.cmd, { user: after.user }).catch(() => undefined); // the next restore drops it too
  if (restartAfterLoad(e)) {
    await docker.getContainer(container).restart();
    await waitServing(docker, container, e, o.timeoutMs ?? 120_000);
  }
  const t3 = Date.now();
  return { id: o.id, bytes: payload.bytes, ms: t3 - t0, phases: { verify: t1 - t0, load: t2 - t1, finish: t3 - t2 } };
}

/** Waits until the server answers its administrative inventory (no app credentials needed). */
export async function waitServing(docker: Docker, container: string, engine: EngineName, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      await readInventory(docker, container, engine);
      return;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new BackupError('RestoreFailed', container, `the ${engine} server did not serve again within ${timeoutMs} ms: ${last}`);
}
