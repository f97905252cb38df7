// Placement: which runtime host each database and each app replica runs on. Pure, so
// the same inputs always give the same hosts and a pass can be replayed. Stable: what
// runs stays where it runs unless its host is gone or unschedulable, or it no longer
// fits there. Replicas of one app spread over hosts where they can. A database stays
// with its data: its volume's host, always.
import { createHash } from 'node:crypto';
import { databasesOf, appsOf, keyFields, keyOf, type DesiredApp, type DesiredDatabase, type DesiredState, type LiveState, type ResourceKey, type Resources } from './model.js';

export interface PlacementHost {
  name: string;
  /** Declared capacity; absent means no limit is placed against. */
  capacity?: { cpu: number; memoryMb: number };
  /** False for a host being drained or lost: nothing new is placed there. */
  schedulable: boolean;
  /** Why it is not schedulable ("drained", "Lost since ..."), for the reason of what fits nowhere. */
  unschedulable?: string;
  /** Set while the host is lost (its condition): what ran there moves, a database's data cannot. */
  lost?: string;
}

/** Unschedulable: fits on no host; HostLost: a database whose data is on a lost host (a human restores it elsewhere). */
export interface Unplaced extends ResourceKey { reason: string; phase?: 'Unschedulable' | 'HostLost' }

interface Usage { cpu: number; memoryMb: number }

function fits(h: PlacementHost, used: Usage, need: Resources): boolean {
  return !h.capacity || (used.cpu + need.cpu <= h.capacity.cpu + 1e-9 && used.memoryMb + need.memoryMb <= h.capacity.memoryMb);
}

function free(h: PlacementHost, used: Usage): number {
  return h.capacity ? (h.capacity.memoryMb - used.memoryMb) / h.capacity.memoryMb : 1;
}

function shortfall(hosts: PlacementHost[], usage: Map<string, Usage>, need: Resources): string {
  const open = hosts.filter((h) => h.schedulable);
  const closed = hosts.filter((h) => !h.schedulable).map((h) => `${h.name} is ${h.unschedulable ?? 'not schedulable'}`);
  if (open.length === 0) return `no schedulable runtime host${closed.length ? ` (${closed.join('; ')})` : ''}`;
  return [...open.filter((h) => h.capacity).map((h) => {
    const u = usage.get(h.name)!;
    const cap = h.capacity!;
    const miss = [
      u.cpu + need.cpu > cap.cpu + 1e-9 ? `cpu ${(u.cpu + need.cpu - cap.cpu).toFixed(2)} more than its ${cap.cpu}` : '',
      u.memoryMb + need.memoryMb > cap.memoryMb ? `memory ${u.memoryMb + need.memoryMb - cap.memoryMb} MiB more than its ${cap.memoryMb} MiB` : '',
    ].filter(Boolean).join(' and ');
    return `${h.name} would need ${miss}`;
  }), ...closed].join('; ');
}

/**
 * The build host of an app built from source: rendezvous hashing over the build-role
 * hosts, so an app keeps building on one host (its layer cache and sandbox are there)
 * while that host is in the cluster, and adding a host moves only the apps that now rank
 * it first. Undefined when the cluster has no build host.
 */
export function buildHostFor(project: string, name: string, buildHosts: string[]): string | undefined {
  const score = (h: string): string => createHash('sha256').update(`${h}\n${project}/${name}`).digest('hex');
  return [...buildHosts].sort((a, b) => (score(a) < score(b) ? 1 : score(a) > score(b) ? -1 : a.localeCompare(b)))[0];
}

