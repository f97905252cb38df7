// An agent's whole path, as a new user would run it: `mlink up`, an MCP client over
// HTTP, apps served through Traefik under gVisor, a zero-downtime update, a human's
// `git revert` with git's own CLI, drift healed, and a worker killed mid-deploy.
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { holderName } from '../../reconciler/hosts/containers.js';
import { LABEL } from '../../reconciler/model.js';
import { must, run } from '../../infra/proc.js';
import { cfg, docker, eventually, removeTestContainers, runId, testLabel, viaTraefik } from '../support/infra.js';
import { ensureWebImage } from '../support/images.js';
import { clusterHistories } from '../support/histories.js';
import { findSecret } from '../support/secret-scan.js';
import { call, connectAgent, startUp, tearDown, stopUp, upEnv, type Up } from '../support/mlink-up.js';

const cluster = `e2e${runId}`.slice(0, 30);
let up: Up;
let agent: Client;
let image: string;
const secret = `s3cret-${runId}-value`;
const marker = `plain-${runId}-marker`;

async function appContainers(name: string, all = true): Promise<Array<{ Id: string; Names: string[]; State: string; Labels: Record<string, string> }>> {
  return docker.listContainers({ all, filters: { label: [`${LABEL.cluster}=${cluster}`, `${LABEL.name}=${name}`] } });
}

function routeFiles(): string[] {
  return readdirSync(cfg.traefik.routesDir).filter((f) => f.startsWith(`mlink-${cluster}--`));
}

async function page(name: string): Promise<string | undefined> {
  const r = await viaTraefik(`${name}.default.localhost`).catch(() => undefined);
  return r?.status === 200 ? r.body.trim() : undefined;
}

async function humanGit(args: string[], cwd: string): Promise<string> {
  return must('git', ['-c', 'user.name=Hannah Human', '-c', 'user.email=hannah@example.test', ...args], { cwd });
}

beforeAll(async () => {
  image = await ensureWebImage();
  up = await startUp({ cluster });
  agent = await connectAgent(up);
}, 120_000);

afterAll(async () => {
  await tearDown(up, agent);
  await removeTestContainers();
}, 60_000);

