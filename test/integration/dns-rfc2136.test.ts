// ml.ink's A records in a real BIND 9 zone by RFC 2136 + TSIG, read back with dig: made,
// moved and removed with their ownership TXT, and a record ml.ink did not create is never
// changed or deleted, by any sync or any single update.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pre, queryRecords, sendUpdate, upd } from '../../reconciler/dns/client.js';
import { TYPE, aData, txtData } from '../../reconciler/dns/message.js';
import { ownerRecordText, syncRecords, type SyncRequest } from '../../reconciler/dns/registry.js';
import { startBind9, type Bind9 } from '../support/bind9.js';

let bind: Bind9;
const legacyZoneLines = [
  'legacy IN A 10.9.9.9',
  'a-theirs IN TXT "heritage=mlink,mlink/owner=other-cluster"',
  'theirs IN A 10.8.8.8',
  // 20 TXT records of 60 bytes: an answer too big for 512-byte UDP, so it comes truncated.
  ...Array.from({ length: 20 }, (_, i) => `big IN TXT "${String(i).padStart(2, '0')}${'x'.repeat(58)}"`),
];

beforeAll(async () => { bind = await startBind9({ zoneRecords: legacyZoneLines }); });
afterAll(async () => { await bind?.stop(); });

const req = (desired: SyncRequest['desired'], previouslyOwned: string[] = [], owner = 'c1'): SyncRequest =>
  ({ server: { host: bind.host, port: bind.port }, zone: bind.zone, tsig: bind.tsig, owner, desired, previouslyOwned });
const serial = async (): Promise<string> => (await bind.dig([bind.zone, 'SOA'])).split(' ')[2]!;
const a = async (name: string): Promise<string[]> => (await bind.dig([name, 'A'])).split('\n').filter(Boolean).sort();

