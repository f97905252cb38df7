// Refs read and updated the way git does it, so ml.ink and git's own CLI (a human's
// push, `git revert`, a git host) can share one repository: an update takes
// `<ref>.lock` exclusively, checks the ref still points where the caller last saw it
// (compare-and-swap), then renames the lock into place.
import { open, readFile, rename, unlink, readdir, mkdir, writeFile } from 'node:fs/promises';
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
  for (let wait = 1; ; wait = Math.min(wait * 2, 50)) {
    try {
      await mkdir(dirname(path), { recursive: true });
      return await open(path, 'wx');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (Date.now() - started > timeoutMs) {
        throw new Error(`${path} is held by another writer for more than ${timeoutMs / 1000}s; if no git process is running, delete it`);
      }
      await sleep(wait);
    }
  }
}

/**
 * Points `ref` at `next` (or deletes it when `next` is null), only if it still points
 * at `expected` (null: the ref must not exist yet). Throws RefMovedError otherwise.
 */
export async function updateRef(gitdir: string, ref: string, next: string | null, expected: string | null): Promise<void> {
  const path = join(gitdir, ref);
  const lock = await takeLock(`${path}.lock`);
  let locked = true;
  try {
    const actual = await readRef(gitdir, ref);
    if (actual !== expected) throw new RefMovedError(ref, expected, actual);
    if (next) {
      await lock.writeFile(`${next}\n`);
      await lock.sync();
      await lock.close();
      await rename(`${path}.lock`, path);
      locked = false;
    } else {
      await lock.close();
      await unlink(path).catch(() => undefined);
      await removePacked(gitdir, ref);
    }
  } finally {
    if (locked) {
      await lock.close().catch(() => undefined);
      await unlink(`${path}.lock`).catch(() => undefined);
    }
  }
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

/** Points HEAD (a symbolic ref) at a branch. */
export async function setHead(gitdir: string, branch: string): Promise<void> {
  await writeFile(join(gitdir, 'HEAD'), `ref: refs/heads/${branch}\n`);
}
