// Builds from source, as a new user would: `mlink up`, an SDK MCP client that sends a
// static site, a Node.js server without a Dockerfile and an app with its own
// Dockerfile, each reached through Traefik; an update of one file; a human's
// `git revert` that brings the old version back from the old image, not a rebuild; a
// failed build that leaves the running version serving; `git clone` of the internal
// source repo; and refusals that store nothing.
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { must, run } from '../../infra/proc.js';
import { LABEL } from '../../reconciler/model.js';
import { ensureWebImage } from '../support/images.js';
import { cfg, docker, eventually, removeTestContainers, runId, viaTraefik } from '../support/infra.js';
import { call, connectAgent, removeHome, startUp, stopUp, upEnv, type Up } from '../support/mlink-up.js';

const cluster = `bld${runId}`.slice(0, 30);
let up: Up;
let agent: Client;
let gitBase = '';

type Live = { known: boolean; phase?: string; message?: string; build?: { phase: string; method?: string; step?: string; dockerfile?: string; last_lines: string[] } };

async function page(name: string): Promise<string | undefined> {
  const r = await viaTraefik(`${name}.default.localhost`).catch(() => undefined);
  return r?.status === 200 ? r.body.trim() : undefined;
}

const serves = (name: string, text: string, ms = 180_000): Promise<string> =>
  eventually(`${name} serves ${JSON.stringify(text)}`, async () => ((await page(name))?.includes(text) ? (await page(name))! : undefined), ms);

async function live(name: string): Promise<Live> {
  return (await call<{ live: Live }>(agent, 'get_app', { name })).live;
}

function buildDirs(app: string): string[] {
  const dir = join(up.home, 'builds', 'default', app);
  return existsSync(dir) ? readdirSync(dir).filter((d) => d !== 'latest') : [];
}

async function refusal(args: Record<string, unknown>): Promise<string> {
  const r = await agent.callTool({ name: 'create_app', arguments: args });
  expect(r.isError).toBe(true);
  return (r.content as Array<{ text: string }>).map((c) => c.text).join('\n');
}

const nodeServer = (greeting: string): Record<string, string> => ({
  'package.json': JSON.stringify({ name: 'api', version: '1.0.0', main: 'server.js' }),
  'server.js': `const http = require('http');\nconst greeting = '${greeting}';\nhttp.createServer((req, res) => res.end(greeting + ' from node ' + process.version + '\\n')).listen(Number(process.env.PORT));\n`,
  'lib/util.js': 'module.exports = () => 42;\n',
});

beforeAll(async () => {
  await ensureWebImage();
  up = await startUp({ cluster, args: ['--git-port', '0'] });
  agent = await connectAgent(up);
  gitBase = /source repos\s+(http:\/\/\S+?)\/<project>/.exec(up.output())![1]!;
}, 120_000);

afterAll(async () => {
  await agent?.close().catch(() => undefined);
  if (!up) return;
  await stopUp(up);
  const leftovers = await docker.listContainers({ all: true, filters: { label: [`${LABEL.cluster}=${cluster}`] } });
  await Promise.all(leftovers.map((c) => docker.getContainer(c.Id).remove({ force: true })));
  for (const f of readdirSync(cfg.traefik.routesDir).filter((f) => f.startsWith(`mlink-${cluster}--`))) rmSync(join(cfg.traefik.routesDir, f), { force: true });
  const nets = await docker.listNetworks({ filters: { label: [`${LABEL.cluster}=${cluster}`] } });
  await Promise.all(nets.map((n) => docker.getNetwork(n.Id).remove().catch(() => undefined)));
  // Images this run built (toolchains stay: they are the shared cache).
  const builds = join(up.home, 'builds', 'default');
  for (const app of existsSync(builds) ? readdirSync(builds) : []) {
    for (const key of readdirSync(join(builds, app)).filter((k) => k !== 'latest')) {
      const rec = JSON.parse(readFileSync(join(builds, app, key, 'build.json'), 'utf8')) as { image: string };
      await docker.getImage(rec.image).remove({ force: true }).catch(() => undefined);
    }
  }
  removeHome(up);
  await removeTestContainers();
}, 60_000);

