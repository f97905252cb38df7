// What MCP's get_app, get_database, list_* and plan show of the live hosts: objects
// observed now, and the newest status note for errors. Each kind says how its live
// objects read (status/kinds.ts); this composes one look at the hosts with the note.
// Plugs into the domain's LiveStateProvider, so mcp/ needs no change to show live state.
import type { BackupService, LivePlan, LiveStateProvider, LiveStatus, ResourceId, RetainedDatabase } from '../domain/live-state.js';
import { runtimeLogs, buildLogs } from './app-logs.js';
import { poolHealth } from '../hosts/health.js';
import type { HostPool } from '../hosts/pool.js';
import type { BuildRecords } from '../image-builds/records.js';
import { manifestPath } from '../layout.js';
import { keyOf, type LiveState } from '../model.js';
import { observe } from '../observe/live.js';
import { planCommit } from '../plan-pass.js';
import type { PlanOptions } from '../plan/plan.js';
import { fileHistory } from '../state/history.js';
import { MAIN, type StateStore } from '../state/store.js';
import { REMOTE_EDGE_WEB_PORT } from '../hosts/cluster.js';
import { appStatus, databaseStatus, volumeSizer, type Observed } from './kinds.js';
import { infraConfig } from '../../infra/config.js';
import { readRecordsFile } from '../dns/app-records.js';
import { observeCertificates } from '../edge/app-tls.js';
import type { LiveCertificate } from '../model.js';
import { dataDir } from '../util/paths.js';

async function observeAllCertificates(hosts: HostPool, cluster: string): Promise<LiveCertificate[]> {
  const parts = await Promise.all(hosts.runtime().map((t) => (t.edge ? observeCertificates(t.host, t.edge, cluster) : Promise.resolve([]))));
  return parts.flat();
}
import { latestStatus, type StatusRecord } from './record.js';

export interface LiveStateDeps {
  cluster: string;
  store: StateStore;
  hosts: HostPool;
  /** Where the local edge's web and websecure entrypoints listen, for the URL agents are given. */
  webPort: number;
  httpsPort?: number;
  /** Where the DNS records' state is kept (default the data dir's names/). */
  namesDir?: string;
  planOptions?: PlanOptions;
  /** Build records on this host, for build phase, progress and logs. */
  builds?: BuildRecords;
  /** Triggers a reconcile pass (the MCP `sync` tool). */
  sync?: () => Promise<void>;
  /** Backups and restores (run by the workers). */
  backups?: BackupService;
}

