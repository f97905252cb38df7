// The app's build sandbox answers a syntax check from the checker kept running in it
// (real Docker, runsc, the Node.js toolchain image): node's own report for CommonJS and
// ES modules, the gVisor kernel named, and a sandbox removed from outside replaced.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawn } from 'node:child_process';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOOLCHAINS } from '../../reconciler/image-builds/detect.js';
import { SandboxPool } from '../../reconciler/image-builds/sandbox-pool.js';
import { LABEL } from '../../reconciler/model.js';
import { ensureToolchainImage } from '../support/images.js';
import { must } from '../../infra/proc.js';
import { docker, runId } from '../support/infra.js';

const root = mkdtempSync(join(tmpdir(), 'mlink-sandbox-'));
const pool = new SandboxPool({ docker, cluster: runId, runtime: 'runsc', limits: { cpu: 1, memoryMb: 256, timeoutMs: 60_000 }, root });
let image = '';
let ctx = '';

function files(f: Record<string, string>): string {
  const dir = mkdtempSync(join(pool.dirOf('default', 'api'), 'context-'));
  for (const [name, text] of Object.entries(f)) {
    mkdirSync(join(dir, 'src', name, '..'), { recursive: true });
    writeFileSync(join(dir, 'src', name), text);
  }
  return `${basename(dir)}/src`;
}

const check = (cwd: string, names: string[]) => pool.checkSyntax({ project: 'default', name: 'api', image, cwd, signal: new AbortController().signal }, names);
const sandboxes = () => docker.listContainers({ all: true, filters: { label: [`${LABEL.kind}=Build`, `${LABEL.cluster}=${runId}`] } });

beforeAll(async () => {
  image = await ensureToolchainImage(TOOLCHAINS.node);
  ctx = files({
    'good.js': '#!/usr/bin/env node\nconst http = require("http");\nif (!http) return;\nmodule.exports = 1;\n',
    'bad.js': 'const http = require("http");\nhttp.createServer((req, res) => { res.end("x" }).listen(8080);\n',
    'good.mjs': 'import http from "node:http";\nexport const x = await Promise.resolve(http.STATUS_CODES[200]);\n',
    'bad.mjs': 'import http from "node:http";\nexport const = 1;\n',
    'esm/package.json': '{ "type": "module" }\n',
    'esm/bad.js': 'import x from "./y.js";\nexport default x +;\n',
  });
}, 300_000);

afterAll(async () => {
  await pool.close();
  rmSync(root, { recursive: true, force: true });
});

describe('the build sandbox\'s syntax checker', () => {
  it('passes files that parse, without running them (top-level return, shebang, top-level await in a module)', async () => {
    const r = await check(ctx, ['good.js', 'good.mjs']);
    expect(r).toMatchObject({ ok: true, output: '' });
    expect(r.kernel).toMatch(/gVisor/);
    const [box] = await sandboxes();
    expect((await docker.getContainer(box!.Id).inspect()).HostConfig.Runtime).toBe('runsc');
  }, 120_000);

  it('reports a CommonJS syntax error as node --check does: file and line, the line, a caret, the error', async () => {
    const r = await check(ctx, ['good.js', 'bad.js']);
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/^bad\.js:2\nhttp\.createServer\(\(req, res\) => \{ res\.end\("x" \}\)\.listen\(8080\);\n\s+\^+\n\nSyntaxError: missing \) after argument list$/);
    // the very report node --check gives in the same sandbox (which names the file by its full path), up to its stack
    const [box] = await sandboxes();
    const real = await must('docker', ['exec', '-w', `/work/${ctx}`, box!.Id, 'sh', '-c', 'node --check bad.js 2>&1; true']);
    expect(real.split('\n    at ')[0]!.trim().replace(`/work/${ctx}/`, '')).toBe(r.output);
  }, 60_000);

  it('reports ES module errors (.mjs, and .js under "type": "module") with their lines', async () => {
    const r = await check(ctx, ['bad.mjs', 'esm/bad.js']);
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/bad\.mjs:2\n[\s\S]*SyntaxError/);
    expect(r.output).toMatch(/esm\/bad\.js:2\n[\s\S]*SyntaxError/);
  }, 60_000);

  it('lets a worker\'s process exit once the pool is closed: no exec connection to Docker stays open', async () => {
    // A process of its own, as a worker stopping on Ctrl-C: check once, close, and it must end by itself.
    const script = join(root, 'close.mts');
    writeFileSync(script, [
      `import { docker } from ${JSON.stringify(fileURLToPath(new URL('../support/infra.ts', import.meta.url)))};`,
      `import { SandboxPool } from ${JSON.stringify(fileURLToPath(new URL('../../reconciler/image-builds/sandbox-pool.ts', import.meta.url)))};`,
      `const pool = new SandboxPool({ docker, cluster: ${JSON.stringify(`${runId}x`)}, runtime: 'runsc', limits: { cpu: 1, memoryMb: 256, timeoutMs: 60000 }, root: ${JSON.stringify(join(root, 'x'))} });`,
      `const cwd = (await import('node:fs')).mkdtempSync(pool.dirOf('default', 'api') + '/context-');`,
      `(await import('node:fs')).writeFileSync(cwd + '/ok.js', 'module.exports = 1;\\n');`,
      `const r = await pool.checkSyntax({ project: 'default', name: 'api', image: ${JSON.stringify(image)}, cwd: cwd.split('/').pop(), signal: new AbortController().signal }, ['ok.js']);`,
      `console.log('checked', r.ok);`,
      `await pool.close();`,
    ].join('\n'));
    const child = spawn('node', ['--import', 'tsx', script], { cwd: fileURLToPath(new URL('../..', import.meta.url)), stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    const code = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => { child.kill('SIGKILL'); resolve(-1); }, 30_000);
      child.once('exit', (c) => { clearTimeout(timer); resolve(c); });
    });
    expect(out).toContain('checked true');
    expect(code).toBe(0); // -1: still running 30 s after close()
  }, 60_000);

  it('keeps one sandbox and one checker across checks, and replaces a sandbox removed from outside', async () => {
    const before = await sandboxes();
    expect(before).toHaveLength(1);
    await check(ctx, ['good.js']);
    expect((await sandboxes()).map((c) => c.Id)).toEqual(before.map((c) => c.Id));
    await docker.getContainer(before[0]!.Id).remove({ force: true });
    const r = await check(ctx, ['bad.js']);
    expect(r.ok).toBe(false);
    const after = await sandboxes();
    expect(after).toHaveLength(1);
    expect(after[0]!.Id).not.toBe(before[0]!.Id);
  }, 120_000);
});
