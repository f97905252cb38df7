// Reading history and undoing it: the commits that changed one file, the inverse of an
// earlier commit (a revert), and the changes a proposal branch brings to main (a merge).
// All three compare trees path by path and skip equal subtrees.
import git from 'isomorphic-git';
import * as fs from 'node:fs';
import type { CommitData, TreeEntry } from './objects.js';
import type { StateStore } from './store.js';
import { diffTrees, type Change, type TreeView } from './tree.js';

export interface LogEntry {
  commit: string;
  author: { name: string; email: string };
  date: string;
  subject: string;
  trailers: Record<string, string>;
  parents: string[];
}

/** Trailers (`Key: value` lines in the last paragraph) of a commit message. */
export function parseTrailers(message: string): Record<string, string> {
  const paragraphs = message.trim().split(/\n\s*\n/);
  if (paragraphs.length < 2) return {};
  const out: Record<string, string> = {};
  for (const line of (paragraphs[paragraphs.length - 1] ?? '').split('\n')) {
    const m = /^([A-Za-z][A-Za-z0-9-]*):\s*(.*)$/.exec(line);
    if (m?.[1] && m[2] !== undefined) out[m[1]] = m[2];
  }
  return out;
}

export function logEntry(commit: string, c: CommitData): LogEntry {
  return {
    commit,
    author: { name: c.author.name, email: c.author.email },
    date: new Date(c.committer.timestamp * 1000).toISOString(),
    subject: c.message.split('\n')[0] ?? '',
    trailers: parseTrailers(c.message),
    parents: c.parents,
  };
}

/** The object at `path` in `tree` (a blob, or a tree for a directory), or null. */
async function objectAt(store: StateStore, tree: string, path: string): Promise<string | null> {
  const parts = path.split('/');
  let oid: string = tree;
  for (let i = 0; i < parts.length; i++) {
    const entries: TreeEntry[] = await store.objects.readTree(oid);
    const entry = entries.find((e) => e.path === parts[i]);
    if (!entry) return null;
    const last = i === parts.length - 1;
    if (last) return entry.oid; // a file's blob or a directory's tree
    if (entry.type !== 'tree') return null;
    oid = entry.oid;
  }
  return null;
}

/**
 * Commits reachable from `head` that changed any of `paths`, newest first (like
 * `git log -- paths`: a merge that took a file from one parent unchanged is skipped).
 */
export async function fileHistory(store: StateStore, head: string, paths: string[], limit: number, maxWalk = 20_000): Promise<LogEntry[]> {
  const out: LogEntry[] = [];
  const seen = new Set<string>([head]);
  const queue: Array<{ oid: string; c: CommitData }> = [{ oid: head, c: await store.readCommit(head) }];
  let walked = 0;
  while (queue.length && out.length < limit && walked++ < maxWalk) {
    queue.sort((a, b) => b.c.committer.timestamp - a.c.committer.timestamp);
    const { oid, c } = queue.shift()!;
    const mine = await Promise.all(paths.map((p) => objectAt(store, c.tree, p)));
    const parents = await Promise.all(c.parents.map(async (p) => ({ oid: p, c: await store.readCommit(p) })));
    let same: typeof parents = [];
    for (const p of parents) {
      const theirs = await Promise.all(paths.map((path) => objectAt(store, p.c.tree, path)));
      if (theirs.every((t, i) => t === mine[i])) { same = [p]; break; }
    }
    if (parents.length === 0 ? mine.some(Boolean) : same.length === 0) out.push(logEntry(oid, c));
    for (const p of same.length ? same : parents) if (!seen.has(p.oid)) { seen.add(p.oid); queue.push(p); }
  }
  return out;
}

/** A revert or merge could not apply because a file moved on since. */
export class ApplyConflictError extends Error {
  constructor(message: string, readonly paths: string[]) {
    super(message);
    this.name = 'ApplyConflictError';
  }
}

/**
 * Changes that apply `from -> to` (two trees) onto `onto`, for every file whose current
 * content is still `from`'s (or already `to`'s). Anything else is a conflict.
 */
export async function transplant(store: StateStore, from: string | null, to: string | null, onto: TreeView): Promise<{ changes: Change[]; conflicts: string[] }> {
  const changes: Change[] = [];
  const conflicts: string[] = [];
  for (const [path, [before, after]] of await diffTrees(store.objects, from, to)) {
    const now = await onto.blobOid(path);
    if (now === after) continue;
    if (now !== before) { conflicts.push(path); continue; }
    changes.push({ path, content: after ? await store.objects.readBlob(after) : null });
  }
  return { changes, conflicts };
}

/** The changes that undo `commit` on top of `onto`; throws ApplyConflictError if a file changed since. */
export async function revertChanges(store: StateStore, commit: string, onto: TreeView): Promise<Change[]> {
  const c = await store.readCommit(commit);
  const parent = c.parents[0] ? (await store.readCommit(c.parents[0])).tree : null;
  const { changes, conflicts } = await transplant(store, c.tree, parent, onto);
  if (conflicts.length) {
    throw new ApplyConflictError(
      `cannot revert ${commit.slice(0, 12)}: ${conflicts.join(', ')} changed after it; revert the later commits first (see history) or update those files directly`,
      conflicts,
    );
  }
  return changes;
}

export async function mergeBase(store: StateStore, a: string, b: string): Promise<string | null> {
  const [base] = await git.findMergeBase({ fs, gitdir: store.gitdir, oids: [a, b] });
  return (base as string | undefined) ?? null;
}

/** Whether `ancestor` is reachable from `commit` (or is it). */
export async function isAncestor(store: StateStore, ancestor: string, commit: string): Promise<boolean> {
  if (ancestor === commit) return true;
  return git.isDescendent({ fs, gitdir: store.gitdir, oid: commit, ancestor, depth: -1 });
}
