// What a human does to the state repo with git's own CLI: clone it, edit the work tree,
// commit and push to main. Tests and benchmarks use it for changes no tool makes (hosts'
// roles, the registry's address in mlink.yaml).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { must } from '../../infra/proc.js';

/** Clones `repo`, lets `edit` change the work tree, commits every change as Hannah Human and pushes; the new commit. */
export async function humanCommit(repo: string, edit: (work: string) => void, message: string): Promise<string> {
  const work = mkdtempSync(join(tmpdir(), 'mlink-human-'));
  const git = (args: string[]): Promise<string> => must('git', ['-c', 'user.name=Hannah Human', '-c', 'user.email=hannah@example.test', ...args], { cwd: work });
  try {
    await git(['clone', '-q', repo, '.']);
    edit(work);
    await git(['commit', '-qam', message]);
    await git(['push', '-q', 'origin', 'main']);
    return (await git(['rev-parse', 'HEAD'])).trim();
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
