// The git state store: read the desired state at any ref, and turn one change into one
// commit. Writers are serialised in-process (one queue per repository) and across
// processes by git's own ref lock, held from reading the head to moving it, so no
// update is ever lost.
import { existsSync, realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ObjectStore, type CommitData, type Person } from './objects.js';
import { listRefs, lockRef, readRef, updateRef } from './refs.js';
import { TreeView, applyChanges, type Change } from './tree.js';

export const MAIN = 'refs/heads/main';
export const PROPOSALS = 'refs/heads/proposals/';
export const NOTES = 'refs/notes/mlink';

export interface Identity { name: string; email: string }

export interface CommitRequest {
  /** The ref to move, e.g. refs/heads/main. */
  ref: string;
  /** When `ref` does not exist yet, the ref whose head the new commit builds on. */
  from?: string;
  author: Identity;
  committer?: Identity;
  message: string;
  /** Extra parents after the base (a merge). */
  extraParents?: string[];
  /**
   * Runs under the write lock against the current head and returns the changes to make.
   * Throwing aborts the write with nothing committed.
   */
  prepare(view: TreeView): Promise<Change[]>;
}

export interface CommitResult {
  /** The new commit, or null when the changes left the tree as it was. */
  commit: string | null;
  parent: string | null;
  ref: string;
}

export const SYSTEM: Identity = { name: 'ml.ink', email: 'mlink@localhost' };

const queues = new Map<string, Promise<unknown>>();

/** Runs `fn` after every earlier call for the same key has settled. */
function serialise<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const prev = queues.get(key) ?? Promise.resolve();
  const run = prev.then(fn, fn);
  const tail = run.catch(() => undefined);
  queues.set(key, tail);
  void tail.then(() => { if (queues.get(key) === tail) queues.delete(key); });
  return run;
}

function person(id: Identity, when: Date): Person {
  return { name: id.name, email: id.email, timestamp: Math.floor(when.getTime() / 1000), timezoneOffset: 0 };
}

/** Where the git directory is: DIR itself when bare, DIR/.git otherwise. */
export function gitDirOf(dir: string): string {
  const abs = resolve(dir);
  if (existsSync(join(abs, '.git'))) return realpathSync(join(abs, '.git'));
  if (existsSync(join(abs, 'HEAD')) && existsSync(join(abs, 'objects'))) return realpathSync(abs);
  throw new Error(`${abs} is not a git repository; create one with \`mlink init ${dir}\``);
}

export class StateStore {
  readonly objects: ObjectStore;

  constructor(readonly gitdir: string, private readonly now: () => Date = () => new Date()) {
    this.objects = new ObjectStore(gitdir);
  }

  static open(dir: string): StateStore {
    return new StateStore(gitDirOf(dir));
  }

  /** The commit a ref (or a commit id) points at, or null. */
  async resolve(ref: string): Promise<string | null> {
    if (/^[0-9a-f]{40}$/.test(ref)) return ref;
    const full = ref.startsWith('refs/') ? ref : `refs/heads/${ref}`;
    return readRef(this.gitdir, full);
  }

  /** The files at a ref or commit. */
  async view(ref: string = MAIN): Promise<TreeView> {
    const commit = await this.resolve(ref);
    if (!commit) return new TreeView(this.objects, null, null);
    const data = await this.objects.readCommit(commit);
    return new TreeView(this.objects, data.tree, commit);
  }

  async readCommit(oid: string): Promise<CommitData> {
    return this.objects.readCommit(oid);
  }

  async listRefs(prefix: string): Promise<string[]> {
    return listRefs(this.gitdir, prefix);
  }

  /** Deletes a ref if it still points at `expected`. */
  async deleteRef(ref: string, expected: string): Promise<void> {
    await serialise(this.gitdir, () => updateRef(this.gitdir, ref, null, expected));
  }

  /**
   * Writes one commit: the changes `prepare` returns, on top of the ref's current head.
   * The ref stays locked from reading its head to moving it, so no writer (ours, another
   * process's or git's CLI) can slip a commit in between and have it overwritten.
   */
  commit(req: CommitRequest): Promise<CommitResult> {
    return serialise(this.gitdir, async () => {
      const lock = await lockRef(this.gitdir, req.ref);
      try {
        const current = lock.current;
        const base = current ?? (req.from ? await this.resolve(req.from) : null);
        const baseTree = base ? (await this.objects.readCommit(base)).tree : null;
        const changes = await req.prepare(new TreeView(this.objects, baseTree, base));
        const tree = (await applyChanges(this.objects, baseTree, changes)) ?? (await this.objects.writeTree([]));
        if (tree === baseTree && !req.extraParents?.length && current) return { commit: null, parent: base, ref: req.ref };
        const when = this.now();
        const commit = await this.objects.writeCommit({
          tree,
          parents: [...(base ? [base] : []), ...(req.extraParents ?? [])],
          author: person(req.author, when),
          committer: person(req.committer ?? SYSTEM, when),
          message: req.message,
        });
        await lock.commit(commit);
        return { commit, parent: base, ref: req.ref };
      } finally {
        await lock.release();
      }
    });
  }
}
