// Git objects, written straight to the object database. Reads go through isomorphic-git
// (loose and packed objects alike); writes are our own so that each loose object lands
// atomically (temp file + rename: a crash never leaves a truncated object that later
// writes would skip) and so that trees we write are cached without being read back.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { mkdir, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import git from 'isomorphic-git';

export type EntryType = 'blob' | 'tree' | 'commit';
export interface TreeEntry { mode: string; path: string; oid: string; type: EntryType }
export interface Person { name: string; email: string; timestamp: number; timezoneOffset: number }
export interface CommitData { tree: string; parents: string[]; author: Person; committer: Person; message: string }

/** Bounded map: when full, the oldest half is dropped. Keys are object ids, so entries never go stale. */
class Cache<V> {
  private map = new Map<string, V>();
  constructor(private readonly max: number) {}
  get(k: string): V | undefined { return this.map.get(k); }
  set(k: string, v: V): void {
    if (this.map.size >= this.max) {
      let drop = this.map.size / 2;
      for (const key of this.map.keys()) { if (drop-- <= 0) break; this.map.delete(key); }
    }
    this.map.set(k, v);
  }
}

// git sorts tree entries by the bytes of their names, comparing a subtree's name as if
// it ended in '/'. Keys are computed once per entry, not once per comparison.
export function sortEntries(entries: TreeEntry[]): TreeEntry[] {
  const keyed = entries.map((e) => ({ e, k: Buffer.from(e.type === 'tree' ? `${e.path}/` : e.path) }));
  keyed.sort((a, b) => Buffer.compare(a.k, b.k));
  return keyed.map((x) => x.e);
}

function formatPerson(p: Person): string {
  const off = -p.timezoneOffset; // isomorphic-git convention: minutes west of UTC
  const sign = off < 0 ? '-' : '+';
  const abs = Math.abs(off);
  const tz = `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}${String(abs % 60).padStart(2, '0')}`;
  return `${p.name} <${p.email}> ${p.timestamp} ${tz}`;
}

// Each entry's bytes (`mode name\0` + binary id) are kept with the entry object, which a
// rewritten tree shares with its previous version, so re-serialising a tree of 2,000
// entries after one change formats one entry, not 2,000.
const entryBytes = new WeakMap<TreeEntry, Buffer>();

function bytesOf(e: TreeEntry): Buffer {
  let b = entryBytes.get(e);
  if (!b) {
    const head = `${e.type === 'tree' ? '40000' : e.mode.replace(/^0+/, '')} ${e.path}\0`;
    b = Buffer.concat([Buffer.from(head), Buffer.from(e.oid, 'hex')]);
    entryBytes.set(e, b);
  }
  return b;
}

/** The tree object's bytes. `entries` must already be in git's order (see sortEntries). */
export function serializeTree(entries: TreeEntry[]): Buffer {
  return Buffer.concat(entries.map(bytesOf));
}

export function serializeCommit(c: CommitData): Buffer {
  const lines = [`tree ${c.tree}`, ...c.parents.map((p) => `parent ${p}`), `author ${formatPerson(c.author)}`, `committer ${formatPerson(c.committer)}`];
  const message = c.message.endsWith('\n') ? c.message : `${c.message}\n`;
  return Buffer.from(`${lines.join('\n')}\n\n${message}`);
}

export class ObjectStore {
  private trees = new Cache<TreeEntry[]>(4096);
  private commits = new Cache<CommitData>(8192);
  private blobs = new Cache<Buffer>(4096);
  private readonly gitCache = {};

  constructor(readonly gitdir: string) {}

  async write(type: EntryType, content: Buffer): Promise<string> {
    const header = Buffer.from(`${type} ${content.length}\0`);
    const full = Buffer.concat([header, content]);
    const oid = createHash('sha1').update(full).digest('hex');
    const dir = join(this.gitdir, 'objects', oid.slice(0, 2));
    const file = join(dir, oid.slice(2));
    if (await exists(file)) return oid;
    const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    const data = deflateSync(full, { level: 1 });
    try {
      await writeFile(tmp, data, { mode: 0o444 });
    } catch (err) {
      // The fan-out directory is missing: new, or removed by `git gc` since we last wrote.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await mkdir(dir, { recursive: true });
      await writeFile(tmp, data, { mode: 0o444 });
    }
    await rename(tmp, file);
    return oid;
  }

  async writeBlob(content: string | Uint8Array): Promise<string> {
    const buf = typeof content === 'string' ? Buffer.from(content) : Buffer.from(content);
    const oid = await this.write('blob', buf);
    this.blobs.set(oid, buf);
    return oid;
  }

  /** Writes a tree; pass `sorted` when the entries are already in git's order. */
  async writeTree(entries: TreeEntry[], sorted = sortEntries(entries)): Promise<string> {
    const oid = await this.write('tree', serializeTree(sorted));
    this.trees.set(oid, sorted);
    return oid;
  }

  async writeCommit(c: CommitData): Promise<string> {
    const oid = await this.write('commit', serializeCommit(c));
    this.commits.set(oid, c);
    return oid;
  }

  async readTree(oid: string): Promise<TreeEntry[]> {
    const hit = this.trees.get(oid);
    if (hit) return hit;
    const { tree } = await git.readTree({ fs, gitdir: this.gitdir, oid, cache: this.gitCache });
    const entries = tree.map((e) => ({ mode: e.mode, path: e.path, oid: e.oid, type: e.type as EntryType }));
    this.trees.set(oid, entries);
    return entries;
  }

  async readBlob(oid: string): Promise<Buffer> {
    const hit = this.blobs.get(oid);
    if (hit) return hit;
    const { blob } = await git.readBlob({ fs, gitdir: this.gitdir, oid, cache: this.gitCache });
    const buf = Buffer.from(blob);
    if (buf.length < 256 * 1024) this.blobs.set(oid, buf);
    return buf;
  }

  async readCommit(oid: string): Promise<CommitData> {
    const hit = this.commits.get(oid);
    if (hit) return hit;
    const { commit } = await git.readCommit({ fs, gitdir: this.gitdir, oid, cache: this.gitCache });
    const data: CommitData = {
      tree: commit.tree,
      parents: commit.parent,
      author: commit.author,
      committer: commit.committer,
      message: commit.message,
    };
    this.commits.set(oid, data);
    return data;
  }
}

async function exists(path: string): Promise<boolean> {
  try { await stat(path); return true; } catch { return false; }
}
