// The waker on a runtime host reached only over SSH (a test host: its own sshd, dockerd
// and runsc), through the same host seam and code as on this machine: hosts/waker.ts
// builds its image there, runs it, hands it an app's wake spec; the app is put to sleep
// and woken by a request made as that host makes it (its edge on its loopback would).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REMOTE_EDGE } from '../../reconciler/hosts/cluster.js';
import { ensureNetwork, startReplica } from '../../reconciler/hosts/containers.js';
import type { SshHost } from '../../reconciler/hosts/ssh-host.js';
import { readWakeStates, sleepNow, wakeSpecOf, WAKER_CONTAINER, writeWakeSpec } from '../../reconciler/hosts/waker.js';
import { containerName, networkName } from '../../reconciler/layout.js';
import type { DesiredApp } from '../../reconciler/model.js';
import { WAKE_HEADER, WAKER_URL, wakeId } from '../../reconciler/waker/spec.js';
import { cfg, eventually, runId } from '../support/infra.js';
import { ensureWebImage, WEB_IMAGE } from '../support/images.js';
import { loadImage, removeTestHosts, startTestHost, type TestHost } from '../support/test-hosts.js';

const cluster = `wr${runId}`.slice(0, 24);
let th: TestHost;
let host: SshHost;

const app: DesiredApp = {
  kind: 'App', project: 'default', name: 'sleepy', specHash: 'd'.repeat(64), image: WEB_IMAGE, port: 8080, env: { GREETING: 'remote' }, secretEnv: [],
  resources: { cpu: 0.5, memoryMb: 128, pids: 256 }, replicas: 1, runtime: 'runsc', domains: ['sleepy.default.localhost'], access: { allowCidrs: ['127.0.0.0/8'], redirectToHttps: true },
  health: { path: '/', intervalMs: 200, timeoutMs: 2000, retries: 150 }, databases: [], placement: ['remote'], scaleToZero: { idleTimeoutSeconds: 30 },
};

beforeAll(async () => {
  await ensureWebImage();
  th = await startTestHost({ name: `waker-${runId}`.slice(0, 30) });
  host = th.connect();
  for (const ref of [cfg.images.busybox, cfg.images.debian, WEB_IMAGE]) await loadImage(host, ref);
}, 300_000);

afterAll(async () => {
  await host?.close();
  await removeTestHosts();
}, 60_000);

describe('the waker on a remote runtime host', () => {
  it('runs there from this machine\'s code, puts an app to sleep, and wakes it on the next request, all over SSH', async () => {
    const network = networkName(cluster, app.project);
    await ensureNetwork(host.docker, cluster, app.project, network);
    const container = containerName(cluster, app, 0);
    await startReplica(host, { cluster, commit: 'c'.repeat(40), app, replica: 0, container, network, secrets: {} });
    await writeWakeSpec(host, REMOTE_EDGE, wakeSpecOf(cluster, app, [{ container, replica: 0 }]));
    const waker = await host.docker.getContainer(WAKER_CONTAINER).inspect();
    expect(waker.HostConfig.NetworkMode).toBe('host');
    expect(waker.HostConfig.Binds).toContain('/var/lib/mlink/waker:/var/lib/mlink/waker');

    const id = wakeId(cluster, app);
    const ask = (): ReturnType<SshHost['request']> => host.request(`${WAKER_URL}/`, { headers: { [WAKE_HEADER]: id }, timeoutMs: 60_000 });
    expect((await ask()).body).toMatch(/^remote from /);

    await sleepNow(host, id);
    await eventually('the replica stops there', async () => ((await host.docker.getContainer(container).inspect()).State.Running ? undefined : true), 20_000);
    expect((await readWakeStates(host, REMOTE_EDGE, cluster)).get(id)).toMatchObject({ state: 'sleeping' });

    const woken = await ask();
    expect(woken.status).toBe(200);
    expect(woken.body).toMatch(/^remote from /);
    const info = await host.docker.getContainer(container).inspect();
    expect(info.State.Running).toBe(true);
    expect(info.HostConfig.Runtime).toBe('runsc');
    expect((await readWakeStates(host, REMOTE_EDGE, cluster)).get(id)).toMatchObject({ state: 'awake' });
  }, 300_000);
});
