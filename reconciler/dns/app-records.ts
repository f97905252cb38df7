// Apps' A records: each host name of each app points at the edges that serve it (the
// runtime hosts its replicas run on), kept in the customer's zone by registry.ts (which
// never touches a record ml.ink did not create). The names this cluster owns and how
// each record stands are kept in the data dir, so a record is removed with its app and
// get_app can show its state.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { keyOf, type ResourceKey } from '../model.js';
import { syncRecords, type DesiredRecord, type SyncResult } from './registry.js';
import type { DnsServer } from './transport.js';
import type { TsigKey } from './tsig.js';

export interface NamedApp extends ResourceKey { domains: string[]; hosts: string[] }

export type RecordState = 'synced' | 'refused' | 'failed' | 'skipped';
export interface RecordStatus { name: string; resource: string; addresses: string[]; state: RecordState; reason?: string; at: string }
export interface RecordsFile {
  zone: string; server: string; owned: string[]; records: RecordStatus[];
  /** What the last full sync wanted, and when it ran: an unchanged want is not asked of the server again for a while. */
  wanted?: string; syncedAt?: string;
}

/** How long an unchanged, fully synced set of records goes without a look at the server (drift in the zone is healed after this). */
export const RESYNC_MS = 60_000;

const norm = (n: string): string => n.toLowerCase().replace(/\.$/, '');

/** Pure: the records `apps` want in `zone`, and the names that get none (outside the zone, no address), with why. */
export function desiredRecords(apps: NamedApp[], zone: string, addressOf: (host: string) => string | undefined): { records: DesiredRecord[]; skipped: RecordStatus[] } {
  const records: DesiredRecord[] = [];
  const skipped: RecordStatus[] = [];
  const z = norm(zone);
  const at = new Date(0).toISOString();
  for (const app of [...apps].sort((a, b) => keyOf(a).localeCompare(keyOf(b)))) {
    const resource = `${app.kind}/${app.project}/${app.name}`;
    const addresses = [...new Set(app.hosts.map(addressOf).filter((a): a is string => !!a))].sort();
    for (const raw of app.domains) {
      const name = norm(raw);
      if (!name.endsWith(`.${z}`)) { skipped.push({ name, resource, addresses: [], state: 'skipped', reason: `not inside the zone ${z} that mlink.yaml spec.dns manages`, at }); continue; }
      if (name.startsWith('*.')) { skipped.push({ name, resource, addresses: [], state: 'skipped', reason: 'wildcard names are not published (only A records for exact names)', at }); continue; }
      if (records.some((r) => r.name === name)) { skipped.push({ name, resource, addresses: [], state: 'skipped', reason: `another app already has ${name}`, at }); continue; }
      if (addresses.length === 0) { skipped.push({ name, resource, addresses: [], state: 'skipped', reason: app.hosts.length ? `its edges (${app.hosts.join(', ')}) have no IPv4 address to publish` : 'no replica runs, so no edge serves it', at }); continue; }
      records.push({ name, addresses, resource });
    }
  }
  return { records, skipped };
}

export function recordsFile(dir: string, cluster: string): string {
  return join(dir, `${cluster}.json`);
}

export async function readRecordsFile(dir: string, cluster: string): Promise<RecordsFile | undefined> {
  try {
    return JSON.parse(await readFile(recordsFile(dir, cluster), 'utf8')) as RecordsFile;
  } catch {
    return undefined;
  }
}

async function writeRecordsFile(dir: string, cluster: string, f: RecordsFile): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tmp = `${recordsFile(dir, cluster)}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(f, null, 2) + '\n');
  await rename(tmp, recordsFile(dir, cluster));
}

export interface AppRecordsRequest {
  dir: string;
  cluster: string;
  server: DnsServer;
  zone: string;
  tsig: TsigKey;
  ttl: number;
  apps: NamedApp[];
  /** Apps git holds but this pass does not apply: their records stay as they are. */
  held: ResourceKey[];
  addressOf: (host: string) => string | undefined;
}

/** Brings the zone to the apps' records; returns the registry's result and each name's state. */
export async function syncAppRecords(req: AppRecordsRequest): Promise<{ result: SyncResult; records: RecordStatus[] }> {
  const before = await readRecordsFile(req.dir, req.cluster);
  // Names owned in another zone (mlink.yaml moved to a new one) cannot be removed through this one.
  const previous = before && norm(before.zone) === norm(req.zone) ? before : undefined;
  const { records, skipped } = desiredRecords(req.apps, req.zone, req.addressOf);
  const heldIds = new Set(req.held.map((h) => `${h.kind}/${h.project}/${h.name}`));
  const kept = (previous?.records ?? []).filter((r) => heldIds.has(r.resource) && previous!.owned.includes(r.name));
  const wanted = JSON.stringify([req.server, req.ttl, records, kept.map((k) => k.name), skipped.map((x) => [x.name, x.reason])]);
  // Every pass asks for this; two signed queries per name each time would make every pass pay for every name.
  const settled = previous?.wanted === wanted && previous.records.every((r) => r.state === 'synced' || r.state === 'skipped');
  if (settled && Date.now() - Date.parse(previous.syncedAt ?? '') < RESYNC_MS) {
    return { result: { applied: [], unchanged: records.map((r) => r.name), refused: [], failed: [], owned: previous.owned }, records: previous.records };
  }
  const result = await syncRecords({
    server: req.server, zone: req.zone, tsig: req.tsig, owner: req.cluster,
    desired: records.map((r) => ({ ...r, ttl: req.ttl })).filter((r) => !kept.some((k) => k.name === r.name)),
    previouslyOwned: (previous?.owned ?? []).filter((n) => !kept.some((k) => k.name === n)),
  });
  const at = new Date().toISOString();
  const resourceOf = new Map(records.map((r) => [r.name, r.resource ?? '']));
  const status: RecordStatus[] = [
    ...records.filter((r) => !kept.some((k) => k.name === r.name)).map((r): RecordStatus => {
      const refused = result.refused.find((x) => x.name === r.name);
      const failed = result.failed.find((x) => x.name === r.name);
      return { name: r.name, resource: resourceOf.get(r.name) ?? '', addresses: r.addresses, at, ...(failed ? { state: 'failed', reason: failed.error } : refused ? { state: 'refused', reason: refused.reason } : { state: 'synced' }) };
    }),
    ...kept,
    ...skipped.map((s) => ({ ...s, at })),
  ].sort((a, b) => a.name.localeCompare(b.name));
  await writeRecordsFile(req.dir, req.cluster, {
    zone: req.zone, server: `${req.server.host}:${req.server.port ?? 53}`,
    owned: [...new Set([...result.owned, ...kept.map((k) => k.name)])].sort(), records: status, wanted, syncedAt: at,
  });
  return { result, records: status };
}
