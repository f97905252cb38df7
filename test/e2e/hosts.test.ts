// The three planes on machines of their own, as a new user sets them up: the control
// plane here, one build host and two runtime hosts (test hosts: their own address, sshd,
// dockerd and runsc, reached only over SSH), added with `mlink host add` (one of them
// bare, so `host add` installs Docker and runsc on it). An app from source builds on the
// build host, runs under gVisor on a runtime host and is served by that host's own edge;
// two replicas land on both runtime hosts; a human's `git revert` takes them off both.
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { must, run } from '../../infra/proc.js';
import { LABEL } from '../../reconciler/model.js';
import { freePort } from '../support/ports.js';
import { eventually, runId } from '../support/infra.js';
import { call as callTool, connectAgent, startUp, tearDown, upEnv, type Up } from '../support/mlink-up.js';
import { humanCommit } from '../support/human.js';
import { removeTestHosts, startTestHost, testControlKey, type TestHost } from '../support/test-hosts.js';

const cluster = `h${runId.slice(-8)}`;
let up: Up;
/** The cluster CA's root, as `mlink ca export` gives it. */
let root = '';
let agent: Client;
let build: TestHost;
let rt1: TestHost;
let rt2: TestHost;
const hosts = (): TestHost[] => [build, rt1, rt2];
/** The control plane's registry on the hosts' network (mlink.yaml spec.registry.address). */
let registry = '';

/** A Node server an agent would write: its page names the host it runs on, and /probe says whether it can open a TCP connection. */
const SERVER = `
const http = require('http');
const net = require('net');
const os = require('os');
http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  if (u.pathname === '/probe') {
    const s = net.connect({ host: u.searchParams.get('host'), port: Number(u.searchParams.get('port')), timeout: 3000 });
    const done = (r) => { s.destroy(); res.end(r); };
    s.on('connect', () => done('open')).on('timeout', () => done('blocked')).on('error', (e) => done('blocked ' + e.code));
    return;
  }
  res.end('hello from the planes, ' + os.hostname() + '\\n');
}).listen(process.env.PORT);
`;
const files = { 'package.json': JSON.stringify({ name: 'planes', version: '1.0.0', scripts: { start: 'node server.js' } }), 'server.js': SERVER };

const call = <T>(name: string, args: Record<string, unknown>): Promise<T> => callTool<T>(agent, name, args);

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run('node', ['bin/mlink.js', ...args], { env: upEnv(up.home) });
}

/** Whether this machine opens a TCP connection to `host:port` (what the app is kept from). */
function reachable(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port, timeout: 3000 });
    s.on('connect', () => { s.destroy(); resolve(true); }).on('timeout', () => { s.destroy(); resolve(false); }).on('error', () => resolve(false));
  });
}

