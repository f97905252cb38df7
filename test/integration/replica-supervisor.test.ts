// The runtime host's supervisor (waker/supervisor.ts) with real Docker and runsc: a
// serving replica that is killed comes back in its own holder, on the same address with
// the same MAC, and answers, with no control plane; killed again at once, it waits its
// backoff first; one removed on purpose, one of a version its route does not serve, and
// one a scale-to-zero session keeps stay as they are; one that exited while no
// supervisor ran is brought back when it starts. The supervisor runs in this process
// here; test/e2e/self-heal.test.ts has it in its waker container beside a real edge.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderRoute } from '../../reconciler/edge/route.js';
import { holderName, keepSpare, startReplica, type ReplicaRequest } from '../../reconciler/hosts/containers.js';
import { replicaMac } from '../../reconciler/hosts/egress-rules.js';
import { routeFileName } from '../../reconciler/layout.js';
import { LABEL, type DesiredApp } from '../../reconciler/model.js';
import { DockerApi } from '../../reconciler/waker/docker-api.js';
import { run as runCommand, writeAtomic } from '../../reconciler/waker/runtime.js';
import { parseReplicaRecord, replicaFile, type ReplicaRecord } from '../../reconciler/waker/spec.js';
import { Supervisor } from '../../reconciler/waker/supervisor.js';
import { must } from '../../infra/proc.js';
import { ensureWebImage } from '../support/images.js';
import { docker, eventually, host, runId } from '../support/infra.js';

const cluster = `rs${runId}`.slice(0, 20);
const network = `mlink-${cluster}-p`;
const base = mkdtempSync(join(tmpdir(), 'mlink-supervisor-'));
const routes = join(base, 'routes');
const dir = join(base, 'waker');
const skipped = new Set<string>();
const lines: Array<{ msg: string; fields: Record<string, unknown> }> = [];
let supervisor: Supervisor | undefined;
let image = '';

const app = (name: string, specHash: string): DesiredApp => ({
  kind: 'App', project: 'p', name, specHash: specHash.padEnd(40, '0'), image, port: 8080, env: { GREETING: `${name}-${specHash}` }, secretEnv: [],
  resources: { cpu: 0.5, memoryMb: 64, pids: 64 }, replicas: 1, runtime: 'runsc', domains: [`${name}.p.localhost`], access: { allowCidrs: ['127.0.0.0/8'], redirectToHttps: true }, egress: [], readOnlyRoot: true,
  health: { path: '/', intervalMs: 200, timeoutMs: 2000, retries: 50 }, databases: [], placement: ['local'],
});
const request = (a: DesiredApp): ReplicaRequest => ({ cluster, commit: 'c0', app: a, replica: 0, container: `mlink-${cluster}-p-${a.name}-${a.specHash.slice(0, 10)}-0`, network, secrets: {} });

/** The route file that says `a` serves, as the reconciler writes it. */
function serving(a: DesiredApp, ip: string): void {
  writeFileSync(join(routes, routeFileName(cluster, a)), renderRoute({ cluster, project: 'p', name: a.name, specHash: a.specHash, router: `r-${a.name}`, domains: a.domains, servers: [`http://${ip}:8080`], access: a.access }));
}

async function answers(ip: string): Promise<string | undefined> {
  const r = await fetch(`http://${ip}:8080/`, { signal: AbortSignal.timeout(1000) }).catch(() => undefined);
  return r?.status === 200 ? r.text() : undefined;
}

const record = (container: string): ReplicaRecord | undefined => {
  try { return parseReplicaRecord(readFileSync(join(dir, replicaFile(container)), 'utf8')); } catch { return undefined; }
};
const state = async (id: string): Promise<string> => (await docker.getContainer(id).inspect()).State.Status;

function startSupervisor(): Supervisor {
  const s = new Supervisor({
    docker: new DockerApi(), dir, routesDir: routes, skip: (c) => skipped.has(c), save: writeAtomic, run: runCommand,
    log: (msg, fields) => lines.push({ msg, fields }),
  });
  s.start();
  return s;
}

