// Review mode: an agent in propose mode writes to proposals/<id>, main stays put until a
// human approves with `mlink review`; the branches are plain git branches.
import { execFileSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { call, git, head, memoryClient, structured, tempState, text, writer, type TempState } from '../support/state-repo.js';

let t: TempState;
beforeEach(async () => { t = await tempState(); });
afterEach(() => t.cleanup());

function review(...args: string[]): string {
  return execFileSync(process.execPath, ['bin/mlink.js', 'review', ...args, '--repo', t.repo, '--author', 'Rita Reviewer <rita@example.com>'], {
    encoding: 'utf8', env: { ...process.env, MLINK_HOME: t.home },
  });
}

const app = { name: 'web', source: { image: 'nginx:1.27' }, port: 80 };

describe('review mode', () => {
  it('puts a propose-mode agent\'s change on a proposal branch; approve merges it with the reviewer as author', async () => {
    const agent = await memoryClient(t.store, writer('intern', { mode: 'propose' }));
    const main = head(t.repo);
    const w = structured<{ proposal: string; branch: string; commit: string }>(await call(agent, 'create_app', app));
    expect(w.proposal).toMatch(/^intern-\d{8}-\d{6}-[0-9a-f]{4}$/);
    expect(w.branch).toBe(`proposals/${w.proposal}`);
    expect(head(t.repo)).toBe(main);
    expect(git(t.repo, 'rev-parse', w.branch).trim()).toBe(w.commit);

    // The agent adds to its own proposal; reads of main do not see it yet.
    structured(await call(agent, 'create_database', { name: 'db', engine: 'postgres', proposal: w.proposal }));
    expect(text(await call(agent, 'get_app', { name: 'web' }))).toContain('not_found');
    const listed = structured<{ proposals: Array<{ id: string; files: Array<{ path: string }>; commits: unknown[] }> }>(await call(agent, 'list_proposals', {}));
    expect(listed.proposals.map((p) => [p.id, p.files.map((f) => f.path).sort(), p.commits.length])).toEqual([[w.proposal, ['apps/default/web.yaml', 'databases/default/db.yaml', 'secrets/default/db.db/credentials.age'], 2]]);

    expect(review('list')).toContain(`${w.proposal}\tintern\t3 files`);
    const shown = review('show', w.proposal);
    expect(shown).toContain('added    apps/default/web.yaml');
    expect(shown).toContain('| kind: App');

    // Main moved on meanwhile (another agent); the proposal still merges because it touches other files.
    const other = await memoryClient(t.store, writer('claude'));
    structured(await call(other, 'create_app', { ...app, name: 'other' }));

    expect(review('approve', w.proposal)).toMatch(/^merged proposal .* into main as [0-9a-f]{40}\n$/);
    expect(git(t.repo, 'log', '-1', '--format=%an <%ae>|%P', 'main').trim()).toMatch(/^Rita Reviewer <rita@example.com>\|[0-9a-f]{40} [0-9a-f]{40}$/);
    expect(git(t.repo, 'ls-tree', '-r', '--name-only', 'main')).toContain('databases/default/db.yaml');
    expect(git(t.repo, 'branch', '--list', 'proposals/*').trim()).toBe('');
    expect(git(t.repo, 'log', '--format=%an', 'main', '--', 'apps/default/web.yaml').trim()).toBe('intern');
    expect(git(t.repo, 'fsck', '--strict', '--no-dangling')).toBe('');
    // History of the app follows the merge to the agent's commit.
    const hist = structured<{ commits: Array<{ author: { name: string } }> }>(await call(other, 'history', { name: 'web' }));
    expect(hist.commits.map((c) => c.author.name)).toEqual(['intern']);
  });

  it('reject deletes the branch and leaves main as it was', async () => {
    const agent = await memoryClient(t.store, writer('intern', { mode: 'propose' }));
    const main = head(t.repo);
    const w = structured<{ proposal: string }>(await call(agent, 'create_app', app));
    expect(review('reject', w.proposal)).toContain(`rejected proposal ${w.proposal}`);
    expect(head(t.repo)).toBe(main);
    expect(review('list')).toBe('no open proposals\n');
    expect(text(await call(agent, 'update_app', { name: 'web', port: 81, proposal: w.proposal }))).toContain('does not exist (it may have been approved or rejected)');
  });

  it('refuses to approve a proposal that conflicts with main, naming the file', async () => {
    const committer = await memoryClient(t.store, writer('claude'));
    structured(await call(committer, 'create_app', app));
    const agent = await memoryClient(t.store, writer('intern', { mode: 'propose' }));
    const w = structured<{ proposal: string }>(await call(agent, 'update_app', { name: 'web', port: 81 }));
    structured(await call(committer, 'update_app', { name: 'web', port: 82 }));
    const main = head(t.repo);
    let err = '';
    try { review('approve', w.proposal); } catch (e) { err = String((e as { stderr: string }).stderr); }
    expect(err).toContain(`proposal ${w.proposal} conflicts with main on apps/default/web.yaml`);
    expect(head(t.repo)).toBe(main);
  });

  it('a proposal branch merged by plain git (as a git host would) lands like an approval', async () => {
    const agent = await memoryClient(t.store, writer('intern', { mode: 'propose' }));
    const w = structured<{ proposal: string }>(await call(agent, 'create_app', app));
    const clone = `${t.home}/host`;
    git(t.home, 'clone', '-q', t.repo, clone);
    git(clone, 'merge', '--no-ff', '-q', '-m', 'Merge request !1', `origin/proposals/${w.proposal}`);
    git(clone, 'push', '-q', 'origin', 'main');
    expect(structured<{ app: { metadata: { name: string } } }>(await call(agent, 'get_app', { name: 'web' })).app.metadata.name).toBe('web');
  });
});
