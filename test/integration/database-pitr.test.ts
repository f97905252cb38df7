// Point-in-time recovery as a user would use it, with a real Postgres and pgBackRest
// under gVisor: a restore to a time between two writes gives the first and not the
// second, into a new database from the control host's (encrypted) copy of the
// repository, and into the same database's volumes; a time beyond what was archived is
// refused with the newest restorable time.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDatabaseContainer } from '../../reconciler/databases/lifecycle.js';
import { currentWal, flushWal, pitrBackup, pitrBackups, restoreToTime, waitArchived } from '../../reconciler/databases/pitr.js';
import { pitrDir, readMirror, syncPitrRepo } from '../../reconciler/databases/pitr-mirror.js';
import { generateClusterKey, type ClusterKey } from '../../reconciler/state/secrets.js';
import { docker, runId } from '../support/infra.js';
import { admin, cleanup, engineImage, startDb, testMac, testNetwork, type TestDb } from '../support/databases.js';

let network = '';
let key: ClusterKey;
let root = '';
let src: TestDb;
let target: Date;
let dir = '';
beforeAll(async () => {
  await engineImage('postgres');
  network = await testNetwork('pitr');
  key = await generateClusterKey();
  root = mkdtempSync(join(tmpdir(), 'mlink-pitr-'));
  dir = pitrDir(root, 'shop', 'orders');
}, 600_000);
afterAll(async () => {
  await cleanup();
  rmSync(root, { recursive: true, force: true });
});

const rows = async (container: string): Promise<string> => admin('postgres', container, 'SELECT string_agg(note, \',\' ORDER BY id) FROM w;');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('postgres point-in-time recovery', () => {
  it('archives WAL from the start, before any backup: nothing piles up in pg_wal', async () => {
    src = await startDb('postgres', network, 'orders', { pitrVolume: `${runId}-orders-pitr`, archiveTimeoutS: 5 });
    await admin('postgres', src.input.name, 'CREATE TABLE early AS SELECT g AS id, md5(g::text) AS body FROM generate_series(1, 200000) g;');
    const segment = await currentWal(docker, src.input.name);
    await admin('postgres', src.input.name, 'SELECT pg_switch_wal();');
    await waitArchived(docker, src.input.name, segment, 60_000);
    expect(await admin('postgres', src.input.name, "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready';")).toBe('0');
  }, 300_000);

  it('archives WAL continuously: a write is restorable within archive_timeout', async () => {
    const base = await pitrBackup(docker, src.input.name);
    expect(base.type).toBe('full');
    await admin('postgres', src.input.name, 'CREATE TABLE w (id serial PRIMARY KEY, note text NOT NULL);');
    const user = await admin('postgres', src.input.name, 'SELECT datdba::regrole FROM pg_database WHERE datname = current_database();');
    await admin('postgres', src.input.name, `ALTER TABLE w OWNER TO "${user}"; INSERT INTO w (note) VALUES ('first');`);
    const segment = await currentWal(docker, src.input.name);
    const ms = await waitArchived(docker, src.input.name, segment, 30_000);
    expect(ms).toBeLessThan(5000 + 3000);
    console.log(`base backup ${base.ms} ms; a write was archived ${ms} ms after it was committed (archive_timeout 5 s)`);
  }, 300_000);

  it('restores a new database to a time between two writes: the first is there, the second is not', async () => {
    await sleep(1200);
    target = new Date();
    await sleep(1200);
    await admin('postgres', src.input.name, "INSERT INTO w (note) VALUES ('second');");
    expect(await rows(src.input.name)).toBe('first,second');
    const flushed = await flushWal(docker, src.input.name);
    const sync = await syncPitrRepo(docker, src.input.name, { dir, recipients: [key.recipient], restorableUntil: flushed.until });
    expect(sync.fetched).toBeGreaterThan(0);
    // The copy on the control host is encrypted: no WAL or backup file in it is readable.
    const files = readdirSync(join(dir, 'files'), { recursive: true, withFileTypes: true }).filter((f) => f.isFile());
    expect(files.length).toBe(sync.files);
    for (const f of files) expect(readFileSync(join(f.parentPath, f.name)).subarray(0, 21).toString()).toBe('age-encryption.org/v1');
    expect((await syncPitrRepo(docker, src.input.name, { dir, recipients: [key.recipient] })).fetched).toBe(0);

    const copy = `${runId}-orders-copy`;
    const r = await restoreToTime(docker, {
      target, volumeLabels: src.input.labels, mirror: { dir, identity: key.identity },
      into: { ...src.input, name: copy, volume: `${copy}-data`, pitrVolume: `${copy}-pitr`, mac: testMac() },
    });
    expect(await rows(copy)).toBe('first');
    expect(await admin('postgres', copy, 'SELECT pg_is_in_recovery();')).toBe('f');
    await admin('postgres', copy, "INSERT INTO w (note) VALUES ('after restore');"); // read-write, promoted
    console.log(`flushWal ${flushed.ms} ms; sync ${sync.ms} ms (${sync.files} files, ${sync.bytes} bytes); restore ${JSON.stringify(r.ms)}`);
  }, 300_000);

  it('restores the same database in place, on its own volumes, to the same time', async () => {
    await removeDatabaseContainer(docker, src.input.name);
    await restoreToTime(docker, { target, volumeLabels: src.input.labels, into: src.input });
    expect(await rows(src.input.name)).toBe('first');
    expect((await pitrBackups(docker, src.input.name)).length).toBeGreaterThan(0);
  }, 300_000);

  it('refuses a time after the newest restorable one, naming it', async () => {
    const m = await readMirror(dir);
    const later = new Date(Date.parse(m.restorableUntil!) + 3600_000);
    await expect(restoreToTime(docker, {
      target: later, volumeLabels: src.input.labels, mirror: { dir, identity: key.identity },
      into: { ...src.input, name: `${runId}-orders-late`, volume: `${runId}-orders-late-data`, pitrVolume: `${runId}-orders-late-pitr`, mac: testMac() },
    })).rejects.toThrow(new RegExp(`^at: .* is after the newest restorable time of the copy \\(${m.restorableUntil!.replace(/[.]/g, '\\.')}\\)`));
  }, 60_000);
});
