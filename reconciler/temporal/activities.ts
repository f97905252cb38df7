// All the reconciler's I/O, as Temporal activities built from their dependencies.
// Each is idempotent: it checks before it acts, by deterministic names, so a retry
// after a crash finds the work already done.
import { ApplicationFailure, heartbeat } from '@temporalio/activity';
import type Docker from 'dockerode';
import { StalledError } from '../errors.js';
import { renderRoute } from '../edge/route.js';
import { removeRouteFile, writeRouteFile, type Edge } from '../edge/traefik.js';
import * as containers from '../hosts/containers.js';
import * as egress from '../hosts/egress.js';
import { networkName, routerOfFile } from '../model.js';
import { observe } from '../observe/live.js';
import { diff } from '../diff/diff.js';
import { plan, type Action, type Plan } from '../plan/plan.js';
import { loadDesired, type LoadedState } from '../source/desired.js';
import { decryptSecret, secretPath } from '../state/secrets.js';
import { MAIN, type StateStore } from '../state/store.js';
import { recordStatus, type StatusRecord } from '../status/record.js';
import type { Logger } from '../util/log.js';
import { createBuildActivities } from '../image-builds/activity.js';
import type { Builder } from '../image-builds/builder.js';
import { ensurePulled } from '../image-builds/docker-steps.js';

export type PassPlan =
  | { commit: null }
  | { commit: string; invalid: string }
  | { commit: string; plan: Plan; skipped: LoadedState['skipped'] };

export interface ActivityDeps {
  cluster: string;
  store: StateStore;
  docker: Docker;
  edge: Edge;
  /** The cluster's age identity (AGE-SECRET-KEY-...), for secrets on their way into containers. */
  identity: () => Promise<string>;
  log: Logger;
  /** Set on workers of a host with the build role: builds images from source. */
  builder?: Builder;
}

function stalled(e: unknown): never {
  if (e instanceof StalledError) {
    throw ApplicationFailure.create({ type: 'StalledError', message: e.message, nonRetryable: true, details: [{ phase: e.phase, resource: e.resource }] });
  }
  throw e;
}

type Of<T extends Action['type']> = Extract<Action, { type: T }>;

