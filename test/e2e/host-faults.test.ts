// Runtime hosts that fail, and one taken out of service on purpose: the control plane
// here, two runtime hosts (test hosts with their own sshd, dockerd and edge, reached only
// over SSH). A runtime host killed hard is Lost after mlink.yaml's default time and its app
// serves from the other host; its database is not moved without its data, get_database
// names the remedy and the remedy (its verified backup restored into a new database)
// gives the data on the other host. The host brought back holds no stale replica or
// route. `mlink host drain` then moves an app off a host with no failed request under a
// client polling every 50 ms.
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { must, run } from '../../infra/proc.js';
import { execIn as execInContainer } from '../../reconciler/databases/exec.js';
import { REMOTE_EDGE } from '../../reconciler/hosts/cluster.js';
import { LABEL } from '../../reconciler/model.js';
import { engineImage } from '../support/databases.js';
import { ensureWebImage } from '../support/images.js';
import { cfg, eventually, runId } from '../support/infra.js';
import { call as callTool, connectAgent, startUp, tearDown, upEnv, type Up } from '../support/mlink-up.js';
import { humanCommit } from '../support/human.js';
import { loadImage, removeTestHosts, startTestHost, testControlKey, type TestHost } from '../support/test-hosts.js';

const cluster = `f${runId.slice(-8)}`;
let up: Up;
let root = '';
let agent: Client;
let rt1: TestHost;
let rt2: TestHost;
let web = '';

const call = <T>(name: string, args: Record<string, unknown>): Promise<T> => callTool<T>(agent, name, args);

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run('node', ['bin/mlink.js', ...args], { env: upEnv(up.home) });
}

