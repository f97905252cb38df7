// The sandbox, from inside: containers started with the reconciler's own request
// (hosts/containers.ts createOptions) see gVisor's kernel, cannot mount, open raw
// sockets, load modules or see the host's processes, have no Docker socket and a
// read-only root. Each check first runs in a container without the protection (runc with
// SYS_ADMIN and SYS_MODULE, the host's pid namespace and socket) to show it can fail.
// Then a fork bomb and a memory hog hit their limits while a neighbour keeps answering.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startReplica } from '../../reconciler/hosts/containers.js';
import { LABEL, type DesiredApp } from '../../reconciler/model.js';
import { ensureWebImage } from '../support/images.js';
import { cfg, docker, host, removeTestContainers, removeTestNetworks, runId, testLabel } from '../support/infra.js';
import { sh } from '../support/zero-trust.js';

const cluster = `zs${runId}`.slice(0, 20);
const network = `mlink-${cluster}-sandbox`;
let image = '';

const app = (name: string, over: Partial<DesiredApp> = {}): DesiredApp => ({
  kind: 'App', project: 'sandbox', name, specHash: `${name}${'0'.repeat(40)}`, image, port: 8080, env: {}, secretEnv: [],
  resources: { cpu: 0.5, memoryMb: 64, pids: 128 }, replicas: 1, runtime: 'runsc', domains: [], access: { allowCidrs: ['127.0.0.0/8'], redirectToHttps: true }, egress: [], readOnlyRoot: true,
  health: { path: '/', intervalMs: 200, timeoutMs: 2000, retries: 50 }, databases: [], placement: ['local'], ...over,
});

async function sandboxed(name: string, over: Partial<DesiredApp> = {}): Promise<{ id: string; ip: string }> {
  const s = await startReplica(host, { cluster, commit: 'c0', app: app(name, over), replica: 0, container: `mlink-${cluster}-${name}`, network, secrets: {} });
  return { id: s.id, ip: s.ip };
}

/** An unprotected container: runc, and whatever extra the check needs to be able to succeed. */
async function unprotected(name: string, extra: Record<string, unknown>): Promise<string> {
  const c = await docker.createContainer({
    name: `zt-${runId}-${name}`, Image: cfg.images.busybox, Cmd: ['sleep', '300'], Labels: { [testLabel]: runId },
    HostConfig: { Runtime: 'runc', NetworkMode: network, ...extra },
  });
  await c.start();
  return c.id;
}