beforeAll(async () => {
  image = await ensureWebImage();
  await must('mkdir', ['-p', routes, dir]);
  await docker.createNetwork({ Name: network, Labels: { [LABEL.cluster]: cluster } });
  keepSpare(host, cluster, 'p', network);
}, 120_000);

afterAll(async () => {
  supervisor?.close();
  const mine = await docker.listContainers({ all: true, filters: { label: [`${LABEL.cluster}=${cluster}`] } });
  await Promise.all(mine.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
  await docker.getNetwork(network).remove().catch(() => undefined);
  rmSync(base, { recursive: true, force: true });
}, 60_000);

describe('the supervisor of a runtime host', () => {
  it('brings a replica that exited while none ran back when it starts, and a killed one back on its address and MAC', async () => {
    const a = app('web', 'aaaa');
    const s = await startReplica(host, request(a));
    serving(a, s.ip);
    expect(await eventually('the replica answers', () => answers(s.ip), 10_000)).toMatch(/^web-aaaa from /);
    await docker.getContainer(s.id).kill();
    expect(await answers(s.ip)).toBeUndefined();
    // It exited before the supervisor ran (a waker restart, dockerd's): its start looks at every replica once.
    supervisor = startSupervisor();
    expect(await eventually('the replica answers again', () => answers(s.ip), 15_000)).toMatch(/^web-aaaa from /);
    const holder = await docker.getContainer(holderName(s.name)).inspect();
    expect((await docker.getContainer(s.id).inspect()).HostConfig.NetworkMode).toBe(`container:${holder.Id}`);
    expect(record(s.name)).toMatchObject({ state: 'running', restarts: 1, lastExit: { code: 137 } });

    // Killed while it runs: back within seconds, same address, and the MAC the egress rules match on.
    const killed = Date.now();
    await docker.getContainer(s.id).kill();
    await eventually('the replica answers once more', () => answers(s.ip), 15_000);
    const back = Date.now() - killed;
    console.log(`killed replica answering again after ${back} ms`);
    expect(await must('ip', ['neigh', 'show', s.ip])).toContain(replicaMac(cluster, a, 0));
    expect(record(s.name)).toMatchObject({ state: 'running', restarts: 2 });
    // The third exit in a row waits its backoff (2 s after two restarts), saying so meanwhile.
    const again = Date.now();
    await docker.getContainer(s.id).kill();
    const waiting = await eventually('the record says when', async () => { const r = record(s.name); return r?.state === 'restarting' && r.nextAt ? r : undefined; }, 5000);
    expect(Date.parse(waiting.nextAt!) - again).toBeGreaterThanOrEqual(1500);
    await eventually('the replica answers after its backoff', () => answers(s.ip), 20_000);
    expect(Date.now() - again).toBeGreaterThanOrEqual(2000);
  }, 90_000);

  it('leaves alone a replica removed on purpose, one its route does not serve, and one a scale-to-zero session keeps', async () => {
    const a = app('web', 'aaaa');
    const older = app('old', 'bbbb');
    const newer = app('old', 'cccc');
    const sleepy = app('sleepy', 'dddd');
    const so = await startReplica(host, request(newer));
    serving(older, so.ip); // the route still serves the older version: this one never served
    const sz = await startReplica(host, request(sleepy));
    serving(sleepy, sz.ip);
    skipped.add(sz.name);
    await docker.getContainer(so.id).kill();
    await docker.getContainer(sz.id).kill();
    // Removed with force, as the reconciler removes: it stays gone, and so does its record.
    await docker.getContainer(request(a).container).remove({ force: true });
    await new Promise((r) => setTimeout(r, 3000));
    expect(await state(so.id)).toBe('exited');
    expect(await state(sz.id)).toBe('exited');
    expect(await docker.getContainer(request(a).container).inspect().catch(() => undefined)).toBeUndefined();
    expect([record(so.name), record(sz.name), record(request(a).container)]).toEqual([undefined, undefined, undefined]);
  }, 60_000);
});
