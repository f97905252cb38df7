// `npm run bench:ssh`: what a call to a host over SSH costs. On one test host (a machine
// of its own, reached only over SSH): Docker's info and listContainers over SshHost's one
// pooled connection, beside dockerode's own `protocol: 'ssh'` (a new SSH connection and a
// `docker system dial-stdio` per call), and a command over an exec channel beside the
// ssh CLI. Medians of N calls after one warm-up; the first connection is timed alone.
import Docker from 'dockerode';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fingerprintOf } from '../reconciler/hosts/ssh-keys.js';
import { removeTestHosts, startTestHost } from '../test/support/test-hosts.js';

const { values } = parseArgs({ options: { n: { type: 'string', default: '30' } } });
const n = Number(values.n);

async function median(what: string, fn: () => Promise<unknown>): Promise<number> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  const m = times[Math.floor(times.length / 2)]!;
  console.log(`${what.padEnd(58)} median ${m.toFixed(1).padStart(7)} ms   p90 ${times[Math.floor(times.length * 0.9)]!.toFixed(1).padStart(7)} ms`);
  return m;
}

const t0 = performance.now();
const th = await startTestHost({ name: 'bench' });
console.log(`test host up in ${Math.round(performance.now() - t0)} ms (image cached)`);
const keyDir = mkdtempSync(join(tmpdir(), 'mlink-bench-ssh-'));
try {
  const pooled = th.connect();
  let t = performance.now();
  await pooled.docker.ping();
  console.log(`first call on a new SshHost (connect + handshake + ping)      ${(performance.now() - t).toFixed(1)} ms`);

  const perCall = new Docker({
    protocol: 'ssh', host: th.address, port: 22, username: 'root',
    sshOptions: { privateKey: th.privateKey, hostVerifier: (key: Buffer) => fingerprintOf(key) === th.hostKey },
  } as Docker.DockerOptions);

  const local = new Docker();
  await median('docker.info() on this machine\'s own dockerd (baseline)', () => local.info());
  await median('listContainers() on this machine\'s own dockerd (baseline)', () => local.listContainers({ all: true }));
  await median('docker.ping() over the pooled connection', () => pooled.docker.ping());
  const a = await median('docker.info() over the pooled connection', () => pooled.docker.info());
  const b = await median('docker.info() with a new connection per call (protocol ssh)', () => perCall.info());
  const c = await median('listContainers() over the pooled connection', () => pooled.docker.listContainers({ all: true }));
  const d = await median('listContainers() with a new connection per call', () => perCall.listContainers({ all: true }));
  const e = await median("run(['true']) over the pooled connection", () => pooled.run({ argv: ['true'] }));
  const f = await median('files.write() of a 2 kB route file (SFTP, atomic)', () => pooled.files.write('/tmp/bench-route.yaml', 'x'.repeat(2048)));

  const key = join(keyDir, 'id');
  writeFileSync(key, th.privateKey, { mode: 0o600 });
  const cli = await median('`ssh root@host true` (the CLI, a new connection each)', async () => {
    spawnSync('ssh', ['-i', key, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'BatchMode=yes', `root@${th.address}`, 'true']);
  });
  console.log(`\npooled vs per-call: info ${(b / a).toFixed(1)}x faster, listContainers ${(d / c).toFixed(1)}x faster; run ${e.toFixed(1)} ms vs ssh CLI ${cli.toFixed(1)} ms; file write ${f.toFixed(1)} ms`);
  await pooled.close();
} finally {
  rmSync(keyDir, { recursive: true, force: true });
  await removeTestHosts();
}