describe('RFC 2136 records with TXT ownership', () => {
  it('creates, updates and removes a record, and leaves the zone alone when nothing changed', async () => {
    const created = await syncRecords(req([{ name: 'logistics.internal.test', addresses: ['127.0.0.1'], resource: 'App/default/logistics' }]));
    expect(created).toEqual({ applied: [{ name: 'logistics.internal.test', action: 'created', addresses: ['127.0.0.1'] }], unchanged: [], refused: [], failed: [], owned: ['logistics.internal.test'] });
    expect(await a('logistics.internal.test')).toEqual(['127.0.0.1']);
    expect(await bind.dig(['a-logistics.internal.test', 'TXT'])).toBe('"heritage=mlink,mlink/owner=c1,mlink/resource=App/default/logistics"');

    const moved = await syncRecords(req([{ name: 'logistics.internal.test', addresses: ['127.0.0.3', '127.0.0.2'], resource: 'App/default/logistics' }], created.owned));
    expect(moved.applied).toEqual([{ name: 'logistics.internal.test', action: 'updated', addresses: ['127.0.0.2', '127.0.0.3'] }]);
    expect(await a('logistics.internal.test')).toEqual(['127.0.0.2', '127.0.0.3']);

    const before = await serial();
    const same = await syncRecords(req([{ name: 'logistics.internal.test', addresses: ['127.0.0.2', '127.0.0.3'], resource: 'App/default/logistics' }], moved.owned));
    expect(same).toEqual({ applied: [], unchanged: ['logistics.internal.test'], refused: [], failed: [], owned: ['logistics.internal.test'] });
    expect(await serial()).toBe(before);

    const removed = await syncRecords(req([], same.owned));
    expect(removed).toEqual({ applied: [{ name: 'logistics.internal.test', action: 'deleted', addresses: ['127.0.0.2', '127.0.0.3'] }], unchanged: [], refused: [], failed: [], owned: [] });
    expect(await a('logistics.internal.test')).toEqual([]);
    expect(await bind.dig(['a-logistics.internal.test', 'TXT'])).toBe('');
  });

  it('never touches a record that was in the zone before, whatever a sync asks', async () => {
    const wanted = await syncRecords(req([{ name: 'legacy.internal.test', addresses: ['127.0.0.1'] }, { name: 'new.internal.test', addresses: ['127.0.0.1'] }]));
    expect(wanted.refused).toEqual([{ name: 'legacy.internal.test', reason: 'legacy.internal.test already holds A 10.9.9.9 that ml.ink did not create; the server refused to create it over them (YXDOMAIN)' }]);
    expect(wanted.applied.map((x) => x.name)).toEqual(['new.internal.test']);
    expect(wanted.owned).toEqual(['new.internal.test']);
    expect(await a('legacy.internal.test')).toEqual(['10.9.9.9']);
    expect(await bind.dig(['a-legacy.internal.test', 'TXT'])).toBe('');

    // Told (wrongly) that it owned legacy: the delete finds no ownership record and leaves it.
    const removed = await syncRecords(req([], ['legacy.internal.test', 'new.internal.test']));
    expect(removed.applied).toEqual([{ name: 'new.internal.test', action: 'deleted', addresses: ['127.0.0.1'] }]);
    expect(removed.refused).toEqual([{ name: 'legacy.internal.test', reason: 'no ownership record at a-legacy.internal.test any more; whatever is at legacy.internal.test is left alone' }]);
    expect(await a('legacy.internal.test')).toEqual(['10.9.9.9']);
  });

  it('leaves a name owned by another cluster alone, by sync or delete', async () => {
    const r = await syncRecords(req([{ name: 'theirs.internal.test', addresses: ['127.0.0.1'] }], ['theirs.internal.test']));
    expect(r.refused).toEqual([{ name: 'theirs.internal.test', reason: 'a-theirs.internal.test TXT names mlink owner other-cluster; ml.ink leaves this name alone' }]);
    expect((await syncRecords(req([], ['theirs.internal.test']))).refused[0]!.reason).toMatch(/now names mlink owner other-cluster; not deleted/);
    expect(await a('theirs.internal.test')).toEqual(['10.8.8.8']);
    // And this cluster's record is another cluster's "theirs": c2 cannot take it over.
    await syncRecords(req([{ name: 'mine.internal.test', addresses: ['127.0.0.1'] }]));
    const c2 = await syncRecords(req([{ name: 'mine.internal.test', addresses: ['127.0.0.9'] }], ['mine.internal.test'], 'c2'));
    expect(c2.refused[0]!.reason).toMatch(/names mlink owner c1/);
    expect(await a('mine.internal.test')).toEqual(['127.0.0.1']);
    await syncRecords(req([], ['mine.internal.test']));
  });

  it('makes the ownership check part of each update: the server refuses a change whose prerequisites fail', async () => {
    const s = { host: bind.host, port: bind.port };
    const before = await serial();
    // A create over a name that holds a record we did not make: refused atomically, nothing added.
    const create = await sendUpdate(s, bind.tsig, bind.zone, [pre.nameFree('legacy.internal.test'), pre.nameFree('a-legacy.internal.test')],
      [upd.add('legacy.internal.test', TYPE.A, 300, aData('127.0.0.1')), upd.add('a-legacy.internal.test', TYPE.TXT, 300, txtData(ownerRecordText('c1')))]);
    expect(create.rcodeName).toBe('YXDOMAIN');
    // A replace or delete that requires our ownership record, where another cluster's is: refused, nothing deleted.
    const ours = { name: 'a-theirs.internal.test', type: TYPE.TXT, class: 1, ttl: 0, data: txtData(ownerRecordText('c1')) };
    const del = await sendUpdate(s, bind.tsig, bind.zone, pre.rrsetIs([ours]), [upd.deleteRrset('theirs.internal.test', TYPE.A)]);
    expect(del.rcodeName).toBe('NXRRSET');
    expect(await a('legacy.internal.test')).toEqual(['10.9.9.9']);
    expect(await a('theirs.internal.test')).toEqual(['10.8.8.8']);
    expect(await serial()).toBe(before);
  });

  it('falls back to TCP when the UDP answer is truncated', async () => {
    const r = await queryRecords({ host: bind.host, port: bind.port }, bind.tsig, 'big.internal.test', TYPE.TXT);
    expect(r.transport).toBe('tcp');
    expect(r.records).toHaveLength(20);
    const udpOnly = await queryRecords({ host: bind.host, port: bind.port }, bind.tsig, 'legacy.internal.test', TYPE.A);
    expect(udpOnly.transport).toBe('udp');
    const tcp = await syncRecords({ ...req([{ name: 'tcp.internal.test', addresses: ['127.0.0.1'] }]), server: { host: bind.host, port: bind.port, tcp: true } });
    expect(tcp.applied).toHaveLength(1);
    expect(await a('tcp.internal.test')).toEqual(['127.0.0.1']);
    await syncRecords(req([], ['tcp.internal.test']));
  });

  it('reports a wrong key as a failure naming the fix, and changes nothing', async () => {
    const wrong = { ...bind.tsig, secret: Buffer.alloc(32, 1).toString('base64') };
    const r = await syncRecords({ ...req([{ name: 'nokey.internal.test', addresses: ['127.0.0.1'] }]), tsig: wrong });
    expect(r.applied).toEqual([]);
    expect(r.failed).toEqual([{ name: 'nokey.internal.test', error: expect.stringMatching(/NOTAUTH.*BADSIG.*secret of key "mlink-test" differs/) }]);
    expect(await a('nokey.internal.test')).toEqual([]);
    const unknown = await syncRecords({ ...req([{ name: 'nokey.internal.test', addresses: ['127.0.0.1'] }]), tsig: { ...wrong, name: 'nobody' } });
    expect(unknown.failed[0]!.error).toMatch(/does not know key "nobody" \(BADKEY\)/);
    await expect(syncRecords(req([{ name: 'web.elsewhere.test', addresses: ['127.0.0.1'] }]))).rejects.toThrow(/desired\[0\].name: "web.elsewhere.test" is not inside the zone internal.test/);
    await expect(syncRecords(req([{ name: 'v6.internal.test', addresses: ['::1'] }]))).rejects.toThrow(/desired\[0\].addresses\[0\]: "::1" is not an IPv4 address/);
  });
});
