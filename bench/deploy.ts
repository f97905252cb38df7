// bench:deploy: how long from an agent's create_app call to the app's first HTTP 200
// through Traefik, beside a bare `docker run` of the same image to its first 200 in the
// same run; then the time of a no-op reconcile pass with 200 apps running, and of a route
// switch with those routes loaded, beside the same switch without Traefik's default
// certificate (which setup provides: without it Traefik makes a new key on every change).
//
//   npm run bench:deploy [-- --apps 10 --idle-apps 200]
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Docker from 'dockerode';
import { parseDocument } from 'yaml';
import { infraConfig, temporalAddress } from '../infra/config.js';
import { must, run } from '../infra/proc.js';
import { runSetup } from '../infra/setup/index.js';
import { writeDefaultCertificate } from '../infra/setup/services.js';
import { ReconcilerClient } from '../reconciler/temporal/client.js';
import { renderRoute } from '../reconciler/edge/route.js';
import { removeRouteFile, writeRouteFile } from '../reconciler/edge/traefik.js';
import { LocalHost } from '../reconciler/hosts/host.js';
import { LABEL } from '../reconciler/model.js';
import { CERT_FILE_SUFFIX } from '../reconciler/layout.js';
import { ensureWebImage } from '../test/support/images.js';
import { call, connectAgent, startUp, tearDown } from '../test/support/mlink-up.js';

const { values } = parseArgs({ options: { apps: { type: 'string', default: '10' }, 'idle-apps': { type: 'string', default: '200' } } });
const N = Number(values.apps);
const IDLE = Number(values['idle-apps']);
const cfg = infraConfig();
const docker = new Docker();

function status(port: number, host?: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: host ? { host } : {}, timeout: 2000, agent: false }, (res) => {
      res.resume().on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0)).on('timeout', () => req.destroy());
    req.end();
  });
}