/** GET through a runtime host's own edge, HTTPS on 443 under the cluster's root. */
function viaEdge(address: string, hostHeader: string, timeoutMs = 3000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: address, port: 443, path: '/', servername: hostHeader, ca: root, headers: { host: hostHeader }, timeout: timeoutMs, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${address}:443 in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

const serves = async (th: TestHost, app: string): Promise<boolean> => (await viaEdge(th.address, `${app}.default.localhost`).catch(() => ({ status: 0, body: '' }))).status === 200;

/** ml.ink's containers of this cluster on a test host, and its edge's route files, asked of the host itself over SSH. */
async function leftOn(th: TestHost): Promise<{ apps: string[]; routes: string[] }> {
  const h = th.connect();
  try {
    const list = await h.docker.listContainers({ all: true, filters: { label: [`${LABEL.cluster}=${cluster}`, `${LABEL.kind}=App`] } });
    const routes = (await h.files.list(REMOTE_EDGE.routesDir)).filter((f) => f.startsWith(`mlink-${cluster}--`) && !f.includes('acme'));
    return { apps: list.map((c) => `${c.Labels[LABEL.name]} (${c.State})`).sort(), routes: routes.sort() };
  } finally {
    await h.close();
  }
}

/** Redis as its administrator in a database's server on a test host. */
async function redis(th: TestHost, db: string, command: string): Promise<string> {
  const h = th.connect();
  try {
    const list = await h.docker.listContainers({ filters: { label: [`${LABEL.cluster}=${cluster}`, `${LABEL.kind}=Database`, `${LABEL.name}=${db}`] } });
    if (!list[0]) throw new Error(`no server of ${db} runs on ${th.name}`);
    const r = await execInContainer(h.docker, list[0].Id, ['bash', '-c', 'REDISCLI_AUTH=$(cat /run/redis/admin.pass) redis-cli --no-auth-warning --user mlink-admin -h 127.0.0.1'], { user: 'redis', stdin: `${command}\n` });
    if (r.code !== 0) throw new Error(`redis-cli in ${db} on ${th.name}: ${r.stderr}`);
    return r.stdout.toString('utf8').trim();
  } finally {
    await h.close();
  }
}

interface HostView { name: string; schedulable: boolean; live: { known: boolean; condition?: { state: string; since?: string; check?: string } } }
const conditionOf = async (name: string): Promise<{ state: string; since?: string; check?: string } | undefined> =>
  (await call<{ hosts: HostView[] }>('list_hosts', {})).hosts.find((h) => h.name === name)?.live.condition;

beforeAll(async () => {
  [rt1, rt2] = await Promise.all([startTestHost({ name: `r1${runId.slice(-4)}` }), startTestHost({ name: `r2${runId.slice(-4)}` })]);
  up = await startUp({ cluster });
  root = await must('node', ['bin/mlink.js', 'ca', 'export'], { env: upEnv(up.home) });
  agent = await connectAgent(up);
  mkdirSync(join(up.home, 'keys', 'ssh'), { recursive: true, mode: 0o700 });
  writeFileSync(join(up.home, 'keys', 'ssh', 'id_ed25519'), testControlKey().privateKey, { mode: 0o600 });
  // Apps and databases leave the control plane: only the two runtime hosts run them.
  await humanCommit(up.repo, (work) => {
    const file = join(work, 'mlink.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace(/roles: \[ ?control, build, runtime ?\]/, 'roles: [control]'));
  }, 'Runtime hosts of their own');
  const [webImage, redisImage] = await Promise.all([ensureWebImage(), engineImage('redis')]);
  web = webImage;
  const added = await Promise.all([rt1, rt2].map((th) => cli(['host', 'add', th.name, th.address, '--roles', 'runtime', '--host-key', th.hostKey])));
  for (const r of added) expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
  // The images a runtime host would pull from the registry: the app's, and the engine's (with its base, so its recipe matches).
  for (const th of [rt1, rt2]) {
    const h = th.connect();
    try {
      for (const ref of [web, cfg.images.debian, redisImage.tag]) await loadImage(h, ref);
    } finally {
      await h.close();
    }
  }
}, 900_000);

afterAll(async () => {
  await tearDown(up, agent, () => removeTestHosts());
}, 180_000);

describe('a runtime host that dies, and one drained', () => {
  it('runs an app and a database with a verified backup on the first runtime host', async () => {
    const db = await call<{ wait?: { state: string; message: string } }>('create_database', { name: 'notes', engine: 'redis', wait: 600 });
    expect(db.wait?.state, db.wait?.message).toBe('live');
    const where = (await call<{ live: { database?: { host?: string } } }>('get_database', { name: 'notes' })).live.database?.host;
    expect(where).toBe(rt1.name);
    expect(await redis(rt1, 'notes', 'SET greeting "kept by a backup"')).toBe('OK');
    const b = await call<{ state: string; message: string; backup?: { verified: boolean } }>('backup_database', { name: 'notes', wait: 600 });
    expect(b.state, b.message).toBe('done');
    expect(b.backup?.verified).toBe(true);
    const r = await call<{ wait?: { state: string; message: string } }>('create_app', { name: 'alpha', source: { image: web }, port: 8080, wait: 300 });
    expect(r.wait?.state, r.wait?.message).toBe('live');
    expect((await call<{ live: { hosts?: string[] } }>('get_app', { name: 'alpha' })).live.hosts).toEqual([rt1.name]);
    expect(await serves(rt1, 'alpha')).toBe(true);
  }, 900_000);

  let killedAt = 0;
  it('serves the app of a runtime host killed hard from the other one within 60 s, and shows the host Lost', async () => {
    killedAt = Date.now();
    await rt1.kill();
    await eventually('alpha serves from the other runtime host', async () => ((await serves(rt2, 'alpha')) ? true : undefined), 90_000);
    const seconds = (Date.now() - killedAt) / 1000;
    console.log(`host-faults: ${rt1.name} killed; alpha served from ${rt2.name} after ${seconds.toFixed(1)} s (hostHealth defaults: lost after 20 s, checked every 3 s)`);
    // What the reconciler noted of the move (git notes on the applied commit).
    const note = await must('git', ['notes', '--ref=mlink', 'show', 'main'], { cwd: up.repo }).catch(() => '');
    console.log(`host-faults: the newest status note on main:\n${note.split('\n-----\n').at(-1)?.split('\n').slice(0, 24).join('\n') ?? '(none)'}`);
    expect(seconds).toBeLessThanOrEqual(60);
    const c = await eventually(`${rt1.name} Lost`, async () => {
      const x = await conditionOf(rt1.name);
      return x?.state === 'Lost' ? x : undefined;
    }, Math.max(1000, killedAt + 60_000 - Date.now()));
    expect(c).toMatchObject({ state: 'Lost', since: expect.any(String), check: expect.stringMatching(/^(ssh|docker): /) });
    expect((await call<{ live: { hosts?: string[] } }>('get_app', { name: 'alpha' })).live.hosts).toEqual([rt2.name]);
    const list = await cli(['host', 'list']);
    expect(list.stdout).toMatch(new RegExp(`${rt1.name}.*Lost since \\S+ \\(failing since`));
    const status = await cli(['status']);
    expect(status.stdout).toMatch(new RegExp(`host ${rt1.name}: Lost since`));
  }, 180_000);

  it('does not move the database of the lost host: get_database says so and names the remedy', async () => {
    const view = await eventually('get_database says its host is lost', async () => {
      const v = await call<{ live: { phase?: string; message?: string } }>('get_database', { name: 'notes' });
      return v.live.phase === 'HostLost' ? v : undefined;
    }, 60_000);
    expect(view.live.message).toContain(`its data is on host ${rt1.name}, which is Lost since`);
    expect(view.live.message).toContain('restore_database name=notes project=default into=<a new name>');
    // An app bound to it runs only where its data is: Unschedulable, and says why, in get_app, list_apps and mlink status.
    await call('create_app', { name: 'gamma', source: { image: web }, port: 8080, databases: [{ name: 'notes' }] });
    const gamma = await eventually('gamma is Unschedulable', async () => {
      const v = await call<{ live: { phase?: string; message?: string } }>('get_app', { name: 'gamma' });
      return v.live.phase === 'Unschedulable' ? v : undefined;
    }, 60_000);
    expect(gamma.live.message).toContain(`database default/notes it binds is not placed (HostLost: its data is on host ${rt1.name}`);
    const apps = await call<{ apps: Array<{ name: string; live: { phase?: string; message?: string } }> }>('list_apps', {});
    expect(apps.apps.find((a) => a.name === 'gamma')?.live).toMatchObject({ phase: 'Unschedulable', message: expect.stringContaining('HostLost') });
    expect((await cli(['status'])).stdout).toMatch(/default\/gamma\s+Unschedulable.*database default\/notes it binds is not placed/);
    // Nothing of it was made again on the other host.
    const h = rt2.connect();
    try {
      expect(await h.docker.listVolumes({ filters: { label: [`${LABEL.cluster}=${cluster}`, `${LABEL.name}=notes`] } }).then((v) => v.Volumes ?? [])).toEqual([]);
    } finally {
      await h.close();
    }
  }, 120_000);

  it('follows the remedy: the verified backup restored into a new database on the other host has the data', async () => {
    const r = await call<{ state: string; message: string }>('restore_database', { name: 'notes', into: 'notes2', wait: 600 });
    expect(r.state, r.message).toBe('done');
    const where = (await call<{ live: { database?: { host?: string } } }>('get_database', { name: 'notes2' })).live.database?.host;
    expect(where).toBe(rt2.name);
    expect(await redis(rt2, 'notes2', 'GET greeting')).toBe('kept by a backup');
  }, 900_000);

  it('removes the stale replica and route from the host brought back before it takes new work', async () => {
    const before = await leftOn(rt1).catch(() => undefined); // not answering yet: it is down
    expect(before).toBeUndefined();
    await rt1.restart();
    // Docker and the edge's files on its disk came back with it: the old replica and route are there until the reconciler removes them.
    const ready = await eventually(`${rt1.name} Ready again`, async () => ((await conditionOf(rt1.name))?.state === 'Ready' ? Date.now() : undefined), 180_000);
    // gamma may be placed there now (it runs where its database's data is); alpha, which moved, must have left no trace.
    const left = await leftOn(rt1);
    expect(left.apps.filter((a) => a.startsWith('alpha'))).toEqual([]);
    expect(left.routes.filter((f) => f.includes('--alpha') && !f.endsWith('.tls.yaml'))).toEqual([]);
    // Its certificate file is the names step's to remove, in the same pass or the next.
    await eventually('no certificate of alpha left on it', async () => ((await leftOn(rt1)).routes.some((f) => f.includes('--alpha')) ? undefined : true), 30_000);
    // The database came back on its data, and the app bound to it runs beside it once the host is Ready.
    expect(await eventually('notes answers on its host again', async () => redis(rt1, 'notes', 'GET greeting').catch(() => undefined), 120_000)).toBe('kept by a backup');
    await eventually('gamma runs beside its database', async () => ((await call<{ live: { hosts?: string[] } }>('get_app', { name: 'gamma' })).live.hosts?.[0] === rt1.name ? true : undefined), 120_000);
    expect(await serves(rt1, 'alpha')).toBe(false);
    expect(await serves(rt2, 'alpha')).toBe(true);
    console.log(`host-faults: ${rt1.name} restarted; Ready (clean) ${((ready - killedAt) / 1000).toFixed(1)} s after the kill`);
  }, 300_000);

  it('drains a host with no failed request under a client polling every 50 ms, then refuses to drain the last one', async () => {
    // gamma runs where its database's data is and can go nowhere else: the drain is refused, naming it, and nothing is committed.
    const head = await must('git', ['rev-parse', 'main'], { cwd: up.repo });
    const refused = await cli(['host', 'drain', rt1.name]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(new RegExp(`cannot drain ${rt1.name}: this app fits on no other runtime host, so it would stop serving: default/gamma \\(`));
    expect(await must('git', ['rev-parse', 'main'], { cwd: up.repo })).toBe(head);
    await call('delete_app', { name: 'gamma' });
    await eventually('gamma gone from its host', async () => ((await leftOn(rt1)).apps.some((a) => a.startsWith('gamma')) ? undefined : true), 120_000);
    // A new app lands on the first host again (it is Ready, and first by name).
    const r = await call<{ wait?: { state: string; message: string } }>('create_app', { name: 'beta', source: { image: web }, port: 8080, wait: 300 });
    expect(r.wait?.state, r.wait?.message).toBe('live');
    expect((await call<{ live: { hosts?: string[] } }>('get_app', { name: 'beta' })).live.hosts).toEqual([rt1.name]);
    // The client reaches the app as a front door does: through the runtime hosts' edges, the next edge when one does not serve it.
    let stop = false;
    const tally = { requests: 0, failed: 0, byHost: new Map<string, number>() };
    const poller = (async () => {
      while (!stop) {
        const t = Date.now();
        let served = false;
        for (const th of [rt1, rt2]) {
          if (await serves(th, 'beta')) { served = true; tally.byHost.set(th.name, (tally.byHost.get(th.name) ?? 0) + 1); break; }
        }
        tally.requests++;
        if (!served) tally.failed++;
        await new Promise((res) => setTimeout(res, Math.max(0, 50 - (Date.now() - t))));
      }
    })();
    const t0 = Date.now();
    const drained = await cli(['host', 'drain', rt1.name, '--timeout', '300']);
    if (drained.code !== 0) stop = true;
    const seconds = (Date.now() - t0) / 1000;
    await new Promise((res) => setTimeout(res, 1000));
    stop = true;
    await poller;
    expect(drained.code, `${drained.stdout}\n${drained.stderr}`).toBe(0);
    console.log(`host-faults: mlink host drain ${rt1.name}: ${seconds.toFixed(1)} s; ${tally.requests} requests, ${tally.failed} failed (${[...tally.byHost].map(([h, n]) => `${h} ${n}`).join(', ')})\n${drained.stdout}`);
    expect(drained.stdout).toMatch(/committed hosts\/.*\.yaml \(schedulable: false\)/);
    expect(drained.stdout).toContain(`database default/notes stays on ${rt1.name}`);
    expect(drained.stdout).toMatch(new RegExp(`drained ${rt1.name}: nothing of ml.ink's apps runs there`));
    expect(tally.failed).toBe(0);
    expect(tally.byHost.get(rt2.name) ?? 0).toBeGreaterThan(0);
    expect((await leftOn(rt1)).apps).toEqual([]);
    const log = await must('git', ['log', '-1', '--format=%an%n%B', 'main'], { cwd: up.repo });
    expect(log).toMatch(new RegExp(`Drain host ${rt1.name}`));
    expect(log).toContain('Mlink-Tool: mlink host drain');

    const last = await cli(['host', 'drain', rt2.name]);
    expect(last.code).toBe(1);
    expect(last.stderr).toMatch(new RegExp(`host ${rt2.name} is the last runtime host that takes work \\(${rt1.name} is drained\\)`));
    const unknown = await cli(['host', 'drain', 'nosuchhost']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no host named "nosuchhost" in this cluster \(hosts: /);
    const back = await cli(['host', 'undrain', rt1.name]);
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout).toContain('schedulable again');
  }, 600_000);
});
