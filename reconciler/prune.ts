// Everything a cluster left on this host once its control plane is gone (a benchmark, a
// test, an `mlink up` that died mid-way): its reconcile workflow, its containers
// (replicas, network holders, build sandboxes), its route files, its project networks
// and its egress chains. Only objects labelled (or headed) with ml.ink's managed-by and
// this cluster's name are touched; another cluster's, or anything ml.ink did not make,
// never. Volumes are not touched: data is for a human to purge.
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { join } from 'node:path';
import { ownedBy } from './edge/route.js';
import { removeClusterEgress, ownedChains } from './hosts/egress.js';
import type Docker from 'dockerode';
import type { Host } from './hosts/host.js';
import { removeWakeSpec } from './hosts/waker.js';
import { wakeIdOfRoute } from './waker/spec.js';
import { LABEL, MANAGED_BY } from './model.js';
import { reconcileWorkflowId } from './temporal/client.js';
import { taskQueue } from './temporal/worker.js';

export interface PruneOptions {
  cluster: string;
  /** The host to clear (this machine for `mlink prune`), and its edge's route directory. */
  host: Host;
  routesDir: string;
  temporal: { address: string; namespace: string };
  /** Say what would go, remove nothing. */
  dryRun?: boolean;
  /** Skip the check that no worker of the cluster still polls Temporal. */
  force?: boolean;
}

export interface PruneReport {
  workflow: string;
  containers: string[];
  routes: string[];
  networks: string[];
  chains: string[];
  /** What could not be removed, and why (for example a network another program's container still uses). */
  left: string[];
}

/** A worker polled the cluster's task queue this recently: its control plane is alive. */
const ALIVE_MS = 90_000;

/** Why the cluster's control plane looks alive (a worker polled lately), or null. */
async function liveWorker(client: Client, namespace: string, cluster: string): Promise<string | null> {
  const r = await client.workflowService.describeTaskQueue({ namespace, taskQueue: { name: taskQueue(cluster) } });
  const now = Date.now();
  for (const p of r.pollers ?? []) {
    const seconds = Number(p.lastAccessTime?.seconds ?? 0);
    if (seconds && now - seconds * 1000 < ALIVE_MS) return `worker ${p.identity ?? '?'} polled task queue ${taskQueue(cluster)} ${Math.round((now - seconds * 1000) / 1000)} s ago`;
  }
  return null;
}

const nameOf = (c: Docker.ContainerInfo): string => (c.Names[0] ?? c.Id).replace(/^\//, '');

export async function pruneCluster(opts: PruneOptions): Promise<PruneReport> {
  const { cluster, host, dryRun } = opts;
  const { docker } = host;
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(cluster)) throw new Error(`--cluster ${JSON.stringify(cluster)} is not a cluster name (a DNS label)`);
  const report: PruneReport = { workflow: '', containers: [], routes: [], networks: [], chains: [], left: [] };
  const labels = { label: [`${LABEL.managedBy}=${MANAGED_BY}`, `${LABEL.cluster}=${cluster}`] };

  // The workflow first: a pass still running would make again what is removed below.
  const connection = await Connection.connect({ address: opts.temporal.address });
  try {
    const client = new Client({ connection, namespace: opts.temporal.namespace });
    const alive = opts.force ? null : await liveWorker(client, opts.temporal.namespace, cluster);
    if (alive) throw new Error(`cluster ${cluster} still has a control plane: ${alive}. Stop its mlink up first (if it died just now, try again in a minute, or pass --force)`);
    const handle = client.workflow.getHandle(reconcileWorkflowId(cluster));
    try {
      const d = await handle.describe();
      if (d.status.name === 'RUNNING') {
        if (!dryRun) await handle.terminate(`mlink prune --cluster ${cluster}: the cluster's control plane is gone`);
        report.workflow = `${dryRun ? 'would terminate' : 'terminated'} ${reconcileWorkflowId(cluster)} (and its children)`;
      } else {
        report.workflow = `${reconcileWorkflowId(cluster)} is not running (${d.status.name})`;
      }
    } catch (e) {
      if (!(e instanceof WorkflowNotFoundError)) throw e;
      report.workflow = `no workflow ${reconcileWorkflowId(cluster)}`;
    }
  } finally {
    await connection.close();
  }

  // Containers, then networks: a holder made while a sweep ran (a spare after a rollout)
  // still sits on a network, so sweep again until the networks go.
  const add = (list: string[], name: string): void => { if (!list.includes(name)) list.push(name); };
  for (let round = 1; ; round++) {
    for (const c of await docker.listContainers({ all: true, filters: labels })) {
      add(report.containers, nameOf(c));
      if (!dryRun) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    }
    const busy: Docker.NetworkInspectInfo[] = [];
    for (const n of await docker.listNetworks({ filters: labels })) {
      if (dryRun) { add(report.networks, n.Name); continue; }
      await docker.getNetwork(n.Id).remove().then(() => add(report.networks, n.Name), () => busy.push(n));
    }
    if (!busy.length) break;
    if (round === 5) {
      for (const n of busy) {
        const info = await docker.getNetwork(n.Id).inspect().catch(() => undefined) as { Containers?: Record<string, { Name: string }> } | undefined;
        const users = Object.values(info?.Containers ?? {}).map((c) => c.Name);
        report.left.push(`network ${n.Name}: still used by ${users.join(', ') || 'an endpoint Docker does not name'}, which ml.ink did not make for this cluster; remove or disconnect it, then prune again`);
      }
      break;
    }
    await new Promise((r) => setTimeout(r, 300 * round));
  }
  for (const c of await docker.listContainers({ all: true, filters: labels }).catch(() => [])) {
    if (!dryRun) report.left.push(`container ${nameOf(c)}: could not be removed`);
  }

  // Route and certificate files whose header names this cluster (the file name alone could belong to a cluster whose name starts the same).
  for (const f of (await host.files.list(opts.routesDir)).filter((f) => f.startsWith('mlink-') && f.endsWith('.yaml')).sort()) {
    const text = (await host.files.read(join(opts.routesDir, f))) ?? '';
    if (!ownedBy(text, cluster)) continue;
    if (!dryRun) await host.files.remove(join(opts.routesDir, f));
    report.routes.push(f);
    // A scale-to-zero app's wake spec beside it: the waker forgets the app.
    if (!dryRun) await removeWakeSpec(host, { routesDir: opts.routesDir, api: '' }, wakeIdOfRoute(f));
  }

  report.chains = await ownedChains(host, cluster);
  if (!dryRun) await removeClusterEgress(host, cluster);
  return report;
}
