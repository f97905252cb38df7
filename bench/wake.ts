// bench:wake: scale-to-zero in one run, each figure beside its reference. A sleeping
// app's first request through Traefik -> 200 (the waker `docker start`s its gVisor
// container, waits for its health check, then passes the request through), beside
// `docker start` and `docker run` of the same image under runsc to its first 200, bare
// and with the app's own limits; 100 requests at once at a sleeping app; and the host's
// memory with N apps awake, then asleep, beside before they existed.
//
//   npm run bench:wake [-- --rounds 10 --apps 50]
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { parseArgs } from 'node:util';
import Docker from 'dockerode';
import { infraConfig } from '../infra/config.js';
import { runSetup } from '../infra/setup/index.js';
import { LocalHost } from '../reconciler/hosts/host.js';
import { sleepNow, WAKER_CONTAINER } from '../reconciler/hosts/waker.js';
import { LABEL } from '../reconciler/model.js';
import { wakeId } from '../reconciler/waker/spec.js';
import { ensureWebImage } from '../test/support/images.js';
import { call, connectAgent, startUp, tearDown } from '../test/support/mlink-up.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '10' }, apps: { type: 'string', default: '50' } } });
const ROUNDS = Number(values.rounds);
const APPS = Number(values.apps);
const cfg = infraConfig();
const docker = new Docker();
const host = new LocalHost();

function status(port: number, hostHeader?: string, timeoutMs = 60_000): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: hostHeader ? { host: hostHeader } : {}, timeout: timeoutMs, agent: false }, (res) => {
      res.resume().on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0)).on('timeout', () => req.destroy());
    req.end();
  });
}

const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const ms = (x: number): string => `${x.toFixed(0).padStart(6)} ms`;
const line = (label: string, xs: number[]): string => `${label.padEnd(52)} p50 ${ms(pct(xs, 50))}   p90 ${ms(pct(xs, 90))}   min ${ms(Math.min(...xs))}`;

async function until200At(url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const req = request(url, { timeout: 2000, agent: false }, (res) => { res.resume(); resolve(res.statusCode === 200); });
      req.on('error', () => resolve(false)).on('timeout', () => req.destroy());
      req.end();
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`no 200 from ${url} in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * `docker start` and `docker run` of the same image under runsc, to its first 200: once
 * bare (a published loopback port, no limits), once as ml.ink runs the app (the app's own
 * container's limits, read-only root and dropped capabilities, asked at its bridge address).
 */
async function references(image: string, limits?: Docker.HostConfig): Promise<{ start: number[]; run: number[] }> {
  const port = limits ? 0 : 19180;
  const opts = (i: number): Docker.ContainerCreateOptions => ({
    name: `mlink-bench-wake-${process.pid}-${limits ? 'l' : 'b'}${i}`, Image: image, Labels: { 'ink.ml.bench': 'wake' }, ExposedPorts: { '8080/tcp': {} },
    HostConfig: limits
      ? { ...limits, NetworkMode: 'bridge' }
      : { Runtime: 'runsc', PortBindings: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: String(port) }] } },
  });
  const urlOf = async (c: Docker.Container): Promise<string> => {
    if (!limits) return `http://127.0.0.1:${port}/`;
    for (;;) {
      const ip = (await c.inspect()).NetworkSettings.Networks.bridge?.IPAddress;
      if (ip) return `http://${ip}:8080/`;
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const start: number[] = [];
  const c = await docker.createContainer(opts(0));
  try {
    for (let i = 0; i < ROUNDS; i++) {
      const t0 = performance.now();
      await c.start();
      await until200At(await urlOf(c));
      start.push(performance.now() - t0);
      await c.stop({ t: 1 });
    }
  } finally {
    await c.remove({ force: true });
  }
  const runs: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const t0 = performance.now();
    const x = await docker.createContainer(opts(i + 1));
    await x.start();
    await until200At(await urlOf(x));
    runs.push(performance.now() - t0);
    await x.remove({ force: true });
  }
  return { start, run: runs };
}

/** The limits and hardening of the app's own container, as the reconciler made it. */
async function appLimits(cluster: string, name: string): Promise<Docker.HostConfig> {
  const [c] = await docker.listContainers({ all: true, filters: { label: [`${LABEL.cluster}=${cluster}`, `${LABEL.name}=${name}`] } });
  const h = (await docker.getContainer(c!.Id).inspect()).HostConfig;
  return {
    Runtime: h.Runtime, NanoCpus: h.NanoCpus, Memory: h.Memory, MemorySwap: h.MemorySwap, PidsLimit: h.PidsLimit,
    CapDrop: h.CapDrop, SecurityOpt: h.SecurityOpt, ReadonlyRootfs: h.ReadonlyRootfs, Tmpfs: h.Tmpfs,
  };
}

