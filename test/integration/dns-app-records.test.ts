// Apps' A records in a real bind9: a record follows its app when it moves to other edges,
// stays while git holds the app unapplied, goes with the app, and what ml.ink owns is
// kept in the data dir so the removal finds it. A record that was in the zone before is
// never touched.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRecordsFile, syncAppRecords, type NamedApp } from '../../reconciler/dns/app-records.js';
import { startBind9, type Bind9 } from '../support/bind9.js';

let bind: Bind9;
const dir = mkdtempSync(join(tmpdir(), 'mlink-dns-records-'));
const edges: Record<string, string> = { a: '10.0.0.1', b: '10.0.0.2', c: '10.0.0.3' };
const web = (hosts: string[]): NamedApp => ({ kind: 'App', project: 'p', name: 'web', domains: ['web.internal.test'], hosts });

function sync(apps: NamedApp[], held: NamedApp[] = []): ReturnType<typeof syncAppRecords> {
  return syncAppRecords({
    dir, cluster: 'c1', server: { host: bind.host, port: bind.port }, zone: bind.zone, tsig: bind.tsig, ttl: 60,
    apps, held: held.map(({ kind, project, name }) => ({ kind, project, name })), addressOf: (h) => edges[h],
  });
}

beforeAll(async () => { bind = await startBind9({ zoneRecords: ['legacy IN A 192.0.2.7'] }); }, 240_000);
afterAll(async () => { await bind?.stop(); rmSync(dir, { recursive: true, force: true }); });

describe('apps\' records follow the apps', () => {
  it('creates the record for the edges serving the app, and moves it with the app', async () => {
    const first = await sync([web(['a', 'b'])]);
    expect(first.result.applied).toEqual([{ name: 'web.internal.test', action: 'created', addresses: ['10.0.0.1', '10.0.0.2'] }]);
    expect((await bind.dig(['web.internal.test'])).split('\n').sort()).toEqual(['10.0.0.1', '10.0.0.2']);
    // The same want again within a minute: not even asked of the server.
    expect((await sync([web(['a', 'b'])])).result.applied).toEqual([]);
    const moved = await sync([web(['c'])]);
    expect(moved.result.applied).toEqual([{ name: 'web.internal.test', action: 'updated', addresses: ['10.0.0.3'] }]);
    expect(await bind.dig(['web.internal.test'])).toBe('10.0.0.3');
    expect(moved.records).toEqual([expect.objectContaining({ name: 'web.internal.test', resource: 'App/p/web', addresses: ['10.0.0.3'], state: 'synced' })]);
  });

  it('keeps the record of an app git holds but does not apply, and removes it once the app is gone', async () => {
    expect((await sync([], [web([])])).result.applied).toEqual([]);
    expect(await bind.dig(['web.internal.test'])).toBe('10.0.0.3');
    expect((await readRecordsFile(dir, 'c1'))?.owned).toEqual(['web.internal.test']);
    const gone = await sync([]);
    expect(gone.result.applied).toEqual([{ name: 'web.internal.test', action: 'deleted', addresses: ['10.0.0.3'] }]);
    expect(await bind.dig(['web.internal.test'])).toBe('');
    expect(await bind.dig(['a-web.internal.test', 'TXT'])).toBe('');
    expect((await readRecordsFile(dir, 'c1'))?.owned).toEqual([]);
  });

  it('never takes over a record that was there before, and never removes it', async () => {
    const squat: NamedApp = { kind: 'App', project: 'p', name: 'squat', domains: ['legacy.internal.test'], hosts: ['a'] };
    const r = await sync([squat]);
    expect(r.records).toEqual([expect.objectContaining({ name: 'legacy.internal.test', state: 'refused', reason: expect.stringMatching(/already holds A 192\.0\.2\.7 that ml\.ink did not create/) })]);
    await sync([]);
    expect(await bind.dig(['legacy.internal.test'])).toBe('192.0.2.7');
  });
});