function cgroupText(controller: string, id: string, file: string): string | undefined {
  try {
    return readFileSync(`/sys/fs/cgroup/${controller}/docker/${id}/${file}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function cgroupNumber(controller: string, id: string, file: string): number | undefined {
  const t = cgroupText(controller, id, file);
  return t === undefined || !/^\d+$/.test(t) ? undefined : Number(t);
}

const exec = (id: string, script: string): Promise<{ code: number; out: string }> => sh('docker', ['exec', id, 'sh', '-c', script], 30_000);

beforeAll(async () => {
  image = await ensureWebImage();
  await docker.createNetwork({ Name: network, Labels: { [testLabel]: runId, [LABEL.cluster]: cluster } });
}, 120_000);

afterAll(async () => {
  const mine = await docker.listContainers({ all: true, filters: { label: [`${LABEL.cluster}=${cluster}`] } });
  await Promise.all(mine.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
  await removeTestContainers();
  await removeTestNetworks();
}, 60_000);

describe('inside an app container', () => {
  let app1 = '';
  let off = '';
  beforeAll(async () => {
    app1 = (await sandboxed('probe')).id;
    off = await unprotected('off', { CapAdd: ['SYS_ADMIN', 'SYS_MODULE'], PidMode: 'host', Binds: ['/var/run/docker.sock:/var/run/docker.sock:ro'] });
  }, 60_000);

  it("sees gVisor's kernel, not the host's", async () => {
    expect((await exec(off, 'dmesg | head -3')).out).not.toMatch(/gVisor/);
    expect((await exec(app1, 'dmesg')).out).toMatch(/Starting gVisor/);
  });

  it('cannot mount', async () => {
    expect((await exec(off, 'mkdir -p /mnt/t && mount -t tmpfs none /mnt/t && echo mounted')).out).toContain('mounted');
    const r = await exec(app1, 'mount -t tmpfs none /tmp && echo mounted');
    expect(r.out).not.toContain('mounted');
    expect(r.code).not.toBe(0);
  });

  it('cannot open raw sockets', async () => {
    // busybox ping opens a raw ICMP socket (no ping sockets without a group range).
    expect((await exec(off, 'ping -c1 -W1 127.0.0.1 >/dev/null; echo rc=$?')).out).toContain('rc=0');
    const r = await exec(app1, 'ping -c1 -W1 127.0.0.1 2>&1; echo rc=$?');
    expect(r.out).toMatch(/permission denied|not permitted|rc=[1-9]/i);
    expect(r.out).not.toContain('rc=0');
  });

  it('cannot load kernel modules', async () => {
    // Without the protection the capability is there (never actually load one into the host).
    const capEff = (out: string): bigint => BigInt(`0x${/CapEff:\s+([0-9a-f]+)/.exec(out)?.[1] ?? '0'}`);
    const SYS_MODULE = 1n << 16n;
    expect(capEff((await exec(off, 'grep CapEff /proc/self/status')).out) & SYS_MODULE).toBe(SYS_MODULE);
    expect((await exec(app1, 'grep CapEff /proc/self/status')).out).toMatch(/CapEff:\s+0+$/m);
    const r = await exec(app1, 'echo junk > /tmp/m.ko; insmod /tmp/m.ko; echo rc=$?');
    expect(r.out).toMatch(/not permitted|not implemented|rc=[1-9]/i);
    expect(r.out).not.toContain('rc=0');
  });

  it("cannot see the host's processes", async () => {
    expect((await exec(off, 'ps -o comm')).out).toMatch(/dockerd/);
    const r = await exec(app1, 'ps -o comm; cat /proc/1/cmdline');
    expect(r.out).not.toMatch(/dockerd|containerd|temporal|traefik/);
  });

  it('has no Docker socket and a read-only root with a writable /tmp', async () => {
    expect((await exec(off, 'test -S /var/run/docker.sock && echo socket')).out).toContain('socket');
    expect((await exec(app1, 'ls -la /var/run/docker.sock /run/docker.sock 2>&1; echo rc=$?')).out).toMatch(/No such file|rc=[1-9]/);
    expect((await exec(off, 'touch /x && echo wrote')).out).toContain('wrote');
    expect((await exec(app1, 'touch /x 2>&1; echo rc=$?')).out).toMatch(/Read-only file system/);
    expect((await exec(app1, 'touch /tmp/x && echo wrote')).out).toContain('wrote');
  });
});

describe('limits, with a neighbour answering', () => {
  it('stops a fork bomb at the pids limit and a memory hog at the memory limit; the neighbour keeps answering', async () => {
    const neighbour = await sandboxed('neighbour');
    const attacker = await sandboxed('attacker');
    const latencies: number[] = [];
    let failures = 0;
    let stop = false;
    const loop = (async () => {
      while (!stop) {
        const t0 = performance.now();
        try {
          const res = await fetch(`http://${neighbour.ip}:8080/`, { signal: AbortSignal.timeout(2000) });
          await res.text();
          if (res.status !== 200) failures++;
        } catch {
          failures++;
        }
        latencies.push(performance.now() - t0);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      // Fork bomb: a shell that forks itself without end. The host's cgroup counts the sandbox's tasks.
      await sh('docker', ['exec', '-d', attacker.id, 'sh', '-c', 'f() { f | f & }; f']);
      const peak = { pids: 0 };
      for (let i = 0; i < 30; i++) {
        peak.pids = Math.max(peak.pids, cgroupNumber('pids', attacker.id, 'pids.current') ?? 0);
        await new Promise((r) => setTimeout(r, 200));
      }
      const bombed = (await docker.getContainer(attacker.id).inspect()).State;
      process.stdout.write(`zero-trust: fork bomb peak ${peak.pids} tasks against pids.max ${cgroupText('pids', attacker.id, 'pids.max')}; sandbox ${bombed.Running ? 'still running' : `stopped (OOMKilled ${bombed.OOMKilled})`}\n`);
      expect(peak.pids).toBeGreaterThan(0);
      expect(peak.pids).toBeLessThanOrEqual(128);
      await docker.getContainer(attacker.id).restart({ t: 0 });

      // Memory hog: doubles a shell variable far past 64 MiB.
      const hog = await exec(attacker.id, 'x=a; while true; do x="$x$x"; done');
      const used = cgroupNumber('memory', attacker.id, 'memory.max_usage_in_bytes');
      const hogged = (await docker.getContainer(attacker.id).inspect()).State;
      process.stdout.write(`zero-trust: memory hog exit ${hog.code}, peak ${used === undefined ? '?' : (used / 2 ** 20).toFixed(1)} MiB of 64 MiB, OOMKilled ${hogged.OOMKilled}\n`);
      expect(hogged.OOMKilled || hog.code !== 0, 'the hog was stopped by the memory limit').toBe(true);
      if (used !== undefined) expect(used).toBeLessThanOrEqual(64 * 2 ** 20);
    } finally {
      stop = true;
      await loop;
    }
    const sorted = [...latencies].sort((a, b) => a - b);
    const p = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
    process.stdout.write(`zero-trust: neighbour during fork bomb + memory hog: ${latencies.length} requests, ${failures} failed, p50 ${p(0.5).toFixed(1)} ms, p99 ${p(0.99).toFixed(1)} ms, max ${sorted.at(-1)!.toFixed(1)} ms\n`);
    expect(failures).toBeLessThanOrEqual(Math.ceil(latencies.length * 0.01));
    expect(p(0.99)).toBeLessThan(1000);
  }, 120_000);
});
