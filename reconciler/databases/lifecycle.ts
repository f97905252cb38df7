// Running one database server: its volumes, its container, started and ready. Each step
// checks before it acts (names are the caller's deterministic ones), so a retried
// activity does no harm; removing the container never touches its volumes.
import type Docker from 'dockerode';
import { databaseContainerSpec, type DatabaseContainerInput } from './container-spec.js';
import { waitReady } from './ready.js';
import { ensureVolume } from './volumes.js';

function statusOf(e: unknown): number | undefined {
  return (e as { statusCode?: number }).statusCode;
}

export interface RunDatabaseOptions {
  /** Labels for the data (and pgBackRest) volumes: the caller's identity labels. */
  volumeLabels: Record<string, string>;
  /** Default 120 s (a first start initialises the data directory). */
  readyTimeoutMs?: number;
  /** False: return once started, without waiting for a login (a restore still recovering). Default true. */
  wait?: boolean;
}

export interface RunningDatabase {
  id: string;
  name: string;
  /** False when the container was there already. */
  created: boolean;
  /** Where the time went, in ms: create request, start request, start to first authenticated query. */
  ms: { volumes: number; create: number; start: number; ready: number; total: number };
}

/** Makes the volumes and the container when missing, starts it, and waits for an authenticated query. */
export async function runDatabase(docker: Docker, input: DatabaseContainerInput, opts: RunDatabaseOptions): Promise<RunningDatabase> {
  const spec = databaseContainerSpec(input);
  const t0 = Date.now();
  await ensureVolume(docker, input.volume, opts.volumeLabels);
  if (input.pitrVolume) await ensureVolume(docker, input.pitrVolume, opts.volumeLabels);
  const t1 = Date.now();
  let id: string;
  let created = true;
  try {
    id = (await docker.createContainer(spec)).id;
  } catch (e) {
    if (statusOf(e) !== 409) throw new Error(`ApplyFailed: ${input.name}: creating the ${input.engine} container failed: ${(e as Error).message}`, { cause: e });
    id = (await docker.getContainer(input.name).inspect()).Id; // a retry, or a container kept over a restart
    created = false;
  }
  const t2 = Date.now();
  try {
    await docker.getContainer(id).start();
  } catch (e) {
    if (statusOf(e) !== 304) throw new Error(`ApplyFailed: ${input.name}: starting the ${input.engine} container failed: ${(e as Error).message}`, { cause: e });
  }
  const t3 = Date.now();
  if (opts.wait !== false) await waitReady(docker, input.name, input.engine, input.credentials, opts.readyTimeoutMs ?? 120_000);
  const t4 = Date.now();
  return { id, name: input.name, created, ms: { volumes: t1 - t0, create: t2 - t1, start: t3 - t2, ready: t4 - t3, total: t4 - t0 } };
}

/** Removes the server's container; its volumes (the data) stay. Absent is fine. */
export async function removeDatabaseContainer(docker: Docker, name: string): Promise<void> {
  try {
    await docker.getContainer(name).remove({ force: true });
  } catch (e) {
    if (statusOf(e) !== 404) throw e;
  }
}

/** Stops the server (a clean shutdown, up to the container's StopTimeout); stopped or absent is fine. */
export async function stopDatabase(docker: Docker, name: string): Promise<void> {
  try {
    await docker.getContainer(name).stop();
  } catch (e) {
    if (statusOf(e) !== 304 && statusOf(e) !== 404) throw e;
  }
}
