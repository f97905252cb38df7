// `npm run bench:build`: a small Node.js app sent as files over MCP, time to the first
// HTTP 200 through Traefik with its content, cold (no build cache: the toolchain image
// removed) and warm (one line changed), beside a plain `docker build` + `docker run`
// of the same Dockerfile in the same run. ml.ink's figure covers the whole path: MCP
// call, commit, reconcile, source export, gVisor check step, image build (assembled:
// the COPY layer loaded onto the cached prefix image of the same Dockerfile), a runsc
// container (in the network namespace of a holder made beforehand), health check and a
// Traefik route (the registry push runs after the build);
// plain Docker's is build, run (a published port) and the first 200 on that port, once
// with Docker's default runtime (runc) and once with runsc, the runtime ml.ink gives apps.
// Warm runs start once the cold image reached the registry; the last one's build log
// and Temporal history say where its time went.
process.env.MLINK_LOG_LEVEL ??= 'warn';

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { must, run } from '../infra/proc.js';
import { temporalAddress } from '../infra/config.js';
import { reconcileWorkflowId } from '../reconciler/temporal/client.js';
import { TOOLCHAINS, detect, toolchainTag } from '../reconciler/image-builds/detect.js';
import { cfg, viaTraefik } from '../test/support/infra.js';
import { call, connectAgent, removeCluster, removeHome, startUp, stopUp } from '../test/support/mlink-up.js';

const WARM_RUNS = 5;
// The same limits on both sides: ml.ink's default of 0.5 cpu would make node's start in
// gVisor ~0.35 s slower than an unlimited plain container, which is not what is compared.
const LIMITS = { cpu: 2, memoryMb: 256, pids: 256 };
const cluster = `bench${Date.now().toString(36)}`;
const classic = { ...process.env, DOCKER_BUILDKIT: '0' };
// Each plain build gets its own tag, so none is left behind untagged (its layers would make the next cold run warm).
let plainTag = 'mlink-bench/plain:0';

const app = (line: string): Record<string, string> => ({
  'package.json': JSON.stringify({ name: 'bench', version: '1.0.0', main: 'server.js' }),
  'server.js': `const http = require('http');\nconst line = '${line}';\nhttp.createServer((req, res) => res.end(line + '\\n')).listen(Number(process.env.PORT || 8080));\n`,
});

function get(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', timeout: 1000, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

async function until(test: () => Promise<boolean>, what: string, timeoutMs = 300_000, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((res) => setTimeout(res, everyMs));
  }
}

function until200(probe: () => Promise<{ status: number; body: string }>, text: string): Promise<void> {
  return until(async () => {
    const r = await probe().catch(() => ({ status: 0, body: '' }));
    return r.status === 200 && r.body.includes(text);
  }, `a 200 with ${JSON.stringify(text)}`, 600_000, 20);
}

const secs = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** No build cache: the toolchain image and every image built on it (the classic builder's cache is those images' layers). */
async function removeToolchain(): Promise<void> {
  await run('sh', ['-c', `docker images --format '{{.Repository}}:{{.Tag}}' | grep -E '/mlink/default/bench:|^mlink-bench/|^mlink-prefix/' | xargs -r docker rmi -f`]);
  const id = (await run('docker', ['image', 'inspect', '--format', '{{.Id}}', toolchainTag(TOOLCHAINS.node)])).stdout.trim();
  await run('docker', ['rmi', '-f', toolchainTag(TOOLCHAINS.node)]);
  // Other images built on it keep its layers, and the classic builder finds them again.
  if (id && (await run('docker', ['image', 'inspect', id])).code === 0) {
    process.stderr.write(`warning: the toolchain's layers (${id.slice(7, 19)}) stay: other images are built on them, so "cold" is not cold; remove those images first\n`);
  }
}

/** Plain Docker, the image already built: run and first 200 (with `text`) on a published port. */
async function runOnly(runtime: string, text = 'plain'): Promise<number> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const name = `mlink-bench-plain-${port}`;
  const t0 = Date.now();
  await must('docker', ['run', '-d', '--rm', '--runtime', runtime, '--cpus', String(LIMITS.cpu), '--memory', `${LIMITS.memoryMb}m`, '--pids-limit', String(LIMITS.pids), '--name', name, '-e', 'PORT=8080', '-p', `127.0.0.1:${port}:8080`, plainTag]);
  await until200(() => get(port), text);
  const ms = Date.now() - t0;
  await run('docker', ['rm', '-f', name]);
  return ms;
}

