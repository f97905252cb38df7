// `mlink init`: a bare repo on main with the template, a valid cluster config naming the
// cluster's age public key, and the private key only in the data dir.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { validateClusterConfig } from '../../schemas/index.js';
import { loadClusterKey } from '../../reconciler/state/secrets.js';
import { git } from '../support/state-repo.js';

let home: string;
beforeEach(() => { home = mkdtempSync(join(tmpdir(), 'mlink-init-')); });
afterEach(() => rmSync(home, { recursive: true, force: true }));

const mlink = (...args: string[]): string => execFileSync(process.execPath, ['bin/mlink.js', ...args], { encoding: 'utf8', env: { ...process.env, MLINK_HOME: home } });

describe('mlink init', () => {
  it('creates the state repo in the data dir by default', async () => {
    const out = mlink('init');
    const repo = join(home, 'state');
    expect(out).toContain(`initialised state repo ${repo}`);
    expect(git(repo, 'rev-parse', '--is-bare-repository').trim()).toBe('true');
    expect(git(repo, 'symbolic-ref', 'HEAD').trim()).toBe('refs/heads/main');
    expect(git(repo, 'ls-tree', '-r', '--name-only', 'main').trim().split('\n')).toEqual([
      'README.md', 'apps/.gitkeep', 'databases/.gitkeep', 'examples/apps/default/hello.yaml', 'examples/databases/default/notes-db.yaml', 'mlink.yaml', 'tls/ca.pem',
    ]);
    // The CA: its root committed for clients to trust, its key only in the data dir.
    expect(git(repo, 'show', 'main:tls/ca.pem')).toBe(readFileSync(join(home, 'keys', 'ca.pem'), 'utf8'));
    expect(statSync(join(home, 'keys', 'ca.key.pem')).mode & 0o777).toBe(0o600);
    expect(git(repo, 'log', '-p', 'main')).not.toContain('PRIVATE KEY');
    const config = validateClusterConfig('mlink.yaml', parse(git(repo, 'show', 'main:mlink.yaml')));
    const key = await loadClusterKey(join(home, 'keys'));
    expect(config.spec.secrets.recipients).toEqual([key.recipient]);
    expect(out).toContain(key.recipient);
    expect(statSync(join(home, 'keys', 'cluster.agekey')).mode & 0o777).toBe(0o600);
    expect(git(repo, 'log', '-p', 'main')).not.toContain('AGE-SECRET-KEY');
    expect(git(repo, 'fsck', '--strict', '--no-dangling')).toBe('');
  });

  it('takes a directory and a base domain, and is safe to run twice', () => {
    const dir = join(home, 'elsewhere');
    mlink('init', dir, '--base-domain', 'apps.example.org');
    const first = git(dir, 'rev-parse', 'main').trim();
    expect(git(dir, 'show', 'main:mlink.yaml')).toContain('baseDomain: apps.example.org');
    expect(mlink('init', dir)).toContain('already exists');
    expect(git(dir, 'rev-parse', 'main').trim()).toBe(first);
    expect(readdirSync(join(home, 'keys'))).toEqual(['ca.key.pem', 'ca.pem', 'cluster.agekey']);
  });

  it('refuses a non-empty directory that is not a repo', () => {
    const dir = join(home, 'full');
    execFileSync('mkdir', ['-p', dir]);
    writeFileSync(join(dir, 'file.txt'), 'x');
    expect(() => execFileSync(process.execPath, ['bin/mlink.js', 'init', dir], { env: { ...process.env, MLINK_HOME: home }, stdio: 'pipe' })).toThrow(/exists and is not empty/);
  });
});
