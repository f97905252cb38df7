// diff, App part: one desired app against its live replicas and route.
// Pure: no I/O, deterministic, imported by workflows.
import { accessDigest } from '../edge/route.js';
import type { DesiredApp, LiveContainer, LiveRoute, ResourceKey } from '../model.js';
import { WAKER_URL } from '../waker/spec.js';

/**
 * Hosts where a scale-to-zero app sleeps (or its waker wakes it): its replicas there are
 * made, not started. And replicas their host's supervisor is starting again: the plan
 * leaves them to it (a replacement would race that start, and lose the backoff).
 */
type Asleep = { asleep?: string[]; restarting?: LiveContainer[] };

export type AppChange =
  | { change: 'create'; app: DesiredApp; reason: string }
  | ({ change: 'update'; app: DesiredApp; stale: LiveContainer[]; strayRoutes: LiveRoute[]; reason: string } & Asleep)
  | ({ change: 'heal'; app: DesiredApp; stale: LiveContainer[]; strayRoutes: LiveRoute[]; reason: string } & Asleep)
  | { change: 'remove'; key: ResourceKey; containers: LiveContainer[]; routes: LiveRoute[]; reason: string }
  | { change: 'unchanged'; app: DesiredApp };

function groupBy<T>(items: T[], key: (t: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const i of items) m.set(key(i), [...(m.get(key(i)) ?? []), i]);
  return m;
}

function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && [...a].sort().join('\n') === [...b].sort().join('\n');
}

/**
 * The replicas of `app` that should serve: running, of its spec, on the host placement
 * names, with an address. One its host's supervisor is starting again at once (its first
 * exit in a while) keeps its place in the route, on the same address; one that waits a
 * backoff (it keeps exiting) is out of the route meanwhile, and back in once it runs.
 */
function serving(app: DesiredApp, current: LiveContainer[]): LiveContainer[] {
  return current.filter((c) => (c.running || c.restarting?.restarts === 0) && c.replica < app.replicas && c.host === app.placement[c.replica] && c.ip);
}

/**
 * The hosts where a scale-to-zero app is asleep by its waker's word: there its stopped
 * replicas are desired state, not drift, and a new spec is made without waking it.
 */
function asleepOn(app: DesiredApp, routes: LiveRoute[]): string[] {
  if (!app.scaleToZero) return [];
  return routes.filter((r) => r.wake && (r.sleep?.state === 'sleeping' || r.sleep?.state === 'waking')).map((r) => r.host);
}

export function diffApp(app: DesiredApp, containers: LiveContainer[], routes: LiveRoute[]): AppChange {
  const current = containers.filter((c) => c.specHash === app.specHash);
  const other = containers.filter((c) => c.specHash !== app.specHash);
  if (containers.length === 0 && routes.length === 0) return { change: 'create', app, reason: 'not running' };
  const edges = [...new Set(app.placement.slice(0, app.replicas))];
  const strayRoutes = routes.filter((r) => !edges.includes(r.host));
  const asleep = asleepOn(app, routes);
  const restarting = containers.filter((c) => c.restarting && c.specHash === app.specHash && c.replica < app.replicas && c.host === app.placement[c.replica]);
  const sleeps = { ...(asleep.length ? { asleep } : {}), ...(restarting.length ? { restarting } : {}) };
  if (current.length === 0 && other.length > 0) {
    return { change: 'update', app, stale: other, strayRoutes, reason: `spec changed (${other[0]!.specHash.slice(0, 10)} -> ${app.specHash.slice(0, 10)})${asleep.length ? ' while asleep' : ''}`, ...sleeps };
  }
  const problems: string[] = [];
  const stale = [...other];
  const byReplica = groupBy(current, (c) => String(c.replica));
  for (let r = 0; r < app.replicas; r++) {
    const here = byReplica.get(String(r)) ?? [];
    const host = app.placement[r];
    const moved = here.filter((c) => c.host !== host);
    if (moved.length) {
      problems.push(`replica ${r} moves to ${host}`);
      stale.push(...moved);
    }
    const placed = here.filter((c) => c.host === host);
    if (asleep.includes(host!)) {
      if (!placed.length) problems.push(`replica ${r} missing`);
      continue;
    }
    // A replica its host's supervisor brings back is its to bring back: replacing it would race that start.
    if (!placed.some((c) => c.running || c.restarting)) problems.push(placed.length ? `replica ${r} stopped` : `replica ${r} missing`);
    stale.push(...placed.filter((c) => !c.running && !c.restarting));
  }
  const extra = current.filter((c) => c.replica >= app.replicas);
  if (extra.length) {
    problems.push(`${extra.length} replica(s) above ${app.replicas}`);
    stale.push(...extra);
  }
  if (other.length) problems.push(`${other.length} container(s) of an older spec`);
  // Each host that runs a replica serves the app from its own edge, routing to its own replicas only.
  const live = serving(app, current);
  for (const host of edges) {
    const route = routes.find((r) => r.host === host);
    // A scale-to-zero app's route leads to its host's waker, which knows the replicas.
    const servers = app.scaleToZero ? [WAKER_URL] : live.filter((c) => c.host === host).map((c) => `http://${c.ip}:${app.port}`);
    if (!route) problems.push(edges.length > 1 ? `route missing on ${host}` : 'route missing');
    else if (!sameSet(route.servers, servers) || route.specHash !== app.specHash) problems.push('route out of date');
    else if (route.wake?.idleTimeoutSeconds !== app.scaleToZero?.idleTimeoutSeconds) problems.push(app.scaleToZero ? 'scale-to-zero changed' : 'scale-to-zero turned off');
    else if (!sameSet(route.domains, app.domains)) problems.push('route hosts changed');
    else if (route.access !== accessDigest(app.access)) problems.push('route access settings changed');
  }
  if (strayRoutes.length) problems.push(app.replicas === 0 ? 'route present for 0 replicas' : `route left on ${strayRoutes.map((r) => r.host).join(', ')}`);
  if (problems.length === 0) return { change: 'unchanged', app };
  return { change: 'heal', app, stale, strayRoutes, reason: [...new Set(problems)].join(', '), ...sleeps };
}