/** Plain Docker: build the toolchain and app Dockerfiles, run, first 200 on a published port. */
async function plain(ctx: string, dockerfile: string, files: Record<string, string>, text: string, nocache: boolean, runtime = 'runc'): Promise<number> {
  for (const [f, c] of Object.entries(files)) writeFileSync(join(ctx, f), c);
  writeFileSync(join(ctx, 'Dockerfile'), dockerfile);
  const t0 = Date.now();
  if (nocache) {
    const tc = mkdtempSync(join(tmpdir(), 'mlink-bench-tc-'));
    writeFileSync(join(tc, 'Dockerfile'), TOOLCHAINS.node.dockerfile);
    for (const [f, c] of Object.entries(TOOLCHAINS.node.files)) writeFileSync(join(tc, f), c);
    await must('docker', ['build', '-q', '--no-cache', '-t', toolchainTag(TOOLCHAINS.node), tc], { env: classic });
    rmSync(tc, { recursive: true, force: true });
  }
  plainTag = `mlink-bench/plain:${Number(plainTag.split(':')[1]) + 1}`;
  await must('docker', ['build', '-q', ...(nocache ? ['--no-cache'] : []), '-t', plainTag, ctx], { env: classic });
  const built = Date.now() - t0;
  return built + (await runOnly(runtime, text));
}

/** Where the newest deploy's time went, from its child workflow's history: each activity, scheduled to completed, and when the child started. */
async function lastDeploy(sinceMs: number): Promise<string> {
  const connection = await Connection.connect({ address: temporalAddress(cfg) });
  try {
    const client = new Client({ connection });
    let newest: { workflowId: string; startTime: Date } | undefined;
    for await (const w of client.workflow.list({ query: `WorkflowId STARTS_WITH "${reconcileWorkflowId(cluster)}/"` })) {
      if (!newest || w.startTime > newest.startTime) newest = w;
    }
    if (!newest) return 'no deploy found';
    const history = await client.workflow.getHandle(newest.workflowId).fetchHistory();
    const at = (e: { eventTime?: { seconds?: unknown; nanos?: number | null } | null }): number => Number(e.eventTime?.seconds ?? 0) * 1000 + Math.round((e.eventTime?.nanos ?? 0) / 1e6);
    const scheduled = new Map<string, { name: string; t: number }>();
    const parts: string[] = [];
    for (const e of history.events ?? []) {
      const s = e.activityTaskScheduledEventAttributes;
      if (s) scheduled.set(String(e.eventId), { name: s.activityType?.name ?? '?', t: at(e) });
      const c = e.activityTaskCompletedEventAttributes;
      const from = c && scheduled.get(String(c.scheduledEventId));
      if (from) parts.push(`${from.name} ${at(e) - from.t} ms (at +${from.t - sinceMs} ms)`);
    }
    const first = history.events?.[0];
    return `child workflow started at +${first ? at(first) - sinceMs : '?'} ms after the update_app call began; ${parts.join(', ')}`;
  } finally {
    await connection.close();
  }
}

