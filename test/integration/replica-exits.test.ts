// Replicas run in the network namespace of a holder made beforehand (hosts/containers.ts)
// and are not restarted by Docker's policy: their host's supervisor brings one back
// (replica-supervisor.test.ts), and the control plane's watcher asks for a pass for one
// still down, so it is replaced. Real Docker and runsc (no supervisor in this test):
// a replica started on the network's spare answers on its address with its own MAC; a
// serving replica that exits, or is removed by hand, asks for a pass (triggers.ts watchReplicaExits),
// one removed on purpose or one that never served does not; started again, it answers
// again on a new holder. A holder whose replica is gone is swept.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderRoute } from '../../reconciler/edge/route.js';
import { holderName, keepSpare, removeReplica, startReplica, sweepHolders, type ReplicaRequest } from '../../reconciler/hosts/containers.js';
import { replicaMac } from '../../reconciler/hosts/egress-rules.js';
import { routeFileName } from '../../reconciler/layout.js';
import { LABEL, type DesiredApp } from '../../reconciler/model.js';
import { watchReplicaExits, type Stoppable } from '../../reconciler/triggers.js';
import { must } from '../../infra/proc.js';
import { ensureWebImage } from '../support/images.js';
import { docker, eventually, host, runId } from '../support/infra.js';

const cluster = `rx${runId}`.slice(0, 20);
const network = `mlink-${cluster}-p`;
const routes = mkdtempSync(join(tmpdir(), 'mlink-routes-'));
const exits: string[] = [];
let watcher: Stoppable | undefined;
let image = '';

const app = (specHash: string): DesiredApp => ({
  kind: 'App', project: 'p', name: 'web', specHash: specHash.padEnd(40, '0'), image, port: 8080, env: { GREETING: specHash }, secretEnv: [],
  resources: { cpu: 0.5, memoryMb: 64, pids: 64 }, replicas: 1, runtime: 'runsc', domains: ['web.p.localhost'], access: { allowCidrs: ['127.0.0.0/8'], redirectToHttps: true }, egress: [], readOnlyRoot: true,
  health: { path: '/', intervalMs: 200, timeoutMs: 2000, retries: 50 }, databases: [], placement: ['local'],
});
const request = (a: DesiredApp): ReplicaRequest => ({ cluster, commit: 'c0', app: a, replica: 0, container: `mlink-${cluster}-p-web-${a.specHash.slice(0, 10)}-0`, network, secrets: {} });

/** The route file that says `a` serves, as the reconciler writes it. */
function serving(a: DesiredApp, ip: string): void {
  writeFileSync(join(routes, routeFileName(cluster, a)), renderRoute({ cluster, project: 'p', name: 'web', specHash: a.specHash, router: 'r', domains: a.domains, servers: [`http://${ip}:8080`], access: a.access }));
}

async function answers(ip: string): Promise<string | undefined> {
  const r = await fetch(`http://${ip}:8080/`, { signal: AbortSignal.timeout(1000) }).catch(() => undefined);
  return r?.status === 200 ? r.text() : undefined;
}

beforeAll(async () => {
  image = await ensureWebImage();
  await docker.createNetwork({ Name: network, Labels: { [LABEL.cluster]: cluster } });
  watcher = watchReplicaExits(host, { routesDir: routes, api: '' }, cluster, (why) => exits.push(why));
}, 120_000);

afterAll(async () => {
  await watcher?.stop();
  const mine = await docker.listContainers({ all: true, filters: { label: [`${LABEL.cluster}=${cluster}`] } });
  await Promise.all(mine.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
  await docker.getNetwork(network).remove().catch(() => undefined);
  rmSync(routes, { recursive: true, force: true });
}, 60_000);

describe('a replica on its network holder', () => {

  it("starts on the network's spare, renamed after it, with its own MAC, and answers on the holder's address", async () => {
    keepSpare(host, cluster, 'p', network);
    const made = await eventually('two spare holders', async () => {
      const list = await docker.listContainers({ filters: { label: [`${LABEL.cluster}=${cluster}`, `${LABEL.kind}=AppNet`] } });
      return list.length === 2 ? list.map((c) => c.Id) : undefined;
    });
    const a = app('aaaa');
    const s = await startReplica(host, request(a));
    expect(s.ms).toMatchObject({ spare: true });
    const holder = await docker.getContainer(holderName(s.name)).inspect();
    expect(made).toContain(holder.Id);
    expect(holder.HostConfig.Runtime).toBe('runc');
    expect((await docker.getContainer(s.id).inspect()).HostConfig.NetworkMode).toBe(`container:${holder.Id}`);
    expect(await eventually('the replica answers', () => answers(s.ip), 10_000)).toMatch(/^aaaa from /);
    // The MAC the egress rules match on is the one the replica's frames carry.
    expect(await must('ip', ['neigh', 'show', s.ip])).toContain(replicaMac(cluster, a, 0));
  }, 60_000);

  it('asks for a pass when a serving replica exits; started again on a new holder, it answers again', async () => {
    const a = app('aaaa');
    const s = await startReplica(host, request(a));
    serving(a, s.ip);
    exits.length = 0;
    await docker.getContainer(s.id).kill();
    expect(await eventually('a pass asked for', async () => exits[0], 5000)).toBe('a replica of p/web on local exited');
    expect(await answers(s.ip)).toBeUndefined();
    const again = await startReplica(host, request(a));
    expect(again.id).not.toBe(s.id);
    expect(await eventually('the replica answers again', () => answers(again.ip), 10_000)).toMatch(/^aaaa from /);
    // Exiting again soon after: asked later, as Docker's restart policy would back off.
    serving(a, again.ip);
    exits.length = 0;
    const killed = Date.now();
    await docker.getContainer(again.id).kill();
    expect(await eventually('a pass asked for again', async () => exits[0], 5000)).toBe('a replica of p/web on local exited (again: asked 1 s later)');
    expect(Date.now() - killed).toBeGreaterThanOrEqual(1000);
  }, 60_000);

  it('asks for nothing when a replica is removed on purpose, or one that never served exits', async () => {
    const a = app('aaaa');
    const b = app('bbbb');
    const sb = await startReplica(host, request(b));
    exits.length = 0;
    await docker.getContainer(sb.id).kill(); // b never served: the route is a's
    await removeReplica(docker, request(a).container, request(a).container);
    await new Promise((r) => setTimeout(r, 2000));
    expect(exits).toEqual([]);
    // b's replica removed by hand leaves its holder behind; the sweep takes it, and only it (not the spare).
    await docker.getContainer(sb.id).remove({ force: true });
    expect(await sweepHolders(host, cluster, 0)).toEqual([holderName(sb.name)]);
    const left = await docker.listContainers({ all: true, filters: { label: [`${LABEL.cluster}=${cluster}`, `${LABEL.kind}=AppNet`] } });
    expect(left.map((c) => c.Names[0]!.slice(1)).filter((n) => !n.includes('-spare-'))).toEqual([]);
  }, 60_000);

  it('asks for a pass when a serving replica is removed by hand (its holder left behind)', async () => {
    const a = app('aaaa');
    const s = await startReplica(host, request(a));
    serving(a, s.ip);
    exits.length = 0;
    await docker.getContainer(s.id).remove({ force: true });
    // (asked later than at once: the exits above count toward the app's backoff)
    expect(await eventually('a pass asked for', async () => exits[0], 10_000)).toMatch(/^a replica of p\/web on local was removed/);
    await removeReplica(docker, s.name, s.name);
  }, 60_000);
});
