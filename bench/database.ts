// bench:database: how long from an agent's create_database call to the database's first
// authenticated query, beside a bare `docker run` of the same image (runsc, a named
// volume for its data, the same cpu, memory and pids limits) to its first query, p50 over
// 5 of each; then the throughput of a
// backup and a restore of a ~200 MB Postgres database, beside bare `pg_dump -Fc` and
// `pg_restore` against the same server, in the same run.
//
//   npm run bench:database [-- --runs 5 --engines postgres,mysql,redis --mb 200]
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Docker from 'dockerode';
import { runSetup } from '../infra/setup/index.js';
import { findServer } from '../reconciler/backups/servers.js';
import { bareDump, bareRestore, bareRunToFirstQuery, postgresSize, seedPostgres, throughput, waitArchived } from '../reconciler/databases/bench.js';
import { newCredentials } from '../reconciler/databases/credentials.js';
import { ensureEngineImage } from '../reconciler/databases/images.js';
import { HostPool } from '../reconciler/hosts/pool.js';
import { localEdge } from '../reconciler/hosts/cluster.js';
import { call, connectAgent, removeCluster, removeHome, startUp, stopUp } from '../test/support/mlink-up.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, engines: { type: 'string', default: 'postgres,mysql,redis' }, mb: { type: 'string', default: '200' } } });
const RUNS = Number(values.runs);
const ENGINES = values.engines!.split(',') as Array<'postgres' | 'mysql' | 'redis'>;
const docker = new Docker();
const p50 = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const label = { 'ink.ml.bench': 'database' };

/** The limits both sides run with: the ones ml.ink gives each engine by default. */
const LIMITS = { postgres: { cpu: 0.5, memoryMb: 256, pids: 256 }, mysql: { cpu: 0.5, memoryMb: 384, pids: 256 }, redis: { cpu: 0.25, memoryMb: 128, pids: 128 } } as const;

async function bare(engine: (typeof ENGINES)[number]): Promise<number[]> {
  const image = await ensureEngineImage(docker, engine);
  const out: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const name = `mlink-bench-bare-${engine}-${randomBytes(3).toString('hex')}`;
    out.push((await bareRunToFirstQuery(docker, { name, image: image.tag, credentials: newCredentials(engine), network: 'bridge', labels: label, runtime: 'runsc', volume: `${name}-data`, resources: LIMITS[engine] })).ms);
  }
  return out;
}

