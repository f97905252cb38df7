// Backups as a user would rely on them, with real servers under gVisor: a backup is
// encrypted (the data cannot be read in the store), deleting rows and restoring brings
// them back, a restore drill proves a good backup and fails a damaged one with the
// reason, and a damaged backup is never the one a restore picks by default.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyRetention, defaultRestoreBackup, dumpFile, listBackups, readMeta, writeMeta } from '../../reconciler/databases/backup-store.js';
import { backupDatabase, restoreBackup } from '../../reconciler/databases/backups.js';
import { drillBackup } from '../../reconciler/databases/drill.js';
import { execDetached } from '../../reconciler/databases/exec.js';
import { tryLogin } from '../../reconciler/databases/ready.js';
import { generateClusterKey, type ClusterKey } from '../../reconciler/state/secrets.js';
import { docker, eventually, runId, testLabel } from '../support/infra.js';
import { ENGINE_NAMES, admin, cleanup, count, engineImage, labels, seed, startDb, testNetwork } from '../support/databases.js';

let network = '';
let key: ClusterKey;
let root = '';
beforeAll(async () => {
  for (const e of ENGINE_NAMES) await engineImage(e);
  network = await testNetwork('backups');
  key = await generateClusterKey();
  root = mkdtempSync(join(tmpdir(), 'mlink-backups-'));
}, 600_000);
afterAll(async () => {
  await cleanup();
  rmSync(root, { recursive: true, force: true });
});

const wipe = { postgres: 'DELETE FROM items WHERE id > 5;', mysql: 'DELETE FROM items WHERE id > 5;', redis: 'FLUSHALL' } as const;