export function place(desired: DesiredState, live: LiveState, hosts: PlacementHost[], buildHosts: string[] = []): { desired: DesiredState; unplaced: Unplaced[] } {
  const usage = new Map<string, Usage>(hosts.map((h) => [h.name, { cpu: 0, memoryMb: 0 }]));
  const byName = new Map(hosts.map((h) => [h.name, h]));
  const use = (host: string, r: Resources): void => {
    const u = usage.get(host);
    if (u) { u.cpu += r.cpu; u.memoryMb += r.memoryMb; }
  };
  const best = (need: Resources, rank: (h: PlacementHost) => number = () => 0, allowed: (h: string) => boolean = () => true): PlacementHost | undefined => hosts
    .filter((h) => h.schedulable && allowed(h.name) && fits(h, usage.get(h.name)!, need))
    .sort((a, b) => rank(a) - rank(b) || free(b, usage.get(b.name)!) - free(a, usage.get(a.name)!) || a.name.localeCompare(b.name))[0];
  const unplaced: Unplaced[] = [];
  const placed = new Map<string, DesiredApp | DesiredDatabase>();

  for (const db of [...databasesOf(desired.resources)].sort((a, b) => keyOf(a).localeCompare(keyOf(b)))) {
    const volume = live.volumes.find((v) => keyOf(v.key) === keyOf(db));
    const running = live.containers.find((c) => keyOf(c.key) === keyOf(db));
    const host = volume?.host ?? running?.host ?? best(db.resources)?.name;
    const lost = host ? byName.get(host)?.lost : undefined;
    if (host && lost) {
      unplaced.push({
        ...keyFields(db), phase: 'HostLost',
        reason: `its data is on host ${host}, which is ${lost}; a database is not moved without its data. `
          + `Remedy: restore its latest verified backup onto another host: restore_database name=${db.name} project=${db.project} into=<a new name> `
          + `(list_backups shows its backups; the newest verified is the default), then bind its apps to the new database (update_app databases). `
          + 'When the host comes back, this database runs there again on its data',
      });
      continue;
    }
    if (!host) { unplaced.push({ ...keyFields(db), reason: `fits on no runtime host: ${shortfall(hosts, usage, db.resources)}` }); continue; }
    use(host, db.resources);
    placed.set(keyOf(db), { ...db, host });
  }

  for (const app of [...appsOf(desired.resources)].sort((a, b) => keyOf(a).localeCompare(keyOf(b)))) {
    const mine = live.containers.filter((c) => keyOf(c.key) === keyOf(app) && c.running);
    // An app reaches its databases on their host's network only: it runs where they do.
    const dbHosts = [...new Set(app.databases.map((b) => (placed.get(keyOf({ kind: 'Database', project: b.project, name: b.name })) as DesiredDatabase | undefined)?.host ?? ''))];
    if (dbHosts.length > 1 || dbHosts.includes('')) {
      const missing = app.databases.map((b) => unplaced.find((u) => u.kind === 'Database' && u.project === b.project && u.name === b.name)).find((u) => u);
      const why = missing ? `database ${missing.project}/${missing.name} it binds is not placed (${missing.phase ?? 'Unschedulable'}: ${missing.reason.split('. ')[0]})` : 'a database it binds has no host';
      unplaced.push({ ...keyFields(app), reason: dbHosts.includes('') ? why : `it binds databases on different hosts (${dbHosts.join(', ')}); an app reaches a database only on its host` });
      continue;
    }
    const allowed = (h: string): boolean => !dbHosts.length || h === dbHosts[0];
    const placement: string[] = [];
    let missing = '';
    for (let r = 0; r < app.replicas; r++) {
      const now = mine.find((c) => c.replica === r && byName.get(c.host)?.schedulable && allowed(c.host))?.host;
      const keep = now && fits(byName.get(now)!, usage.get(now)!, app.resources) ? now : undefined;
      const host = keep ?? best(app.resources, (h) => (allowed(h.name) ? 0 : 1e6) + placement.filter((p) => p === h.name).length, allowed)?.name;
      if (!host) { missing = `replica ${r} fits on no runtime host: ${shortfall(hosts, usage, app.resources)}`; break; }
      placement.push(host);
      use(host, app.resources);
    }
    if (missing) { unplaced.push({ ...keyFields(app), reason: missing }); continue; }
    const buildHost = app.build ? buildHostFor(app.project, app.name, buildHosts) : undefined;
    placed.set(keyOf(app), { ...app, placement, ...(buildHost ? { buildHost } : {}) });
  }

  return {
    desired: {
      ...desired,
      resources: desired.resources.filter((r) => placed.has(keyOf(r))).map((r) => placed.get(keyOf(r))!),
      held: [...desired.held, ...unplaced.map(keyFields)],
    },
    unplaced,
  };
}
