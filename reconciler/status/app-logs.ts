// Build and runtime output of one app, for MCP (get_app's build progress, app_logs) and
// `mlink logs`. Build logs come from the build records on the build host; runtime logs
// from the app's containers (labelled, this cluster only).
import type Docker from 'dockerode';
import type { BuildRecord, BuildRecords } from '../image-builds/records.js';
import type { HostPool } from '../hosts/pool.js';
import { LABEL, MANAGED_BY, type Kind } from '../model.js';

export interface BuildSummary {
  phase: BuildRecord['phase'];
  progress: string;
  step?: string;
  method?: string;
  why?: string;
  image: string;
  commit: string;
  started_at: string;
  duration_ms?: number;
  /** When the image reached the private registry, where other hosts pull it (the push follows the build). */
  pushed_at?: string;
  error?: string;
  /** The Dockerfile that was built: the app's own, or the one ml.ink generated. */
  dockerfile?: string;
  last_lines: string[];
}

export interface AppLogs { kind: 'build' | 'runtime'; source: string; lines: string[]; truncated: boolean }

/** A build that says Building but started longer ago than this died with its worker. */
const STALE_MS = 30 * 60_000;

export function buildSummary(records: BuildRecords, project: string, name: string): BuildSummary | undefined {
  const r = records.latest(project, name);
  if (!r) return undefined;
  const stale = r.phase === 'Building' && Date.now() - Date.parse(r.startedAt) > STALE_MS;
  return {
    phase: stale ? 'Failed' : r.phase,
    progress: stale ? 'abandoned (the worker stopped mid-build; the next reconcile builds again)' : r.progress,
    ...(r.step ? { step: r.step } : {}),
    ...(r.method ? { method: r.method, why: r.why } : {}),
    image: r.image,
    commit: r.commit,
    started_at: r.startedAt,
    ...(r.durationMs !== undefined ? { duration_ms: r.durationMs } : {}),
    ...(r.pushedAt ? { pushed_at: r.pushedAt } : {}),
    ...(r.error ? { error: r.error } : {}),
    ...(r.dockerfile ? { dockerfile: r.dockerfile } : {}),
    last_lines: records.tail(project, name, r.key, r.phase === 'Failed' ? 8 : 3),
  };
}

export function buildLogs(records: BuildRecords, project: string, name: string, lines: number): AppLogs {
  const key = records.latestKey(project, name);
  if (!key) return { kind: 'build', source: 'no build yet', lines: [], truncated: false };
  const all = records.tail(project, name, key, Number.MAX_SAFE_INTEGER);
  const r = records.read(project, name, key);
  return { kind: 'build', source: `build ${key} of ${r?.commit.slice(0, 12) ?? '?'} (${r?.phase ?? '?'})`, lines: all.slice(-lines), truncated: all.length > lines };
}

/** A resource's containers on one host, running ones first, newest first. */
export async function resourceContainers(docker: Docker, cluster: string, id: { kind: Kind; project: string; name: string }): Promise<Docker.ContainerInfo[]> {
  const list = await docker.listContainers({
    all: true,
    filters: { label: [`${LABEL.managedBy}=${MANAGED_BY}`, `${LABEL.cluster}=${cluster}`, `${LABEL.project}=${id.project}`, `${LABEL.name}=${id.name}`, `${LABEL.kind}=${id.kind}`] },
  });
  return list.sort((a, b) => Number(b.State === 'running') - Number(a.State === 'running') || b.Created - a.Created);
}

/** Splits Docker's multiplexed log stream (8-byte frame headers) into text. */
export function demux(buf: Buffer): string {
  let out = '';
  let at = 0;
  while (at + 8 <= buf.length && (buf[at] === 1 || buf[at] === 2) && buf[at + 1] === 0) {
    const size = buf.readUInt32BE(at + 4);
    out += buf.subarray(at + 8, at + 8 + size).toString('utf8');
    at += 8 + size;
  }
  return at === 0 ? buf.toString('utf8') : out;
}

/** The newest container's output, from whichever runtime host runs it. */
export async function runtimeLogs(hosts: HostPool, cluster: string, id: { kind: Kind; project: string; name: string }, opts: { lines: number; since?: number }): Promise<AppLogs> {
  const found = (await Promise.all(hosts.names('runtime').map(async (h) => (await resourceContainers(hosts.get(h).docker, cluster, id)).map((c) => ({ c, h }))))).flat()
    .sort((a, b) => Number(b.c.State === 'running') - Number(a.c.State === 'running') || b.c.Created - a.c.Created)[0];
  if (!found) return { kind: 'runtime', source: 'no container', lines: [], truncated: false };
  const { c, h } = found;
  const docker = hosts.get(h).docker;
  const buf = (await docker.getContainer(c.Id).logs({ stdout: true, stderr: true, tail: opts.lines + 1, timestamps: false, ...(opts.since ? { since: opts.since } : {}) })) as unknown as Buffer;
  const all = demux(buf).trimEnd().split('\n').filter((l) => l !== '');
  return { kind: 'runtime', source: `container ${(c.Names[0] ?? c.Id).replace(/^\//, '')} on ${h} (${c.State})`, lines: all.slice(-opts.lines), truncated: all.length > opts.lines };
}
