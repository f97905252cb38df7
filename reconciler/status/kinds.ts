// How each kind's live objects read as a status: phase, message and details. An app is
// Running when a replica of it runs; a database when its server answers its engine's
// probe. The newest status note adds what the reconciler could not do, and why.
import type { DatabaseLive, LiveStatus, ResourceId } from '../domain/live-state.js';
import type { HostPool } from '../hosts/pool.js';
import type { BuildRecords } from '../image-builds/records.js';
import { networkName } from '../layout.js';
import type { RecordStatus } from '../dns/app-records.js';
import type { LiveCertificate, LiveContainer, LiveRoute, LiveVolume } from '../model.js';
import { buildSummary } from './app-logs.js';
import type { ResourceStatus, StatusRecord } from './record.js';

export interface Observed {
  containers: LiveContainer[];
  routes: LiveRoute[];
  volume?: LiveVolume;
  /** An app's certificates on the edges (edge/app-tls.ts). */
  certificates?: LiveCertificate[];
  /** This resource's entry in the newest note, when it was not ok. */
  record?: ResourceStatus;
  last?: StatusRecord;
}

function noted(phase: string, o: Observed, parts: string[]): string {
  if (o.record) {
    parts.push(`last ${o.record.result === 'pending' ? 'wait' : 'error'} (${o.record.phase}): ${o.record.message}`);
    phase = o.record.phase ?? 'Failed';
  }
  if (o.last?.phase === 'ValidationFailed') {
    parts.push(`newest commit not applied: ${o.last.message}`);
    phase = 'ValidationFailed';
  }
  return phase;
}

export function appStatus(_id: ResourceId, o: Observed, ctx: { edgeOf: (host: string) => string | undefined; httpsPortOf?: (host: string) => number | undefined; builds?: BuildRecords; records?: RecordStatus[] }): LiveStatus {
  const running = o.containers.filter((c) => c.running);
  const newest = [...running].sort((a, b) => (a.commit < b.commit ? -1 : 1)).at(-1);
  const route = o.routes[0];
  // The edges serving it (a front door, DNS or a load balancer, points at them) and the URL through the first.
  const edges = [...new Set(o.routes.map((r) => r.host))].sort().flatMap((host) => {
    const address = ctx.edgeOf(host);
    return address ? [{ host, address }] : [];
  });
  const port = route ? ctx.edgeOf(route.host)?.split(':').pop() : undefined;
  const http = route?.domains[0] ? `http://${route.domains[0]}${port && port !== '80' ? `:${port}` : ''}/` : undefined;
  const securePort = route ? ctx.httpsPortOf?.(route.host) : undefined;
  const https = route?.domains[0] && securePort ? `https://${route.domains[0]}${securePort === 443 ? '' : `:${securePort}`}/` : undefined;
  // Plain HTTP only redirects unless the app opted out, so the URL to give out is the HTTPS one.
  const url = route?.access?.includes('redirect=false') ? http : https ?? http;
  const names = namesStatus(_id, o, ctx.records);
  const parts = [
    `${running.length}/${o.containers.length} container(s) running`,
    route ? `routed at ${route.domains.join(', ')} to ${o.routes.reduce((n, r) => n + r.servers.length, 0)} server(s)` : 'no route',
  ];
  // Scale-to-zero: what the waker says (one host's, the first that sleeps or wakes, else the first).
  const waked = o.routes.find((r) => r.sleep && r.sleep.state !== 'awake') ?? o.routes.find((r) => r.sleep);
  const sleep = waked?.sleep && waked.wake ? {
    state: waked.sleep.state, since: waked.sleep.since, idle_timeout_seconds: waked.wake.idleTimeoutSeconds,
    ...(waked.sleep.lastRequest ? { last_request: waked.sleep.lastRequest } : {}), ...(waked.sleep.error ? { error: waked.sleep.error } : {}),
  } : undefined;
  if (sleep) parts.push(`${sleep.state} since ${sleep.since}${sleep.last_request ? `, last request ${sleep.last_request}` : ', no request yet'}${sleep.error ? ` (${sleep.error})` : ''}`);
  const base = sleep?.state === 'sleeping' ? 'Sleeping' : sleep?.state === 'waking' ? 'Waking' : running.length ? 'Running' : o.containers.some((c) => c.restarting) ? 'Restarting' : o.containers.length ? 'Stopped' : 'NotDeployed';
  let phase = noted(base, o, parts);
  const build = ctx.builds ? buildSummary(ctx.builds, _id.project, _id.name) : undefined;
  if (build?.phase === 'Building') {
    phase = 'Building';
    parts.push(`building source ${build.commit.slice(0, 12)}: step ${build.progress}`);
  }
  const hosts = [...new Set(running.map((c) => c.host))].sort();
  const routed = new Set(o.routes.flatMap((r) => r.servers.map((s) => `${r.host}/${new URL(s).hostname}`)));
  const replicas = o.containers.map((c) => ({
    container: c.name, host: c.host, commit: c.commit, running: c.running,
    serving: c.running && !!c.ip && (routed.has(`${c.host}/${c.ip}`) || o.routes.some((r) => r.host === c.host && !!r.wake)),
    ...(c.restarting ? { restarting: { restarts: c.restarting.restarts, exit_code: c.restarting.exitCode, next_at: c.restarting.nextAt } } : {}),
  }));
  for (const c of o.containers.filter((x) => x.restarting)) parts.push(`replica ${c.replica} on ${c.host} exited (code ${c.restarting!.exitCode}); its host restarts it${c.restarting!.restarts ? ` at ${c.restarting!.nextAt} (restart ${c.restarting!.restarts + 1} since it last ran a minute)` : ' now'}`);
  return {
    known: true,
    phase,
    message: parts.join('; '),
    ...(newest?.commit ? { appliedCommit: newest.commit } : {}),
    ...(url ? { url } : {}),
    ...(https ? { https_url: https } : {}),
    ...names,
    ...(o.last?.at ? { updatedAt: o.last.at } : {}),
    ...(hosts.length ? { hosts } : {}),
    ...(sleep ? { sleep } : {}),
    ...(edges.length ? { edges } : {}),
    ...(build ? { progress: build.progress, build: { ...build } } : {}),
    replicas,
  };
}