async function main(): Promise<void> {
  const ctx = mkdtempSync(join(tmpdir(), 'mlink-bench-ctx-'));
  const up = await startUp({ cluster, drift: 30, args: ['--git-port', '0'] });
  const agent = await connectAgent(up);
  const host = `bench.default.localhost`;
  const viaEdge = (): Promise<{ status: number; body: string }> => viaTraefik(host, '/', 1000);
  try {
    // The Dockerfile ml.ink generates for this app (detection is deterministic), so plain Docker builds the very same one.
    for (const [f, c] of Object.entries(app('line 0'))) writeFileSync(join(ctx, f), c);
    const dockerfile = detect(ctx).generated!;
    process.stderr.write('plain docker, cold (toolchain and app with --no-cache)...\n');
    await removeToolchain();
    const plainCold = await plain(ctx, dockerfile, app('plain 0'), 'plain 0', true);
    process.stderr.write('ml.ink, cold (toolchain image removed)...\n');
    await removeToolchain();
    let t0 = Date.now();
    await call(agent, 'create_app', { name: 'bench', source: { files: app('line 0') }, port: 8080, resources: { cpu: LIMITS.cpu, memory_mb: LIMITS.memoryMb, pids: LIMITS.pids } });
    await until200(viaEdge, 'line 0');
    const mlinkCold = Date.now() - t0;
    const { live } = await call<{ live: { build?: { dockerfile?: string } } }>(agent, 'get_app', { name: 'bench' });
    if (live.build?.dockerfile !== dockerfile) throw new Error('ml.ink built another Dockerfile than the one plain docker builds');
    // The cold image (toolchain layers and all) goes to the registry after the build; warm runs start once it is in.
    await until(async () => !!(await call<{ live: { build?: { pushed_at?: string } } }>(agent, 'get_app', { name: 'bench' })).live.build?.pushed_at, 'the cold image to reach the registry');

    const mlinkWarm: number[] = [];
    const plainWarm: number[] = [];
    const plainWarmRunsc: number[] = [];
    let steps: string[] = [];
    let deploy = '';
    const callMs: number[] = [];
    for (let i = 1; i <= WARM_RUNS; i++) {
      process.stderr.write(`warm run ${i}/${WARM_RUNS}...\n`);
      t0 = Date.now();
      await call(agent, 'update_app', { name: 'bench', source: { files: app(`line ${i}`) } });
      callMs.push(Date.now() - t0);
      await until200(viaEdge, `line ${i}\n`);
      mlinkWarm.push(Date.now() - t0);
      deploy = await lastDeploy(t0);
      // Where a build's time went, from its own log.
      const log = await call<{ lines: string[] }>(agent, 'app_logs', { name: 'bench', kind: 'build' });
      steps = log.lines.filter((l) => / in \d+ ms$|^built /.test(l));
      plainWarm.push(await plain(ctx, dockerfile, app(`plain ${i}`), `plain ${i}`, false));
      plainWarmRunsc.push(await plain(ctx, dockerfile, app(`plain runsc ${i}`), `plain runsc ${i}`, false, 'runsc'));
    }
    // The floor under gVisor: the image already built, only `docker run --runtime runsc` to the first 200.
    const floor: number[] = [];
    for (let i = 0; i < WARM_RUNS; i++) floor.push(await runOnly('runsc'));
    const mw = median(mlinkWarm);
    const pw = median(plainWarm);
    const pws = median(plainWarmRunsc);
    const rows = [
      ['', 'ml.ink: MCP files -> 200 via Traefik', 'docker build + run (runc) -> 200', 'docker build + run --runtime runsc -> 200'],
      ['cold (no cache)', secs(mlinkCold), secs(plainCold), '-'],
      [`warm, 1 line changed (median of ${WARM_RUNS})`, secs(mw), secs(pw), secs(pws)],
      ['warm runs', mlinkWarm.map(secs).join(', '), plainWarm.map(secs).join(', '), plainWarmRunsc.map(secs).join(', ')],
    ];
    const w = [0, 1, 2, 3].map((c) => Math.max(...rows.map((r) => r[c]!.length)));
    process.stdout.write(`\nbench:build  (Node.js app, ${Object.keys(app('x')).length} files; Traefik ${cfg.traefik.host}:${cfg.traefik.webPort}; ml.ink runs apps under runsc; every container ${LIMITS.cpu} cpus, ${LIMITS.memoryMb} MiB, ${LIMITS.pids} pids)\n`);
    for (const r of rows) process.stdout.write(`  ${r.map((c, i) => c.padEnd(w[i]!)).join('   ')}\n`);
    process.stdout.write(`  update_app call (files committed to the source repo, manifest to the state repo): ${callMs.join(', ')} ms\n`);
    process.stdout.write(`  docker run --runtime runsc of the built image -> 200, no build (gVisor's floor): median ${secs(median(floor))}\n`);
    process.stdout.write(`  last warm build, from its log: ${steps.join('; ')}\n`);
    process.stdout.write(`  last warm deploy, from its Temporal history: ${deploy}\n`);
    process.stdout.write(`  warm ratio ml.ink / plain docker (runc):  ${(mw / pw).toFixed(2)}x (goal: at most 1.5x)\n`);
    process.stdout.write(`  warm ratio ml.ink / plain docker (runsc): ${(mw / pws).toFixed(2)}x (goal: at most 1.5x)\n`);
  } finally {
    await agent.close().catch(() => undefined);
    await stopUp(up);
    await removeCluster(cluster);
    await run('sh', ['-c', `docker images --format '{{.Repository}}:{{.Tag}}' | grep -E '/mlink/default/bench:|^mlink-bench/|^mlink-prefix/' | xargs -r docker rmi -f`]);
    removeHome(up);
    rmSync(ctx, { recursive: true, force: true });
  }
}

await main();
