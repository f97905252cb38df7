// Regression: a build context's tar stream lost its data when the tar process finished
// before Docker started reading it (Node empties an unread child's stdout when the child
// exits), so a small context arrived empty and the classic builder said "Cannot locate
// specified Dockerfile: .mlink/Dockerfile". It showed under load, where dockerode takes
// longer to start its request than tar takes to finish; here the read is simply late.
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dockerBuild, tarContext } from '../../reconciler/image-builds/docker-steps.js';
import { must, run } from '../../infra/proc.js';
import { cfg, docker, runId } from '../support/infra.js';

const work = mkdtempSync(join(tmpdir(), 'mlink-context-'));
const tag = `mlink-test/context:${runId}`;
const limits = { cpu: 1, memoryMb: 256, timeoutMs: 60_000 };
const late = (): Promise<void> => new Promise((r) => setTimeout(r, 500)); // tar is long done by then

afterAll(async () => {
  await run('docker', ['rmi', '-f', tag]);
  rmSync(work, { recursive: true, force: true });
});

function context(): string {
  const dir = mkdtempSync(join(work, 'ctx-'));
  mkdirSync(join(dir, '.mlink'));
  writeFileSync(join(dir, 'index.html'), `read late ${runId}\n`);
  writeFileSync(join(dir, '.mlink/Dockerfile'), `FROM ${cfg.images.busybox}\nWORKDIR /app\nCOPY . /app\n`);
  appendFileSync(join(dir, '.dockerignore'), '\n.mlink/Dockerfile\n');
  return dir;
}

describe('a build context read after its tar finished', () => {
  it('still holds every file', async () => {
    const stream = tarContext(context());
    await late();
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    const file = join(work, 'context.tar');
    writeFileSync(file, Buffer.concat(chunks));
    const listing = await must('tar', ['-tf', file]);
    expect(listing.split('\n')).toEqual(expect.arrayContaining(['./index.html', './.mlink/Dockerfile', './.dockerignore']));
  });

  it('builds: Docker finds the Dockerfile and the files', async () => {
    const stream = tarContext(context());
    await late();
    await dockerBuild(docker, stream, { tag, dockerfile: '.mlink/Dockerfile', limits, signal: new AbortController().signal, onLine: () => undefined, onStep: () => undefined });
    expect(await must('docker', ['run', '--rm', '--network', 'none', tag, 'cat', '/app/index.html'])).toBe(`read late ${runId}\n`);
  }, 60_000);

  it('a context that cannot be read fails with tar\'s reason, not with a short archive', async () => {
    const stream = tarContext(join(work, 'gone'));
    const err = await (async () => { for await (const _ of stream) { /* drain */ } })().then(() => undefined, (e: unknown) => e as Error);
    expect(err?.message).toMatch(/tar of the build context .*gone exited 2: .*Cannot open: No such file or directory/);
  });
});
