// bench:hosts: an agent's create_app (an image already in the registry) to the app's first
// HTTP 200, three ways in the same run: through a remote runtime host's own edge (a test
// host reached only over SSH), through the local host's edge, and a bare
// `docker -H ssh://root@host run` of the same image on that remote host to its first 200.
// The image is pulled onto the remote host once before anything is timed, for all three.
//
//   npm run bench:hosts [-- --apps 5]
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDocument } from 'yaml';
import { infraConfig, registryAddress } from '../infra/config.js';
import { must, run } from '../infra/proc.js';
import { runSetup } from '../infra/setup/index.js';
import { relay } from '../test/support/zero-trust.js';
import { ensureWebImage } from '../test/support/images.js';
import { call, connectAgent, removeCluster, removeHome, startUp, stopUp, upEnv, type Up } from '../test/support/mlink-up.js';
import { freePort } from '../test/support/ports.js';
import { removeTestHosts, startTestHost, testControlKey, type TestHost } from '../test/support/test-hosts.js';

// Plain HTTP (https_redirect: false) on both edges, as before HTTPS came; bench:names measures the HTTPS path.
const { values } = parseArgs({ options: { apps: { type: 'string', default: '5' } } });
const N = Number(values.apps);
const cfg = infraConfig();

function status(host: string, port: number, hostHeader?: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host, port, path: '/', headers: hostHeader ? { host: hostHeader } : {}, timeout: 2000, agent: false }, (res) => {
      res.resume().on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0)).on('timeout', () => req.destroy());
    req.end();
  });
}