/** An app's certificates (issuer, expiry, per edge) and its DNS records with their state. */
function namesStatus(id: ResourceId, o: Observed, records: RecordStatus[] | undefined): Pick<Extract<LiveStatus, { known: true }>, 'certificates' | 'dns'> {
  const resource = `${id.kind}/${id.project}/${id.name}`;
  const mine = (records ?? []).filter((r) => r.resource === resource);
  return {
    ...(o.certificates?.length ? { certificates: o.certificates.map((c) => ({ host: c.host, names: c.dnsNames, issuer: c.issuer, serial: c.serial, not_before: c.notBefore, not_after: c.notAfter })) } : {}),
    ...(mine.length ? { dns: mine.map((r) => ({ name: r.name, addresses: r.addresses, state: r.state, ...(r.reason ? { reason: r.reason } : {}), at: r.at })) } : {}),
  };
}

export function databaseStatus(id: ResourceId, o: Observed, ctx: { cluster: string; sizes: Map<string, number> }): LiveStatus {
  const server = o.containers.find((c) => c.running) ?? o.containers[0];
  const volume = o.volume;
  const base = server?.running
    ? server.healthy === true ? 'Running' : server.healthy === false ? 'Unhealthy' : 'Starting'
    : server ? 'Stopped' : volume ? 'Retained' : 'NotDeployed';
  const parts = [
    server ? `server ${server.name} on ${server.host}: ${server.running ? (server.healthy ? 'answering' : server.healthy === false ? 'not answering its health check' : 'starting') : 'stopped'}` : 'no server',
    volume ? `data on volume ${volume.name} (${volume.engine} ${volume.version})` : 'no data yet',
  ];
  const phase = noted(base === 'Retained' ? 'NotDeployed' : base, o, parts);
  const size = volume ? ctx.sizes.get(`${volume.host}/${volume.name}`) : undefined;
  const where = server?.host ?? volume?.host;
  const database: DatabaseLive = {
    ...(where ? { host: where } : {}),
    ...(server ? { server: server.name, ...(server.running && server.addresses ? { addresses: server.addresses } : {}) } : {}),
    ...(server?.running && server.addresses?.[networkName(ctx.cluster, id.project)] ? { address: server.addresses[networkName(ctx.cluster, id.project)] } : {}),
    ...(volume ? { volume: volume.name, data_written_by: `${volume.engine} ${volume.version}` } : {}),
    ...(size !== undefined ? { size_bytes: size } : {}),
  };
  return { known: true, phase, message: parts.join('; '), ...(o.last?.at ? { updatedAt: o.last.at } : {}), database };
}

/** Sizes of volumes on their hosts (`<host>/<volume>` -> bytes), from Docker's disk usage. */
/**
 * The sizes of volumes on their hosts (Docker's `system df`, which sizes every image,
 * container and volume of a host: a second or more on a busy one). Sizes are shown, not
 * acted on, so each host's answer is kept for `ttlMs` across calls.
 */
export function volumeSizer(hosts: HostPool, ttlMs = 15_000): (volumes: LiveVolume[]) => Promise<Map<string, number>> {
  const known = new Map<string, { at: number; sizes: Promise<Map<string, number>> }>();
  const ofHost = (host: string): Promise<Map<string, number>> => {
    const hit = known.get(host);
    if (hit && Date.now() - hit.at < ttlMs) return hit.sizes;
    const sizes = (async () => {
      const out = new Map<string, number>();
      const df = await hosts.get(host).docker.df().catch(() => undefined) as { Volumes?: Array<{ Name: string; UsageData?: { Size?: number } }> } | undefined;
      for (const v of df?.Volumes ?? []) if (v.UsageData?.Size !== undefined && v.UsageData.Size >= 0) out.set(`${host}/${v.Name}`, v.UsageData.Size);
      return out;
    })();
    known.set(host, { at: Date.now(), sizes });
    return sizes;
  };
  return async (volumes) => {
    const out = new Map<string, number>();
    for (const host of [...new Set(volumes.map((v) => v.host))]) for (const [k, v] of await ofHost(host)) out.set(k, v);
    return out;
  };
}
