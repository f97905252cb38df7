// `npm run bench:commit`: how long one manifest change takes to become a commit, in a
// state repo of 2,000 manifests, with one writer and with 20 concurrent writers; and,
// in the same run, git's own CLI (`git commit`) making the same change in a checkout.
// Our figure is a whole update_app (read, validate, YAML, commit) minus the MCP
// transport; git's is one `git commit` process per change.
process.env.MLINK_LOG_LEVEL ??= 'warn';

import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createDomain } from '../reconciler/domain/index.js';
import { initStateRepo } from '../reconciler/state/init.js';
import { MAIN, StateStore } from '../reconciler/state/store.js';

const PROJECTS = 10;
const PER_PROJECT = 200;
const SINGLE = 200;
const WRITERS = 20;
const PER_WRITER = 20;

function manifest(project: string, name: string, replicas: number): string {
  return stringify({ apiVersion: 'mlink.ink/v1', kind: 'App', metadata: { name, project }, spec: { source: { image: `registry.local/${project}/${name}:1.0` }, port: 8080, replicas, env: { LOG_LEVEL: 'info' } } });
}

function pct(samples: number[], p: number): number {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
}

interface Row { label: string; samples: number[]; wallMs: number }

function row(r: Row): string {
  const f = (n: number): string => `${n.toFixed(1)} ms`.padStart(10);
  return `${r.label.padEnd(30)}${f(pct(r.samples, 50))}${f(pct(r.samples, 99))}${(r.samples.length / (r.wallMs / 1000)).toFixed(0).padStart(12)}`;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const app = (i: number): { project: string; name: string } => ({ project: `team-${i % PROJECTS}`, name: `app-${Math.floor(i / PROJECTS)}` });

async function main(): Promise<void> {
  const home = mkdtempSync(join(tmpdir(), 'mlink-bench-'));
  try {
    const repo = join(home, 'state');
    await initStateRepo({ dir: repo, keysDir: join(home, 'keys') });
    const store = StateStore.open(repo);
    await store.commit({
      ref: MAIN, author: { name: 'bench', email: 'bench@localhost' }, message: 'seed 2,000 manifests',
      prepare: async () => Array.from({ length: PROJECTS * PER_PROJECT }, (_, i) => {
        const { project, name } = app(i);
        return { path: `apps/${project}/${name}.yaml`, content: manifest(project, name, 1) };
      }),
    });
    const checkout = join(home, 'checkout');
    execFileSync('git', ['clone', '-q', repo, checkout]);
    const gitEnv = { ...process.env, GIT_AUTHOR_NAME: 'bench', GIT_AUTHOR_EMAIL: 'bench@localhost', GIT_COMMITTER_NAME: 'bench', GIT_COMMITTER_EMAIL: 'bench@localhost' };
    // No background `git gc --auto` in the checkout: we never pack either, and a detached gc
    // would still be writing when the run ends.
    execFileSync('git', ['-C', checkout, 'config', 'gc.auto', '0']);
    execFileSync('git', ['-C', checkout, 'config', 'maintenance.auto', 'false']);
    const count = execFileSync('git', ['-C', checkout, 'ls-files', 'apps/*.yaml'], { encoding: 'utf8' }).trim().split('\n').length;

    const domain = (n: number) => createDomain({ store, agent: { name: `agent-${n}`, projects: ['*'], mode: 'commit', access: 'write' } });
    let replicas = 2;
    const ours = async (d: ReturnType<typeof domain>, i: number): Promise<number> => {
      const { project, name } = app(i);
      const r = replicas++ % 20;
      return timed(() => d.updateApp({ name, project, replicas: r }));
    };
    const gitCommit = async (i: number): Promise<number> => {
      const { project, name } = app(i);
      const path = `apps/${project}/${name}.yaml`;
      const r = replicas++ % 20;
      return timed(async () => {
        writeFileSync(join(checkout, path), manifest(project, name, r));
        for (;;) {
          const failed = await new Promise<string | null>((resolve) => execFile('git', ['-C', checkout, 'commit', '-q', '-m', `update app ${project}/${name}: replicas ${r}`, '--', path], { env: gitEnv }, (err, _o, stderr) => resolve(err ? String(stderr) : null)));
          if (!failed) return;
          if (!/index\.lock|cannot lock ref/.test(failed)) throw new Error(failed);
          await sleep(1); // another git process holds the index or a ref: wait, as a script would
        }
      });
    };

    // Warm both up (tsx transforms, page cache), then measure.
    for (let i = 0; i < 10; i++) { await ours(domain(0), i); await gitCommit(i); }

    const rows: Row[] = [];
    const single = async (label: string, fn: (i: number) => Promise<number>, n: number): Promise<void> => {
      const samples: number[] = [];
      const t0 = performance.now();
      for (let i = 0; i < n; i++) samples.push(await fn((i * 7) % count));
      rows.push({ label, samples, wallMs: performance.now() - t0 });
    };
    const concurrent = async (label: string, fn: (w: number, i: number) => Promise<number>): Promise<void> => {
      const samples: number[] = [];
      const t0 = performance.now();
      await Promise.all(Array.from({ length: WRITERS }, async (_, w) => {
        for (let j = 0; j < PER_WRITER; j++) samples.push(await fn(w, (w * 97 + j * 13) % count));
      }));
      rows.push({ label, samples, wallMs: performance.now() - t0 });
    };

    const d0 = domain(0);
    await single('mlink, 1 writer', (i) => ours(d0, i), SINGLE);
    await single('git commit CLI, 1 writer', (i) => gitCommit(i), SINGLE);
    const ds = Array.from({ length: WRITERS }, (_, w) => domain(w));
    await concurrent(`mlink, ${WRITERS} writers`, (w, i) => ours(ds[w]!, i));
    await concurrent(`git commit CLI, ${WRITERS} writers`, (_w, i) => gitCommit(i));

    const out = [
      `commit latency of one manifest change; repo of ${count} manifests (${PROJECTS} projects x ${PER_PROJECT} apps); node ${process.version}, ${execFileSync('git', ['--version'], { encoding: 'utf8' }).trim()}`,
      `mlink = update_app through the domain (read, validate, YAML, commit via the state store), no MCP transport`,
      `${''.padEnd(30)}${'p50'.padStart(10)}${'p99'.padStart(10)}${'commits/s'.padStart(12)}`,
      ...rows.map(row),
    ];
    process.stdout.write(out.join('\n') + '\n');
    const fsck = execFileSync('git', ['-C', repo, 'fsck', '--strict', '--no-dangling'], { encoding: 'utf8' });
    if (fsck.trim()) throw new Error(`git fsck after the benchmark:\n${fsck}`);
  } finally {
    await sleep(100); // let any git child still running exit before removing its checkout
    rmSync(home, { recursive: true, force: true, maxRetries: 5 });
  }
}

await main();