async function until200(host: string, port: number, hostHeader?: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await status(host, port, hostHeader)) !== 200) {
    if (Date.now() > deadline) throw new Error(`no 200 from ${hostHeader ?? host}:${port} in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const ms = (x: number): string => `${x.toFixed(0).padStart(6)} ms`;

async function edit(up: Up, change: (doc: ReturnType<typeof parseDocument>) => void, message: string): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'mlink-bench-'));
  try {
    await must('git', ['clone', '-q', up.repo, work]);
    const doc = parseDocument(readFileSync(join(work, 'mlink.yaml'), 'utf8'));
    change(doc);
    writeFileSync(join(work, 'mlink.yaml'), doc.toString());
    const git = ['-c', 'user.name=bench', '-c', 'user.email=bench@localhost'];
    await must('git', [...git, 'commit', '-qam', message], { cwd: work });
    await must('git', ['push', '-q', 'origin', 'main'], { cwd: work });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** `docker -H ssh://root@<host> run` as an operator types it: the docker CLI over the system ssh, with the same key. */
async function bareSshRun(th: TestHost, image: string): Promise<number[]> {
  // ssh reads the user's own ~/.ssh whatever HOME says; an `ssh` first on PATH gives it this run's key and known host instead.
  const home = mkdtempSync(join(tmpdir(), 'mlink-bench-ssh-'));
  writeFileSync(join(home, 'id_ed25519'), testControlKey().privateKey, { mode: 0o600 });
  const pub = (await must('docker', ['exec', th.containerId, 'cat', '/etc/ssh/ssh_host_ed25519_key.pub'])).trim().split(' ').slice(0, 2).join(' ');
  writeFileSync(join(home, 'known_hosts'), `${th.address} ${pub}\n`);
  writeFileSync(join(home, 'config'), `Host *\n  IdentityFile ${join(home, 'id_ed25519')}\n  UserKnownHostsFile ${join(home, 'known_hosts')}\n  StrictHostKeyChecking yes\n`);
  mkdirSync(join(home, 'bin'));
  writeFileSync(join(home, 'bin', 'ssh'), `#!/bin/sh\nexec /usr/bin/ssh -F ${join(home, 'config')} "$@"\n`, { mode: 0o755 });
  const env = { ...process.env, PATH: `${join(home, 'bin')}:${process.env.PATH ?? ''}` };
  const times: number[] = [];
  try {
    for (let i = 0; i < N; i++) {
      const name = `mlink-bench-bare-${process.pid}-${i}`;
      const port = 19200 + i;
      const t0 = performance.now();
      await must('docker', ['-H', `ssh://root@${th.address}`, 'run', '-d', '--rm', '--name', name, '--runtime', 'runsc', '-p', `${port}:8080`, image], { env });
      await until200(th.address, port);
      times.push(performance.now() - t0);
      await run('docker', ['-H', `ssh://root@${th.address}`, 'rm', '-f', name], { env });
    }
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
  return times;
}

async function main(): Promise<void> {
  await runSetup({ cfg, skipDebian: true, out: () => undefined });
  const web = await ensureWebImage();
  const th = await startTestHost({ name: `bench${process.pid}` });
  const cluster = `bh${Date.now().toString(36)}`;
  let up: Up | undefined;
  const relays: Array<{ close(): Promise<void> }> = [];
  try {
    // The image in the registry, under the names each host reaches it by.
    const repo = `mlink-bench/hosts-web:${process.pid}`;
    await must('docker', ['tag', web, `${registryAddress()}/${repo}`]);
    await must('docker', ['push', '-q', `${registryAddress()}/${repo}`]);
    const privatePort = await freePort();
    const privateRegistry = `${th.gateway}:${privatePort}`;
    // For the pre-pull and the bare run only: the cluster serves its own relay once mlink.yaml names the address.
    const prePull = await relay(th.gateway, privatePort, cfg.registry.port);
    relays.push(prePull);
    const remoteImage = `${privateRegistry}/${repo}`;
    const h = th.connect();
    try {
      await new Promise<void>((resolve, reject) => {
        void h.docker.pull(remoteImage).then((s) => h.docker.modem.followProgress(s as NodeJS.ReadableStream, (e) => (e ? reject(e) : resolve())), reject);
      });
    } finally {
      await h.close();
    }
    process.stdout.write(`bench:hosts, ${N} apps each way, image ${repo} (runsc); remote host ${th.name} at ${th.address}, reached over SSH only\n\n`);
    const bare = await bareSshRun(th, remoteImage);
    await prePull.close();
    relays.pop();

    up = await startUp({ cluster, drift: 3600 });
    const agent = await connectAgent(up);
    const local: number[] = [];
    for (let i = 0; i < N; i++) {
      const t0 = performance.now();
      await call(agent, 'create_app', { name: `local${i}`, project: cluster, source: { image: `${registryAddress()}/${repo}` }, port: 8080, https_redirect: false });
      await until200('127.0.0.1', cfg.traefik.webPort, `local${i}.${cluster}.localhost`);
      local.push(performance.now() - t0);
    }

    // The local apps go; the remote host joins as the only runtime host, and new apps are timed there.
    for (let i = 0; i < N; i++) await call(agent, 'delete_app', { name: `local${i}`, project: cluster, wait: 120 });
    mkdirSync(join(up.home, 'keys', 'ssh'), { recursive: true, mode: 0o700 });
    writeFileSync(join(up.home, 'keys', 'ssh', 'id_ed25519'), testControlKey().privateKey, { mode: 0o600 });
    await edit(up, (doc) => {
      doc.setIn(['spec', 'hosts', 0, 'roles'], ['control', 'build']);
      doc.setIn(['spec', 'registry'], { address: privateRegistry });
    }, 'Runtime leaves the control plane (benchmark)');
    const added = await run('node', ['bin/mlink.js', 'host', 'add', th.name, th.address, '--roles', 'runtime', '--host-key', th.hostKey], { env: upEnv(up.home) });
    if (added.code !== 0) throw new Error(`mlink host add failed:\n${added.stdout}\n${added.stderr}`);
    process.stdout.write(`mlink host add ${th.name}: ${added.stdout.trim().split('\n').at(-1)}\n`);
    const remote: number[] = [];
    for (let i = 0; i < N; i++) {
      const t0 = performance.now();
      await call(agent, 'create_app', { name: `remote${i}`, project: cluster, source: { image: remoteImage }, port: 8080, https_redirect: false });
      await until200(th.address, 80, `remote${i}.${cluster}.localhost`);
      remote.push(performance.now() - t0);
    }
    await agent.close();

    const line = (label: string, xs: number[]): string => `${label.padEnd(58)} p50 ${ms(pct(xs, 50))}   p90 ${ms(pct(xs, 90))}   min ${ms(Math.min(...xs))}`;
    process.stdout.write(`${line('bare docker -H ssh://… run -> first 200 (remote host)', bare)}\n`);
    process.stdout.write(`${line('mlink create_app -> first 200 via the local edge', local)}\n`);
    process.stdout.write(`${line('mlink create_app -> first 200 via the remote host\'s edge', remote)}\n`);
    process.stdout.write(`ratio p50 remote / local: ${(pct(remote, 50) / pct(local, 50)).toFixed(2)}x (goal: <= 1.3x); remote / bare ssh run: ${(pct(remote, 50) / pct(bare, 50)).toFixed(2)}x\n`);
  } finally {
    for (const r of relays) await r.close().catch(() => undefined);
    if (up) {
      await stopUp(up);
      await removeCluster(cluster).catch((e: unknown) => process.stderr.write(`${(e as Error).message}\n`));
      removeHome(up);
    }
    await th.stop();
    await removeTestHosts();
    await run('docker', ['rmi', `${registryAddress()}/mlink-bench/hosts-web:${process.pid}`]);
  }
}

main().then(() => process.exit(0), (e: unknown) => {
  process.stderr.write(`bench:hosts failed: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
