// Refs read and updated the way git does it, so ml.ink and git's own CLI (a human's
// push, `git revert`, a git host) can share one repository: an update takes
// `<ref>.lock` exclusively, checks the ref still points where the caller last saw it
// (compare-and-swap), then renames the lock into place.
import { open, readFile, rename, unlink, readdir, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** The ref moved since the caller read it: someone else committed first. */
export class RefMovedError extends Error {
  constructor(readonly ref: string, readonly expected: string | null, readonly actual: string | null) {
    super(`${ref} moved from ${expected ?? '(none)'} to ${actual ?? '(none)'}`);
    this.name = 'RefMovedError';
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function readPacked(gitdir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let text: string;
  try { text = await readFile(join(gitdir, 'packed-refs'), 'utf8'); } catch { return out; }
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#') || line.startsWith('^')) continue;
    const [oid, name] = line.split(' ');
    if (oid && name) out.set(name, oid);
  }
  return out;
}

/** The object id a ref points at (following `ref:` symbolic refs), or null if it does not exist. */
export async function readRef(gitdir: string, ref: string, depth = 0): Promise<string | null> {
  let text: string | null = null;
  try { text = (await readFile(join(gitdir, ref), 'utf8')).trim(); } catch { text = null; }
  if (text?.startsWith('ref: ') && depth < 5) return readRef(gitdir, text.slice(5), depth + 1);
  if (text && /^[0-9a-f]{40}$/.test(text)) return text;
  return (await readPacked(gitdir)).get(ref) ?? null;
}

/** Names of refs under a prefix such as `refs/heads/proposals/`, loose and packed. */
export async function listRefs(gitdir: string, prefix: string): Promise<string[]> {
  const names = new Set<string>();
  const walk = async (rel: string): Promise<void> => {
    let entries;
    try { entries = await readdir(join(gitdir, rel), { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      const name = `${rel}/${e.name}`;
      if (e.isDirectory()) await walk(name);
      else if (!e.name.endsWith('.lock')) names.add(name);
    }
  };
  await walk(prefix.replace(/\/$/, ''));
  for (const name of (await readPacked(gitdir)).keys()) if (name.startsWith(prefix)) names.add(name);
  const live = await Promise.all([...names].map(async (n) => ((await readRef(gitdir, n)) ? n : null)));
  return live.filter((n): n is string => n !== null).sort();
}

async function takeLock(path: string, timeoutMs = 10_000): Promise<Awaited<ReturnType<typeof open>>> {
  const started = Date.now();
  for (let wait = 1; ; wait = Math.min(wait * 2, 8)) {
    try {
      await mkdir(dirname(path), { recursive: true });
      return await open(path, 'wx');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (Date.now() - started > timeoutMs) {
        throw new Error(`${path} is held by another writer for more than ${timeoutMs / 1000}s; if no git process is running, delete it`);
      }
      await sleep(wait * (0.5 + Math.random()));
    }
  }
}

export interface RefLock {
  /** Where the ref pointed when the lock was taken (null: it does not exist). */
  current: string | null;
  /** Points the ref at `next` (null deletes it) and releases the lock. */
  commit(next: string | null): Promise<void>;
  /** Releases the lock without changing the ref (no-op after commit). */
  release(): Promise<void>;
}

/**
 * Takes `<ref>.lock` the way git does, so git's CLI and other ml.ink processes wait
 * for us and we for them. Read the head, write objects, then `commit`: nobody can
 * move the ref in between.
 */
export async function lockRef(gitdir: string, ref: string): Promise<RefLock> {
  const path = join(gitdir, ref);
  const handle = await takeLock(`${path}.lock`);
  let held = true; // the lock file exists and is ours
  let fdOpen = true;
  const closeFd = async (): Promise<void> => { if (fdOpen) { fdOpen = false; await handle.close().catch(() => undefined); } };
  const release = async (): Promise<void> => {
    await closeFd();
    if (!held) return;
    held = false;
    await unlink(`${path}.lock`).catch(() => undefined);
  };
  let current: string | null;
  try { current = await readRef(gitdir, ref); } catch (err) { await release(); throw err; }
  return {
    current,
    release,
    async commit(next: string | null): Promise<void> {
      if (!held) throw new Error(`${ref}.lock was already released`);
      try {
        if (next) {
          await handle.writeFile(`${next}\n`);
          await handle.sync();
          await closeFd();
          await rename(`${path}.lock`, path);
          held = false;
        } else {
          await unlink(path).catch(() => undefined);
          await removePacked(gitdir, ref);
        }
      } finally {
        await release();
      }
    },
  };
}

/**
 * Points `ref` at `next` (or deletes it when `next` is null), only if it still points
 * at `expected` (null: the ref must not exist yet). Throws RefMovedError otherwise.
 */
export async function updateRef(gitdir: string, ref: string, next: string | null, expected: string | null): Promise<void> {
  const lock = await lockRef(gitdir, ref);
  if (lock.current !== expected) {
    await lock.release();
    throw new RefMovedError(ref, expected, lock.current);
  }
  await lock.commit(next);
}

async function removePacked(gitdir: string, ref: string): Promise<void> {
  const file = join(gitdir, 'packed-refs');
  let text: string;
  try { text = await readFile(file, 'utf8'); } catch { return; }
  if (!text.includes(` ${ref}\n`) && !text.endsWith(` ${ref}`)) return;
  const lock = await takeLock(`${file}.lock`);
  try {
    const lines = text.split('\n');
    const kept: string[] = [];
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i] ?? '';
      if (line.endsWith(` ${ref}`)) { if (lines[i + 1]?.startsWith('^')) i++; continue; }
      kept.push(line);
    }
    await lock.writeFile(kept.join('\n'));
    await lock.close();
    await rename(`${file}.lock`, file);
  } catch (err) {
    await lock.close().catch(() => undefined);
    await unlink(`${file}.lock`).catch(() => undefined);
    throw err;
  }
}