async function until200(port: number, host?: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await status(port, host)) !== 200) {
    if (Date.now() > deadline) throw new Error(`no 200 from ${host ?? 'port ' + port} in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const ms = (x: number): string => `${x.toFixed(0).padStart(6)} ms`;

async function bareDockerRun(image: string): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < N; i++) {
    const port = 19100 + i;
    const name = `mlink-bench-bare-${process.pid}-${i}`;
    const t0 = performance.now();
    await must('docker', ['run', '-d', '--rm', '--name', name, '--runtime', 'runsc', '--label', 'ink.ml.bench=1', '-p', `127.0.0.1:${port}:8080`, image]);
    await until200(port);
    times.push(performance.now() - t0);
    await run('docker', ['rm', '-f', name]);
  }
  return times;
}

/** What an operator does to let a project run under runc: edit mlink.yaml and push. */
async function allowRunc(repo: string, project: string): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'mlink-bench-'));
  try {
    await must('git', ['clone', '-q', repo, work]);
    const doc = parseDocument(readFileSync(join(work, 'mlink.yaml'), 'utf8'));
    doc.setIn(['spec', 'projects', project, 'runtime'], 'runc');
    writeFileSync(join(work, 'mlink.yaml'), doc.toString());
    const git = ['-c', 'user.name=bench', '-c', 'user.email=bench@localhost'];
    await must('git', [...git, 'commit', '-qam', `Allow runc for project ${project} (benchmark)`], { cwd: work });
    await must('git', ['push', '-q', 'origin', 'main'], { cwd: work });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The events of the newest pass, from the reconcile workflow's own history (since its last signal). */
async function lastPassBreakdown(cluster: string): Promise<string> {
  const shown = await run(cfg.temporal.binary, ['workflow', 'show', '--address', temporalAddress(cfg), '-w', `mlink-reconcile-${cluster}`, '-o', 'json']);
  const events = (JSON.parse(shown.stdout) as { events: Array<{ eventTime: string; eventType: string; activityTaskScheduledEventAttributes?: { activityType: { name: string } } }> }).events;
  const last = events.map((e) => e.eventType).lastIndexOf('EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED');
  const tail = events.slice(Math.max(0, last));
  const t0 = Date.parse(tail[0]!.eventTime);
  return tail.map((e) => `+${Date.parse(e.eventTime) - t0}ms ${e.eventType.replace('EVENT_TYPE_', '').toLowerCase()}${e.activityTaskScheduledEventAttributes ? `(${e.activityTaskScheduledEventAttributes.activityType.name})` : ''}`).join(', ');
}

/** A route file rewritten with another server, ten times, until Traefik's API shows it: what every deploy's switch waits for. */
async function routeSwitches(): Promise<number[]> {
  const edge = { routesDir: cfg.traefik.routesDir, api: `http://${cfg.traefik.host}:${cfg.traefik.apiPort}` };
  const local = new LocalHost();
  const file = `bench-switch-${process.pid}.yaml`;
  const router = `bench-switch-${process.pid}`;
  const out: number[] = [];
  try {
    for (let i = 1; i <= 10; i++) {
      const server = `http://10.255.0.${i}:8080`;
      const t0 = performance.now();
      await writeRouteFile(local, edge, file, router, renderRoute({ cluster: 'bench', project: 'bench', name: 'switch', specHash: 'b'.repeat(64), router, domains: ['switch.bench.localhost'], servers: [server], access: { allowCidrs: ['127.0.0.0/8'], redirectToHttps: false } }), [server]);
      out.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await removeRouteFile(local, edge, file, router);
  }
  return out;
}

async function main(): Promise<void> {
  await runSetup({ cfg, skipDebian: true, out: () => undefined });
  const image = await ensureWebImage();
  process.stdout.write(`bench:deploy on ${N} apps (image ${image}, runtime runsc), then a no-op reconcile with ${IDLE} apps\n\n`);

  const bare = await bareDockerRun(image);

  const cluster = `bench${Date.now().toString(36)}`;
  const up = await startUp({ cluster, drift: 3600 });
  const agent = await connectAgent(up);
  const mlink: number[] = [];
  try {
    for (let i = 0; i < N; i++) {
      const t0 = performance.now();
      // the cluster name as the project keeps these host names apart from any other cluster's
      // Plain HTTP, as before HTTPS came (bench:names measures the HTTPS path beside this one).
      await call(agent, 'create_app', { name: `app${i}`, project: cluster, source: { image }, port: 8080, env: { GREETING: `app${i}` }, https_redirect: false });
      await until200(cfg.traefik.webPort, `app${i}.${cluster}.localhost`);
      mlink.push(performance.now() - t0);
    }
    const line = (label: string, xs: number[]): string => `${label.padEnd(44)} p50 ${ms(pct(xs, 50))}   p90 ${ms(pct(xs, 90))}   min ${ms(Math.min(...xs))}`;
    process.stdout.write(`${line('bare docker run -> first 200 (runsc)', bare)}\n`);
    process.stdout.write(`${line('mlink create_app -> first 200 via Traefik', mlink)}\n`);
    process.stdout.write(`ratio p50 mlink / bare docker run: ${(pct(mlink, 50) / pct(bare, 50)).toFixed(2)}x (goal: p50 <= 2000 ms and <= 3x)\n\n`);

    // A no-op pass over IDLE running apps (in a project allowed runc, so 200 sandboxes fit on 2 cores;
    // a pass reads git, lists containers and route files, and diffs: the runtime does not enter into it).
    await allowRunc(up.repo, 'idle');
    for (let i = N; i < IDLE; i++) {
      await call(agent, 'create_app', { name: `idle${i}`, project: 'idle', source: { image }, port: 8080, resources: { cpu: 0.05, memory_mb: 32, pids: 64 } });
    }
    const client = await ReconcilerClient.connect({ address: temporalAddress(cfg), namespace: cfg.temporal.namespace, cluster });
    const label = { label: [`${LABEL.cluster}=${cluster}`] };
    process.stdout.write(`waiting for ${IDLE} apps to run and be routed...\n`);
    const deadline = Date.now() + 15 * 60_000;
    for (;;) {
      const running = (await docker.listContainers({ filters: label })).length;
      const routed = readdirSync(cfg.traefik.routesDir).filter((f) => f.startsWith(`mlink-${cluster}--`) && !f.endsWith(CERT_FILE_SUFFIX)).length;
      if (running >= IDLE && routed >= IDLE) break;
      if (Date.now() > deadline) throw new Error(`only ${running} of ${IDLE} apps run (${routed} routed) after 15 minutes`);
      await client.trigger('bench-wait');
      await new Promise((r) => setTimeout(r, 2000));
    }
    // A pass counts itself in the workflow's state (a query, answered by the worker).
    const onePass = async (reason: string): Promise<number> => {
      const before = (await client.state())?.passes ?? 0;
      const t0 = performance.now();
      await client.trigger(reason);
      for (;;) {
        const s = await client.state();
        if (s && s.passes > before && !s.running) return performance.now() - t0;
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    await onePass('bench-warm'); // settle anything still under way
    await onePass('bench-warm');
    const passes: number[] = [];
    for (let i = 0; i < 10; i++) {
      passes.push(await onePass('bench-noop'));
      await new Promise((r) => setTimeout(r, 200));
    }
    await client.close();
    process.stdout.write(`where the last no-op pass spent its time: ${await lastPassBreakdown(cluster)}\n`);
    process.stdout.write(`no-op reconcile with ${IDLE} apps running      p50 ${ms(pct(passes, 50))}   max ${ms(Math.max(...passes))}   (goal: <= 1000 ms)\n`);
    process.stdout.write(`${line(`route switch, ${IDLE} routes loaded`, await routeSwitches())}   (a route file rewritten -> Traefik's API shows the new server)\n`);
    // The reference: the same without the default certificate setup gives Traefik (it then makes a key on every change).
    const certFile = writeDefaultCertificate(cfg);
    rmSync(certFile);
    try {
      process.stdout.write(`${line('  the same, Traefik without a default cert', await routeSwitches())}\n`);
    } finally {
      writeDefaultCertificate(cfg);
    }
  } finally {
    await tearDown(up, agent);
  }
}

await main();