async function runningOf(cluster: string, name?: string): Promise<number> {
  return (await docker.listContainers({ filters: { label: [`${LABEL.cluster}=${cluster}`, `${LABEL.kind}=App`, ...(name ? [`${LABEL.name}=${name}`] : [])] } })).length;
}

async function sleepAndWait(cluster: string, name: string): Promise<void> {
  await sleepNow(host, wakeId(cluster, { project: 'default', name }));
  while ((await runningOf(cluster, name)) > 0) await new Promise((r) => setTimeout(r, 50));
}

/** Host memory in use (MemTotal - MemAvailable), MiB. */
function hostMemory(): number {
  const info = readFileSync('/proc/meminfo', 'utf8');
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(info)![1]);
  return (kb('MemTotal') - kb('MemAvailable')) / 1024;
}

/** A container's memory as its cgroup counts it (usage less page cache), MiB. */
async function containerMemory(id: string): Promise<number> {
  const s = await docker.getContainer(id).stats({ stream: false }) as { memory_stats: { usage?: number; stats?: { cache?: number } } };
  return ((s.memory_stats.usage ?? 0) - (s.memory_stats.stats?.cache ?? 0)) / 1024 / 1024;
}

const wakerMemory = (): Promise<number> => containerMemory(WAKER_CONTAINER);

/** What Docker itself holds for its containers: dockerd's and its containerd's resident memory, MiB. */
function dockerMemory(): number {
  const rss = (pidFile: string): number => {
    try {
      const pid = readFileSync(pidFile, 'utf8').trim();
      return Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
    } catch {
      return 0;
    }
  };
  return rss('/var/run/docker.pid') + rss('/var/run/docker/containerd/containerd.pid');
}

/** The app containers of the cluster that run, and the memory their cgroups hold, MiB. */
async function appsMemory(cluster: string, names: string[]): Promise<{ running: number; mib: number }> {
  const list = (await docker.listContainers({ filters: { label: [`${LABEL.cluster}=${cluster}`, `${LABEL.kind}=App`] } })).filter((c) => names.includes(c.Labels[LABEL.name] ?? ''));
  const each = await Promise.all(list.map((c) => containerMemory(c.Id).catch(() => 0)));
  return { running: list.length, mib: each.reduce((a, b) => a + b, 0) };
}

async function settledMemory(): Promise<number> {
  await new Promise((r) => setTimeout(r, 3000));
  const xs: number[] = [];
  for (let i = 0; i < 5; i++) { xs.push(hostMemory()); await new Promise((r) => setTimeout(r, 400)); }
  return pct(xs, 50);
}