await runSetup({ out: () => undefined });
const cluster = `bdb${randomBytes(3).toString('hex')}`;
const up = await startUp({ cluster, drift: 30 });
const agent = await connectAgent(up);
const hosts = new HostPool({ localEdge: localEdge() }, [{ name: 'local', address: 'local', roles: ['control', 'build', 'runtime'], schedulable: true }]);
try {
  process.stdout.write(`bench:database, ${RUNS} runs each, runsc, data on a named volume and ml.ink's default limits for the engine on both sides (postgres 0.5 cpu 256 MiB, mysql 0.5 cpu 384 MiB, redis 0.25 cpu 128 MiB)\n\n`);
  const rows: string[][] = [['engine', 'ml.ink create_database -> first query (p50)', 'bare docker run -> first query (p50)', 'ratio', 'ml.ink runs', 'bare runs']];
  for (const engine of ENGINES) {
    const ours: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const name = `b${engine.slice(0, 2)}${i}`;
      const t0 = performance.now();
      const l = LIMITS[engine];
      const r = await call<{ wait?: { state: string; message: string } }>(agent, 'create_database', { name, engine, resources: { cpu: l.cpu, memory_mb: l.memoryMb, pids: l.pids }, wait: 600 });
      if (r.wait?.state !== 'live') throw new Error(`create_database ${name}: ${r.wait?.message}`);
      // live means the activity that started it logged in with the app's user and ran a query
      ours.push(performance.now() - t0);
      await call(agent, 'delete_database', { name, wait: 120 });
    }
    const theirs = await bare(engine);
    rows.push([engine, s(p50(ours)), s(p50(theirs)), `${(p50(ours) / p50(theirs)).toFixed(2)}x`, ours.map(s).join(', '), theirs.map(s).join(', ')]);
  }
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  process.stdout.write(`${rows.map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ')).join('\n')}\n(goal: ml.ink within 1.3x of the bare run)\n\n`);

  // Backup and restore throughput, same server, same data.
  const mb = Number(values.mb);
  const r = await call<{ wait?: { state: string; message: string } }>(agent, 'create_database', { name: 'big', engine: 'postgres', resources: { cpu: 2, memory_mb: 1024, pids: 512 }, wait: 600 });
  if (r.wait?.state !== 'live') throw new Error(`create_database big: ${r.wait?.message}`);
  const big = (await findServer(hosts, cluster, 'default', 'big'))!;
  const seeded = await seedPostgres(big.host.docker, big.container, mb);
  const size = await postgresSize(big.host.docker, big.container);
  const work = mkdtempSync(join(tmpdir(), 'mlink-bench-db-'));
  try {
    // The seed's WAL archived first: the dumps do not share the CPU with it.
    await waitArchived(big.host.docker, big.container);
    const bareD = await bareDump(big.host.docker, big.container, join(work, 'bare.dump'));
    const oursB = await call<{ state: string; message: string; backup?: { duration_ms: number; size: number } }>(agent, 'backup_database', { name: 'big', wait: 1800 });
    if (oursB.state !== 'done' || !oursB.backup) throw new Error(`backup_database: ${oursB.message}`);
    await waitArchived(big.host.docker, big.container);
    const bareR = await bareRestore(big.host.docker, big.container, join(work, 'bare.dump'));
    // The bare restore's WAL archived first (each restore starts from a quiet server), then ours.
    const settled = await waitArchived(big.host.docker, big.container);
    const oursR = await call<{ state: string; message: string; restore_ms?: number }>(agent, 'restore_database', { name: 'big', wait: 3600 });
    if (oursR.state !== 'done' || oursR.restore_ms === undefined) throw new Error(`restore_database: ${oursR.message}`);
    const mbps = (ms: number): string => `${throughput(size, ms)} MiB/s`;
    process.stdout.write([
      `backup and restore of a ${(size / 1024 / 1024).toFixed(0)} MiB Postgres database (${seeded.rows} rows), 2 cpus, same server:`,
      `  bare pg_dump -Fc:        ${s(bareD.ms)}  ${mbps(bareD.ms)}  (${(statSync(join(work, 'bare.dump')).size / 1024 / 1024).toFixed(0)} MiB dump)`,
      `  ml.ink backup dump:      ${s(oursB.backup.duration_ms)}  ${mbps(oursB.backup.duration_ms)}  (${(oursB.backup.size / 1024 / 1024).toFixed(0)} MiB, zstd + age; the drill after it not counted)`,
      `  backup ratio (throughput ml.ink / bare): ${(bareD.ms / oursB.backup.duration_ms).toFixed(2)}x (goal: at least 0.8x)`,
      `  bare pg_restore:         ${s(bareR.ms)}  ${mbps(bareR.ms)}  (its WAL took ${s(settled.ms)} more to archive before ml.ink's restore began)`,
      `  ml.ink restore:          ${s(oursR.restore_ms)}  ${mbps(oursR.restore_ms)}  (the restore step of restore_database; its safety backup and drill before and after not counted)`,
      `  restore ratio (throughput ml.ink / bare): ${(bareR.ms / oursR.restore_ms).toFixed(2)}x (goal: at least 0.8x)`,
      '',
    ].join('\n'));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
} finally {
  await agent.close().catch(() => undefined);
  await stopUp(up);
  await removeCluster(cluster);
  for (const v of (await docker.listVolumes({ filters: { label: [`ink.ml.cluster=${cluster}`] } })).Volumes ?? []) await docker.getVolume(v.Name).remove({ force: true }).catch(() => undefined);
  removeHome(up);
  await hosts.close();
}
