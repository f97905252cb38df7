// What the database tests share: the engine images (built once per host, cached), a
// labelled network per test file, servers started with the test run's labels, SQL and
// Redis commands run as the engine's administrator, and cleanup by label.
import { expect } from 'vitest';
import { randomBytes } from 'node:crypto';
import type { DatabaseContainerInput } from '../../reconciler/databases/container-spec.js';
import { newCredentials, type Credentials } from '../../reconciler/databases/credentials.js';
import type { EngineName } from '../../reconciler/databases/engines.js';
import { execIn } from '../../reconciler/databases/exec.js';
import { ensureEngineImage, type EngineImage } from '../../reconciler/databases/images.js';
import { runDatabase, type RunningDatabase } from '../../reconciler/databases/lifecycle.js';
import { docker, removeTestContainers, removeTestNetworks, runId, testLabel } from './infra.js';

export const ENGINE_NAMES: EngineName[] = ['postgres', 'mysql', 'redis'];
export const labels = { [testLabel]: runId };

const images = new Map<EngineName, Promise<EngineImage>>();
export function engineImage(engine: EngineName): Promise<EngineImage> {
  let p = images.get(engine);
  if (!p) { p = ensureEngineImage(docker, engine); images.set(engine, p); }
  return p;
}

export async function testNetwork(suffix: string): Promise<string> {
  const name = `${runId}-${suffix}`;
  await docker.createNetwork({ Name: name, CheckDuplicate: true, Driver: 'bridge', Labels: labels });
  return name;
}

let macs = 0;
/** A locally administered MAC, unique in this run. */
export function testMac(): string {
  const b = [0x02, ...randomBytes(4), ++macs & 0xff];
  return b.map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export interface TestDb { input: DatabaseContainerInput; creds: Credentials; image: EngineImage; running: RunningDatabase }

export async function startDb(engine: EngineName, network: string, name: string, over: Partial<DatabaseContainerInput> = {}): Promise<TestDb> {
  const image = await engineImage(engine);
  const creds = over.credentials ?? newCredentials(engine);
  const input: DatabaseContainerInput = {
    name: `${runId}-${name}`, engine, image: image.tag, credentials: creds, volume: `${runId}-${name}-data`,
    network, mac: testMac(), labels, resources: { cpu: 1, memoryMb: 512, pids: 256 }, ...over,
  };
  const running = await runDatabase(docker, input, { volumeLabels: labels, readyTimeoutMs: 120_000 });
  return { input, creds, image, running };
}

/** Runs SQL (postgres, mysql) or Redis commands (one a line) as the engine's administrator on the app's database; returns stdout. */
export async function admin(engine: EngineName, container: string, statements: string): Promise<string> {
  const cmd = engine === 'postgres'
    ? ['bash', '-c', 'psql -X -q -v ON_ERROR_STOP=1 -h /run/postgresql -d "$MLINK_DB_NAME" -tA -F "|"']
    : engine === 'mysql'
      ? ['bash', '-c', 'mariadb --no-defaults -S /run/mysqld/mysqld.sock -N -B -D "$MLINK_DB_NAME"']
      : ['bash', '-c', 'REDISCLI_AUTH=$(cat /run/redis/admin.pass) redis-cli --no-auth-warning --user mlink-admin -h 127.0.0.1'];
  const r = await execIn(docker, container, cmd, { user: engine === 'mysql' ? 'mysql' : engine, stdin: statements + '\n' });
  expect(r.code, `${engine} admin in ${container}: ${r.stderr}`).toBe(0);
  return r.stdout.toString('utf8').trim();
}

/** Writes `rows` rows into table `items` (owned by the app's user), or `rows` keys item:<n>. */
export async function seed(engine: EngineName, container: string, rows: number, marker = 'seed'): Promise<void> {
  if (engine === 'redis') {
    const lines = Array.from({ length: rows }, (_, i) => `SET item:${i + 1} ${marker}-${i + 1}`).join('\n');
    await admin(engine, container, lines);
    return;
  }
  if (engine === 'postgres') {
    await admin(engine, container, `CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, body text NOT NULL);
INSERT INTO items SELECT g, '${marker}-' || g FROM generate_series(1, ${rows}) g;`);
    // The app's user owns its tables, as they would if the app had made them.
    const user = await admin(engine, container, "SELECT datdba::regrole FROM pg_database WHERE datname = current_database()");
    await admin(engine, container, `ALTER TABLE items OWNER TO "${user}";`);
  } else {
    await admin(engine, container, `CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, body text NOT NULL);
INSERT INTO items SELECT seq, CONCAT('${marker}-', seq) FROM seq_1_to_${rows};`);
  }
}

/** How many rows items holds (or keys item:*). */
export async function count(engine: EngineName, container: string): Promise<number> {
  if (engine === 'redis') return Number(await admin(engine, container, 'EVAL "return #redis.call(\'KEYS\', \'item:*\')" 0'));
  return Number(await admin(engine, container, 'SELECT count(*) FROM items;'));
}

export async function removeTestVolumes(): Promise<void> {
  const { Volumes } = await docker.listVolumes({ filters: { label: [`${testLabel}=${runId}`] } });
  await Promise.all((Volumes ?? []).map((v) => docker.getVolume(v.Name).remove({ force: true }).catch(() => undefined)));
}

export async function cleanup(): Promise<void> {
  await removeTestContainers();
  await removeTestVolumes();
  await removeTestNetworks();
}
