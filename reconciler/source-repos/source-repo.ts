// Internal source repos: one bare git repo per app under the data dir
// (<sources>/<project>/<app>.git). Files sent by agents become a commit there, written
// with the state store's object writer; git URLs are fetched into it with
// isomorphic-git over HTTP. App manifests pin a commit of this repo, so the state repo
// stays small and reverting a manifest brings back the exact earlier source.
import * as fs from 'node:fs';
import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import git from 'isomorphic-git';
import http from 'isomorphic-git/http/node';
import { ObjectStore, type TreeEntry } from '../state/objects.js';
import { readRef, updateRef, lockRef } from '../state/refs.js';
import type { SourceFile } from './source-files.js';

export const SOURCE_MAIN = 'refs/heads/main';

export interface Author { name: string; email: string }
export interface PreparedCommit { commit: string; tree: string; parent: string | null; unchanged: boolean }

export class SourceRepos {
  constructor(readonly root: string) {}

  gitdir(project: string, app: string): string {
    return join(this.root, project, `${app}.git`);
  }

  /** Creates the app's bare repo (branch main) if it is missing; returns its git dir. */
  async ensure(project: string, app: string): Promise<string> {
    const dir = this.gitdir(project, app);
    if (!fs.existsSync(join(dir, 'HEAD'))) {
      await mkdir(dir, { recursive: true });
      await git.init({ fs, dir, gitdir: dir, bare: true, defaultBranch: 'main' });
    }
    return dir;
  }

  async head(project: string, app: string, ref = SOURCE_MAIN): Promise<string | null> {
    const dir = this.gitdir(project, app);
    return fs.existsSync(dir) ? readRef(dir, ref) : null;
  }

  /**
   * Writes the objects of a commit holding exactly `files` on top of the ref's head, without
   * moving any ref (the caller moves it once the manifest that pins it is committed). When
   * the tree equals the head's, the head is returned and nothing new is written.
   */
  async prepareCommit(project: string, app: string, files: SourceFile[], author: Author, message: string, ref = SOURCE_MAIN): Promise<PreparedCommit> {
    const dir = await this.ensure(project, app);
    const objects = new ObjectStore(dir);
    const tree = await writeFiles(objects, files);
    const parent = (await readRef(dir, ref)) ?? (ref === SOURCE_MAIN ? null : await readRef(dir, SOURCE_MAIN));
    if (parent && (await objects.readCommit(parent)).tree === tree) return { commit: parent, tree, parent, unchanged: true };
    const when = { timestamp: Math.floor(Date.now() / 1000), timezoneOffset: 0 };
    const commit = await objects.writeCommit({
      tree, parents: parent ? [parent] : [],
      author: { ...author, ...when }, committer: { name: 'ml.ink', email: 'mlink@localhost', ...when },
      message: message.endsWith('\n') ? message : `${message}\n`,
    });
    return { commit, tree, parent, unchanged: false };
  }

  /** Points `ref` at `commit`; if someone moved it meanwhile, it still ends at `commit` (the manifest pins it). */
  async setRef(project: string, app: string, commit: string, expected: string | null, ref = SOURCE_MAIN): Promise<void> {
    const dir = this.gitdir(project, app);
    try {
      await updateRef(dir, ref, commit, expected);
    } catch {
      const lock = await lockRef(dir, ref);
      await lock.commit(commit);
    }
  }

  /** Fetches `ref` (a branch, a tag, or a commit on the default branch) from `url`; returns the commit. */
  async fetch(project: string, app: string, url: string, ref: string): Promise<string> {
    const dir = await this.ensure(project, app);
    const isCommit = /^[0-9a-f]{40}$/.test(ref);
    await git.addRemote({ fs, gitdir: dir, remote: 'origin', url, force: true });
    const res = await git.fetch({ fs, http, gitdir: dir, url, ...(isCommit ? {} : { ref }), singleBranch: !isCommit, tags: !isCommit, remote: 'origin' });
    let commit = isCommit ? ref : res.fetchHead;
    if (!commit) throw new Error(`${url} has no ref ${ref}`);
    if (!isCommit) {
      // A tag may point at a tag object: peel it to the commit.
      const o = await git.readObject({ fs, gitdir: dir, oid: commit });
      if (o.type === 'tag') commit = (o.object as { object: string }).object;
    }
    await git.readCommit({ fs, gitdir: dir, oid: commit });
    return commit;
  }

  /** Whether the commit's objects are here. */
  async hasCommit(project: string, app: string, commit: string): Promise<boolean> {
    const dir = this.gitdir(project, app);
    if (!fs.existsSync(dir)) return false;
    try {
      await new ObjectStore(dir).readCommit(commit);
      return true;
    } catch {
      return false;
    }
  }

  /** Writes the files of `commit` (under `path`, '' for the root) into `dest`, symlinks as symlinks. Returns how many. */
  async exportTree(project: string, app: string, commit: string, path: string, dest: string): Promise<number> {
    const objects = new ObjectStore(this.gitdir(project, app));
    let tree = (await objects.readCommit(commit)).tree;
    for (const seg of path.split('/').filter(Boolean)) {
      const e = (await objects.readTree(tree)).find((x) => x.path === seg && x.type === 'tree');
      if (!e) throw new Error(`${path} is not a directory in source commit ${commit.slice(0, 12)}`);
      tree = e.oid;
    }
    await mkdir(dest, { recursive: true });
    const links: Array<[string, string]> = [];
    let count = 0;
    const walk = async (oid: string, dir: string): Promise<void> => {
      for (const e of await objects.readTree(oid)) {
        const target = join(dir, e.path);
        if (e.type === 'tree') { await mkdir(target); await walk(e.oid, target); continue; }
        if (e.type !== 'blob') continue; // submodules are not exported
        const content = await objects.readBlob(e.oid);
        count++;
        if (e.mode === '120000') links.push([target, content.toString('utf8')]);
        else {
          await writeFile(target, content, { flag: 'wx' });
          if (e.mode === '100755') await chmod(target, 0o755);
        }
      }
    };
    await walk(tree, dest);
    // Links last, so no file is ever written through one.
    for (const [at, to] of links) await symlink(to, at);
    return count;
  }
}

/** Builds the nested trees for a sorted, checked file list; returns the root tree id. */
async function writeFiles(objects: ObjectStore, files: SourceFile[]): Promise<string> {
  const root = new Map<string, unknown>();
  for (const f of files) {
    const parts = f.path.split('/');
    let dir = root;
    for (const p of parts.slice(0, -1)) {
      if (!dir.has(p)) dir.set(p, new Map());
      dir = dir.get(p) as Map<string, unknown>;
    }
    dir.set(parts.at(-1)!, f);
  }
  const write = async (dir: Map<string, unknown>): Promise<string> => {
    const entries: TreeEntry[] = [];
    for (const [name, v] of dir) {
      if (v instanceof Map) entries.push({ mode: '040000', path: name, oid: await write(v as Map<string, unknown>), type: 'tree' });
      else {
        const f = v as SourceFile;
        entries.push({ mode: f.mode, path: name, oid: await objects.writeBlob(f.content), type: 'blob' });
      }
    }
    return objects.writeTree(entries);
  };
  return write(root);
}