export function createActivities(deps: ActivityDeps) {
  const { docker, edge, cluster, log } = deps;

  async function secretsFor(commit: string, app: Of<'startReplica'>['app']): Promise<Record<string, string>> {
    if (!app.secretEnv.length) return {};
    const view = await deps.store.view(commit);
    const identity = await deps.identity();
    const out: Record<string, string> = {};
    for (const name of app.secretEnv) {
      const armored = await view.readText(secretPath(app.project, app.name, name));
      if (armored === null) stalled(new StalledError('ValidationFailed', `apps/${app.project}/${app.name}.yaml`, `secret ${name} is missing at ${commit.slice(0, 12)}`));
      out[name] = await decryptSecret(armored, identity);
    }
    return out;
  }

  // A rollout's steps: run by the rollOut activity, one after the other (see workflows.ts).
  async function startReplica(input: { action: Of<'startReplica'>; commit: string }): Promise<containers.Started> {
    const a = input.action;
    const t0 = Date.now();
    // Built images come from the private registry (a no-op on the host that built them).
    if (a.app.build) await ensurePulled(docker, a.app.image);
    const started = await containers.startReplica(docker, {
      cluster, commit: input.commit, app: a.app, replica: a.replica, container: a.container, network: a.network,
      secrets: await secretsFor(input.commit, a.app),
    });
    log.info('replica running', { app: `${a.app.project}/${a.app.name}`, container: a.container, ip: started.ip, ms: { total: Date.now() - t0, ...started.ms } });
    return started;
  }

  /** The replicas' addresses: as their start in this rollOut returned them, else asked of Docker. */
  async function addresses(names: string[], project: string, known: Map<string, string>): Promise<string[]> {
    if (names.every((n) => known.get(n))) return names.map((n) => known.get(n)!);
    return containers.containerAddresses(docker, names, networkName(cluster, project));
  }

  async function waitHealthy(a: Of<'waitHealthy'>, known: Map<string, string>): Promise<void> {
    const network = networkName(cluster, a.app.project);
    const ips = await addresses(a.containers, a.app.project, known);
    const missing = a.containers.filter((_, i) => !ips[i]);
    if (missing.length) throw new Error(`${missing.join(', ')} has no address on ${network} (not running?)`);
    await Promise.all(ips.map(async (ip, i) => {
      const name = a.containers[i]!;
      try {
        await containers.waitHealthy(`http://${ip}:${a.app.port}${a.app.health.path}`, a.app.health, async () => {
          const info = await docker.getContainer(name).inspect().catch(() => undefined);
          // A restart means its process exited: Docker's restart policy would hide a crash loop for the whole window.
          return !!info?.State.Running && !info.State.Restarting && !info.RestartCount;
        }, () => heartbeat());
      } catch (e) {
        const logs = await containers.containerLogsTail(docker, name);
        throw ApplicationFailure.create({
          type: 'HealthCheckFailed', nonRetryable: true,
          message: `${name}: ${(e as Error).message}${logs ? `; last log lines: ${logs.split('\n').slice(-5).join(' | ')}` : ''}`,
        });
      }
    }));
  }

  async function writeRoute(a: Of<'writeRoute'>, known: Map<string, string>): Promise<void> {
    const network = networkName(cluster, a.app.project);
    const servers = (await addresses(a.containers, a.app.project, known)).map((ip) => `http://${ip}:${a.app.port}`);
    if (servers.some((s) => s.includes('//:'))) throw new Error(`a replica of ${a.app.project}/${a.app.name} has no address on ${network}`);
    const content = renderRoute({ cluster, project: a.app.project, name: a.app.name, specHash: a.app.specHash, router: a.router, hosts: a.app.hosts, servers });
    await writeRouteFile(edge, a.file, a.router, content, servers, () => heartbeat());
  }

  return {
    ...createBuildActivities(deps.builder),

    /**
     * One pass's plan: the newest commit on main, its desired state (or why it cannot be
     * applied), the live state, paired and planned. The workflow runs it as a local
     * activity, so a pass starts with no round trip to the Temporal server and only the
     * plan (small when nothing changed), not the whole state, enters its history.
     */
    async planPass(input: { drainMs: number; retiring?: string[] }): Promise<PassPlan> {
      const commit = await deps.store.resolve(MAIN);
      if (!commit) return { commit: null };
      const [loaded, live] = await Promise.all([
        loadDesired(deps.store, commit, cluster).catch((e: unknown) => {
          if (e instanceof StalledError) return { invalid: e.message };
          throw e;
        }),
        observe(docker, edge.routesDir, cluster),
      ]);
      if ('invalid' in loaded) return { commit, invalid: loaded.invalid };
      // Old containers the workflow is draining and removing are its business, not this plan's.
      const retiring = new Set(input.retiring ?? []);
      if (retiring.size) live.containers = live.containers.filter((c) => !retiring.has(c.name));
      return { commit, plan: plan(diff(loaded.desired, live), { cluster, commit }, { drainMs: input.drainMs }), skipped: loaded.skipped };
    },

    async ensureNetwork(a: Of<'ensureNetwork'>): Promise<void> {
      await containers.ensureNetwork(docker, cluster, a.project, a.network);
    },

    /** A rollout's consecutive startReplica, waitHealthy and writeRoute actions, in order, in one activity (see workflows.ts). */
    async rollOut(input: { actions: Action[]; commit: string }): Promise<void> {
      const known = new Map<string, string>();
      try {
        for (const a of input.actions) {
          if (a.type === 'startReplica') known.set(a.container, (await startReplica({ action: a, commit: input.commit })).ip);
          else if (a.type === 'waitHealthy') await waitHealthy(a, known);
          else if (a.type === 'writeRoute') await writeRoute(a, known);
          else throw ApplicationFailure.create({ type: 'BadPlan', nonRetryable: true, message: `rollOut cannot run a ${a.type} action` });
        }
      } finally {
        // The starts took their networks' spare holders: new ones, now that they no longer compete with the rollout.
        for (const a of input.actions) if (a.type === 'startReplica') containers.keepSpare(docker, cluster, a.app.project, a.network);
      }
    },

    async removeContainer(a: Of<'removeContainer'>): Promise<void> {
      await containers.removeReplica(docker, a.id, a.name);
    },

    async removeRoute(a: Of<'removeRoute'>): Promise<void> {
      await removeRouteFile(edge, a.file, routerOfFile(a.file), () => heartbeat());
    },

    async removeNetwork(a: Of<'removeNetwork'>): Promise<void> {
      await containers.removeNetworkHolders(docker, cluster, a.network);
      await containers.removeNetwork(docker, a.network);
    },

    async ensureEgress(a: Of<'ensureEgress'>): Promise<void> {
      const { resolved, problems } = await egress.resolveEgress(docker, a.policy);
      for (const p of problems) log.warn('egress entry skipped', { problem: p });
      const done = await egress.applyEgress(resolved);
      if (done.hooked.length || done.dropped.length) log.info('egress rules restored', { hooked: done.hooked, dropped: done.dropped });
    },

    async removeEgress(a: Of<'removeEgress'>): Promise<void> {
      // Only once the project's network is gone: its containers stay fenced until then.
      if (await egress.bridgeOf(docker, `mlink-${cluster}-${a.project}`)) return;
      await egress.removeProjectEgress(cluster, a.project);
    },

    async recordStatus(record: StatusRecord): Promise<void> {
      await recordStatus(deps.store, record);
      log.info('reconciled', { commit: record.commit.slice(0, 12), phase: record.phase, resources: record.resources.length });
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