describe.each(ENGINE_NAMES)('%s', (engine) => {
  const project = 'shop';
  const name = `${engine}-main`;
  let container = '';
  let id = '';

  it('backs up encrypted, and a restore after deleting rows brings them back', async () => {
    const db = await startDb(engine, network, `${engine}-b`);
    container = db.input.name;
    await seed(engine, container, 300, 'plaintext-marker');
    const meta = await backupDatabase(docker, container, engine, { root, project, name, recipients: [key.recipient], engineVersion: db.image.version, image: db.image.tag });
    id = meta.id;
    const file = readFileSync(dumpFile(root, project, name, id));
    expect(file.subarray(0, 21).toString()).toBe('age-encryption.org/v1');
    expect(file.includes(Buffer.from('plaintext-marker'))).toBe(false);
    expect(meta).toMatchObject({ engine, engineVersion: db.image.version, compression: 'zstd', size: file.length });
    expect(meta.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(meta.source).toEqual(engine === 'redis' ? { keys: 300 } : { tables: [{ name: engine === 'postgres' ? 'public.items' : 'items', rows: 300 }] });

    await admin(engine, container, wipe[engine]);
    expect(await count(engine, container)).toBe(engine === 'redis' ? 0 : 5);
    // An app session sits on the database through the restore: it is ended, not waited for.
    if (engine === 'postgres') {
      await execDetached(docker, container, ['bash', '-c', `psql -X -h 127.0.0.1 -U ${db.creds.user} -d ${db.creds.database} -c 'SELECT pg_sleep(120)'`], { user: 'postgres', env: { PGPASSWORD: db.creds.password } });
      await eventually('the app session is connected', async () => Number(await admin(engine, container, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid();")) === 1 || undefined);
    }
    const r = await restoreBackup(docker, container, engine, { root, project, name, id, identity: key.identity });
    expect(r.bytes).toBe(meta.payloadSize);
    expect(await count(engine, container)).toBe(300);
    expect(await admin(engine, container, engine === 'redis' ? 'GET item:300' : 'SELECT body FROM items WHERE id = 300;')).toBe('plaintext-marker-300');
    // The app's own user still reaches its (restored) data.
    expect(await tryLogin(docker, container, db.creds)).toMatchObject({ ok: true });
    console.log(`${engine}: backup ${meta.durationMs} ms (${meta.payloadSize} bytes compressed), restore ${r.ms} ms`);
  }, 300_000);

  it('passes its restore drill, in a throwaway sandbox that is gone afterwards', async () => {
    const image = (await engineImage(engine)).tag;
    const result = await drillBackup(docker, { root, project, name, id, identity: key.identity, image, labels });
    expect(result, result.reason).toMatchObject({ ok: true });
    expect(result.inventory).toEqual(engine === 'redis' ? { keys: 300 } : { tables: [{ name: engine === 'postgres' ? 'public.items' : 'items', rows: 300 }] });
    expect((await readMeta(root, project, name, id)).drill).toEqual(result);
    const left = await docker.listContainers({ all: true, filters: { label: [`${testLabel}=${runId}`], name: ['mlink-drill-'] } });
    expect(left).toEqual([]);
    const { Volumes } = await docker.listVolumes({ filters: { label: [`${testLabel}=${runId}`] } });
    expect((Volumes ?? []).filter((v) => v.Name.startsWith('mlink-drill-'))).toEqual([]);
    console.log(`${engine}: drill ${result.ms} ms`);
  }, 300_000);

  it('fails the drill of a damaged backup with the reason, and restores never pick it', async () => {
    const second = await backupDatabase(docker, container, engine, { root, project, name, recipients: [key.recipient] });
    const file = dumpFile(root, project, name, second.id);
    const bytes = readFileSync(file);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x40;
    writeFileSync(file, bytes);
    const image = (await engineImage(engine)).tag;
    const result = await drillBackup(docker, { root, project, name, id: second.id, identity: key.identity, image, labels });
    expect(result.ok).toBe(false);
    expect(result.reason).toMatch(/^ChecksumMismatch: .*dump\.age is damaged: its SHA-256 is/);
    const { backups } = await listBackups(root, project, name);
    expect(backups.map((b) => b.id)).toEqual([second.id, id]);
    expect(defaultRestoreBackup(backups)?.id).toBe(id);
    await expect(restoreBackup(docker, container, engine, { root, project, name, id: second.id, identity: key.identity })).rejects.toThrow(/ChecksumMismatch/);
    expect(await count(engine, container)).toBe(300); // the failed restore touched nothing
    // Retention to one keeps the newest (damaged) backup and the newest verified one.
    expect(await applyRetention(root, project, name, 1)).toEqual([]);
  }, 300_000);
});

describe('damage a checksum cannot see', () => {
  it('fails the drill at decryption when meta.json was rewritten to match a damaged file', async () => {
    const db = await startDb('redis', network, 'redis-x');
    await seed('redis', db.input.name, 50);
    const meta = await backupDatabase(docker, db.input.name, 'redis', { root, project: 'x', name: 'cache', recipients: [key.recipient] });
    const file = dumpFile(root, 'x', 'cache', meta.id);
    const bytes = readFileSync(file);
    bytes[bytes.length - 20]! ^= 0x01; // inside the last encrypted chunk
    writeFileSync(file, bytes);
    await writeMeta(root, { ...meta, sha256: createHash('sha256').update(bytes).digest('hex') });
    const result = await drillBackup(docker, { root, project: 'x', name: 'cache', id: meta.id, identity: key.identity, image: (await engineImage('redis')).tag, labels });
    expect(result.ok).toBe(false);
    expect(result.reason).toMatch(/^DecryptFailed: /);
  }, 180_000);

  it('restores into a new database with its own credentials, owned by its user', async () => {
    const src = await startDb('postgres', network, 'pg-src');
    await seed('postgres', src.input.name, 40);
    const meta = await backupDatabase(docker, src.input.name, 'postgres', { root, project: 'x', name: 'pg-src', recipients: [key.recipient] });
    const dst = await startDb('postgres', network, 'pg-dst');
    await restoreBackup(docker, dst.input.name, 'postgres', { root, project: 'x', name: 'pg-src', id: meta.id, identity: key.identity });
    expect(await count('postgres', dst.input.name)).toBe(40);
    const owner = await admin('postgres', dst.input.name, "SELECT tableowner FROM pg_tables WHERE tablename = 'items';");
    expect(owner).toBe(dst.creds.user);
    expect(owner).not.toBe(src.creds.user);
  }, 300_000);
});
