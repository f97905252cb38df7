// Databases, as a new user would use them: `mlink up`, an SDK MCP client over HTTP, a
// PostgreSQL database and an app built from source that keeps rows in it through a real
// client library, over HTTP through Traefik. The rows survive the app's update, the
// server killed by hand, and the database deleted and brought back by a revert.
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABEL } from '../../reconciler/model.js';
import { must, run } from '../../infra/proc.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { clusterHistories } from '../support/histories.js';
import { findSecret } from '../support/secret-scan.js';
import { docker, eventually, runId, viaTraefik } from '../support/infra.js';
import { dbAppSource } from '../support/db-apps.js';
import { call as callTool, connectAgent, startUp, tearDown, upEnv, type Up } from '../support/mlink-up.js';

const cluster = `db${runId}`.slice(0, 20);
let up: Up;
let agent: Client;
/** Every tool result this test saw, for the credentials scan. */
const toolResults: string[] = [];

async function call<T = Record<string, unknown>>(client: Client, name: string, args: Record<string, unknown>): Promise<T> {
  const t0 = Date.now();
  const r = await callTool<T>(client, name, args);
  if (process.env.MLINK_TEST_TIMINGS) console.log(`${name} ${JSON.stringify(args).slice(0, 80)}: ${Date.now() - t0} ms`);
  toolResults.push(JSON.stringify(r));
  return r;
}

/** A request to an app's host name through Traefik (HTTPS; plain HTTP redirects). */
function http(host: string, method: string, path: string, body?: string): Promise<{ status: number; body: string }> {
  return viaTraefik(host, path, 10_000, { method, body });
}

async function items(app: string): Promise<string[]> {
  const r = await http(`${app}.default.localhost`, 'GET', '/items');
  if (r.status !== 200) throw new Error(`GET /items of ${app}: ${r.status} ${r.body}`);
  return JSON.parse(r.body) as string[];
}

async function store(app: string, body: string): Promise<void> {
  const r = await http(`${app}.default.localhost`, 'POST', '/items', body);
  if (r.status !== 201) throw new Error(`POST /items of ${app}: ${r.status} ${r.body}`);
}

async function servers(name: string): Promise<Array<{ Id: string; State: string; Labels: Record<string, string> }>> {
  return docker.listContainers({ all: true, filters: { label: [`${LABEL.cluster}=${cluster}`, `${LABEL.kind}=Database`, `${LABEL.name}=${name}`] } });
}

/** A TCP connection to `target` from inside an app's running replica (node is in its image): connected, or why not. */
async function connectFrom(name: string, project: string, target: string): Promise<string> {
  const [c] = await docker.listContainers({ filters: { label: [`${LABEL.cluster}=${cluster}`, `${LABEL.kind}=App`, `${LABEL.project}=${project}`, `${LABEL.name}=${name}`], status: ['running'] } });
  if (!c) throw new Error(`no running replica of ${project}/${name}`);
  const [host, port] = target.split(':');
  const script = `const s=require('net').connect(${Number(port)},'${host}');s.on('connect',()=>{console.log('connected');process.exit(0)});s.on('error',(e)=>{console.log(e.code);process.exit(1)});setTimeout(()=>{console.log('timeout');process.exit(2)},4000)`;
  const r = await run('docker', ['exec', c.Id, 'node', '-e', script]);
  return r.stdout.trim() || r.stderr.trim();
}

beforeAll(async () => {
  up = await startUp({ cluster });
  agent = await connectAgent(up);
}, 120_000);

afterAll(async () => {
  await tearDown(up, agent);
}, 120_000);