describe('builds from source, end to end', () => {
  let v1 = '';
  let v2 = '';

  it('serves a static site sent as files, built by ml.ink\'s own detection', async () => {
    await call(agent, 'create_app', { name: 'site', source: { files: { 'index.html': '<h1>hello from a static site</h1>\n', 'css/site.css': 'h1 { color: teal }\n' } }, port: 8080 });
    expect(await serves('site', 'hello from a static site')).toContain('<h1>');
    expect((await viaTraefik('site.default.localhost', '/css/site.css')).body).toContain('teal');
    const l = await live('site');
    expect(l).toMatchObject({ phase: 'Running', build: { phase: 'Built', method: 'static' } });
    expect(l.build!.dockerfile).toMatch(/^# Generated by ml\.ink \(static\)/);
  }, 300_000);

  it('serves a Node.js server without a Dockerfile; its install and checks ran under gVisor', async () => {
    v1 = (await call<{ commit: string }>(agent, 'create_app', { name: 'api', source: { files: nodeServer('v1') }, port: 8080 })).commit;
    expect(await serves('api', 'v1 from node')).toMatch(/^v1 from node v18/);
    const logs = await call<{ lines: string[] }>(agent, 'app_logs', { name: 'api', lines: 500 });
    expect(logs.lines.join('\n')).toMatch(/detect: method node/);
    expect(logs.lines.join('\n')).toMatch(/sandbox kernel: .*Starting gVisor/);
    const runtime = await call<{ kind: string }>(agent, 'app_logs', { name: 'api', kind: 'runtime' });
    expect(runtime.kind).toBe('runtime');
  }, 300_000);

  it('serves an app with its own Dockerfile, RUN steps included', async () => {
    const dockerfile = `FROM ${await ensureWebImage()}\nRUN echo built-by-dockerfile > /built.txt\nENV GREETING=dockerfile\n`;
    await call(agent, 'create_app', { name: 'own', source: { files: { Dockerfile: dockerfile, 'README.md': 'mine\n' } }, port: 8080 });
    expect(await serves('own', 'dockerfile from')).toMatch(/^dockerfile from /);
    expect((await live('own')).build).toMatchObject({ method: 'dockerfile', dockerfile });
  }, 180_000);

  it('serves the change after an update_app with one changed file', async () => {
    v2 = (await call<{ commit: string }>(agent, 'update_app', { name: 'api', source: { files: nodeServer('v2') } })).commit;
    await serves('api', 'v2 from node', 60_000);
    expect(buildDirs('api')).toHaveLength(2);
  }, 90_000);

  it('brings v1 back on a human\'s git revert, from the v1 image: no rebuild', async () => {
    const work = mkdtempSync(join(tmpdir(), 'mlink-human-'));
    try {
      const g = (args: string[]): Promise<string> => must('git', ['-c', 'user.name=Hannah Human', '-c', 'user.email=hannah@example.test', ...args], { cwd: work });
      await g(['clone', '-q', up.repo, '.']);
      await g(['revert', '--no-edit', v2]);
      await g(['push', '-q', 'origin', 'main']);
      const reverted = (await g(['rev-parse', 'HEAD'])).trim();
      await serves('api', 'v1 from node', 60_000);
      expect(buildDirs('api')).toHaveLength(2);
      const note = await eventually('the revert has a note', async () => {
        const r = await run('git', ['--git-dir', up.repo, 'notes', '--ref=mlink', 'show', reverted]);
        return r.code === 0 && /image reused/.test(r.stdout) ? r.stdout : undefined;
      }, 20_000);
      expect(note.replace(/\s+/g, ' ')).toMatch(/image reused, not rebuilt: 127\.0\.0\.1:\d+\/mlink\/default\/api:[0-9a-f]{24} already on this host \(built .* by node from source [0-9a-f]{12}\)/);
      expect(v1).not.toBe('');
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 90_000);

  let broken: Record<string, string> = {};
  it('keeps the running version serving when a build fails, and names the failing step', async () => {
    broken = { ...nodeServer('v3'), 'server.js': 'const http = require(\'http\');\nhttp.createServer((req, res) => { res.end("v3" }).listen(8080);\n' };
    await call(agent, 'update_app', { name: 'api', source: { files: broken } });
    const failed = await eventually('get_app says BuildFailed', async () => {
      const l = await live('api');
      return l.phase === 'BuildFailed' ? l : undefined;
    }, 60_000);
    expect(failed.message).toMatch(/build failed at step "sandbox: node --check \\?"server\.js\\?"": exited 1; last log lines: .*SyntaxError/);
    expect(failed.build).toMatchObject({ phase: 'Failed', step: 'sandbox: node --check "server.js"' });
    expect(await page('api')).toMatch(/^v1 from node/);
    const cli = await must('node', ['bin/mlink.js', 'logs', '--build', 'api'], { env: upEnv(up.home) });
    expect(cli).toMatch(/SyntaxError/);
  }, 90_000);

  it('git clone of the source repo over HTTP gives exactly the files the agent sent', async () => {
    const work = mkdtempSync(join(tmpdir(), 'mlink-clone-'));
    try {
      await must('git', ['clone', '-q', `${gitBase}/default/api.git`, work]);
      const got: Record<string, string> = {};
      const walk = (dir: string, prefix: string): void => {
        for (const e of readdirSync(join(work, dir), { withFileTypes: true })) {
          if (e.name === '.git') continue;
          if (e.isDirectory()) walk(join(dir, e.name), `${prefix}${e.name}/`);
          else got[`${prefix}${e.name}`] = readFileSync(join(work, dir, e.name), 'utf8');
        }
      };
      walk('', '');
      expect(got).toEqual(broken);
      expect((await must('git', ['-C', work, 'log', '--format=%an %s'])).trim().split('\n')).toHaveLength(3);
      const push = await run('git', ['-C', work, 'push', 'origin', 'HEAD:main']);
      expect(push.code).not.toBe(0);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 60_000);

  it('builds from a git URL and ref, fetched with isomorphic-git over HTTP and pinned', async () => {
    const created = await call<{ summary: string }>(agent, 'create_app', { name: 'fromgit', source: { git: { url: `${gitBase}/default/site.git`, ref: 'main' } }, port: 8080 });
    expect(created.summary).toMatch(/git http:\/\/127\.0\.0\.1:\d+\/default\/site\.git@main \([0-9a-f]{12}\)/);
    await serves('fromgit', 'hello from a static site', 60_000);
  }, 90_000);

  it('refuses oversized, path-traversing and symlink-escaping sources with a clear error, storing nothing', async () => {
    const before = await must('git', ['--git-dir', up.repo, 'rev-parse', 'main']);
    const big = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`f${i}.txt`, 'x'.repeat(256 * 1024)]));
    expect(await refusal({ name: 'big', source: { files: big }, port: 8080 })).toMatch(/too_large: apps\/default\/big\.yaml: spec\.source\.files holds 10485760 bytes in 40 files; at most 8388608/);
    expect(await refusal({ name: 'dots', source: { files: { 'a/../../etc/passwd': 'x' } }, port: 8080 })).toMatch(/invalid_input: .*spec\.source\.files key "a\/\.\.\/\.\.\/etc\/passwd" is not valid: a '\.\.' segment would leave the source root/);
    const dir = mkdtempSync(join(tmpdir(), 'mlink-tar-'));
    try {
      writeFileSync(join(dir, 'index.html'), 'hi\n');
      symlinkSync('../../../etc/passwd', join(dir, 'evil'));
      const tar = (await must('sh', ['-c', `tar -C '${dir}' -cf - . | base64 -w0`])).trim();
      expect(await refusal({ name: 'link', source: { tar }, port: 8080 })).toMatch(/invalid_input: .*spec\.source\.tar: symlink "evil" -> "\.\.\/\.\.\/\.\.\/etc\/passwd" escapes the source root/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    for (const app of ['big', 'dots', 'link']) expect(existsSync(join(up.home, 'sources', 'default', `${app}.git`))).toBe(false);
    expect(await must('git', ['--git-dir', up.repo, 'rev-parse', 'main'])).toBe(before);
  }, 60_000);
});