describe('mlink up, end to end', () => {
  let createCommit = '';
  let updateCommit = '';

  it('serves an app created over MCP through Traefik, under runsc, within seconds', async () => {
    const created = await call<{ commit: string }>(agent, 'create_app', { name: 'web', source: { image }, port: 8080, env: { GREETING: 'v1', MARKER: marker }, secret_env: { API_TOKEN: secret } });
    createCommit = created.commit;
    const body = await eventually('web serves v1', () => page('web'), 20_000);
    expect(body).toMatch(/^v1 from /);
    const [c] = await appContainers('web', false);
    const info = await docker.getContainer(c!.Id).inspect();
    expect(info.HostConfig.Runtime).toBe('runsc');
    expect(info.HostConfig.CapDrop).toEqual(['ALL']);
    const dmesg = await must('docker', ['exec', c!.Id, 'dmesg']);
    expect(dmesg).toMatch(/Starting gVisor/);
    // the secret is decrypted only on its way into the container: the app has it, and
    // no workflow history (what the reconciler ran, with its inputs) ever saw it. Every
    // run of the reconcile workflow and of each child is scanned, payloads decoded
    // (test/unit/secret-scan.test.ts shows the scan finds a secret planted in an input).
    expect(await must('docker', ['exec', c!.Id, 'env'])).toContain(`API_TOKEN=${secret}`);
    const stored = await clusterHistories(cluster);
    expect(stored.some((h) => h.workflowId.startsWith(`mlink-reconcile-${cluster}/App/default/web/`))).toBe(true); // the app's child workflow
    expect(stored.some((h) => JSON.stringify(h.history).includes('"rollOut"'))).toBe(true); // the activity that starts the container
    // the scan sees decoded inputs: the plain env value beside the secret is found in them
    expect(stored.flatMap((h) => findSecret(h.history, marker)).length).toBeGreaterThan(0);
    expect(stored.flatMap((h) => findSecret(h.history, secret).map((p) => `${h.workflowId} ${h.runId} ${p}`))).toEqual([]);
    const status = await call<{ live: { known: boolean; phase?: string; url?: string } }>(agent, 'get_app', { name: 'web' });
    expect(status.live).toMatchObject({ known: true, phase: 'Running', url: `https://web.default.localhost:${cfg.traefik.websecurePort}/`, appliedCommit: createCommit });
    const listed = await call<{ apps: Array<{ name: string; live: { phase?: string } }> }>(agent, 'list_apps', {});
    expect(listed.apps).toEqual([expect.objectContaining({ name: 'web', live: expect.objectContaining({ phase: 'Running' }) })]);
    const table = await must('node', ['bin/mlink.js', 'status'], { env: upEnv(up.home) });
    expect(table).toMatch(new RegExp(`^default/web\\s+Running\\s+https://web\\.default\\.localhost:${cfg.traefik.websecurePort}/\\s+local\\s+${createCommit.slice(0, 12)}\\s+1/1 container`, 'm'));
  }, 60_000);

  it('updates an env value with no failed request while a client polls', async () => {
    let stop = false;
    const seen: string[] = [];
    const failures: string[] = [];
    const poller = (async () => {
      while (!stop) {
        const r = await viaTraefik('web.default.localhost').catch((e: Error) => ({ status: 0, body: e.message }));
        if (r.status !== 200) failures.push(`${r.status} ${r.body.trim()}`);
        else seen.push(r.body.trim().split(' ')[0]!);
        await new Promise((res) => setTimeout(res, 10));
      }
    })();
    const updated = await call<{ commit: string }>(agent, 'update_app', { name: 'web', env: { GREETING: 'v2' } });
    updateCommit = updated.commit;
    await eventually('web serves v2', async () => ((await page('web'))?.startsWith('v2') ? true : undefined), 30_000);
    // and the old container is gone once the route has moved
    await eventually('one container left', async () => ((await appContainers('web')).length === 1 ? true : undefined), 15_000);
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await poller;
    expect(failures).toEqual([]);
    expect(seen).toContain('v1');
    expect(seen.at(-1)).toBe('v2');
    expect(seen.length).toBeGreaterThan(20);
  }, 60_000);

  it('heals a container killed by hand at the next drift check, and never touches unlabelled containers', async () => {
    const bystander = await docker.createContainer({ Image: cfg.images.busybox, Cmd: ['sleep', '600'], Labels: { [testLabel]: runId } });
    await bystander.start();
    const [victim] = await appContainers('web', false);
    await docker.getContainer(victim!.Id).remove({ force: true });
    // the agent sees it gone at once; the drift check (every 2 s here) brings it back
    const gone = await call<{ live: { phase?: string } }>(agent, 'get_app', { name: 'web' });
    expect(gone.live.phase).not.toBe('Running');
    const healed = await eventually('web is back', async () => {
      const list = await appContainers('web', false);
      return list.length === 1 && list[0]!.Id !== victim!.Id && (await page('web'))?.startsWith('v2') ? list[0] : undefined;
    }, 20_000);
    expect(healed.Labels[LABEL.commit]).toBe(updateCommit);
    expect((await bystander.inspect()).State.Running).toBe(true);
  }, 60_000);

  it('brings back a replica whose process exits: its host puts the holder\'s address back and starts the same container, and the pass replaces nothing', async () => {
    const [victim] = await appContainers('web', false);
    await docker.getContainer(victim!.Id).kill();
    const back = await eventually('web serves again from its replica', async () => {
      const list = await appContainers('web', false);
      return list.length === 1 && list[0]!.State === 'running' && (await page('web'))?.startsWith('v2') ? list[0] : undefined;
    }, 20_000);
    expect(back.Id).toBe(victim!.Id);
    expect(back.Labels[LABEL.commit]).toBe(updateCommit);
    // The exit watcher's pass (a moment later) finds it running: nothing is replaced, it serves throughout.
    const failed: number[] = [];
    for (let i = 0; i < 30; i++) {
      if (!(await page('web'))?.startsWith('v2')) failed.push(i);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(failed).toEqual([]);
    expect(await appContainers('web')).toHaveLength(1);
    expect((await docker.getContainer(holderName(back.Names[0]!.replace(/^\//, ''))).inspect()).State.Running).toBe(true);
  }, 60_000);

  it('rolls back a version that never gets healthy: the old one keeps serving, no container is left behind', async () => {
    await call(agent, 'create_app', { name: 'sick', source: { image }, port: 8080, env: { GREETING: 'well' } });
    try {
      expect(await eventually('sick serves', () => page('sick'), 20_000)).toMatch(/^well from /);
      const [well] = await appContainers('sick');
      // busybox's sh exits at once without a terminal: the new version never answers
      await call(agent, 'update_app', { name: 'sick', source: { image: cfg.images.busybox } });
      const failed = await eventually('get_app says HealthCheckFailed', async () => {
        const { live } = await call<{ live: { phase?: string; message?: string } }>(agent, 'get_app', { name: 'sick' });
        return live.phase === 'HealthCheckFailed' ? live : undefined;
      }, 30_000);
      expect(failed.message).toMatch(/last error \(HealthCheckFailed\): mlink-\S+-default-sick-\S+ on local: container exited before http:\/\/[\d.]+:8080\/ answered/);
      // Drift passes try the new version again and again; through all of it the old one
      // serves, and never more than one try is alive beside it (each is removed when it fails).
      for (let i = 0; i < 30; i++) {
        expect(await page('sick')).toMatch(/^well from /);
        const list = await appContainers('sick');
        expect(list.map((c) => c.Id)).toContain(well!.Id);
        expect(list.length).toBeLessThanOrEqual(2);
        await new Promise((r) => setTimeout(r, 150));
      }
    } finally {
      await call(agent, 'delete_app', { name: 'sick' });
    }
    await eventually('sick is gone', async () => ((await appContainers('sick')).length === 0 && !routeFiles().some((f) => f.includes('--sick')) ? true : undefined), 30_000);
  }, 90_000);

  it('keeps serving an earlier version an agent goes back to while it still drains', async () => {
    // B replaces A; A's container drains (1 s) beside the next pass. Going back to A at
    // once takes that very container back: it must not be removed when its drain ends.
    await call(agent, 'create_app', { name: 'quick', source: { image }, port: 8080, env: { GREETING: 'A' } });
    await eventually('quick serves A', async () => ((await page('quick'))?.startsWith('A ') ? true : undefined), 30_000);
    const [a] = await appContainers('quick', false);
    await call(agent, 'update_app', { name: 'quick', env: { GREETING: 'B' } });
    await eventually('quick serves B', async () => ((await page('quick'))?.startsWith('B ') ? true : undefined), 30_000);
    await call(agent, 'update_app', { name: 'quick', env: { GREETING: 'A' } });
    await eventually('quick serves A again', async () => ((await page('quick'))?.startsWith('A ') ? true : undefined), 30_000);
    await new Promise((r) => setTimeout(r, 2500)); // past every drain
    expect(await page('quick')).toMatch(/^A /);
    const left = await eventually('B removed', async () => {
      const list = await appContainers('quick');
      return list.length === 1 ? list : undefined;
    }, 15_000);
    expect(left.map((c) => c.Id)).toEqual([a!.Id]);
    await call(agent, 'delete_app', { name: 'quick' });
    await eventually('quick removed', async () => ((await appContainers('quick')).length === 0 ? true : undefined), 15_000);
  }, 90_000);

  it('never applies a commit that fails validation: the last good state keeps serving, status names file and field', async () => {
    const work = mkdtempSync(join(tmpdir(), 'mlink-human-'));
    try {
      await humanGit(['clone', '-q', up.repo, work], tmpdir());
      const file = join(work, 'apps', 'default', 'web.yaml');
      writeFileSync(file, readFileSync(file, 'utf8').replace(/^ {2}port: 8080$/m, '  port: eighty'));
      await humanGit(['commit', '-qam', 'Use a named port'], work);
      await humanGit(['push', '-q', 'origin', 'main'], work);
      const bad = (await humanGit(['rev-parse', 'HEAD'], work)).trim();
      const note = await eventually('the bad commit has a note', async () => {
        const r = await run('git', ['--git-dir', up.repo, 'notes', '--ref=mlink', 'show', bad]);
        return r.code === 0 ? r.stdout : undefined;
      }, 20_000);
      expect(note).toMatch(/^ml\.ink ValidationFailed /);
      expect(note).toContain('apps/default/web.yaml');
      expect(note).toContain('spec.port');
      expect((await page('web'))?.startsWith('v2')).toBe(true);
      expect((await appContainers('web')).length).toBe(1);
      await humanGit(['revert', '--no-edit', bad], work);
      await humanGit(['push', '-q', 'origin', 'main'], work);
      await eventually('the revert is applied', async () => {
        const r = await run('git', ['--git-dir', up.repo, 'notes', '--ref=mlink', 'show', 'main']);
        return /^ml\.ink Applied /.test(r.stdout) ? true : undefined;
      }, 20_000);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 60_000);

  it('takes the app away when a human reverts its commits with git', async () => {
    const work = mkdtempSync(join(tmpdir(), 'mlink-human-'));
    try {
      await humanGit(['clone', '-q', up.repo, work], tmpdir());
      await humanGit(['revert', '--no-edit', updateCommit], work);
      await humanGit(['push', '-q', 'origin', 'main'], work);
      await eventually('v1 is back', async () => ((await page('web'))?.startsWith('v1') ? true : undefined), 30_000);
      await humanGit(['revert', '--no-edit', createCommit], work);
      await humanGit(['push', '-q', 'origin', 'main'], work);
      await eventually('web is gone', async () => ((await appContainers('web')).length === 0 && routeFiles().length === 0 ? true : undefined), 30_000);
      expect((await viaTraefik('web.default.localhost')).status).toBe(404);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 90_000);

  it('finishes a deploy after its worker is SIGKILLed mid-way: one container per replica, no orphan route', async () => {
    await call(agent, 'create_app', { name: 'slow', source: { image }, port: 8080, replicas: 2, env: { GREETING: 'slow', DELAY: '4' } });
    await eventually('deploy under way', async () => ((await appContainers('slow')).length > 0 ? true : undefined), 20_000);
    expect(await stopUp(up, 'SIGKILL')).toBe(null);
    await agent.close().catch(() => undefined);
    up = await startUp({ cluster, home: up.home, token: up.token });
    agent = await connectAgent(up);
    await eventually('slow serves', () => page('slow'), 60_000);
    const list = await appContainers('slow');
    expect(list.map((c) => c.Labels[LABEL.replica]).sort()).toEqual(['0', '1']);
    expect(list.every((c) => c.State === 'running')).toBe(true);
    expect(routeFiles()).toEqual([`mlink-${cluster}--default--slow.tls.yaml`, `mlink-${cluster}--default--slow.yaml`]); // its certificate and its route
  }, 120_000);

  it('records the status of every applied commit as a git note', async () => {
    await eventually('latest commit has a note', async () => {
      const r = await run('git', ['--git-dir', up.repo, 'notes', '--ref=mlink', 'show', 'main']);
      return r.code === 0 ? true : undefined;
    }, 20_000);
    const log = await must('git', ['--git-dir', up.repo, 'log', '--notes=mlink', '--format=%H%x09%s%n%N%x00', 'main']);
    const entries = log.split('\0').map((e) => e.trim()).filter(Boolean);
    expect(entries.length).toBeGreaterThanOrEqual(6);
    // every commit has a note; the one a human broke says so, and was never applied
    for (const e of entries) expect(e, e.split('\n')[0]).toMatch(/\nml\.ink (Applied|Degraded|ValidationFailed) [0-9a-f]{12} at /);
    expect(entries.filter((e) => /\nml\.ink ValidationFailed /.test(e)).map((e) => e.split('\n')[0]!.split('\t')[1])).toEqual(['Use a named port']);
    expect(log).toMatch(/change: create\n\s+result: ok/);
    expect(log).toMatch(/change: remove\n\s+result: ok/);
  }, 60_000);
});