describe('a postgres database and an app bound to it', () => {
  it('runs the database, and the app keeps rows in it through a real client library', async () => {
    const created = await call<{ wait?: { state: string; message: string } }>(agent, 'create_database', { name: 'notes', engine: 'postgres', wait: 600 });
    expect(created.wait?.state, created.wait?.message).toBe('live');
    // Running once Docker's own health check (an interval after the start) agrees
    const db = await eventually('get_database says Running', async () => {
      const d = await call<{ engine: string; connect: { host: string; port: number }; live: { phase?: string; database?: { host?: string } } }>(agent, 'get_database', { name: 'notes' });
      return d.live.phase === 'Running' ? d : undefined;
    }, 10_000);
    expect(db).toMatchObject({ engine: 'PostgreSQL 15', connect: { port: 5432 }, live: { phase: 'Running', database: { host: 'local' } } });
    const app = await call<{ wait?: { state: string; message: string } }>(agent, 'create_app', {
      name: 'keeper', source: await dbAppSource('postgres'), port: 8080, health_check: { path: '/healthz' },
      databases: [{ name: 'notes' }], wait: 600,
    });
    expect(app.wait?.state, app.wait?.message).toBe('live');
    await store('keeper', 'first');
    await store('keeper', 'second');
    expect(await items('keeper')).toEqual(['first', 'second']);
    expect((await call<{ bound_apps: string[] }>(agent, 'get_database', { name: 'notes' })).bound_apps).toEqual(['default/keeper']);
  }, 900_000);

  it('lets only apps bound to it reach it: not an unbound app of the same project, nor an app of another project', async () => {
    const db = await call<{ connect: { host: string; port: number } }>(agent, 'get_database', { name: 'notes' });
    const target = `${db.connect.host}:${db.connect.port}`;
    expect(db.connect.host).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    const source = await dbAppSource('postgres');
    for (const [name, project] of [['stranger', 'default'], ['outsider', 'other']] as const) {
      const r = await call<{ wait?: { state: string; message: string } }>(agent, 'create_app', { name, project, source, port: 8080, wait: 600 });
      expect(r.wait?.state, r.wait?.message).toBe('live');
    }
    // The bound app connects (so the probe can succeed); the others are refused by the egress rules or never routed.
    expect(await connectFrom('keeper', 'default', target)).toBe('connected');
    expect(await connectFrom('stranger', 'default', target)).not.toBe('connected');
    expect(await connectFrom('outsider', 'other', target)).not.toBe('connected');
    for (const [name, project] of [['stranger', 'default'], ['outsider', 'other']] as const) await call(agent, 'delete_app', { name, project, wait: 300 });
  }, 1_200_000);

  it('keeps the rows through an update of the app', async () => {
    const r = await call<{ wait?: { state: string; message: string } }>(agent, 'update_app', { name: 'keeper', env: { GREETING: 'v2' }, wait: 300 });
    expect(r.wait?.state, r.wait?.message).toBe('live');
    expect((await http('keeper.default.localhost', 'GET', '/')).body).toBe('v2');
    expect(await items('keeper')).toEqual(['first', 'second']);
  }, 400_000);

  it('heals a server removed by hand, on the same data', async () => {
    const [before] = await servers('notes');
    await docker.getContainer(before!.Id).remove({ force: true });
    const after = await eventually('a new server runs', async () => {
      const [s] = await servers('notes');
      return s && s.Id !== before!.Id && s.State === 'running' ? s : undefined;
    }, 120_000);
    expect(after.Labels[LABEL.specHash]).toBe(before!.Labels[LABEL.specHash]);
    const back = await eventually('the app reads its rows again', async () => (await items('keeper').catch(() => undefined)), 180_000);
    expect(back).toEqual(['first', 'second']);
  }, 400_000);

  it('deletes the database but keeps its data as retained; a revert of the delete brings it back with its rows', async () => {
    // A bound database cannot be deleted from under its app: unbind first.
    const refused = await agent.callTool({ name: 'delete_database', arguments: { name: 'notes' } });
    expect(refused.isError).toBe(true);
    expect(JSON.stringify(refused.content)).toMatch(/bound to default\/keeper; remove the binding first/);
    // Unbound, the app answers / (its /healthz needs its database).
    const unbound = await call<{ wait?: { state: string; message: string } }>(agent, 'update_app', { name: 'keeper', databases: null, health_check: { path: '/' }, wait: 300 });
    expect(unbound.wait?.state, unbound.wait?.message).toBe('live');
    const deleted = await call<{ commit: string; wait?: { state: string; message: string } }>(agent, 'delete_database', { name: 'notes', wait: 300 });
    expect(deleted.wait?.state, deleted.wait?.message).toBe('live');
    expect(await servers('notes')).toEqual([]);
    const listed = await call<{ databases: unknown[]; retained: Array<{ name: string; size_bytes?: number; since: string }> }>(agent, 'list_databases', {});
    expect(listed.databases).toEqual([]);
    expect(listed.retained).toEqual([expect.objectContaining({ name: 'notes', engine: 'postgres', since: expect.stringMatching(/^\d{4}-/) })]);
    expect(listed.retained[0]!.size_bytes).toBeGreaterThan(1_000_000);
    const reverted = await call<{ wait?: { state: string; message: string } }>(agent, 'revert', { commit: deleted.commit, wait: 300 });
    expect(reverted.wait?.state, reverted.wait?.message).toBe('live');
    const rebound = await call<{ wait?: { state: string; message: string } }>(agent, 'update_app', { name: 'keeper', databases: [{ name: 'notes' }], health_check: { path: '/healthz' }, wait: 300 });
    expect(rebound.wait?.state, rebound.wait?.message).toBe('live');
    expect(await items('keeper')).toEqual(['first', 'second']);
  }, 900_000);

  it('backs up, and restores the rows deleted after the backup; the backup was proven by a restore drill', async () => {
    const b = await call<{ state: string; message: string; backup?: { id: string; verified: boolean; drill?: { tables?: number; rows?: number } } }>(agent, 'backup_database', { name: 'notes', wait: 600 });
    expect(b.state, b.message).toBe('done');
    expect(b.backup).toMatchObject({ verified: true, drill: { tables: 1, rows: 2 } });
    const listed = await call<{ backups: Array<{ id: string }>; restore_default: string }>(agent, 'list_backups', { name: 'notes' });
    expect(listed.restore_default).toBe(b.backup!.id);
    expect((await http('keeper.default.localhost', 'DELETE', '/items')).status).toBe(200);
    expect(await items('keeper')).toEqual([]);
    const r = await call<{ state: string; message: string; safety_backup?: { id: string } }>(agent, 'restore_database', { name: 'notes', wait: 600 });
    expect(r.state, r.message).toBe('done');
    expect(r.safety_backup?.id).toBeDefined();
    expect(await items('keeper')).toEqual(['first', 'second']);
    const db = await call<{ last_backup: { id: string; verified: boolean } | null }>(agent, 'get_database', { name: 'notes' });
    expect(db.last_backup?.id).toBe(r.safety_backup!.id);
  }, 900_000);

  it('reports a backup damaged since as failing its drill, and never restores it by default', async () => {
    // the backup taken, and the safety backup the restore took: both proven by their drills
    const listed = await call<{ backups: Array<{ id: string; verified: boolean | null }>; restore_default: string }>(agent, 'list_backups', { name: 'notes' });
    const [newest, older] = listed.backups;
    expect(listed.backups.map((b) => b.verified)).toEqual([true, true]);
    expect(listed.restore_default).toBe(newest!.id);
    const file = join(up.home, 'backups', 'default', 'notes', newest!.id, 'dump.age');
    const bytes = readFileSync(file);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = bytes[at]! ^ 0xff;
    writeFileSync(file, bytes);
    const verify = await run('node', ['bin/mlink.js', 'db', 'verify', 'notes', newest!.id], { env: upEnv(up.home) });
    expect(verify.code).toBe(1);
    expect(verify.stdout).toMatch(new RegExp(`backup ${newest!.id}: drill failed: .*ChecksumMismatch|damaged`));
    const after = await call<{ backups: Array<{ id: string; verified: boolean | null }>; restore_default: string }>(agent, 'list_backups', { name: 'notes' });
    expect(after.backups.find((b) => b.id === newest!.id)?.verified).toBe(false);
    expect(after.restore_default).toBe(older!.id);
    const table = await must('node', ['bin/mlink.js', 'db', 'backups', 'notes'], { env: upEnv(up.home) });
    expect(table).toMatch(new RegExp(`${newest!.id}\\s+\\S+\\s+\\d+\\s+failed`));
  }, 300_000);

  it('restores to a point in time between two writes: the first is there, the second is not', async () => {
    await store('keeper', 'before');
    await new Promise((res) => setTimeout(res, 1500));
    const between = new Date().toISOString();
    await new Promise((res) => setTimeout(res, 1500));
    await store('keeper', 'after');
    expect(await items('keeper')).toEqual(['first', 'second', 'before', 'after']);
    const r = await call<{ state: string; message: string }>(agent, 'restore_database', { name: 'notes', at: between, wait: 900 });
    expect(r.state, r.message).toBe('done');
    const back = await eventually('the app reads the restored rows', async () => (await items('keeper').catch(() => undefined)), 180_000);
    expect(back).toEqual(['first', 'second', 'before']);
  }, 1_200_000);
});

