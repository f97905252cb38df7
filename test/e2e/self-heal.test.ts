// The runtime plane heals itself, as a user meets it: an app created over MCP keeps
// serving through its edge while `mlink up` is stopped, a replica killed meanwhile comes
// back by its host's supervisor (the waker container) on the same container and address,
// and `mlink up` started again finds nothing to replace; a dockerd restart (a package
// upgrade, a crash) leaves apps serving, by Docker's live-restore that `mlink setup` turns
// on, and the waker that outlived it still reaches the new dockerd.
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABEL } from '../../reconciler/model.js';
import { must, run } from '../../infra/proc.js';
import { cfg, docker, eventually, runId } from '../support/infra.js';
import { ensureWebImage } from '../support/images.js';
import { call, connectAgent, startUp, stopUp, tearDown, upEnv, type Up } from '../support/mlink-up.js';

const cluster = `heal${runId}`.slice(0, 30);
let up: Up;
let agent: Client;
let image: string;

function get(name: string, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = request({ host: cfg.traefik.host, port: cfg.traefik.webPort, path: '/', headers: { host: `${name}.default.localhost` }, timeout: timeoutMs, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ status: 0, body: '' }));
    req.end();
  });
}

/** Requests the app every 50 ms until stopped: how many were served (200) and how many not. */
function poll(name: string): { stop: () => Promise<{ served: number; failed: number }> } {
  let on = true;
  const counts = { served: 0, failed: 0 };
  const loop = (async () => {
    while (on) {
      const t0 = Date.now();
      const r = await get(name);
      if (r.status === 200) counts.served++; else counts.failed++;
      await new Promise((res) => setTimeout(res, Math.max(0, 50 - (Date.now() - t0))));
    }
  })();
  return { stop: async () => { on = false; await loop; return counts; } };
}

async function replicas(name: string): Promise<Array<{ Id: string; State: string }>> {
  return docker.listContainers({ all: true, filters: { label: [`${LABEL.cluster}=${cluster}`, `${LABEL.name}=${name}`, `${LABEL.kind}=App`] } });
}

beforeAll(async () => {
  image = await ensureWebImage();
  up = await startUp({ cluster, drift: 30 });
  agent = await connectAgent(up);
  await call(agent, 'create_app', { name: 'web', source: { image }, port: 8080, env: { GREETING: 'web1' }, https_redirect: false, wait: 90 });
}, 180_000);

afterAll(async () => {
  await tearDown(up, agent);
}, 120_000);

describe('the runtime plane on its own', () => {
  it('brings back a replica killed while mlink up is stopped, on the same container and address; mlink up started again replaces nothing', async () => {
    expect((await get('web')).body).toMatch(/^web1 from /);
    await agent.close();
    await stopUp(up);
    const [before] = await replicas('web');
    const polling = poll('web');
    const killed = Date.now();
    await docker.getContainer(before!.Id).kill();
    await eventually('the app serves again', async () => ((await get('web')).status === 200 ? true : undefined), 30_000);
    const seconds = (Date.now() - killed) / 1000;
    await new Promise((r) => setTimeout(r, 1000));
    const counts = await polling.stop();
    console.log(`replica killed with mlink up stopped: serving again after ${seconds.toFixed(2)} s; requests every 50 ms: ${counts.served} served, ${counts.failed} failed meanwhile`);
    const after = await replicas('web');
    expect(after.map((c) => [c.Id, c.State])).toEqual([[before!.Id, 'running']]);
    // The waker's log says what happened, in one line.
    const logs = await must('docker', ['logs', 'mlink-waker']);
    expect(logs.split('\n').some((l) => l.includes('"replica restarted"') && l.includes(cluster))).toBe(true);

    up = await startUp({ cluster, home: up.home, token: up.token, drift: 30 });
    agent = await connectAgent(up);
    // Its first pass has nothing to do: the replica serves as it was.
    const phase = await eventually('get_app says Running', async () => {
      const { live } = await call<{ live: { phase?: string; message?: string } }>(agent, 'get_app', { name: 'web' });
      return live.phase === 'Running' ? live : undefined;
    }, 30_000);
    expect(phase.message).toMatch(/^1\/1 container\(s\) running/);
    await call(agent, 'sync', {});
    await new Promise((r) => setTimeout(r, 3000));
    expect((await replicas('web')).map((c) => c.Id)).toEqual([before!.Id]);
  }, 120_000);

  it('keeps serving while dockerd restarts (live-restore)', async () => {
    expect(JSON.parse(readFileSync('/etc/docker/daemon.json', 'utf8'))['live-restore']).toBe(true);
    const polling = poll('web');
    await new Promise((r) => setTimeout(r, 500));
    const pid = Number(readFileSync('/var/run/docker.pid', 'utf8').trim());
    process.kill(pid, 'SIGTERM');
    await eventually('dockerd stopped', async () => ((await run('docker', ['version', '--format', '{{.Server.Version}}'])).code !== 0 ? true : undefined), 30_000);
    await new Promise((r) => setTimeout(r, 1000));
    const setup = await run('node', ['bin/mlink.js', 'setup'], { env: upEnv(up.home) });
    expect(setup.code).toBe(0);
    await new Promise((r) => setTimeout(r, 1000));
    const counts = await polling.stop();
    console.log(`dockerd stopped and started again: ${counts.served} requests served, ${counts.failed} failed`);
    expect(counts.failed).toBe(0);
    expect(counts.served).toBeGreaterThan(20);
    const [kept] = await replicas('web');
    expect(kept!.State).toBe('running');
    // The waker outlived dockerd too, and still reaches the new one: a replica killed now comes back as itself.
    await docker.getContainer(kept!.Id).kill();
    await eventually('the app serves again after the kill', async () => ((await get('web')).status === 200 ? true : undefined), 30_000);
    expect((await replicas('web')).map((c) => [c.Id, c.State])).toEqual([[kept!.Id, 'running']]);
  }, 120_000);
});
