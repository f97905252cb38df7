// The database engine layer's pure parts: engines and versions, credentials (verifiers,
// URLs, a bound app's env), the server's container request, inventories and retention.
import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { defaultRestoreBackup, newBackupId, planRetention, type BackupMeta } from '../../reconciler/databases/backup-store.js';
import { databaseContainerSpec, type DatabaseContainerInput } from '../../reconciler/databases/container-spec.js';
import { bindingEnv, checkCredentials, connectionUrl, mysqlNativeHash, newCredentials, scramSha256Verifier, serverEnv, type Credentials } from '../../reconciler/databases/credentials.js';
import { inventoryProblem, parseInventory } from '../../reconciler/databases/dumps.js';
import { engineVersionProblem, resolveEngine, upstreamVersion, versionTag } from '../../reconciler/databases/engines.js';
import { pgbackrestTime } from '../../reconciler/databases/pitr.js';

describe('engines and versions', () => {
  it('serves mysql with MariaDB and takes mariadb as the same engine', () => {
    expect(resolveEngine('mariadb')?.name).toBe('mysql');
    expect(resolveEngine('MySQL')?.description).toBe('MariaDB 10.11, MySQL-compatible');
    expect(resolveEngine('mongodb')).toBeUndefined();
  });

  it('accepts the versions the host runs and names the field and the choices otherwise', () => {
    expect(engineVersionProblem('postgres', undefined)).toBeUndefined();
    expect(engineVersionProblem('postgres', '15')).toBeUndefined();
    expect(engineVersionProblem('redis', '7')).toBeUndefined();
    expect(engineVersionProblem('mariadb', '10.11')).toBeUndefined();
    expect(engineVersionProblem('postgres', '16')).toMatch(/^spec\.version: postgres 16 cannot run on this host: it runs 15; set version to "15"/);
    expect(engineVersionProblem('mysql', '8.0')).toMatch(/mysql \(served by MariaDB 10.11, MySQL-compatible\) 8.0 cannot run.*MySQL 8.0 itself is not packaged by Debian 12/);
    expect(engineVersionProblem('oracle', '19')).toMatch(/^spec\.engine: "oracle" is not an engine/);
  });

  it('takes a full minor version only when it is the one the host installed', () => {
    expect(engineVersionProblem('postgres', '15.18', '15.18-0+deb12u1')).toBeUndefined();
    expect(engineVersionProblem('postgres', '15.3', '15.18-0+deb12u1')).toMatch(/runs 15 \(Debian postgresql-15 15.18\)/);
    expect(engineVersionProblem('postgres', '15.18')).toMatch(/cannot run/);
  });

  it('turns Debian versions into tags and upstream versions', () => {
    expect(versionTag('1:10.11.18-0+deb12u1')).toBe('10.11.18-0_deb12u1');
    expect(versionTag('5:7.0.15-1~deb12u7')).toBe('7.0.15-1_deb12u7');
    expect(upstreamVersion('5:7.0.15-1~deb12u7')).toBe('7.0.15');
  });
});