describe.each([
  ['redis', 'cache', 'Redis 7'],
  ['mysql', 'shop', 'MariaDB 10.11, MySQL-compatible'],
] as const)('%s: the same create, bind, backup and restore', (engine, name, label) => {
  const app = `${name}-app`;

  it('runs, and a bound app keeps items in it', async () => {
    const created = await call<{ wait?: { state: string; message: string } }>(agent, 'create_database', { name, engine, wait: 900 });
    expect(created.wait?.state, created.wait?.message).toBe('live');
    expect((await call<{ engine: string }>(agent, 'get_database', { name })).engine).toBe(label);
    const r = await call<{ wait?: { state: string; message: string } }>(agent, 'create_app', {
      name: app, source: await dbAppSource(engine), port: 8080, health_check: { path: '/healthz' }, databases: [{ name }], wait: 600,
    });
    expect(r.wait?.state, r.wait?.message).toBe('live');
    await store(app, 'one');
    await store(app, 'two');
    expect(await items(app)).toEqual(['one', 'two']);
  }, 1_500_000);

  it('backs up (proven by a drill), and a restore brings back what was deleted', async () => {
    const b = await call<{ state: string; message: string; backup?: { verified: boolean; drill?: { keys?: number; rows?: number } } }>(agent, 'backup_database', { name, wait: 600 });
    expect(b.state, b.message).toBe('done');
    expect(b.backup?.verified).toBe(true);
    if (engine === 'redis') expect(b.backup?.drill?.keys).toBe(1);
    else expect(b.backup?.drill?.rows).toBe(2);
    expect((await http(`${app}.default.localhost`, 'DELETE', '/items')).status).toBe(200);
    expect(await items(app)).toEqual([]);
    const r = await call<{ state: string; message: string }>(agent, 'restore_database', { name, wait: 600 });
    expect(r.state, r.message).toBe('done');
    const back = await eventually('the app reads the restored items', async () => {
      const got = await items(app).catch(() => undefined);
      return got?.length ? got : undefined;
    }, 120_000);
    expect(back).toEqual(['one', 'two']);
  }, 900_000);
});