async function humanRevert(commits: string[]): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'mlink-human-'));
  const git = (args: string[]): Promise<string> => must('git', ['-c', 'user.name=Hannah Human', '-c', 'user.email=hannah@example.test', ...args], { cwd: work });
  try {
    await git(['clone', '-q', up.repo, '.']);
    for (const c of commits) await git(['revert', '--no-edit', c]);
    await git(['push', '-q', 'origin', 'main']);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** GET through a runtime host's own edge as a client would: HTTPS on 443 at its address, under the cluster's root (plain HTTP on 80 redirects there). */
function viaEdge(address: string, hostHeader: string, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: address, port: 443, path, servername: hostHeader, ca: root, headers: { host: hostHeader }, timeout: 10_000, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${address}:443`)));
    req.on('error', reject);
    req.end();
  });
}

/** ml.ink's containers of this cluster on a test host, asked of its own dockerd over SSH. */
async function containersOn(th: TestHost, kind?: string): Promise<Array<{ name: string; runtime?: string; labels: Record<string, string> }>> {
  const h = th.connect();
  try {
    const list = await h.docker.listContainers({ all: true, filters: { label: [`${LABEL.cluster}=${cluster}`, ...(kind ? [`${LABEL.kind}=${kind}`] : [])] } });
    return await Promise.all(list.map(async (c) => ({ name: c.Names[0]!.slice(1), labels: c.Labels, runtime: (await h.docker.getContainer(c.Id).inspect()).HostConfig.Runtime })));
  } finally {
    await h.close();
  }
}

async function imagesOn(th: TestHost): Promise<string[]> {
  const h = th.connect();
  try {
    return (await h.docker.listImages()).flatMap((i) => i.RepoTags ?? []);
  } finally {
    await h.close();
  }
}

beforeAll(async () => {
  [build, rt1, rt2] = await Promise.all([
    startTestHost({ name: `b${runId.slice(-4)}` }),
    startTestHost({ name: `r1${runId.slice(-4)}` }),
    startTestHost({ name: `r2${runId.slice(-4)}`, bare: true }),
  ]);
  up = await startUp({ cluster });
  root = await must('node', ['bin/mlink.js', 'ca', 'export'], { env: upEnv(up.home) });
  agent = await connectAgent(up);
  // The operator's key, already authorized on the hosts, is the control plane's key.
  mkdirSync(join(up.home, 'keys', 'ssh'), { recursive: true, mode: 0o700 });
  writeFileSync(join(up.home, 'keys', 'ssh', 'id_ed25519'), testControlKey().privateKey, { mode: 0o600 });
  // The control plane alone here; the registry on this machine's address on the hosts' network.
  registry = `${build.gateway}:${await freePort()}`;
  await humanCommit(up.repo, (work) => {
    const file = join(work, 'mlink.yaml');
    const text = readFileSync(file, 'utf8')
      .replace(/roles: \[ ?control, build, runtime ?\]/, 'roles: [control]')
      .replace(/^ {2}defaults:/m, `  registry:\n    address: ${registry}\n  defaults:`);
    writeFileSync(file, text);
  }, 'Hosts of their own: builds and apps leave the control plane');
}, 600_000);

afterAll(async () => {
  await tearDown(up, agent, () => removeTestHosts());
}, 120_000);

describe('build and runtime hosts over SSH', () => {
  it('adds the hosts with mlink host add; the bare one gets Docker and runsc installed', async () => {
    const added = await Promise.all([
      cli(['host', 'add', build.name, build.address, '--roles', 'build', '--host-key', build.hostKey]),
      cli(['host', 'add', rt1.name, rt1.address, '--roles', 'runtime', '--host-key', rt1.hostKey]),
      cli(['host', 'add', rt2.name, rt2.address, '--roles', 'runtime', '--host-key', rt2.hostKey]),
    ]);
    for (const r of added) expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(added[2]!.stdout).toMatch(/docker/i);
    const list = await cli(['host', 'list']);
    for (const th of hosts()) expect(list.stdout).toContain(th.name);
  }, 1_200_000);

  let created = '';
  it('builds an app from source on the build host and serves it from a runtime host\'s own edge, under gVisor', async () => {
    const r = await call<{ commit: string; wait?: { state: string; message: string } }>('create_app', { name: 'planes', source: { files }, port: 8080, wait: 900 });
    created = r.commit;
    expect(r.wait?.state, r.wait?.message).toBe('live');
    const app = await call<{ live: { hosts?: string[]; edges?: Array<{ host: string; address: string }> } }>('get_app', { name: 'planes' });
    const where = app.live.hosts ?? [];
    expect(where).toHaveLength(1);
    const th = [rt1, rt2].find((h) => h.name === where[0])!;
    expect(th, `placed on ${where.join(', ')}`).toBeDefined();
    expect(app.live.edges).toEqual([{ host: th.name, address: `${th.address}:80` }]);
    const page = await viaEdge(th.address, 'planes.default.localhost');
    expect(page).toMatchObject({ status: 200, body: expect.stringMatching(/^hello from the planes/) });
    const replicas = await containersOn(th, 'App');
    expect(replicas.map((c) => c.runtime)).toEqual(['runsc']);
    // The build ran on the build host, its sandbox too; no runtime host ever built anything.
    expect(await imagesOn(build)).toEqual(expect.arrayContaining([expect.stringMatching(/\/mlink\/default\/planes:/)]));
    for (const runtime of [rt1, rt2]) {
      expect(await containersOn(runtime, 'Build')).toEqual([]);
      expect((await imagesOn(runtime)).filter((t) => /toolchain|mlink-prefix/.test(t))).toEqual([]);
    }
  }, 1_200_000);

  let scaled = '';
  it('spreads two replicas over both runtime hosts, each host\'s edge serving its own', async () => {
    const r = await call<{ commit: string; wait?: { state: string; message: string } }>('update_app', { name: 'planes', replicas: 2, wait: 600 });
    scaled = r.commit;
    expect(r.wait?.state, r.wait?.message).toBe('live');
    const app = await call<{ live: { hosts?: string[] } }>('get_app', { name: 'planes' });
    expect([...(app.live.hosts ?? [])].sort()).toEqual([rt1.name, rt2.name].sort());
    for (const th of [rt1, rt2]) {
      expect((await containersOn(th, 'App')).length).toBe(1);
      expect((await viaEdge(th.address, 'planes.default.localhost')).status).toBe(200);
    }
  }, 900_000);

  it('keeps an app on a remote runtime host to its egress rules: no private address, no control plane', async () => {
    const app = await call<{ live: { hosts?: string[] } }>('get_app', { name: 'planes' });
    const th = [rt1, rt2].find((h) => h.name === app.live.hosts![0])!;
    const other = th === rt1 ? rt2 : rt1;
    const probe = async (host: string, port: number): Promise<string> => (await viaEdge(th.address, 'planes.default.localhost', `/probe?host=${host}&port=${port}`)).body;
    // Both answer anyone else: the other host's sshd, and this machine's registry relay.
    expect(await probe(other.address, 22)).toMatch(/^blocked/);
    const registryPort = Number(registry.split(':')[1]);
    expect(await probe(th.gateway, registryPort)).toMatch(/^blocked/);
    expect(await probe('169.254.169.254', 80)).toMatch(/^blocked/);
    expect(await reachable(other.address, 22)).toBe(true);
    expect(await reachable(th.gateway, registryPort)).toBe(true);
  }, 120_000);

  it('takes the app off both runtime hosts when a human reverts its commits', async () => {
    await humanRevert([scaled, created]);
    await eventually('no replica and no route left on either runtime host', async () => {
      for (const th of [rt1, rt2]) {
        if ((await containersOn(th, 'App')).length) return undefined;
        if ((await viaEdge(th.address, 'planes.default.localhost')).status !== 404) return undefined;
      }
      return true;
    }, 120_000);
  }, 180_000);

  it('refuses a host whose key changed, naming it and both fingerprints, and runs nothing there', async () => {
    const before = build.hostKey;
    await must('docker', ['exec', build.containerId, 'sh', '-c', 'rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && kill -HUP $(cat /run/sshd.pid)']);
    const now = (await must('docker', ['exec', build.containerId, 'ssh-keygen', '-lf', '/etc/ssh/ssh_host_ed25519_key.pub'])).split(' ')[1]!;
    expect(now).not.toBe(before);
    const sessions = async (): Promise<number> => (await must('docker', ['exec', build.containerId, 'sh', '-c', 'grep -c "session opened\\|Accepted" /var/log/sshd.log || true'])).trim().split('\n').map(Number)[0]!;
    const seen = await sessions();
    const r = await cli(['host', 'add', build.name, build.address, '--roles', 'build', '--host-key', before]);
    expect(r.code).not.toBe(0);
    expect(`${r.stdout}${r.stderr}`).toContain(build.name);
    expect(`${r.stdout}${r.stderr}`).toContain(before);
    expect(`${r.stdout}${r.stderr}`).toContain(now);
    expect(await sessions()).toBe(seen);
  }, 120_000);
});