export function createLiveState(deps: LiveStateDeps): LiveStateProvider {
  const look = async (): Promise<[LiveState, StatusRecord | undefined]> => {
    const [live, last, certificates] = await Promise.all([observe(deps.hosts.runtime(), deps.cluster), latestStatus(deps.store), observeAllCertificates(deps.hosts, deps.cluster)]);
    return [{ ...live, certificates }, last];
  };
  const httpsPort = deps.httpsPort ?? infraConfig().traefik.websecurePort;
  const namesDir = deps.namesDir ?? dataDir().names;

  /** The address of a runtime host's edge (its web entrypoint): this machine's Traefik, or the edge on the host's own address. */
  const edgeOf = (host: string): string | undefined => {
    try {
      const e = deps.hosts.entry(host);
      return e.address === 'local' ? `127.0.0.1:${deps.webPort}` : `${e.address}:${REMOTE_EDGE_WEB_PORT}`;
    } catch {
      return undefined; // a host no longer in the cluster
    }
  };

  /** The websecure port of a runtime host's edge: this machine's Traefik, or 443 on a host's own edge. */
  const httpsPortOf = (host: string): number | undefined => {
    try {
      return deps.hosts.entry(host).address === 'local' ? httpsPort : 443;
    } catch {
      return undefined;
    }
  };

  const volumeSizes = volumeSizer(deps.hosts);

  /** How each kind's live objects read; a new kind adds its entry (status/kinds.ts). */
  const STATUS: Record<ResourceId['kind'], (id: ResourceId, o: Observed) => Promise<LiveStatus>> = {
    App: async (id, o) => appStatus(id, o, { edgeOf, httpsPortOf, builds: deps.builds, records: (await readRecordsFile(namesDir, deps.cluster))?.records }),
    Database: async (id, o) => databaseStatus(id, o, { cluster: deps.cluster, sizes: o.volume ? await volumeSizes([o.volume]) : new Map() }),
  };

  async function statusFrom(id: ResourceId, live: LiveState, last: StatusRecord | undefined): Promise<LiveStatus> {
    const key = keyOf(id);
    const mine = {
      containers: live.containers.filter((c) => keyOf(c.key) === key),
      routes: live.routes.filter((r) => keyOf(r.key) === key),
      volume: live.volumes.find((v) => keyOf(v.key) === key),
      certificates: (live.certificates ?? []).filter((c) => keyOf(c.key) === key),
      record: last?.resources.find((r) => r.kind === id.kind && r.project === id.project && r.name === id.name && r.result !== 'ok'),
      last,
    };
    return STATUS[id.kind](id, mine);
  }

  return {
    async status(id) {
      const [live, last] = await look();
      return statusFrom(id, live, last);
    },

    async statusMany(ids) {
      const [live, last] = await look();
      return Promise.all(ids.map((id) => statusFrom(id, live, last)));
    },

    hosts: () => poolHealth(deps.hosts),

    async retained(): Promise<RetainedDatabase[]> {
      const view = await deps.store.view(MAIN);
      const live = await observe(deps.hosts.runtime(), deps.cluster);
      const gone = [];
      for (const v of live.volumes) if (!(await view.blobOid(manifestPath('Database', v.key.project, v.key.name)))) gone.push(v);
      const sizes = await volumeSizes(gone);
      const head = view.commit;
      return Promise.all(gone.map(async (v) => {
        // Retained since the commit that deleted its manifest (the newest that touched the path).
        const [deleted] = head ? await fileHistory(deps.store, head, [manifestPath('Database', v.key.project, v.key.name)], 1) : [];
        const size = sizes.get(`${v.host}/${v.name}`);
        return {
          project: v.key.project, name: v.key.name, engine: v.engine, version: v.version, host: v.host, volume: v.name,
          since: deleted?.date ?? v.createdAt, ...(size !== undefined ? { size_bytes: size } : {}),
        };
      }));
    },

    async logs(id, req) {
      if (req.kind === 'build') {
        if (!deps.builds) return { kind: 'build', source: 'this server has no build role', lines: [], truncated: false };
        return buildLogs(deps.builds, id.project, id.name, req.lines);
      }
      return runtimeLogs(deps.hosts, deps.cluster, id, req);
    },

    ...(deps.sync ? { sync: deps.sync } : {}),
    ...(deps.backups ? { backups: deps.backups } : {}),

    async plan(desired: { commit: string | null }): Promise<LivePlan> {
      if (!desired.commit) return { known: true, actions: [] };
      let planned;
      try {
        planned = await planCommit(deps.store, deps.hosts, deps.cluster, desired.commit, deps.planOptions ?? { drainMs: 1000 });
      } catch (e) {
        return { known: false, reason: `the desired state cannot be applied: ${(e as Error).message}` };
      }
      const p = planned.plan;
      const split = (key: string): ResourceId => {
        const [kind, id] = key.split(' ') as [ResourceId['kind'], string];
        const [project, name] = id.split('/') as [string, string];
        return { kind, project, name };
      };
      return {
        known: true,
        actions: [
          ...p.resources.map((r) => ({ ...r.key, action: r.change, reason: `${r.reason} (${r.actions.map((a) => a.type).join(' -> ')})` })),
          ...p.stalled.map((s) => ({ ...split(s.key), action: 'stalled', reason: s.reason })),
          ...planned.skipped.map((s) => ({ kind: s.kind, project: s.project, name: s.name, action: 'skip', reason: s.reason })),
        ],
      };
    },
  };
}
