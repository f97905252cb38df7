// A reconciler says where it runs beside the state repo it reconciles (a file in the
// repo's git dir, which git ignores), so another process on this host (`mlink mcp` on
// stdio) can show the same live state: it observes the same Docker, route files and
// build records.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface RunningReconciler {
  pid: number;
  cluster: string;
  routesDir: string;
  /** The local edge's Traefik API. */
  traefikApi: string;
  webPort: number;
  buildsDir?: string;
  startedAt: string;
}

const FILE = 'mlink-reconciler.json';

/** Writes the announcement; the returned function takes it back (on a clean stop). */
export function announceReconciler(gitdir: string, info: Omit<RunningReconciler, 'pid' | 'startedAt'>): () => void {
  const file = join(gitdir, FILE);
  const record: RunningReconciler = { pid: process.pid, startedAt: new Date().toISOString(), ...info };
  writeFileSync(file, `${JSON.stringify(record, null, 2)}\n`);
  return () => {
    if (runningReconciler(gitdir)?.pid === process.pid) rmSync(file, { force: true });
  };
}

/** The reconciler announced for this repo, if its process still runs. */
export function runningReconciler(gitdir: string): RunningReconciler | undefined {
  let r: RunningReconciler;
  try { r = JSON.parse(readFileSync(join(gitdir, FILE), 'utf8')) as RunningReconciler; } catch { return undefined; }
  try { process.kill(r.pid, 0); } catch { return undefined; }
  return r;
}
