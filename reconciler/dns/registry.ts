// ml.ink's A records in a customer's zone, by RFC 2136 updates, with ownership kept the
// way external-dns's TXT registry keeps it: beside each managed name N a TXT record at
// `a-N` says `heritage=mlink,mlink/owner=<owner>`. Every change carries prerequisites,
// so the ownership check and the change are one atomic update on the server: a record
// ml.ink did not create is never changed or deleted, even if it appears mid-sync.
import { log } from '../util/log.js';
import { pre, queryRecords, sendUpdate, upd } from './client.js';
import { TYPE, aData, encodeName, readA, readTxt, txtData, type ResourceRecord } from './message.js';
import type { DnsServer } from './transport.js';
import { validateTsigKey, type TsigKey } from './tsig.js';

export interface DesiredRecord {
  name: string;
  addresses: string[];
  /** Who wants it (for example `App/shop/web`), written into the ownership record for humans. */
  resource?: string;
  ttl?: number;
}

export interface SyncRequest {
  server: DnsServer;
  zone: string;
  tsig: TsigKey;
  /** This cluster's owner id; two clusters sharing a zone need different ones. */
  owner: string;
  desired: DesiredRecord[];
  /** Names this owner held after the last sync (SyncResult.owned): those no longer desired are removed. */
  previouslyOwned: string[];
}

export interface SyncResult {
  applied: Array<{ name: string; action: 'created' | 'updated' | 'deleted'; addresses: string[] }>;
  unchanged: string[];
  /** Left alone because ml.ink does not own them; the reason names what is there. */
  refused: Array<{ name: string; reason: string }>;
  /** Server or network trouble; retry later. */
  failed: Array<{ name: string; error: string }>;
  /** Names this owner holds now: the next sync's previouslyOwned. */
  owned: string[];
}

export const DEFAULT_TTL = 300;
const HERITAGE = 'mlink';

/** external-dns's new-format ownership name: the record type as a prefix of the first label. */
export function ownerRecordName(name: string): string {
  return `a-${name}`;
}

export function ownerRecordText(owner: string, resource?: string): string {
  return [`heritage=${HERITAGE}`, `${HERITAGE}/owner=${owner}`, ...(resource ? [`${HERITAGE}/resource=${resource}`] : [])].join(',');
}

export function parseOwnerRecord(text: string): { heritage?: string; owner?: string; resource?: string } {
  const fields = new Map(text.replace(/^"|"$/g, '').split(',').map((kv) => { const i = kv.indexOf('='); return [kv.slice(0, i), kv.slice(i + 1)] as const; }));
  return { heritage: fields.get('heritage'), owner: fields.get(`${HERITAGE}/owner`) ?? fields.get('external-dns/owner'), resource: fields.get(`${HERITAGE}/resource`) };
}

const norm = (n: string): string => n.toLowerCase().replace(/\.$/, '');

function validate(req: SyncRequest): { zone: string; desired: Array<Required<Omit<DesiredRecord, 'resource'>> & { resource?: string }> } {
  const zone = norm(req.zone);
  encodeName(zone);
  validateTsigKey(req.tsig);
  if (!/^[a-z0-9][a-z0-9._-]{0,62}$/i.test(req.owner)) throw new Error(`owner: "${req.owner}" must be 1 to 63 letters, digits, '.', '_' or '-' (it is written into TXT ownership records)`);
  const inZone = (n: string, field: string): string => {
    const name = norm(n);
    encodeName(ownerRecordName(name));
    if (!name.endsWith(`.${zone}`)) throw new Error(`${field}: "${n}" is not inside the zone ${zone}; give a name under it or configure its zone`);
    return name;
  };
  const seen = new Set<string>();
  const desired = req.desired.map((d, i) => {
    const name = inZone(d.name, `desired[${i}].name`);
    if (seen.has(name)) throw new Error(`desired[${i}].name: "${name}" is listed twice; give each name once with all its addresses`);
    seen.add(name);
    if (d.addresses.length === 0) throw new Error(`desired[${i}].addresses: empty; leave the name out of desired to remove its record`);
    d.addresses.forEach((a, j) => { try { aData(a); } catch { throw new Error(`desired[${i}].addresses[${j}]: "${a}" is not an IPv4 address (only A records are managed so far)`); } });
    const ttl = d.ttl ?? DEFAULT_TTL;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > 86_400) throw new Error(`desired[${i}].ttl: ${ttl} must be a whole number of seconds from 1 to 86400`);
    return { name, addresses: [...new Set(d.addresses)].sort(), ttl, ...(d.resource ? { resource: d.resource } : {}) };
  });
  req.previouslyOwned.forEach((n, i) => inZone(n, `previouslyOwned[${i}]`));
  return { zone, desired };
}

interface Seen { a: ResourceRecord[]; txt: ResourceRecord[]; mine: boolean; foreignOwner?: string }

async function look(req: SyncRequest, name: string): Promise<Seen> {
  const [a, txt] = await Promise.all([queryRecords(req.server, req.tsig, name, TYPE.A), queryRecords(req.server, req.tsig, ownerRecordName(name), TYPE.TXT)]);
  const owners = txt.records.map((r) => parseOwnerRecord(readTxt(r.data)));
  const mine = owners.length > 0 && owners.every((o) => o.heritage === HERITAGE && o.owner === req.owner);
  const foreign = owners.find((o) => !(o.heritage === HERITAGE && o.owner === req.owner));
  return { a: a.records, txt: txt.records, mine, ...(foreign ? { foreignOwner: foreign.owner ? `${foreign.heritage ?? '?'} owner ${foreign.owner}` : 'a TXT record ml.ink did not write' } : {}) };
}

