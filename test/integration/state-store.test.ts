// The git state store against git's own CLI: objects it writes pass `git fsck`, its
// trees match what git would build, concurrent writers lose nothing, and humans' git
// operations (commit, push, revert) interleave with agents' writes safely.
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readNote, writeNote } from '../../reconciler/state/notes.js';
import { MAIN, StateStore } from '../../reconciler/state/store.js';
import { call, git, head, memoryClient, structured, tempState, text, writer, type TempState } from '../support/state-repo.js';

let t: TempState;
beforeEach(async () => { t = await tempState(); });
afterEach(() => t.cleanup());

const appArgs = (name: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ name, source: { image: 'nginx:1.27' }, port: 80, ...extra });

describe('state store', () => {
  it('writes commits git fsck accepts, with trees identical to the ones git builds from the same files', async () => {
    const client = await memoryClient(t.store, writer());
    for (const name of ['b', 'a', 'a-b', 'a0', 'ab']) structured(await call(client, 'create_app', appArgs(name, { project: name === 'a0' ? 'other' : 'default' })));
    structured(await call(client, 'create_database', { name: 'db', engine: 'postgres' }));
    expect(git(t.repo, 'fsck', '--strict', '--no-dangling')).toBe('');
    // Rebuild the same files through git's index in a clone and compare the tree ids.
    const clone = join(t.home, 'clone');
    git(t.home, 'clone', '-q', t.repo, clone);
    git(clone, 'rm', '-rq', '--cached', '.');
    git(clone, 'add', '-A');
    expect(git(clone, 'write-tree').trim()).toBe(git(t.repo, 'rev-parse', 'main^{tree}').trim());
    expect(git(t.repo, 'ls-tree', '-r', '--name-only', 'main')).toContain('apps/other/a0.yaml');
  });

  it('20 concurrent writers making 20 changes each leave 400 commits and every change', async () => {
    const before = Number(git(t.repo, 'rev-list', '--count', 'main').trim());
    const clients = await Promise.all(Array.from({ length: 20 }, (_, i) => memoryClient(t.store, writer(`agent-${i}`))));
    await Promise.all(clients.map(async (client, i) => {
      for (let j = 0; j < 20; j++) {
        const r = await call(client, j === 0 ? 'create_app' : 'update_app', j === 0 ? appArgs(`app-${i}`, { replicas: 0 }) : { name: `app-${i}`, replicas: j });
        expect(r.isError, text(r)).toBeFalsy();
      }
    }));
    expect(Number(git(t.repo, 'rev-list', '--count', 'main').trim()) - before).toBe(400);
    for (let i = 0; i < 20; i++) {
      expect(git(t.repo, 'show', `main:apps/default/app-${i}.yaml`)).toContain('replicas: 19');
      expect(git(t.repo, 'log', '--format=%an', '--author', `agent-${i} <`, 'main').trim().split('\n')).toHaveLength(20);
    }
    expect(git(t.repo, 'fsck', '--strict', '--no-dangling')).toBe('');
  });

  it('retries on top of a commit another process made, never overwriting it', async () => {
    const client = await memoryClient(t.store, writer());
    structured(await call(client, 'create_app', appArgs('web')));
    // A human pushes a commit straight into the repo with git's CLI.
    const clone = join(t.home, 'human');
    git(t.home, 'clone', '-q', t.repo, clone);
    writeFileSync(join(clone, 'NOTES.md'), 'operator notes\n');
    git(clone, 'add', 'NOTES.md');
    git(clone, 'commit', '-qm', 'Operator notes');
    git(clone, 'push', '-q', 'origin', 'main');
    structured(await call(client, 'update_app', { name: 'web', replicas: 3 }));
    expect(git(t.repo, 'log', '--format=%s', '-2', 'main')).toBe('update app default/web: replicas 3\nOperator notes\n');
    expect(git(t.repo, 'show', 'main:NOTES.md')).toBe('operator notes\n');
  });

  it("two processes writing at once both land every commit (git's ref lock)", async () => {
    const before = Number(git(t.repo, 'rev-list', '--count', 'main').trim());
    const child = (prefix: string): Promise<void> => new Promise((resolve, reject) => {
      execFile(process.execPath, ['--import', 'tsx', 'test/support/commit-loop.ts', t.repo, prefix, '150'], (err) => (err ? reject(err) : resolve()));
    });
    await Promise.all([child('left'), child('right')]);
    expect(Number(git(t.repo, 'rev-list', '--count', 'main').trim()) - before).toBe(300);
    const files = git(t.repo, 'ls-tree', '-r', '--name-only', 'main', 'notes/').trim().split('\n');
    expect(files).toHaveLength(300);
    expect(git(t.repo, 'fsck', '--strict', '--no-dangling')).toBe('');
  });

  it('a second StateStore in the same process (or another process) sees and builds on new commits', async () => {
    const other = StateStore.open(t.repo);
    const a = await memoryClient(t.store, writer('a'));
    const b = await memoryClient(other, writer('b'));
    await Promise.all([call(a, 'create_app', appArgs('one')), call(b, 'create_app', appArgs('two'))]);
    const files = git(t.repo, 'ls-tree', '--name-only', 'main', 'apps/default/');
    expect(files).toContain('one.yaml');
    expect(files).toContain('two.yaml');
  });

  it("a human's git revert of an agent commit works, and the store reads the reverted state", async () => {
    const client = await memoryClient(t.store, writer());
    structured(await call(client, 'create_app', appArgs('web')));
    const change = structured<{ commit: string }>(await call(client, 'update_app', { name: 'web', port: 8080 }));
    const clone = join(t.home, 'human');
    git(t.home, 'clone', '-q', t.repo, clone);
    git(clone, 'revert', '--no-edit', change.commit);
    git(clone, 'push', '-q', 'origin', 'main');
    const app = structured<{ app: { spec: { port: number } } }>(await call(client, 'get_app', { name: 'web' }));
    expect(app.app.spec.port).toBe(80);
    expect(git(t.repo, 'log', '-1', '--format=%an %s', 'main').trim()).toBe(`Human Reviewer Revert "update app default/web: port 8080"`);
  });

  it('reverts an earlier commit as a new commit, and refuses with a clear conflict when the file changed since', async () => {
    const client = await memoryClient(t.store, writer());
    structured(await call(client, 'create_app', appArgs('web')));
    const first = structured<{ commit: string }>(await call(client, 'update_app', { name: 'web', port: 81 }));
    structured(await call(client, 'update_app', { name: 'web', port: 82 }));
    const before = head(t.repo);
    const r = await call(client, 'revert', { commit: first.commit });
    expect(r.isError).toBe(true);
    expect(text(r)).toMatch(/conflict: cannot revert [0-9a-f]{12}: apps\/default\/web\.yaml changed after it/);
    expect(head(t.repo)).toBe(before);

    const created = structured<{ commits: Array<{ commit: string; subject: string }> }>(await call(client, 'history', { name: 'web' }));
    expect(created.commits.map((c) => c.subject)).toEqual(['update app default/web: port 82', 'update app default/web: port 81', 'create app default/web: image nginx:1.27, port 80']);
    const last = structured<{ commit: string }>(await call(client, 'revert', { commit: created.commits[0]!.commit.slice(0, 10) }));
    expect(git(t.repo, 'show', 'main:apps/default/web.yaml')).toContain('port: 81');
    expect(git(t.repo, 'log', '-1', '--format=%B', last.commit)).toContain(`This reverts commit ${created.commits[0]!.commit}.`);
  });

  it('refuses to let an agent revert a cluster-wide change', async () => {
    const client = await memoryClient(t.store, writer());
    const init = git(t.repo, 'rev-list', '--max-parents=0', 'main').trim();
    const clone = join(t.home, 'human');
    git(t.home, 'clone', '-q', t.repo, clone);
    writeFileSync(join(clone, 'mlink.yaml'), git(clone, 'show', 'HEAD:mlink.yaml').replace('baseDomain: localhost', 'baseDomain: example.test'));
    git(clone, 'commit', '-qam', 'Use example.test');
    git(clone, 'push', '-q', 'origin', 'main');
    const r = await call(client, 'revert', { commit: head(t.repo) });
    expect(text(r)).toContain('mlink.yaml, which is cluster-wide; only a human can revert it');
    expect(text(await call(client, 'revert', { commit: init }))).toContain("repository's first commit");
  });

  it('records status as git notes that git log --notes shows', async () => {
    const commit = head(t.repo);
    await writeNote(t.store, commit, 'phase: Applied\nrevision: ok');
    await writeNote(t.store, commit, 'phase: Applied again');
    expect(await readNote(t.store, commit)).toBe('phase: Applied again\n');
    expect(git(t.repo, 'log', '-1', '--notes=mlink', '--format=%N', commit).trim()).toBe('phase: Applied again');
    // A note git itself wrote is read too.
    git(t.repo, 'notes', '--ref=mlink', 'add', '-f', '-m', 'written by git', commit);
    expect(await readNote(t.store, commit)).toBe('written by git\n');
    expect(git(t.repo, 'fsck', '--strict', '--no-dangling')).toBe('');
  });

  it('keeps writing after git gc packed the objects and removed their directories', async () => {
    const client = await memoryClient(t.store, writer());
    const created = structured<{ commit: string }>(await call(client, 'create_app', appArgs('web')));
    const blob = git(t.repo, 'rev-parse', `${created.commit}:apps/default/web.yaml`).trim();
    git(t.repo, 'gc', '-q', '--prune=now');
    expect(git(t.repo, 'count-objects', '-v')).toMatch(/^count: 0$/m);
    // Write a file whose blob lands in the same objects/xx/ directory gc just removed.
    const blobId = (text: string): string => createHash('sha1').update(`blob ${Buffer.byteLength(text)}\0${text}`).digest('hex');
    let n = 0;
    while (blobId(`note ${n}\n`).slice(0, 2) !== blob.slice(0, 2)) n++;
    await t.store.commit({ ref: MAIN, author: { name: 'test', email: 'test@example.com' }, message: 'same fan-out', prepare: async () => [{ path: 'NOTE.txt', content: `note ${n}\n` }] });
    structured(await call(client, 'update_app', { name: 'web', port: 83 }));
    expect(git(t.repo, 'show', 'main:NOTE.txt')).toBe(`note ${n}\n`);
    expect(git(t.repo, 'show', 'main:apps/default/web.yaml')).toContain('port: 83');
    expect(git(t.repo, 'fsck', '--strict', '--no-dangling')).toBe('');
  });

  it('reads the desired state at any ref', async () => {
    const client = await memoryClient(t.store, writer());
    const c1 = structured<{ commit: string }>(await call(client, 'create_app', appArgs('web')));
    structured(await call(client, 'delete_app', { name: 'web' }));
    expect(await (await t.store.view(c1.commit)).readText('apps/default/web.yaml')).toContain('name: web');
    expect(await (await t.store.view(MAIN)).readText('apps/default/web.yaml')).toBeNull();
    expect(git(t.repo, 'ls-tree', 'main', 'apps/')).not.toContain('default');
  });

  it('opens a non-bare repository too', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mlink-nonbare-'));
    execFileSync('git', ['init', '-q', '-b', 'main', dir]);
    expect(StateStore.open(dir).gitdir).toBe(join(dir, '.git'));
    expect(() => StateStore.open(join(dir, 'nope'))).toThrow(/not a git repository; create one with `mlink init/);
  });
});
