// Nested trees, read and rewritten along one path at a time. A change to
// apps/<project>/<name>.yaml rewrites that project's tree, `apps` and the root: never
// the other trees, so a commit costs the same with 20 manifests as with 2,000.
import type { ObjectStore, TreeEntry } from './objects.js';

/** A file's new content, or null to delete it. */
export interface Change { path: string; content: string | Uint8Array | null }

/** Read-only view of the files in one tree. */
export class TreeView {
  constructor(private readonly objects: ObjectStore, readonly root: string | null, readonly commit: string | null) {}

  /** The entry at `path` (a file or a directory), or null. */
  async entry(path: string): Promise<TreeEntry | null> {
    let tree = this.root;
    const parts = path.split('/').filter(Boolean);
    let found: TreeEntry | null = null;
    for (const part of parts) {
      if (!tree) return null;
      found = (await this.objects.readTree(tree)).find((e) => e.path === part) ?? null;
      if (!found) return null;
      tree = found.type === 'tree' ? found.oid : null;
    }
    return found;
  }

  /** The blob id at `path`, or null when there is no file there. */
  async blobOid(path: string): Promise<string | null> {
    const e = await this.entry(path);
    return e && e.type === 'blob' ? e.oid : null;
  }

  async readFile(path: string): Promise<Buffer | null> {
    const oid = await this.blobOid(path);
    return oid ? this.objects.readBlob(oid) : null;
  }

  async readText(path: string): Promise<string | null> {
    return (await this.readFile(path))?.toString('utf8') ?? null;
  }

  /** Entries of the directory at `path` ('' is the root); empty if it does not exist. */
  async list(path: string): Promise<TreeEntry[]> {
    if (!path) return this.root ? this.objects.readTree(this.root) : [];
    const e = await this.entry(path);
    return e && e.type === 'tree' ? this.objects.readTree(e.oid) : [];
  }
}

interface Pending { parts: string[]; blob: string | null }

/** Applies changes to the tree `root` (null: empty) and returns the new root (null: empty). */
export async function applyChanges(objects: ObjectStore, root: string | null, changes: Change[]): Promise<string | null> {
  const pending: Pending[] = [];
  for (const c of changes) {
    const parts = c.path.split('/');
    if (parts.some((p) => !p || p === '.' || p === '..' || p === '.git')) throw new Error(`refusing unsafe path ${JSON.stringify(c.path)}`);
    pending.push({ parts, blob: c.content === null ? null : await objects.writeBlob(c.content) });
  }
  return edit(objects, root, pending);
}

async function edit(objects: ObjectStore, tree: string | null, changes: Pending[]): Promise<string | null> {
  // Work on the sorted entry list in place: replacing a file keeps git's order, so the
  // common case (one changed manifest among thousands) needs no re-sort.
  const entries: Array<TreeEntry | null> = tree ? [...(await objects.readTree(tree))] : [];
  const index = new Map<string, number>();
  entries.forEach((e, i) => index.set(e!.path, i));
  let reorder = false;
  const put = (name: string, entry: TreeEntry | null): void => {
    const i = index.get(name);
    if (i === undefined) {
      if (!entry) return;
      index.set(name, entries.push(entry) - 1);
      reorder = true;
    } else {
      if (entry && entries[i]?.type !== entry.type) reorder = true;
      entries[i] = entry;
    }
  };
  const byChild = new Map<string, Pending[]>();
  for (const c of changes) {
    const [head, ...rest] = c.parts as [string, ...string[]];
    if (rest.length === 0) {
      const existing = entries[index.get(head) ?? -1];
      if (existing?.type === 'tree') throw new Error(`${head} is a directory, not a file`);
      put(head, c.blob === null ? null : { mode: '100644', path: head, oid: c.blob, type: 'blob' });
    } else {
      const list = byChild.get(head) ?? [];
      list.push({ parts: rest, blob: c.blob });
      byChild.set(head, list);
    }
  }
  for (const [name, sub] of byChild) {
    const existing = entries[index.get(name) ?? -1];
    if (existing && existing.type !== 'tree') throw new Error(`${name} is a file, not a directory`);
    const next = await edit(objects, existing?.oid ?? null, sub);
    put(name, next ? { mode: '040000', path: name, oid: next, type: 'tree' } : null);
  }
  const kept = entries.filter((e): e is TreeEntry => e !== null);
  if (kept.length === 0) return null;
  return reorder ? objects.writeTree(kept) : objects.writeTree(kept, kept);
}

/** Files that differ between two trees: path -> [old blob, new blob] (null: absent). Equal subtrees are skipped. */
export async function diffTrees(objects: ObjectStore, a: string | null, b: string | null, prefix = ''): Promise<Map<string, [string | null, string | null]>> {
  const out = new Map<string, [string | null, string | null]>();
  if (a === b) return out;
  const left = new Map((a ? await objects.readTree(a) : []).map((e) => [e.path, e]));
  const right = new Map((b ? await objects.readTree(b) : []).map((e) => [e.path, e]));
  for (const name of new Set([...left.keys(), ...right.keys()])) {
    const l = left.get(name); const r = right.get(name);
    if (l?.oid === r?.oid && l?.type === r?.type) continue;
    const path = prefix + name;
    const lTree = l?.type === 'tree' ? l.oid : null; const rTree = r?.type === 'tree' ? r.oid : null;
    if (lTree || rTree) for (const [p, v] of await diffTrees(objects, lTree, rTree, `${path}/`)) out.set(p, v);
    const lBlob = l?.type === 'blob' ? l.oid : null; const rBlob = r?.type === 'blob' ? r.oid : null;
    if (lBlob !== rBlob) out.set(path, [lBlob, rBlob]);
  }
  return out;
}
