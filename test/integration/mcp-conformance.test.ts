// The MCP conformance suite's generic server scenarios against `mlink serve`, run by the
// suite's own CLI on Node 22. The suite sends no bearer token, so it talks to a tiny
// proxy in this test that adds one and passes everything else through untouched (Host
// and Origin included, so DNS-rebinding protection is tested on the real server).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../infra/proc.js';
import { issueToken } from '../../mcp/http.js';
import { ensureConformance, type Conformance } from '../support/conformance.js';
import { tempState, type TempState } from '../support/state-repo.js';

// The generic server scenarios that fit what ml.ink offers (the others need the suite's own test tools, resources or prompts, or sessions).
const SCENARIOS = ['server-initialize', 'ping', 'tools-list', 'tools-call-error', 'logging-set-level', 'dns-rebinding-protection'];

let t: TempState;
let suite: Conformance;
let serve: ChildProcess;
let proxy: Server;
let proxyUrl = '';
let results: string;

/** Forwards every request to `target`, adding the bearer token; the response streams back as it comes (SSE included). */
function bearerProxy(target: URL, token: string): Server {
  return createServer((req, res) => {
    const up = request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: { ...req.headers, authorization: `Bearer ${token}` } }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    up.on('error', (e) => { res.writeHead(502); res.end(String(e)); });
    req.pipe(up);
  });
}

beforeAll(async () => {
  suite = await ensureConformance();
  t = await tempState();
  results = mkdtempSync(join(tmpdir(), 'mlink-conformance-'));
  const tokensFile = join(t.home, 'tokens.json');
  const token = await issueToken(tokensFile, { name: 'conformance', projects: ['*'], mode: 'commit', access: 'write' });
  serve = spawn(process.execPath, ['bin/mlink.js', 'serve', '--repo', t.repo, '--tokens', tokensFile, '--port', '0'], { env: { ...process.env, MLINK_HOME: t.home }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  serve.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  const deadline = Date.now() + 20_000;
  while (!/^http:\/\/\S+\/mcp$/m.test(out)) {
    if (serve.exitCode !== null || Date.now() > deadline) throw new Error(`mlink serve did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  proxy = bearerProxy(new URL(/^(http:\/\/\S+\/mcp)$/m.exec(out)![1]!), token);
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
  proxyUrl = `http://localhost:${(proxy.address() as AddressInfo).port}/mcp`;
}, 180_000);

afterAll(async () => {
  proxy?.closeAllConnections();
  proxy?.close();
  if (serve && serve.exitCode === null) { const exited = new Promise((r) => serve.once('exit', r)); serve.kill('SIGTERM'); await exited; }
  t?.cleanup();
  if (results) rmSync(results, { recursive: true, force: true });
});

interface Check { id: string; status: string; errorMessage?: string }

/** Every check the suite wrote for a scenario (results/<run>/checks.json). */
function checksOf(dir: string): Check[] {
  const out: Check[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (e === 'checks.json') out.push(...(JSON.parse(readFileSync(p, 'utf8')) as Check[]));
    }
  };
  walk(dir);
  return out;
}

describe('MCP conformance suite against mlink serve', () => {
  it.each(SCENARIOS)('%s', async (scenario) => {
    const dir = join(results, scenario);
    const r = await run(suite.node, [suite.cli, 'server', '--url', proxyUrl, '--scenario', scenario, '-o', dir], { cwd: results });
    const checks = checksOf(dir);
    expect(checks.length, `${r.stdout}\n${r.stderr}`).toBeGreaterThan(0);
    expect(checks.filter((c) => c.status !== 'SUCCESS' && c.status !== 'INFO'), r.stdout).toEqual([]);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
  }, 60_000);
});
