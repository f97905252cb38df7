// What MCP's get_app, list_apps and plan show of the live hosts: containers and routes
// observed now, and the newest status note for errors. Plugs into the domain's
// LiveStateProvider, so mcp/ needs no change to show live state.
import type Docker from 'dockerode';
import { diff } from '../diff/diff.js';
import type { LivePlan, LiveStateProvider, LiveStatus, ResourceId } from '../domain/live-state.js';
import { appKey, liveKey, type LiveState } from '../model.js';
import { observe } from '../observe/live.js';
import { plan, type PlanOptions } from '../plan/plan.js';
import { loadDesired } from '../source/desired.js';
import type { StateStore } from '../state/store.js';
import { latestStatus, type StatusRecord } from './record.js';
import type { BuildRecords } from '../image-builds/records.js';
import { buildLogs, buildSummary, runtimeLogs } from './app-logs.js';

export interface LiveStateDeps {
  cluster: string;
  store: StateStore;
  docker: Docker;
  routesDir: string;
  /** Where Traefik's web entrypoint listens, for the URL agents are given. */
  webPort: number;
  planOptions?: PlanOptions;
  /** Build records on this host, for build phase, progress and logs. */
  builds?: BuildRecords;
  /** Triggers a reconcile pass (the MCP `sync` tool). */
  sync?: () => Promise<void>;
}

export function createLiveState(deps: LiveStateDeps): LiveStateProvider {
  const look = (): Promise<[LiveState, StatusRecord | undefined]> => Promise.all([observe(deps.docker, deps.routesDir, deps.cluster), latestStatus(deps.store)]);

  /** One app's status from one look at the hosts and the newest note. */
  function statusFrom(id: ResourceId, live: LiveState, last: StatusRecord | undefined): LiveStatus {
    if (id.kind !== 'App') return { known: false, reason: 'databases are not reconciled yet: only apps run' };
    const key = appKey(id.project, id.name);
    const containers = live.containers.filter((c) => liveKey(c) === key);
    const route = live.routes.find((r) => liveKey(r) === key);
    const running = containers.filter((c) => c.running);
    const failure = last?.resources.find((r) => r.project === id.project && r.name === id.name && r.result !== 'ok');
    const newest = [...running].sort((a, b) => (a.commit < b.commit ? -1 : 1)).at(-1);
    const url = route?.hosts[0] ? `http://${route.hosts[0]}:${deps.webPort}/` : undefined;
    let phase = running.length ? 'Running' : containers.length ? 'Stopped' : 'NotDeployed';
    if (failure) phase = failure.phase ?? 'Failed';
    if (last?.phase === 'ValidationFailed') phase = 'ValidationFailed';
    const parts = [
      `${running.length}/${containers.length} container(s) running`,
      route ? `routed at ${route.hosts.join(', ')} to ${route.servers.length} server(s)` : 'no route',
    ];
    if (failure) parts.push(`last error (${failure.phase}): ${failure.message}`);
    if (last?.phase === 'ValidationFailed') parts.push(`newest commit not applied: ${last.message}`);
    const build = deps.builds ? buildSummary(deps.builds, id.project, id.name) : undefined;
    const routed = new Set(route?.servers.map((s) => new URL(s).hostname) ?? []);
    const replicas = containers.map((c) => ({ container: c.name, commit: c.commit, running: c.running, serving: c.running && !!c.ip && routed.has(c.ip) }));
    if (build?.phase === 'Building') {
      phase = 'Building';
      parts.push(`building source ${build.commit.slice(0, 12)}: step ${build.progress}`);
    }
    return {
      known: true,
      phase,
      message: parts.join('; '),
      ...(newest?.commit ? { appliedCommit: newest.commit } : {}),
      ...(url ? { url } : {}),
      ...(last?.at ? { updatedAt: last.at } : {}),
      ...(build ? { progress: build.progress, build: { ...build } } : {}),
      replicas,
    };
  }

  return {
    async status(id: ResourceId): Promise<LiveStatus> {
      const [live, last] = await look();
      return statusFrom(id, live, last);
    },

    async statusMany(ids: ResourceId[]): Promise<LiveStatus[]> {
      const [live, last] = await look();
      return ids.map((id) => statusFrom(id, live, last));
    },

    async logs(id, req) {
      if (req.kind === 'build') {
        if (!deps.builds) return { kind: 'build', source: 'this server has no build role', lines: [], truncated: false };
        return buildLogs(deps.builds, id.project, id.name, req.lines);
      }
      return runtimeLogs(deps.docker, deps.cluster, id.project, id.name, req);
    },

    ...(deps.sync ? { sync: deps.sync } : {}),

    async plan(desired: { commit: string | null }): Promise<LivePlan> {
      if (!desired.commit) return { known: true, actions: [] };
      let loaded;
      try {
        loaded = await loadDesired(deps.store, desired.commit, deps.cluster);
      } catch (e) {
        return { known: false, reason: `the desired state cannot be applied: ${(e as Error).message}` };
      }
      const live = await observe(deps.docker, deps.routesDir, deps.cluster);
      const p = plan(diff(loaded.desired, live), { cluster: deps.cluster, commit: desired.commit }, deps.planOptions);
      return {
        known: true,
        actions: [
          ...p.resources.map((r) => ({ kind: 'App' as const, project: r.project, name: r.name, action: r.change, reason: `${r.reason} (${r.actions.map((a) => a.type).join(' -> ')})` })),
          ...loaded.skipped.map((s) => ({ kind: 'App' as const, project: s.project, name: s.name, action: 'skip', reason: s.reason })),
        ],
      };
    },
  };
}
