// The image step for ml.ink's generated Dockerfiles writes the COPY layer itself onto a
// cached prefix image (reconciler/image-builds/assemble.ts). Real Docker: the same source and
// Dockerfile built by the classic builder and assembled must give the same files (path,
// type, mode, owner, size, content, link target) and the same config; anything else
// goes to the classic builder.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assembly, loadAssembled, OWN_IGNORE, prefixTag, writeLayer, type Assembly } from '../../reconciler/image-builds/assemble.js';
import { detect, TOOLCHAINS } from '../../reconciler/image-builds/detect.js';
import { dockerBuild, tarContext } from '../../reconciler/image-builds/docker-steps.js';
import { must, run } from '../../infra/proc.js';
import { ensureToolchainImage } from '../support/images.js';
import { docker, runId } from '../support/infra.js';

const work = mkdtempSync(join(tmpdir(), 'mlink-assemble-'));
const limits = { cpu: 1, memoryMb: 512, timeoutMs: 120_000 };
const classicTag = `mlink-test/assemble:classic-${runId}`;
const assembledTag = `mlink-test/assemble:assembled-${runId}`;
const secondTag = `mlink-test/assemble:second-${runId}`;
const signal = new AbortController().signal;
let ctx = '';
let dockerfile = '';

/** A source as the builder leaves it before the image step: files, ml.ink's Dockerfile, its .dockerignore line. */
function source(dir: string, files: Record<string, string>): string {
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  const d = detect(dir);
  mkdirSync(join(dir, '.mlink'), { recursive: true });
  writeFileSync(join(dir, d.dockerfile), d.generated!);
  appendFileSync(join(dir, '.dockerignore'), `\n${OWN_IGNORE}\n`);
  return d.generated!;
}

/** Every file under /app in `image`: path, type and mode, owner, size, link target, and a content digest. */
async function listing(image: string): Promise<string> {
  const script = `find /app -printf '%p %M %U:%G %s %l\\n' | sort; find /app -type f -print0 | sort -z | xargs -0 sha256sum`;
  return (await must('docker', ['run', '--rm', '--network', 'none', '--entrypoint', 'sh', image, "-c", script]));
}

const configOf = async (image: string) => {
  const c = (await docker.getImage(image).inspect()).Config;
  return { Cmd: c.Cmd, Entrypoint: c.Entrypoint, Env: c.Env, WorkingDir: c.WorkingDir, User: c.User, Labels: c.Labels, ExposedPorts: c.ExposedPorts, Volumes: c.Volumes };
};

beforeAll(async () => {
  await ensureToolchainImage(TOOLCHAINS.node);
  ctx = join(work, 'src');
  mkdirSync(ctx);
  dockerfile = source(ctx, {
    'package.json': JSON.stringify({ name: 'asm', main: 'server.js' }),
    'server.js': 'require("http").createServer((q, s) => s.end("ok")).listen(8080);\n',
    'lib/util.js': 'module.exports = 1;\n',
    'bin/run.sh': '#!/bin/sh\nexec node /app/server.js\n',
    '.env.example': 'A=1\n',
    [`deep/${'a-rather-long-directory-name/'.repeat(5)}file-with-a-long-name.txt`]: 'a path over 100 characters\n',
    'empty.txt': '',
  });
  chmodSync(join(ctx, 'bin/run.sh'), 0o755);
  symlinkSync('lib/util.js', join(ctx, 'current.js'));
  mkdirSync(join(ctx, 'empty-dir'));
}, 300_000);

afterAll(async () => {
  await run('docker', ['rmi', '-f', classicTag, assembledTag, secondTag]);
  rmSync(work, { recursive: true, force: true });
});

