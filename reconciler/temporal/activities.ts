// All the reconciler's I/O, as Temporal activities built from their dependencies.
// Agentless: the control plane's worker drives every host through the host seam, and
// every host-bound action names its host, so a retried activity acts on the same one.
// Each is idempotent: it checks before it acts, by deterministic names, so a retry
// after a crash finds the work already done.
import { ApplicationFailure, heartbeat } from '@temporalio/activity';
import { StalledError } from '../errors.js';
import { renderRoute } from '../edge/route.js';
import { removeRouteFile, writeRouteFile } from '../edge/traefik.js';
import * as containers from '../hosts/containers.js';
import * as databases from '../hosts/databases.js';
import * as egress from '../hosts/egress.js';
import { removeWakeSpec, wakeSpecOf, writeWakeSpec } from '../hosts/waker.js';
import { WAKE_HEADER, WAKER_URL, wakeId, wakeIdOfRoute } from '../waker/spec.js';
import type { HostPool } from '../hosts/pool.js';
import type { Host } from '../hosts/host.js';
import { containerName, credentialsPath, networkName, routerOfFile, secretPath } from '../layout.js';
import { keyOf, type DesiredApp } from '../model.js';
import { actionHosts, planCommit } from '../plan-pass.js';
import { rejoined } from '../hosts/conditions.js';
import type { Action, ActionOf, Plan } from '../plan/plan.js';
import type { Skipped } from '../source/desired.js';
import { decryptSecret } from '../state/secrets.js';
import { MAIN, type StateStore } from '../state/store.js';
import { recordStatus, type StatusRecord } from '../status/record.js';
import type { Logger } from '../util/log.js';
import { createBuildActivities } from '../image-builds/activity.js';
import { createBackupActivities } from '../backups/activities.js';
import { activeHolds } from '../backups/holds.js';
import type { BuildPlane } from '../image-builds/build-plane.js';
import { atRegistry } from '../image-builds/build-spec.js';
import { ensurePulled } from '../image-builds/docker-steps.js';
import { bindingEnv, checkCredentials, type Credentials } from '../databases/credentials.js';
import { createNamesActivities } from '../names/activities.js';
import type { AcmeService } from '../names/acme.js';

export type PassPlan =
  | { commit: null }
  | { commit: string; invalid: string }
  | { commit: string; plan: Plan; skipped: Skipped[] };

export interface ActivityDeps {
  cluster: string;
  store: StateStore;
  hosts: HostPool;
  /** The cluster's age identity (AGE-SECRET-KEY-...), for secrets on their way into containers. */
  identity: () => Promise<string>;
  log: Logger;
  /** Set on workers of a host with the build role: builds images from source. */
  builder?: BuildPlane;
  /** The control plane's backup store and holds (dataDir().backups, .holds). */
  backupsRoot: string;
  holdsDir: string;
  /** Certificates (the CA's keys, ACME) and where DNS ownership is kept (names/activities.ts). */
  names: { keysDir: string; stateDir: string; acme?: AcmeService };
}

function stalled(e: unknown): never {
  if (e instanceof StalledError) {
    throw ApplicationFailure.create({ type: 'StalledError', message: e.message, nonRetryable: true, details: [{ phase: e.phase, resource: e.resource }] });
  }
  throw e;
}

