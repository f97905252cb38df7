// Holds: a human-started operation on a resource (a restore) keeps the reconciler off it
// while it runs, so a pass does not start a server on a volume being rewritten. A hold
// is a small file in the control plane's data dir with an expiry, so one left by a
// process that died lapses by itself.
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { keyOf, type ResourceKey } from '../model.js';

export interface Hold extends ResourceKey { by: string; until: string }

const fileOf = (dir: string, k: ResourceKey): string => join(dir, `${k.kind}.${k.project}.${k.name}.json`);

export async function hold(dir: string, key: ResourceKey, by: string, ttlMs: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  const h: Hold = { kind: key.kind, project: key.project, name: key.name, by, until: new Date(Date.now() + ttlMs).toISOString() };
  await writeFile(fileOf(dir, key), `${JSON.stringify(h)}\n`);
}

export async function release(dir: string, key: ResourceKey): Promise<void> {
  await rm(fileOf(dir, key), { force: true });
}

/** The holds in force now (expired ones are removed). */
export async function activeHolds(dir: string): Promise<Hold[]> {
  const out: Hold[] = [];
  for (const f of await readdir(dir).catch(() => [] as string[])) {
    if (!f.endsWith('.json')) continue;
    const h = JSON.parse(await readFile(join(dir, f), 'utf8').catch(() => '{}')) as Partial<Hold>;
    if (!h.kind || !h.until || Date.parse(h.until) < Date.now()) { await rm(join(dir, f), { force: true }); continue; }
    out.push(h as Hold);
  }
  return out.sort((a, b) => keyOf(a).localeCompare(keyOf(b)));
}