async function main(): Promise<void> {
  await runSetup({ cfg, skipDebian: true, out: () => undefined });
  const image = await ensureWebImage();
  process.stdout.write(`bench:wake (image ${image}, runtime runsc, ${ROUNDS} rounds, ${APPS} sleeping apps; other work on this host adds noise)\n\n`);
  const ref = await references(image);

  const cluster = `wake${Date.now().toString(36)}`;
  const up = await startUp({ cluster, drift: 3600, args: ['--git-port', '0'] });
  const agent = await connectAgent(up);
  try {
    await Promise.all([
      // Plain HTTP (no redirect) on both, as before HTTPS came.
      call(agent, 'create_app', { name: 'w', source: { image }, port: 8080, scale_to_zero: { idle_timeout_seconds: 3600 }, https_redirect: false, wait: 120 }),
      call(agent, 'create_app', { name: 'direct', source: { image }, port: 8080, https_redirect: false, wait: 120 }),
    ]);
    const wakes: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      await sleepAndWait(cluster, 'w');
      const t0 = performance.now();
      const s = await status(cfg.traefik.webPort, 'w.default.localhost');
      if (s !== 200) throw new Error(`round ${i}: the first request after sleep got ${s}`);
      wakes.push(performance.now() - t0);
    }
    const same = await references(image, await appLimits(cluster, 'w'));
    process.stdout.write(`${line('docker start -> first 200 (runsc, no limits)', ref.start)}\n`);
    process.stdout.write(`${line('docker run -> first 200 (runsc, no limits)', ref.run)}\n`);
    process.stdout.write(`${line('docker start -> first 200 (runsc, the app\'s limits)', same.start)}\n`);
    process.stdout.write(`${line('docker run -> first 200 (runsc, the app\'s limits)', same.run)}\n`);
    process.stdout.write(`${line('asleep: first request via Traefik -> 200', wakes)}\n`);
    process.stdout.write(`ratio p50 wake / docker start: ${(pct(wakes, 50) / pct(same.start, 50)).toFixed(2)}x with the app's limits, ${(pct(wakes, 50) / pct(ref.start, 50)).toFixed(2)}x without (goal: <= 1.2x and p50 <= 1000 ms)\n\n`);

    // Awake, every request of a scale-to-zero app passes the waker: its cost beside an app routed directly.
    const sequential = async (name: string): Promise<number[]> => {
      const out: number[] = [];
      for (let i = 0; i < 200; i++) {
        const a = performance.now();
        if ((await status(cfg.traefik.webPort, `${name}.default.localhost`)) !== 200) throw new Error(`${name}: a request failed`);
        out.push(performance.now() - a);
      }
      return out;
    };
    const [viaWaker, direct] = [await sequential('w'), await sequential('direct')];
    process.stdout.write(`${line('awake: 200 requests via Traefik -> waker -> app', viaWaker)}\n`);
    process.stdout.write(`${line('  the same app routed directly (no scale-to-zero)', direct)}\n\n`);

    await sleepAndWait(cluster, 'w');
    const t0 = performance.now();
    const answers = await Promise.all(Array.from({ length: 100 }, async () => {
      const a = performance.now();
      const s = await status(cfg.traefik.webPort, 'w.default.localhost');
      return { s, ms: performance.now() - a };
    }));
    const served = answers.filter((a) => a.s === 200);
    process.stdout.write(`100 concurrent at a sleeping app: served ${served.length}, failed ${100 - served.length}, p50 ${ms(pct(answers.map((a) => a.ms), 50))}, p99 ${ms(pct(answers.map((a) => a.ms), 99))}, all in ${ms(performance.now() - t0)}; containers started: ${await runningOf(cluster, 'w')} (goal: 0 failed)\n\n`);
    await sleepAndWait(cluster, 'w');

    const before = await settledMemory();
    const [wakerBefore, dockerBefore] = [await wakerMemory(), dockerMemory()];
    process.stdout.write(`creating ${APPS} scale-to-zero apps...\n`);
    for (let i = 0; i < APPS; i += 10) {
      await Promise.all(Array.from({ length: Math.min(10, APPS - i) }, (_, j) => call(agent, 'create_app', {
        name: `s${i + j}`, source: { image }, port: 8080, resources: { cpu: 0.1, memory_mb: 64, pids: 128 }, scale_to_zero: { idle_timeout_seconds: 3600 }, https_redirect: false, wait: 300,
      })));
    }
    const awake = await settledMemory();
    const names = Array.from({ length: APPS }, (_, i) => `s${i}`);
    const awakeApps = await appsMemory(cluster, names);
    for (let i = 0; i < APPS; i += 10) await Promise.all(Array.from({ length: Math.min(10, APPS - i) }, (_, j) => sleepAndWait(cluster, `s${i + j}`)));
    const asleep = await settledMemory();
    const asleepApps = await appsMemory(cluster, names);
    const [wakerAfter, dockerAfter] = [await wakerMemory(), dockerMemory()];
    const kib = (mib: number): string => `${((mib * 1024) / APPS).toFixed(0)} KiB/app`;
    process.stdout.write(`${APPS} apps awake: ${awakeApps.running} containers, their cgroups ${awakeApps.mib.toFixed(0)} MiB (${(awakeApps.mib / Math.max(1, awakeApps.running)).toFixed(1)} MiB each)\n`);
    process.stdout.write(`${APPS} apps asleep: ${asleepApps.running} of their containers run; what stays: the waker ${wakerBefore.toFixed(1)} -> ${wakerAfter.toFixed(1)} MiB (${kib(wakerAfter - wakerBefore)}), dockerd+containerd ${dockerBefore.toFixed(0)} -> ${dockerAfter.toFixed(0)} MiB (${kib(dockerAfter - dockerBefore)}) (goal: <= 1 MiB/app)\n`);
    process.stdout.write(`host memory in use (shared host, other work moves it): before ${before.toFixed(0)} MiB, ${APPS} awake ${awake.toFixed(0)} MiB (${awake - before >= 0 ? '+' : ''}${(awake - before).toFixed(0)}), ${APPS} asleep ${asleep.toFixed(0)} MiB (${asleep - before >= 0 ? '+' : ''}${(asleep - before).toFixed(0)})\n`);
  } finally {
    await tearDown(up, agent);
  }
}

await main();