const addrs = (rs: ResourceRecord[]): string[] => rs.map((r) => readA(r.data)).sort();
const same = (a: string[], b: string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/** Brings this owner's A records in `zone` to `desired`; never touches a record it does not own. */
export async function syncRecords(req: SyncRequest): Promise<SyncResult> {
  const { zone, desired } = validate(req);
  const out: SyncResult = { applied: [], unchanged: [], refused: [], failed: [], owned: [] };
  const l = log.child({ component: 'dns', zone, server: `${req.server.host}:${req.server.port ?? 53}`, owner: req.owner });
  const wantedNames = new Set(desired.map((d) => d.name));

  for (const d of desired) {
    const txtName = ownerRecordName(d.name);
    const text = ownerRecordText(req.owner, d.resource);
    const matches = (s: Seen): boolean => s.mine && same(addrs(s.a), d.addresses) && s.a.every((r) => r.ttl === d.ttl) && s.txt.length === 1 && readTxt(s.txt[0]!.data) === text;
    const adds = [...d.addresses.map((a) => upd.add(d.name, TYPE.A, d.ttl, aData(a))), upd.add(txtName, TYPE.TXT, d.ttl, txtData(text))];
    try {
      const s = await look(req, d.name);
      if (s.foreignOwner) { out.refused.push({ name: d.name, reason: `${txtName} TXT names ${s.foreignOwner}; ml.ink leaves this name alone` }); continue; }
      if (matches(s)) { out.unchanged.push(d.name); out.owned.push(d.name); continue; }
      const action = s.mine ? 'updated' : 'created';
      const r = s.mine
        // Ours: replace the A set and the ownership record, only if the ownership record is still exactly what we read.
        ? await sendUpdate(req.server, req.tsig, zone, pre.rrsetIs(s.txt), [upd.deleteRrset(d.name, TYPE.A), upd.deleteRrset(txtName, TYPE.TXT), ...adds])
        // Not ours yet: create only if neither the name nor its ownership name holds any record.
        : await sendUpdate(req.server, req.tsig, zone, [pre.nameFree(d.name), pre.nameFree(txtName)], adds);
      if (r.rcode === 0 || ((r.rcodeName === 'YXDOMAIN' || r.rcodeName === 'NXRRSET') && matches(await look(req, d.name)))) {
        // (A prerequisite failure that reads back as our wanted state is our own retransmitted update.)
        out.applied.push({ name: d.name, action, addresses: d.addresses });
        out.owned.push(d.name);
        l.info('dns record ' + action, { name: d.name, addresses: d.addresses, transport: r.transport });
      } else if (r.rcodeName === 'YXDOMAIN') {
        const held = s.a.length > 0 ? `A ${addrs(s.a).join(', ')}` : 'records of other types';
        out.refused.push({ name: d.name, reason: `${d.name} already holds ${held} that ml.ink did not create; the server refused to create it over them (YXDOMAIN)` });
        l.warn('dns record refused: not ours', { name: d.name, held });
      } else if (r.rcodeName === 'NXRRSET') {
        out.refused.push({ name: d.name, reason: `the ownership record ${txtName} changed during the update (NXRRSET); the next sync looks again` });
        out.owned.push(d.name);
      } else {
        throw new Error(updateError(r.rcodeName, req.tsig.name, zone));
      }
    } catch (err) {
      out.failed.push({ name: d.name, error: (err as Error).message });
      if (req.previouslyOwned.map(norm).includes(d.name)) out.owned.push(d.name);
      l.error('dns sync failed', { name: d.name, phase: 'ApplyFailed', cause: err });
    }
  }

  for (const name of [...new Set(req.previouslyOwned.map(norm))].filter((n) => !wantedNames.has(n))) {
    const txtName = ownerRecordName(name);
    try {
      const s = await look(req, name);
      if (!s.mine) {
        out.refused.push({ name, reason: s.foreignOwner ? `${txtName} TXT now names ${s.foreignOwner}; not deleted` : `no ownership record at ${txtName} any more; whatever is at ${name} is left alone` });
        continue;
      }
      const r = await sendUpdate(req.server, req.tsig, zone, pre.rrsetIs(s.txt), [upd.deleteRrset(name, TYPE.A), upd.deleteRrset(txtName, TYPE.TXT)]);
      const gone = async (): Promise<boolean> => { const t = await look(req, name); return t.txt.length === 0 && t.a.length === 0; };
      if (r.rcode === 0 || (r.rcodeName === 'NXRRSET' && (await gone()))) {
        out.applied.push({ name, action: 'deleted', addresses: addrs(s.a) });
        l.info('dns record deleted', { name, addresses: addrs(s.a) });
      } else if (r.rcodeName === 'NXRRSET') {
        out.refused.push({ name, reason: `the ownership record ${txtName} changed during the delete (NXRRSET); not deleted` });
      } else {
        throw new Error(updateError(r.rcodeName, req.tsig.name, zone));
      }
    } catch (err) {
      out.failed.push({ name, error: (err as Error).message });
      out.owned.push(name);
      l.error('dns delete failed', { name, phase: 'PruneFailed', cause: err });
    }
  }
  out.owned.sort();
  return out;
}

function updateError(rcode: string, key: string, zone: string): string {
  if (rcode === 'REFUSED') return `the server refused the update (REFUSED): allow key "${key}" to update zone ${zone} (BIND: allow-update { key "${key}"; };)`;
  if (rcode === 'NOTAUTH' || rcode === 'NOTZONE') return `the server is not authoritative for ${zone} (${rcode}): point ml.ink at the zone's primary server`;
  return `the update failed on the server (${rcode})`;
}
