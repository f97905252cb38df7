// The backup store on the control host: `<root>/<project>/<name>/<backup-id>/` holds
// `dump.age` (the compressed dump, age-encrypted to the cluster's recipients) and
// `meta.json` (when, how big, checksums, engine and version, and the restore drill's
// result once it ran). A backup appears only when it is complete: it is written under a
// dot-named directory and renamed into place. Retention is pure (planRetention).
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Inventory } from './dumps.js';
import type { EngineName } from './engines.js';

export interface DrillResult {
  ok: boolean;
  at: string;
  ms: number;
  /** Why it failed, naming the phase (checksum, decrypt, restore, check). */
  reason?: string;
  /** What the restored copy held. */
  inventory?: Inventory;
}

export interface BackupMeta {
  id: string;
  project: string;
  name: string;
  engine: EngineName;
  /** The engine's Debian package version in the image that made the dump, when the caller knew it. */
  engineVersion?: string;
  image?: string;
  format: string;
  compression: 'zstd';
  encryption: { type: 'age'; recipients: string[] };
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  /** Bytes of dump.age. */
  size: number;
  /** SHA-256 (hex) of dump.age, checked before anything is decrypted. */
  sha256: string;
  /** Bytes and SHA-256 of the compressed dump inside the encryption. */
  payloadSize: number;
  payloadSha256: string;
  /** What the source held just before the dump (a drill compares). */
  source?: Inventory;
  drill?: DrillResult;
}

const SEGMENT = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const ID = /^\d{8}T\d{6}\d{3}Z-[0-9a-f]{6}$/;

function segment(field: string, v: string): string {
  if (!SEGMENT.test(v)) throw new Error(`${field}: "${v}" is not a DNS label (a-z, 0-9 and -)`);
  return v;
}

export function checkBackupId(id: string): string {
  if (!ID.test(id)) throw new Error(`backup: "${id}" is not a backup id like 20261203T101530123Z-a1b2c3 (list_backups shows them)`);
  return id;
}

/** A sortable id from the time: 20261203T101530123Z-a1b2c3. */
export function newBackupId(at: Date, random: string): string {
  if (!/^[0-9a-f]{6}/.test(random)) throw new Error('newBackupId: random must start with 6 hex digits');
  return `${at.toISOString().replace(/[-:.]/g, '')}-${random.slice(0, 6)}`;
}

export function databaseDir(root: string, project: string, name: string): string {
  return join(root, segment('project', project), segment('name', name));
}

export function backupDir(root: string, project: string, name: string, id: string): string {
  return join(databaseDir(root, project, name), checkBackupId(id));
}

/** A directory to write a new backup into; `commitBackup` puts it in place. */
export async function stageBackup(root: string, project: string, name: string, id: string): Promise<string> {
  const dir = join(databaseDir(root, project, name), `.${checkBackupId(id)}.partial`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return dir;
}

export async function commitBackup(root: string, meta: BackupMeta, staged: string): Promise<string> {
  await writeFile(join(staged, 'meta.json'), JSON.stringify(meta, null, 2) + '\n', { mode: 0o600 });
  const dir = backupDir(root, meta.project, meta.name, meta.id);
  await rename(staged, dir);
  return dir;
}

export async function readMeta(root: string, project: string, name: string, id: string): Promise<BackupMeta> {
  const file = join(backupDir(root, project, name, id), 'meta.json');
  try {
    return JSON.parse(await readFile(file, 'utf8')) as BackupMeta;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`backup ${project}/${name}/${id} does not exist (list_backups shows the backups there are)`);
    throw new Error(`backup ${project}/${name}/${id}: meta.json cannot be read: ${(e as Error).message}`);
  }
}

/** Rewrites meta.json atomically (a drill's result). */
export async function writeMeta(root: string, meta: BackupMeta): Promise<void> {
  const dir = backupDir(root, meta.project, meta.name, meta.id);
  const tmp = join(dir, '.meta.json.tmp');
  await writeFile(tmp, JSON.stringify(meta, null, 2) + '\n', { mode: 0o600 });
  await rename(tmp, join(dir, 'meta.json'));
}

export function dumpFile(root: string, project: string, name: string, id: string): string {
  return join(backupDir(root, project, name, id), 'dump.age');
}

/** The database's backups, newest first. A directory without a readable meta.json is skipped (reported in `unreadable`). */
export async function listBackups(root: string, project: string, name: string): Promise<{ backups: BackupMeta[]; unreadable: string[] }> {
  let entries: string[];
  try {
    entries = await readdir(databaseDir(root, project, name));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { backups: [], unreadable: [] };
    throw e;
  }
  const backups: BackupMeta[] = [];
  const unreadable: string[] = [];
  for (const id of entries.filter((e) => ID.test(e))) {
    try {
      backups.push(await readMeta(root, project, name, id));
    } catch {
      unreadable.push(id);
    }
  }
  backups.sort((a, b) => (a.id < b.id ? 1 : -1));
  return { backups, unreadable };
}

/** The backup a restore takes when none is named: the newest whose drill passed, never an unverified or failed one. */
export function defaultRestoreBackup(backups: BackupMeta[]): BackupMeta | undefined {
  return [...backups].sort((a, b) => (a.id < b.id ? 1 : -1)).find((b) => b.drill?.ok === true);
}

/**
 * Pure: which backups to delete to keep `keep`. The newest `keep` stay, and so does the
 * newest verified backup (its drill passed) wherever it is, so retention can never leave
 * a database with only unverified or failed backups.
 */
export function planRetention(backups: BackupMeta[], keep: number): string[] {
  if (!Number.isInteger(keep) || keep < 1) throw new Error(`backups.keep: ${keep} must be a whole number of at least 1`);
  const newestFirst = [...backups].sort((a, b) => (a.id < b.id ? 1 : -1));
  const stay = new Set(newestFirst.slice(0, keep).map((b) => b.id));
  const verified = defaultRestoreBackup(newestFirst);
  if (verified) stay.add(verified.id);
  return newestFirst.filter((b) => !stay.has(b.id)).map((b) => b.id);
}

/** Deletes what planRetention says; returns the ids deleted. */
export async function applyRetention(root: string, project: string, name: string, keep: number): Promise<string[]> {
  const { backups } = await listBackups(root, project, name);
  const doomed = planRetention(backups, keep);
  for (const id of doomed) await rm(backupDir(root, project, name, id), { recursive: true, force: true });
  return doomed;
}