describe('credentials', () => {
  it('makes a random user, a strong password and the database name', () => {
    const a = newCredentials('postgres', 'shop');
    const b = newCredentials('postgres', 'shop');
    expect(a.user).toMatch(/^u_[a-z0-9]{12}$/);
    expect(a.password).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(a.database).toBe('shop');
    expect(a.user).not.toBe(b.user);
    expect(a.password).not.toBe(b.password);
    expect(newCredentials('redis').database).toBe('0');
    expect(newCredentials('mariadb').engine).toBe('mysql');
  });

  it('refuses names that could break out of SQL or config, naming the field', () => {
    const ok = newCredentials('postgres');
    expect(() => checkCredentials({ ...ok, user: 'a"; DROP' })).toThrow(/^credentials\.user:/);
    expect(() => checkCredentials({ ...ok, user: 'postgres' })).toThrow(/reserved/);
    expect(() => checkCredentials({ ...ok, database: 'template1' })).toThrow(/^credentials\.database:/);
    expect(() => checkCredentials({ ...ok, password: 'short' })).toThrow(/^credentials\.password:/);
    expect(() => checkCredentials({ ...newCredentials('redis'), database: 'app' })).toThrow(/Redis databases are numbers/);
  });

  it("computes Postgres's SCRAM-SHA-256 secret as RFC 7677's example", () => {
    const v = scramSha256Verifier('user', 'pencil', 4096, Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'));
    expect(v).toBe('SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=');
    // The server signature of the RFC's exchange, from the ServerKey above.
    const serverKey = Buffer.from(v.split('$')[2]!.split(':')[1]!, 'base64');
    const auth = 'n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0';
    expect(createHmac('sha256', serverKey).update(auth).digest('base64')).toBe('6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=');
  });

  it("computes MariaDB's native hash and Redis's ACL hash, and gives the server only those", () => {
    expect(mysqlNativeHash('password')).toBe('*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19');
    const c = newCredentials('redis');
    expect(serverEnv(c)).toEqual({ MLINK_DB_USER: c.user, MLINK_DB_NAME: '0', MLINK_DB_VERIFIER: createHash('sha256').update(c.password).digest('hex') });
    for (const e of ['postgres', 'mysql', 'redis']) {
      const k = newCredentials(e);
      expect(JSON.stringify(serverEnv(k))).not.toContain(k.password);
      expect(serverEnv(k)).toEqual(serverEnv({ ...k })); // deterministic: the same credentials, the same spec
    }
  });

  it('percent-encodes user and password in the URL', () => {
    const c: Credentials = { engine: 'postgres', user: 'u_a', password: 'p@ss:w/rd%#?+ &x=1', database: 'shop' };
    const url = connectionUrl(c, 'db.shop');
    expect(url).toBe('postgres://u_a:p%40ss%3Aw%2Frd%25%23%3F%2B%20%26x%3D1@db.shop:5432/shop');
    const parsed = new URL(url);
    expect(decodeURIComponent(parsed.password)).toBe(c.password);
    expect(connectionUrl({ ...c, engine: 'mysql' }, '10.0.0.5')).toBe('mysql://u_a:p%40ss%3Aw%2Frd%25%23%3F%2B%20%26x%3D1@10.0.0.5:3306/shop');
    expect(connectionUrl({ ...c, engine: 'redis', database: '0' }, 'fd00::5')).toMatch(/^redis:\/\/u_a:.*@\[fd00::5\]:6379\/0$/);
  });

  it("gives a bound app the engine's env names, DATABASE_ or REDIS_ by default", () => {
    const c = newCredentials('postgres', 'shop');
    expect(bindingEnv(c, { host: 'shop-db' })).toEqual({
      DATABASE_URL: connectionUrl(c, 'shop-db'), DATABASE_HOST: 'shop-db', DATABASE_PORT: '5432',
      DATABASE_USER: c.user, DATABASE_PASSWORD: c.password, DATABASE_NAME: 'shop',
    });
    expect(Object.keys(bindingEnv(newCredentials('redis'), { host: 'cache' }))).toEqual(['REDIS_URL', 'REDIS_HOST', 'REDIS_PORT', 'REDIS_USER', 'REDIS_PASSWORD', 'REDIS_NAME']);
    expect(bindingEnv(c, { host: 'h', prefix: 'ORDERS_DB' }).ORDERS_DB_URL).toMatch(/^postgres:\/\//);
    expect(() => bindingEnv(c, { host: 'h', prefix: 'bad-prefix' })).toThrow(/^env_prefix:/);
  });
});

describe('the server container request', () => {
  const input = (over: Partial<DatabaseContainerInput> = {}): DatabaseContainerInput => ({
    name: 'mlink-local-shop-db', engine: 'postgres', image: 'mlink/postgres:15.18-0_deb12u1-abc', credentials: newCredentials('postgres'),
    volume: 'mlink-local-shop-db-data', network: 'mlink-local-shop', aliases: ['db'], mac: '02:42:ac:11:00:02',
    labels: { 'ink.ml.kind': 'Database' }, resources: { cpu: 1, memoryMb: 512, pids: 256 }, ...over,
  });

  it('runs under gVisor as the engine user with no capabilities, limits, a read-only root and the data on the volume', () => {
    const s = databaseContainerSpec(input());
    expect(s.User).toBe('postgres');
    expect(s.HostConfig).toMatchObject({
      Runtime: 'runsc', CapDrop: ['ALL'], CapAdd: [], SecurityOpt: ['no-new-privileges'], ReadonlyRootfs: true, Binds: [],
      NanoCpus: 1e9, Memory: 512 * 1024 * 1024, PidsLimit: 256, NetworkMode: 'mlink-local-shop', RestartPolicy: { Name: 'unless-stopped' },
      Mounts: [{ Type: 'volume', Source: 'mlink-local-shop-db-data', Target: '/var/lib/mlink/data' }],
    });
    expect(Object.keys(s.HostConfig!.Tmpfs!)).toEqual(['/run/postgresql', '/tmp']);
    expect(s.MacAddress).toBe('02:42:ac:11:00:02');
    expect(s.NetworkingConfig).toEqual({ EndpointsConfig: { 'mlink-local-shop': { Aliases: ['db'], MacAddress: '02:42:ac:11:00:02' } } });
    expect(s.Labels).toEqual({ 'ink.ml.kind': 'Database' });
  });

  it('never carries the password, in env or command', () => {
    for (const engine of ['postgres', 'mysql', 'redis']) {
      const c = newCredentials(engine);
      const s = databaseContainerSpec(input({ engine, credentials: c }));
      expect(JSON.stringify(s)).not.toContain(c.password);
      expect(s.Cmd).toBeUndefined();
      expect(s.Entrypoint).toBeUndefined();
    }
  });

  it('archives WAL only with a second volume, for postgres only', () => {
    const s = databaseContainerSpec(input({ pitrVolume: 'mlink-local-shop-db-pitr', archiveTimeoutS: 30 }));
    expect(s.Env).toEqual(expect.arrayContaining(['MLINK_PITR=1', 'MLINK_ARCHIVE_TIMEOUT=30']));
    expect(s.HostConfig!.Mounts).toHaveLength(2);
    expect(() => databaseContainerSpec(input({ engine: 'redis', credentials: newCredentials('redis'), pitrVolume: 'x-pitr' }))).toThrow(/^pitrVolume: point-in-time recovery is for postgres only/);
  });

  it('refuses input that could not work, naming the field', () => {
    expect(() => databaseContainerSpec(input({ mac: '03:00:00:00:00:01' }))).toThrow(/^mac: .* multicast/);
    expect(() => databaseContainerSpec(input({ mac: undefined }))).toThrow(/^mac: /);
    expect(() => databaseContainerSpec(input({ resources: { cpu: 1, memoryMb: 512, pids: 32 } }))).toThrow(/^resources\.pids: /);
    expect(() => databaseContainerSpec(input({ resources: { cpu: 1, memoryMb: 64, pids: 256 } }))).toThrow(/^resources\.memory_mb: postgres needs at least 128/);
    expect(() => databaseContainerSpec(input({ labels: {} }))).toThrow(/^labels: /);
    expect(() => databaseContainerSpec(input({ credentials: newCredentials('redis') }))).toThrow(/^credentials\.engine: /);
    expect(databaseContainerSpec(input({ network: 'none', mac: undefined })).NetworkingConfig).toBeUndefined();
    expect(() => databaseContainerSpec(input({ ip: '10.0.0.300' }))).toThrow(/^ip: /);
    expect(databaseContainerSpec(input({ ip: '10.20.0.5' })).NetworkingConfig?.EndpointsConfig?.['mlink-local-shop']?.IPAMConfig).toEqual({ IPv4Address: '10.20.0.5' });
  });
});

describe('inventories', () => {
  it('reads tables with row counts and Redis keyspaces', () => {
    expect(parseInventory('postgres', 'public.a\t3\npublic.b\t0\n')).toEqual({ tables: [{ name: 'public.a', rows: 3 }, { name: 'public.b', rows: 0 }] });
    expect(parseInventory('redis', '# Keyspace\r\ndb0:keys=5,expires=0,avg_ttl=0\r\ndb3:keys=2,expires=1,avg_ttl=9\r\n')).toEqual({ keys: 7 });
  });

  it('says when a restored copy lacks what the source held', () => {
    const src = { tables: [{ name: 'a', rows: 3 }, { name: 'b', rows: 1 }] };
    expect(inventoryProblem(src, { tables: [{ name: 'a', rows: 3 }, { name: 'b', rows: 1 }] })).toBeUndefined();
    expect(inventoryProblem(src, { tables: [{ name: 'a', rows: 3 }] })).toMatch(/lacks 1 of the source's 2 tables: b/);
    expect(inventoryProblem({ keys: 4 }, { keys: 0 })).toMatch(/holds no keys; the source held 4/);
    expect(inventoryProblem({ keys: 0 }, { keys: 0 })).toBeUndefined();
  });
});

describe('backup ids and retention', () => {
  const meta = (id: string, drill?: boolean): BackupMeta => ({
    id, project: 'p', name: 'db', engine: 'postgres', format: 'f', compression: 'zstd', encryption: { type: 'age', recipients: [] },
    startedAt: '', finishedAt: '', durationMs: 0, size: 1, sha256: '', payloadSize: 1, payloadSha256: '',
    ...(drill === undefined ? {} : { drill: { ok: drill, at: '', ms: 0 } }),
  });

  it('makes sortable ids from the time', () => {
    expect(newBackupId(new Date('2026-12-03T10:15:30.123Z'), 'a1b2c3d4')).toBe('20261203T101530123Z-a1b2c3');
  });

  it('keeps the newest N and never deletes the newest verified backup', () => {
    const list = [meta('20260101T000000000Z-000001', true), meta('20260102T000000000Z-000002', false), meta('20260103T000000000Z-000003'), meta('20260104T000000000Z-000004', false)];
    expect(planRetention(list, 2)).toEqual(['20260102T000000000Z-000002']);
    expect(planRetention(list, 4)).toEqual([]);
    expect(planRetention([meta('20260101T000000000Z-000001', false), meta('20260102T000000000Z-000002', false)], 1)).toEqual(['20260101T000000000Z-000001']);
    expect(() => planRetention(list, 0)).toThrow(/^backups\.keep: /);
  });

  it('restores by default from the newest verified backup, never a failed one', () => {
    const list = [meta('20260101T000000000Z-000001', true), meta('20260102T000000000Z-000002', false), meta('20260103T000000000Z-000003')];
    expect(defaultRestoreBackup(list)?.id).toBe('20260101T000000000Z-000001');
    expect(defaultRestoreBackup([meta('20260102T000000000Z-000002', false)])).toBeUndefined();
  });

  it("writes pgBackRest's target time", () => {
    expect(pgbackrestTime(new Date('2026-12-03T09:15:10.123Z'))).toBe('2026-12-03 09:15:10.123+00');
  });
});
