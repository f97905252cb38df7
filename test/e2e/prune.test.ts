// `mlink prune --cluster NAME` after a control plane died mid-way, as a user would reach
// for it: `mlink up` serves an app, is SIGKILLed, and prune removes what it left (the
// reconcile workflow, replicas, holders, route file, project network, egress chains),
// while it refuses as long as a worker of that cluster still polls, and never touches a
// cluster whose name starts the same, an unlabelled container, or anything else.
import Docker from 'dockerode';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client as TemporalClient, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../infra/proc.js';
import { temporalAddress } from '../../infra/config.js';
import { renderRoute } from '../../reconciler/edge/route.js';
import { ownedChains } from '../../reconciler/hosts/egress.js';
import { LABEL, MANAGED_BY } from '../../reconciler/model.js';
import { reconcileWorkflowId } from '../../reconciler/temporal/client.js';
import { ensureWebImage } from '../support/images.js';
import { cfg, eventually, host, removeTestContainers, removeTestNetworks, runId, testLabel, viaTraefik } from '../support/infra.js';
import { call, connectAgent, removeCluster, removeHome, startUp, stopUp, upEnv, type Up } from '../support/mlink-up.js';

const docker = new Docker();
const cluster = `prn${runId}`.slice(0, 30);
// A cluster whose name starts like this one's, so its route file name does too.
const neighbour = `${cluster}--nb`;
const neighbourRoute = join(cfg.traefik.routesDir, `mlink-${neighbour}--p--n.yaml`);
let up: Up;

const prune = (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
  run(process.execPath, ['bin/mlink.js', 'prune', '--cluster', cluster, ...args], { env: upEnv(up.home) });

const mine = async (): Promise<{ containers: string[]; networks: string[] }> => {
  const filters = { label: [`${LABEL.managedBy}=${MANAGED_BY}`, `${LABEL.cluster}=${cluster}`] };
  return {
    containers: (await docker.listContainers({ all: true, filters })).map((c) => c.Names[0]!),
    networks: (await docker.listNetworks({ filters })).map((n) => n.Name),
  };
};

async function workflowStatus(): Promise<string> {
  const connection = await Connection.connect({ address: temporalAddress(cfg) });
  try {
    return (await new TemporalClient({ connection, namespace: cfg.temporal.namespace }).workflow.getHandle(reconcileWorkflowId(cluster)).describe()).status.name;
  } finally {
    await connection.close();
  }
}

beforeAll(async () => {
  const image = await ensureWebImage();
  up = await startUp({ cluster });
  const agent = await connectAgent(up);
  const sfx = runId.slice(-6);
  await call(agent, 'create_app', { name: `gone${sfx}`, source: { image }, port: 8080, wait: 60 });
  expect((await viaTraefik(`gone${sfx}.default.localhost`)).status).toBe(200);
  await agent.close();
  // a neighbour's objects, and ones ml.ink did not make: prune must leave them all
  const net = await docker.createNetwork({ Name: `mlink-${neighbour}-p`, Labels: { [LABEL.managedBy]: MANAGED_BY, [LABEL.cluster]: neighbour, [testLabel]: runId } });
  await docker.createContainer({ Image: cfg.images.busybox, Cmd: ['sleep', '600'], name: `mlink-${neighbour}-p-n`, Labels: { [LABEL.managedBy]: MANAGED_BY, [LABEL.cluster]: neighbour, [testLabel]: runId }, HostConfig: { NetworkMode: net.id } });
  await docker.createContainer({ Image: cfg.images.busybox, Cmd: ['sleep', '600'], Labels: { [LABEL.cluster]: cluster, [testLabel]: runId } });
  writeFileSync(neighbourRoute, renderRoute({ cluster: neighbour, project: 'p', name: 'n', specHash: 'a'.repeat(64), router: `mlink-${neighbour}-p-n`, domains: ['n.p.nb.localhost'], servers: ['http://192.0.2.1:80'], access: { allowCidrs: ['127.0.0.0/8'], redirectToHttps: false } }));
}, 180_000);

afterAll(async () => {
  rmSync(neighbourRoute, { force: true });
  await removeTestContainers();
  await removeTestNetworks();
  if (up) {
    await stopUp(up);
    await removeCluster(cluster);
    removeHome(up);
  }
}, 120_000);

describe('mlink prune --cluster', () => {
  it('refuses while the cluster\'s control plane runs, and removes nothing', async () => {
    const before = await mine();
    const r = await prune([]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`cluster ${cluster} still has a control plane: worker .* polled task queue mlink-${cluster} \\d+ s ago\\. Stop its mlink up first`));
    expect(await mine()).toEqual(before);
    expect(before.containers.length).toBeGreaterThanOrEqual(2); // the replica and its holder at least
    expect(before.networks).toEqual([`mlink-${cluster}-default`]);
  }, 60_000);

  it('after the control plane is SIGKILLed, --dry-run lists what would go and removes nothing', async () => {
    expect(await stopUp(up, 'SIGKILL')).toBe(null);
    const before = await mine();
    const r = await prune(['--dry-run', '--force']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`would terminate ${reconcileWorkflowId(cluster)}`);
    expect(r.stdout).toMatch(new RegExp(`would remove ${before.containers.length} container\\(s\\)`));
    expect(r.stdout).toContain(`would remove 1 network(s): mlink-${cluster}-default`);
    expect(await mine()).toEqual(before);
    expect(await workflowStatus()).toBe('RUNNING');
  }, 60_000);

  it('removes the workflow, containers, route file, network and egress chains it left; nothing of anyone else', async () => {
    expect((await ownedChains(host, cluster)).length).toBeGreaterThan(0);
    const r = await prune(['--force']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // its route and, beside it, its certificate (whose header names the cluster too)
    expect(r.stdout).toMatch(/removed 2 route file\(s\): mlink-prn\S+--default--gone\S+\.tls\.yaml, mlink-prn\S+--default--gone\S+\.yaml/);
    expect(await mine()).toEqual({ containers: [], networks: [] });
    expect(await ownedChains(host, cluster)).toEqual([]);
    expect(await workflowStatus()).toBe('TERMINATED');
    await eventually('Traefik drops the route', async () => ((await viaTraefik(`gone${runId.slice(-6)}.default.localhost`)).status === 404 ? true : undefined), 10_000);
    // the neighbour whose names start the same, and the unlabelled container, are all still there
    expect(existsSync(neighbourRoute)).toBe(true);
    expect((await docker.listContainers({ all: true, filters: { label: [`${LABEL.cluster}=${neighbour}`] } })).length).toBe(1);
    expect((await docker.listNetworks({ filters: { label: [`${LABEL.cluster}=${neighbour}`] } })).length).toBe(1);
    expect((await docker.listContainers({ all: true, filters: { label: [`${testLabel}=${runId}`, `${LABEL.cluster}=${cluster}`] } })).length).toBe(1);
    // and mlink doctor has no failing egress line for it any more
    const doctor = await run(process.execPath, ['bin/mlink.js', 'doctor'], { env: upEnv(up.home) });
    expect(doctor.stdout).not.toContain(cluster + ' ');
  }, 120_000);
});
