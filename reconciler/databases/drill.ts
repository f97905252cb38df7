// A restore drill proves a backup: it is restored into a throwaway server (the engine's
// image under gVisor, no network at all, its own temporary volume) and checked, tables
// with exact row counts or the key count, against what the source held when it was
// dumped. The result is kept in the backup's meta.json; the server and its volume are
// removed whatever happens. A damaged file fails at its checksum, before anything runs.
import type Docker from 'dockerode';
import { randomBytes } from 'node:crypto';
import { readMeta, writeMeta, type DrillResult } from './backup-store.js';
import { readInventory, restoreBackup, verifyBackupFile } from './backups.js';
import { newCredentials } from './credentials.js';
import { inventoryProblem } from './dumps.js';
import { removeDatabaseContainer, runDatabase } from './lifecycle.js';
import { removeVolume } from './volumes.js';

export interface DrillOptions {
  root: string;
  project: string;
  name: string;
  id: string;
  /** The cluster's age identity. */
  identity: string;
  /** The engine image to restore into (ensureEngineImage's tag for the backup's engine). */
  image: string;
  /** Labels for the throwaway container and volume, so observe can tell them apart and a crashed drill's leftovers can be found. */
  labels: Record<string, string>;
  runtime?: 'runsc' | 'runc';
  resources?: { cpu: number; memoryMb: number; pids: number };
  timeoutMs?: number;
}

/** Runs the drill and records its result in meta.json; returns the result (a failure is a result, not a throw). */
export async function drillBackup(docker: Docker, o: DrillOptions): Promise<DrillResult> {
  const meta = await readMeta(o.root, o.project, o.name, o.id);
  const t0 = Date.now();
  const at = new Date().toISOString();
  const suffix = randomBytes(3).toString('hex');
  const name = `mlink-drill-${o.project}-${o.name}-${suffix}`.slice(0, 120);
  let result: DrillResult;
  try {
    await verifyBackupFile(o.root, meta);
    const creds = newCredentials(meta.engine);
    await runDatabase(docker, {
      name, engine: meta.engine, image: o.image, credentials: creds, volume: name, network: 'none',
      labels: o.labels, resources: o.resources ?? { cpu: 1, memoryMb: 512, pids: 256 }, runtime: o.runtime ?? 'runsc', restart: 'no',
    }, { volumeLabels: o.labels, readyTimeoutMs: o.timeoutMs ?? 120_000 });
    await restoreBackup(docker, name, meta.engine, { root: o.root, project: o.project, name: o.name, id: o.id, identity: o.identity, timeoutMs: o.timeoutMs });
    const inventory = await readInventory(docker, name, meta.engine);
    const problem = inventoryProblem(meta.source, inventory);
    result = problem
      ? { ok: false, at, ms: Date.now() - t0, reason: `CheckFailed: ${problem}`, inventory }
      : { ok: true, at, ms: Date.now() - t0, inventory };
  } catch (err) {
    result = { ok: false, at, ms: Date.now() - t0, reason: (err as Error).message };
  } finally {
    await removeDatabaseContainer(docker, name).catch(() => undefined);
    await removeVolume(docker, name).catch(() => undefined);
  }
  await writeMeta(o.root, { ...meta, drill: result });
  return result;
}