export function createActivities(deps: ActivityDeps) {
  const { hosts, cluster, log } = deps;
  const { appCertificate, ...names } = createNamesActivities({ ...deps, ...deps.names });

  async function secretsFor(commit: string, app: DesiredApp): Promise<Record<string, string>> {
    if (!app.secretEnv.length && !app.databases.length) return {};
    const view = await deps.store.view(commit);
    const identity = await deps.identity();
    const out: Record<string, string> = {};
    for (const name of app.secretEnv) {
      const armored = await view.readText(secretPath(app.project, app.name, name));
      if (armored === null) stalled(new StalledError('ValidationFailed', `apps/${app.project}/${app.name}.yaml`, `secret ${name} is missing at ${commit.slice(0, 12)}`));
      out[name] = await decryptSecret(armored, identity);
    }
    for (const b of app.databases) {
      if (!b.address) throw ApplicationFailure.create({ type: 'BadPlan', nonRetryable: true, message: `${app.project}/${app.name}: database ${b.project}/${b.name} has no address in the plan` });
      Object.assign(out, bindingEnv(await credentialsAt(commit, b.project, b.name, identity), { host: b.address, port: b.port, prefix: b.envPrefix }));
    }
    return out;
  }

  async function credentialsAt(commit: string, project: string, name: string, identity?: string): Promise<Credentials> {
    const armored = await (await deps.store.view(commit)).readText(credentialsPath(project, name));
    if (armored === null) stalled(new StalledError('ValidationFailed', `databases/${project}/${name}.yaml`, `its credentials are missing at ${commit.slice(0, 12)}`));
    const creds = JSON.parse(await decryptSecret(armored, identity ?? (await deps.identity()))) as Credentials;
    checkCredentials(creds);
    return creds;
  }

  /** The registry as `host` reaches it; a cluster that names none for a remote host is a mistake of mlink.yaml, not worth retrying. */
  function registryOf(host: string): string {
    try {
      return hosts.registryFor(host);
    } catch (e) {
      return stalled(new StalledError('ValidationFailed', 'mlink.yaml', (e as Error).message));
    }
  }

  /**
   * The app as `host` runs it, its image there: a built image comes from the private
   * registry at the address this host reaches it (a no-op on the host that built it); an
   * image by reference is pulled where it is missing (a runtime host the app moved to).
   */
  async function pulled(host: Host, name: string, app: DesiredApp): Promise<DesiredApp> {
    const here = app.build ? { ...app, image: atRegistry(registryOf(name), app.image) } : app;
    await ensurePulled(host.docker, here.image).catch((e: unknown) => {
      throw new Error(`app ${app.project}/${app.name} on host ${name}: image ${here.image}: ${(e as Error).message}`);
    });
    return here;
  }

  // A rollout's steps: run by the rollOut activity, one after the other (see workflows.ts).
  async function startReplica(input: { action: ActionOf<'startReplica'>; commit: string }): Promise<containers.Started> {
    const a = input.action;
    const host = hosts.get(a.host);
    const t0 = Date.now();
    const app = await pulled(host, a.host, a.app);
    const started = await containers.startReplica(host, {
      cluster, commit: input.commit, app, replica: a.replica, container: a.container, network: a.network,
      secrets: await secretsFor(input.commit, a.app),
    });
    log.info('replica running', { app: `${a.app.project}/${a.app.name}`, host: a.host, container: a.container, ip: started.ip, ms: { total: Date.now() - t0, ...started.ms } });
    return started;
  }

  /** A sleeping app's new replica: made with its env (secrets too), left for its host's waker to start. */
  async function createReplica(input: { action: ActionOf<'createReplica'>; commit: string }): Promise<void> {
    const a = input.action;
    const host = hosts.get(a.host);
    const app = await pulled(host, a.host, a.app);
    await containers.createReplica(host, {
      cluster, commit: input.commit, app, replica: a.replica, container: a.container, network: a.network,
      secrets: await secretsFor(input.commit, a.app),
    });
    log.info('replica made, asleep', { app: `${a.app.project}/${a.app.name}`, host: a.host, container: a.container });
  }

  const at = (host: string, name: string): string => `${host}/${name}`;

  /** The replicas' addresses: as their start in this rollOut returned them, else asked of their hosts. */
  async function addresses(replicas: Array<{ host: string; container: string }>, project: string, known: Map<string, string>): Promise<string[]> {
    return Promise.all(replicas.map(async (r) => known.get(at(r.host, r.container))
      ?? (await containers.containerAddresses(hosts.get(r.host).docker, [r.container], networkName(cluster, project)))[0] ?? ''));
  }

  async function waitHealthy(a: ActionOf<'waitHealthy'>, known: Map<string, string>): Promise<void> {
    const network = networkName(cluster, a.app.project);
    const ips = await addresses(a.replicas, a.app.project, known);
    const missing = a.replicas.filter((_, i) => !ips[i]).map((r) => `${r.container} on ${r.host}`);
    if (missing.length) throw new Error(`${missing.join(', ')} has no address on ${network} (not running?)`);
    await Promise.all(ips.map(async (ip, i) => {
      const { host: hostName, container: name } = a.replicas[i]!;
      const host = hosts.get(hostName);
      try {
        await containers.waitHealthy(host, `http://${ip}:${a.app.port}${a.app.health.path}`, a.app.health, async () => {
          const info = await host.docker.getContainer(name).inspect().catch(() => undefined);
          // A restart means its process exited: Docker's restart policy would hide a crash loop for the whole window.
          return !!info?.State.Running && !info.State.Restarting && !info.RestartCount;
        }, () => heartbeat());
      } catch (e) {
        const logs = await containers.containerLogsTail(host.docker, name);
        throw ApplicationFailure.create({
          type: 'HealthCheckFailed', nonRetryable: true,
          message: `${name} on ${hostName}: ${(e as Error).message}${logs ? `; last log lines: ${logs.split('\n').slice(-5).join(' | ')}` : ''}`,
        });
      }
    }));
  }

  async function writeRoute(a: ActionOf<'writeRoute'>, known: Map<string, string>, commit: string): Promise<void> {
    const network = networkName(cluster, a.app.project);
    const host = hosts.get(a.host);
    const edge = hosts.edge(a.host);
    if (!edge) throw ApplicationFailure.create({ type: 'BadPlan', nonRetryable: true, message: `host ${a.host} has no edge (not a runtime host)` });
    // The certificate first: once the route is live, HTTPS must already meet it.
    await appCertificate(a.host, { ...a.app, domains: a.app.domains }, commit);
    const access = { ...a.app.access, ...(edge.httpsPort ? { httpsPort: edge.httpsPort } : {}) };
    const id = wakeId(cluster, a.app);
    if (a.app.scaleToZero) {
      // The waker learns the replicas before the route leads to it, and serves the new ones before old ones go.
      const replicas = a.containers.map((container) => ({ container, replica: a.app.placement.findIndex((_, r) => containerName(cluster, a.app, r) === container) }));
      await writeWakeSpec(host, edge, wakeSpecOf(cluster, a.app, replicas), () => heartbeat());
      const content = renderRoute({
        cluster, project: a.app.project, name: a.app.name, specHash: a.app.specHash, router: a.router, domains: a.app.domains, servers: [WAKER_URL], access,
        wake: { id, header: WAKE_HEADER, idleTimeoutSeconds: a.app.scaleToZero.idleTimeoutSeconds },
      });
      await writeRouteFile(host, edge, a.file, a.router, content, [WAKER_URL], () => heartbeat());
      return;
    }
    const servers = (await addresses(a.containers.map((container) => ({ host: a.host, container })), a.app.project, known)).map((ip) => `http://${ip}:${a.app.port}`);
    if (servers.some((s) => s.includes('//:'))) throw new Error(`a replica of ${a.app.project}/${a.app.name} on ${a.host} has no address on ${network}`);
    const content = renderRoute({ cluster, project: a.app.project, name: a.app.name, specHash: a.app.specHash, router: a.router, domains: a.app.domains, servers, access });
    await writeRouteFile(host, edge, a.file, a.router, content, servers, () => heartbeat());
    // Scale-to-zero turned off: the route no longer leads to the waker, which may forget the app.
    await removeWakeSpec(host, edge, id);
  }

  async function ensureEgressOn(hostName: string, policy: ActionOf<'ensureEgress'>['policy']): Promise<void> {
    const host = hosts.get(hostName);
    const { resolved, problems } = await egress.resolveEgress(host, policy);
    for (const p of problems) log.warn('egress entry skipped', { host: hostName, problem: p });
    const done = await egress.applyEgress(host, resolved);
    if (done.hooked.length || done.dropped.length) log.info('egress rules restored', { host: hostName, hooked: done.hooked, dropped: done.dropped });
  }

  /**
   * Runs `fn`, work on `on` hosts, unless one of them fails its health checks, and gives
   * it up the moment one starts to: a call to a host that died hangs until SSH gives up,
   * which would hold the whole pass (and the pass that moves its apps) for minutes.
   */
  async function guarded<T>(on: string[], fn: () => Promise<T>): Promise<T> {
    const unwell = (h: string): ApplicationFailure => ApplicationFailure.create({
      type: 'HostUnreachable', nonRetryable: true,
      message: `host ${h} fails its health checks (${hosts.condition(h)?.check ?? 'not answering'}); the next pass plans around it`,
    });
    const down = on.find((h) => !hosts.answering(h));
    if (down) throw unwell(down);
    let stop = (): void => undefined;
    const gone = new Promise<never>((_, reject) => {
      stop = hosts.onCondition((h, c) => { if (on.includes(h) && (c.state === 'Failing' || c.state === 'Lost')) reject(unwell(h)); });
    });
    gone.catch(() => undefined);
    try {
      return await Promise.race([fn(), gone]);
    } finally {
      stop();
    }
  }
  const hostsOf = (actions: Action[]): string[] => [...new Set(actions.flatMap(actionHosts))];

  /**
   * A host back from Lost takes new work only once nothing stale of the cluster is left on
   * it: a pass that observed it and plans nothing there (egress rules are reapplied on
   * every pass, so they do not count) and retires nothing there. The pool's listeners
   * (engine.ts) ask for the pass that may place work there again.
   */
  function rejoin(plan: Plan, unreachable: string[], retiring: string[]): void {
    const busy = new Set([
      ...[...plan.prepare, ...plan.resources.flatMap((r) => r.actions), ...plan.cleanup].filter((a) => a.type !== 'ensureEgress').flatMap(actionHosts),
      ...retiring.map((r) => r.split('/')[0]!),
      ...unreachable,
    ]);
    for (const name of hosts.names('runtime')) {
      const next = busy.has(name) ? undefined : rejoined(hosts.condition(name), Date.now());
      if (next) {
        hosts.setCondition(name, next);
        log.info('host rejoined: nothing stale left there, it takes new work again', { host: name });
      }
    }
  }

  return {
    ...createBuildActivities(deps.builder),
    ...createBackupActivities(deps),
    ...names,

    /**
     * One pass's plan: the newest commit on main, its desired state (or why it cannot be
     * applied), placed on the runtime hosts, and the live state, paired and planned. The
     * workflow runs it as a local activity, so a pass starts with no round trip to the
     * Temporal server and only the plan (small when nothing changed) enters its history.
     */
    async planPass(input: { drainMs: number; retiring?: string[] }): Promise<PassPlan> {
      const commit = await deps.store.resolve(MAIN);
      if (!commit) return { commit: null };
      try {
        const held = await activeHolds(deps.holdsDir);
        const { plan, skipped, unreachable } = await planCommit(deps.store, hosts, cluster, commit, { ...input, held });
        rejoin(plan, unreachable, input.retiring ?? []);
        return { commit, plan, skipped };
      } catch (e) {
        if (e instanceof StalledError) return { commit, invalid: e.message };
        throw e;
      }
    },

    async ensureNetwork(a: ActionOf<'ensureNetwork'>): Promise<void> {
      await guarded([a.host], () => containers.ensureNetwork(hosts.get(a.host).docker, cluster, a.project, a.network));
    },

    /** A rollout's consecutive startReplica, waitHealthy and writeRoute actions, in order, in one activity (see workflows.ts). */
    /** A rollout's start, health check and route switch (rollOut below), given up when one of its hosts stops answering. */
    async rollOut(input: { actions: Action[]; commit: string }): Promise<void> {
      return guarded(hostsOf(input.actions), () => rollOut(input));
    },

    async startDatabase(input: { action: ActionOf<'startDatabase'>; commit: string }): Promise<{ note: string }> {
      return guarded([input.action.host], () => startDatabase(input));
    },

    async waitDatabase(input: { action: ActionOf<'waitDatabase'>; commit: string }): Promise<void> {
      const { action: a, commit } = input;
      await guarded([a.host], async () => databases.waitDatabaseReady(hosts.get(a.host), a.db, a.container, await credentialsAt(commit, a.db.project, a.db.name), () => heartbeat()));
    },

    async removeContainer(a: ActionOf<'removeContainer'>): Promise<void> {
      await guarded([a.host], () => containers.removeReplica(hosts.get(a.host).docker, a.id, a.name));
    },

    async removeRoute(a: ActionOf<'removeRoute'>): Promise<void> {
      const edge = hosts.edge(a.host);
      if (!edge) return;
      await guarded([a.host], async () => {
        await removeRouteFile(hosts.get(a.host), edge, a.file, routerOfFile(a.file), () => heartbeat());
        await removeWakeSpec(hosts.get(a.host), edge, wakeIdOfRoute(a.file));
      });
    },

    async removeNetwork(a: ActionOf<'removeNetwork'>): Promise<void> {
      const host = hosts.get(a.host);
      await guarded([a.host], async () => {
        await containers.removeNetworkHolders(host, cluster, a.network);
        await containers.removeNetwork(host.docker, a.network);
      });
    },

    async ensureEgress(a: ActionOf<'ensureEgress'>): Promise<void> {
      await guarded([a.host], () => ensureEgressOn(a.host, a.policy));
    },

    async removeEgress(a: ActionOf<'removeEgress'>): Promise<void> {
      const host = hosts.get(a.host);
      await guarded([a.host], async () => {
        // Only once the project's network is gone: its containers stay fenced until then.
        if (await egress.bridgeOf(host.docker, networkName(cluster, a.project))) return;
        await egress.removeProjectEgress(host, cluster, a.project);
      });
    },

    async recordStatus(record: StatusRecord): Promise<void> {
      await recordStatus(deps.store, record);
      log.info('reconciled', { commit: record.commit.slice(0, 12), phase: record.phase, resources: record.resources.length });
    },
  };

  /** A rollout's consecutive startReplica, waitHealthy and writeRoute actions, in order, in one activity (see workflows.ts). */
  async function rollOut(input: { actions: Action[]; commit: string }): Promise<void> {
    const known = new Map<string, string>();
    try {
      for (const a of input.actions) {
        if (a.type === 'startReplica') known.set(at(a.host, a.container), (await startReplica({ action: a, commit: input.commit })).ip);
        else if (a.type === 'createReplica') await createReplica({ action: a, commit: input.commit });
        else if (a.type === 'waitHealthy') await waitHealthy(a, known);
        else if (a.type === 'writeRoute') await writeRoute(a, known, input.commit);
        else throw ApplicationFailure.create({ type: 'BadPlan', nonRetryable: true, message: `rollOut cannot run a ${a.type} action` });
      }
    } finally {
      // The starts took their networks' spare holders: new ones, now that they no longer compete with the rollout.
      for (const a of input.actions) if (a.type === 'startReplica') containers.keepSpare(hosts.get(a.host), cluster, a.app.project, a.network);
    }
  }

  /** Starts a database's server on its volume (made on first use), fences it in, and waits until it answers. */
  async function startDatabase(input: { action: ActionOf<'startDatabase'>; commit: string }): Promise<{ note: string }> {
    const { action: a, commit } = input;
    const host = hosts.get(a.host);
    const creds = await credentialsAt(commit, a.db.project, a.db.name);
    const started = await databases.startDatabase(host, {
      cluster, commit, db: a.db, container: a.container, volume: a.volume, credentials: creds,
      onProgress: (p) => heartbeat(p),
      // Right after the start, before the engine listens: only bound apps may reach it.
      fence: () => ensureEgressOn(a.host, a.egress),
    });
    log.info('database ready', { database: keyOf(a.db), host: a.host, container: a.container, ms: started.ms });
    return { note: started.note };
  }
}

export type Activities = ReturnType<typeof createActivities>;