describe('an assembled image', () => {
  it('has the files and config the classic builder gives for the same Dockerfile', async () => {
    const asm = assembly(dockerfile, ctx) as Assembly;
    expect(asm).toMatchObject({ dest: '/app' });
    await dockerBuild(docker, tarContext(ctx), { tag: classicTag, dockerfile: '.mlink/Dockerfile', limits, signal, onLine: () => undefined, onStep: () => undefined });
    const layer = await writeLayer(ctx, asm.dest, join(work, 'layer.tar'), signal);
    const out = await loadAssembled(docker, asm, layer, assembledTag, { limits, signal, onLine: () => undefined });
    expect(out.prefixTag).toBe(prefixTag(asm.prefix));

    const [classic, assembled] = [await listing(classicTag), await listing(assembledTag)];
    expect(assembled).toContain('/app/current.js lrwxrwxrwx 0:0');
    expect(assembled).toContain('/app/bin/run.sh -rwxr-xr-x 0:0');
    expect(assembled).toContain('file-with-a-long-name.txt');
    expect(assembled).not.toContain('.mlink/Dockerfile');
    expect(assembled).toBe(classic);
    expect(await configOf(assembledTag)).toEqual(await configOf(classicTag));

    // The prefix's layers are the classic image's own, below one new layer; `docker history` reads the same.
    const [c, a] = [await docker.getImage(classicTag).inspect(), await docker.getImage(assembledTag).inspect()];
    expect(a.RootFS.Layers!.slice(0, -1)).toEqual(c.RootFS.Layers!.slice(0, -1));
    expect(a.RootFS.Layers).toHaveLength(c.RootFS.Layers!.length);
    const history = (await must('docker', ['history', '--no-trunc', '--format', '{{.CreatedBy}}', assembledTag])).trim().split('\n');
    const classicHistory = (await must('docker', ['history', '--no-trunc', '--format', '{{.CreatedBy}}', classicTag])).trim().split('\n');
    expect(history[0]).toContain('COPY . /app');
    expect(history.slice(1)).toEqual(classicHistory.slice(1));
  }, 300_000);

  it('a second source with one line changed needs only its own layer: the prefix image is reused', async () => {
    writeFileSync(join(ctx, 'server.js'), 'require("http").createServer((q, s) => s.end("ok 2")).listen(8080);\n');
    const asm = assembly(dockerfile, ctx) as Assembly;
    const layer = await writeLayer(ctx, asm.dest, join(work, 'layer2.tar'), signal);
    const out = await loadAssembled(docker, asm, layer, secondTag, { limits, signal, onLine: () => undefined });
    expect(out.prefixBuilt).toBe(false);
    const cat = await must('docker', ['run', '--rm', '--network', 'none', secondTag, 'cat', '/app/server.js']);
    expect(cat).toContain('ok 2');
  }, 120_000);
});

describe('two builds of one prefix at once', () => {
  // Regression: the prefix build shared by builds that need it at once ran under the
  // first build's stop signal, so when that build stopped (its time limit, or its syntax
  // check failed and its image step was called off), the other build failed with "the
  // build took longer than ... and was stopped": a final failure, never retried for
  // that source. Each build's context directory is its own (mkdtemp); the signal was shared.
  it('a build that stops while they share the prefix build does not stop the other', async () => {
    const text = `FROM ${(await import('../support/infra.js')).cfg.images.busybox}\nRUN sleep 3\nENV SHARED=${runId}\nWORKDIR /app\nCOPY . /app\n`;
    const dir = mkdtempSync(join(work, 'shared-'));
    writeFileSync(join(dir, 'index.html'), 'shared\n');
    const asm = assembly(text, dir) as Assembly;
    const tags = [`mlink-test/assemble:stopped-${runId}`, `mlink-test/assemble:kept-${runId}`];
    const logs: string[][] = [[], []];
    try {
      const stop = new AbortController();
      const first = loadAssembled(docker, asm, await writeLayer(dir, asm.dest, join(dir, '..', `a-${runId}.tar`), signal), tags[0]!, { limits, signal: stop.signal, onLine: (l) => logs[0]!.push(l) });
      await new Promise((r) => setTimeout(r, 300));
      const second = loadAssembled(docker, asm, await writeLayer(dir, asm.dest, join(dir, '..', `b-${runId}.tar`), signal), tags[1]!, { limits, signal, onLine: (l) => logs[1]!.push(l) });
      setTimeout(() => stop.abort(), 1000);
      const [a, b] = await Promise.allSettled([first, second]);
      expect(a.status).toBe('rejected');
      expect(b).toEqual({ status: 'fulfilled', value: { prefixTag: prefixTag(asm.prefix), prefixBuilt: false } });
      expect(await must('docker', ['run', '--rm', '--network', 'none', tags[1]!, 'cat', '/app/index.html'])).toBe('shared\n');
      // the build that joined sees the prefix build's log from then on
      expect(logs[1]!.filter((l) => l.startsWith('prefix: ')).join('\n')).toMatch(/prefix: Successfully tagged mlink-prefix\/app:/);
    } finally {
      await run('docker', ['rmi', '-f', ...tags, prefixTag(asm.prefix)]);
    }
  }, 120_000);
});

describe('what goes to the classic builder instead', () => {
  it('a source with a .dockerignore of its own, a COPY to another directory, a Dockerfile that copies earlier', () => {
    const dir = mkdtempSync(join(work, 'ignore-'));
    writeFileSync(join(dir, '.dockerignore'), 'secrets/\n');
    const text = source(dir, { 'package.json': '{"main":"server.js"}', 'server.js': '1;\n' });
    expect(assembly(text, dir)).toEqual({ not: 'the source has a .dockerignore of its own' });
    expect(assembly('FROM x\nWORKDIR /srv\nCOPY . /app\n', ctx)).toEqual({ not: 'COPY goes to /app, not to the WORKDIR' });
    expect(assembly('FROM x\nWORKDIR /app\nCOPY .mlink/app /app/server\n', ctx)).toMatchObject({ not: expect.stringContaining('not COPY . <dir>') });
    expect(assembly('FROM x\nCOPY a /a\nWORKDIR /app\nCOPY . /app\n', ctx)).toEqual({ not: 'an instruction before the last reads the source' });
  });
});