describe('credentials', () => {
  it('are in no git object, tool result, log line, note or workflow history: only in the containers they go to', async () => {
    const { loadClusterKey, decryptSecret } = await import('../../reconciler/state/secrets.js');
    const { credentialsPath } = await import('../../reconciler/layout.js');
    const identity = (await loadClusterKey(join(up.home, 'keys'))).identity;
    const passwords: string[] = [];
    for (const name of ['notes', 'cache', 'shop']) {
      const armored = await must('git', ['--git-dir', up.repo, 'show', `main:${credentialsPath('default', name)}`]);
      passwords.push((JSON.parse(await decryptSecret(armored, identity)) as { password: string }).password);
    }
    expect(passwords.every((p) => p.length >= 16)).toBe(true);
    // every object of the state repo (manifests, encrypted credentials, commits, notes)
    const objects = await must('sh', ['-c', `git --git-dir '${up.repo}' cat-file --batch-all-objects --batch`], {});
    const histories = await clusterHistories(cluster, { all: true });
    expect(histories.some((h) => h.workflowId.startsWith(`mlink-backup-${cluster}-`))).toBe(true);
    const places: Record<string, string> = { 'git objects': objects, 'tool results': toolResults.join('\n'), 'mlink up logs': up.output() };
    for (const p of passwords) {
      for (const [where, text] of Object.entries(places)) expect(text.includes(p), `a password in ${where}`).toBe(false);
      expect(histories.flatMap((h) => findSecret(h.history, p).map((at) => `${h.workflowId} ${at}`))).toEqual([]);
    }
    // ...and the bound app has it: the scan looks where a password would be
    const [replica] = await docker.listContainers({ filters: { label: [`${LABEL.cluster}=${cluster}`, `${LABEL.kind}=App`, `${LABEL.name}=keeper`], status: ['running'] } });
    expect(await must('docker', ['exec', replica!.Id, 'env'])).toContain(passwords[0]);
  }, 120_000);
});

describe('mlink db', () => {
  it('lists databases, prints an operator\'s URL, and purges retained data only when told to', async () => {
    const list = await must('node', ['bin/mlink.js', 'db', 'list'], { env: upEnv(up.home) });
    expect(list).toMatch(/^default\/notes\s+postgres\s+Running\s+local/m);
    const url = await must('node', ['bin/mlink.js', 'db', 'url', 'notes'], { env: upEnv(up.home) });
    expect(url).toMatch(/^postgres:\/\/u_[a-z0-9]+:[A-Za-z0-9]{32}@\d+\.\d+\.\d+\.\d+:5432\/app /);
    const created = await call<{ wait?: { state: string } }>(agent, 'create_database', { name: 'scratch', engine: 'redis', wait: 300 });
    expect(created.wait?.state).toBe('live');
    const refused = await run('node', ['bin/mlink.js', 'db', 'purge', 'scratch', '--yes'], { env: upEnv(up.home) });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/is in git; delete it first/);
    await call(agent, 'delete_database', { name: 'scratch', wait: 300 });
    const volumes = async (): Promise<string[]> => (await docker.listVolumes({ filters: { label: [`${LABEL.cluster}=${cluster}`, `${LABEL.name}=scratch`] } })).Volumes?.map((v) => v.Name) ?? [];
    expect(await volumes()).toHaveLength(1);
    const asked = await run('node', ['bin/mlink.js', 'db', 'purge', 'scratch'], { env: upEnv(up.home), input: 'no\n' });
    expect(asked.stdout).toContain('nothing removed');
    expect(await volumes()).toHaveLength(1);
    const purged = await must('node', ['bin/mlink.js', 'db', 'purge', 'scratch'], { env: upEnv(up.home), input: 'scratch\n' });
    expect(purged).toMatch(/^purged mlink-\S+-db-default-scratch-data on local/);
    expect(await volumes()).toEqual([]);
    expect((await call<{ retained: Array<{ name: string }> }>(agent, 'list_databases', {})).retained.map((r) => r.name)).not.toContain('scratch');
  }, 300_000);
});
