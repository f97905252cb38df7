// Private names, as a new user meets them: `mlink init` makes the cluster's CA, an
// operator points ml.ink at their zone (a real BIND 9 on loopback) with `mlink dns
// configure`, and an agent creates an app at logistics.internal.test. dig answers the
// edge's address, curl trusts the exported root over HTTPS, plain HTTP redirects, a client
// outside the allow-list gets 403, the certificate is renewed under a polling client with
// no failed request and no new container, and a human's `git revert` takes away the
// record, the certificate and the route. A record that was in the zone before ml.ink is
// never touched, even by an app that asks for its name.
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseDocument } from 'yaml';
import { must, run } from '../../infra/proc.js';
import { LABEL } from '../../reconciler/model.js';
import { parseCertificate } from '../../reconciler/tls/cert-info.js';
import { startBind9, type Bind9 } from '../support/bind9.js';
import { cfg, docker, eventually, removeTestContainers, runId } from '../support/infra.js';
import { ensureWebImage } from '../support/images.js';
import { call, connectAgent, startUp, tearDown, upEnv, type Up } from '../support/mlink-up.js';
import { httpGet, httpsGet, type Reply } from '../support/tls-client.js';

const cluster = `nm${runId}`.slice(0, 30);
const host = 'logistics.internal.test';
const port = cfg.traefik.websecurePort;
let bind: Bind9;
let up: Up;
let agent: Client;
let image: string;
let home: string;
let root = '';
let createCommit = '';
const work = mkdtempSync(join(tmpdir(), 'mlink-names-'));
const legacy = 'legacy.internal.test';

const mlink = (args: string[]): Promise<string> => must('node', ['bin/mlink.js', ...args], { env: upEnv(home) });
const human = (args: string[], cwd: string): Promise<string> => must('git', ['-c', 'user.name=Olive Operator', '-c', 'user.email=olive@example.test', ...args], { cwd });
const dig = (name: string, type = 'A'): Promise<string> => bind.dig([name, type]);
const https = (from?: string): Promise<Reply> => httpsGet({ host, port, ca: root, from });
const files = (): string[] => readdirSync(cfg.traefik.routesDir).filter((f) => f.startsWith(`mlink-${cluster}--`)).sort();

async function legacyUntouched(): Promise<void> {
  expect(await dig(legacy)).toBe('192.0.2.7');
  expect(await dig(`a-${legacy}`, 'TXT')).toBe('');
}

beforeAll(async () => {
  [bind, image] = await Promise.all([startBind9({ zoneRecords: ['legacy IN A 192.0.2.7'] }), ensureWebImage()]);
  home = mkdtempSync(join(tmpdir(), 'mlink-e2e-names-'));
}, 240_000);

afterAll(async () => {
  await tearDown(up, agent);
  await bind?.stop();
  await removeTestContainers();
  rmSync(work, { recursive: true, force: true });
}, 60_000);

describe('private names end to end', () => {
  it('mlink init makes the CA: the root key stays in the data dir (0600), the root is committed and exported', async () => {
    await mlink(['init', '--cluster', cluster]);
    const keyFile = join(home, 'keys', 'ca.key.pem');
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const repo = join(home, 'state');
    expect(await must('git', ['--git-dir', repo, 'ls-tree', '-r', '--name-only', 'main'])).not.toMatch(/key/);
    root = await mlink(['ca', 'export']);
    expect(root).toBe(await must('git', ['--git-dir', repo, 'show', 'main:tls/ca.pem']));
    expect(parseCertificate(root).isCa).toBe(true);
    expect(readFileSync(keyFile, 'utf8')).not.toBe('');
    writeFileSync(join(work, 'root.pem'), root);
  });

  it('an operator points ml.ink at the zone, and shortens certificates to a minute', async () => {
    writeFileSync(join(work, 'tsig.secret'), bind.tsig.secret);
    await mlink(['dns', 'configure', '--server', `${bind.host}:${bind.port}`, '--zone', bind.zone, '--key-name', bind.tsig.name, '--secret-file', join(work, 'tsig.secret')]);
    const clone = join(work, 'ops');
    await human(['clone', '-q', join(home, 'state'), clone], work);
    expect(readFileSync(join(clone, 'dns', 'tsig.age'), 'utf8')).not.toContain(bind.tsig.secret);
    const doc = parseDocument(readFileSync(join(clone, 'mlink.yaml'), 'utf8'));
    doc.setIn(['spec', 'tls', 'leafLifetime'], '60s');
    writeFileSync(join(clone, 'mlink.yaml'), doc.toString());
    await human(['commit', '-qam', 'Certificates for a minute, to see renewals'], clone);
    await human(['push', '-q', 'origin', 'main'], clone);
    up = await startUp({ cluster, home });
    agent = await connectAgent(up);
    const doctor = JSON.parse((await run('node', ['bin/mlink.js', 'doctor', '--json'], { env: upEnv(home) })).stdout) as Array<{ component: string; ok: boolean; detail: string }>;
    expect(doctor.find((c) => c.component === 'cluster CA')).toMatchObject({ ok: true, detail: expect.stringMatching(/^root valid until \d{4}-/) });
    expect(doctor.find((c) => c.component === 'tls issuer')).toMatchObject({ ok: true, detail: 'leaf certificates valid 60 s, renewed at 2/3' });
    expect(doctor.find((c) => c.component === 'dns')).toMatchObject({ ok: true, detail: `zone internal.test answers (signed with key ${bind.tsig.name})` });
  }, 90_000);

  it('an agent creates an app at logistics.internal.test: DNS answers, HTTPS serves with the exported root, HTTP redirects, outsiders get 403', async () => {
    await legacyUntouched();
    const created = await call<{ commit: string; wait?: { state: string } }>(agent, 'create_app', {
      name: 'logistics', source: { image }, port: 8080, env: { GREETING: 'dashboard' }, domains: [host], allow_cidrs: ['127.0.0.1/32'], wait: 60,
    });
    createCommit = created.commit;
    expect(created.wait?.state).toBe('live');
    // The route went live with its certificate already in place: the first HTTPS request succeeds.
    const first = await https();
    expect(first.status).toBe(200);
    expect(first.body).toMatch(/^dashboard from /);
    expect(await eventually('dig answers the edge', async () => ((await dig(host)) === '127.0.0.1' ? true : undefined), 15_000)).toBe(true);
    expect(await dig(`a-${host}`, 'TXT')).toBe(`"heritage=mlink,mlink/owner=${cluster},mlink/resource=App/default/logistics"`);
    const curl = await run('curl', ['-sS', '--max-time', '5', '--cacert', join(work, 'root.pem'), '--resolve', `${host}:${port}:127.0.0.1`, `https://${host}:${port}/`]);
    expect(curl.stderr).toBe('');
    expect(curl.stdout).toMatch(/^dashboard from /);
    const plain = await httpGet({ host, port: cfg.traefik.webPort });
    expect(plain.status).toBe(301);
    expect(plain.headers.location).toBe(`https://${host}:${port}/`);
    expect((await https('127.0.0.2')).status).toBe(403);
    expect((await httpGet({ host, port: cfg.traefik.webPort, from: '127.0.0.2' })).status).toBe(403);
    const got = await call<{ live: Record<string, unknown> }>(agent, 'get_app', { name: 'logistics' });
    expect(got.live).toMatchObject({
      url: `https://${host}:${port}/`, https_url: `https://${host}:${port}/`,
      certificates: [{ host: 'local', names: [host], issuer: expect.stringContaining(`ml.ink internal CA (${cluster})`), not_after: expect.any(String) }],
      dns: [{ name: host, addresses: ['127.0.0.1'], state: 'synced' }],
    });
    await legacyUntouched();
  }, 120_000);

  it('serves HTTPS out of the box: an app with no domains of its own, at <name>.<project>.localhost, under the same root', async () => {
    await call(agent, 'create_app', { name: 'hello', source: { image }, port: 8080, env: { GREETING: 'hello' }, wait: 60 });
    const r = await httpsGet({ host: 'hello.default.localhost', port, ca: root });
    expect(r.status).toBe(200);
    expect(r.body).toMatch(/^hello from /);
    // outside the zone: no record, and get_app says so
    const got = await call<{ live: { dns?: Array<{ state: string; reason?: string }> } }>(agent, 'get_app', { name: 'hello' });
    expect(got.live.dns).toEqual([expect.objectContaining({ state: 'skipped', reason: 'not inside the zone internal.test that mlink.yaml spec.dns manages' })]);
    await call(agent, 'delete_app', { name: 'hello', wait: 60 });
  }, 120_000);

  it('refuses to take over a name that was in the zone before: the record stays and get_app says why', async () => {
    await call(agent, 'create_app', { name: 'squatter', source: { image }, port: 8080, domains: [legacy], wait: 60 });
    const got = await eventually('refusal recorded', async () => {
      const r = await call<{ live: { dns?: Array<{ state: string; reason?: string }> } }>(agent, 'get_app', { name: 'squatter' });
      return r.live.dns?.[0]?.state === 'refused' ? r.live.dns[0] : undefined;
    }, 15_000);
    expect(got.reason).toMatch(/already holds A 192\.0\.2\.7 that ml\.ink did not create/);
    await legacyUntouched();
    await call(agent, 'delete_app', { name: 'squatter', wait: 60 });
    await legacyUntouched();
  }, 120_000);

  it('renews the certificate before it expires while a client polls, with no failed request and the same container, even while main holds a commit that cannot be applied', async () => {
    const [before] = await docker.listContainers({ filters: { label: [`${LABEL.cluster}=${cluster}`, `${LABEL.name}=logistics`] } });
    // A human pushes a broken manifest: the commit is never applied, the last good state keeps running, and so must its certificates.
    const clone = join(work, 'broken');
    await human(['clone', '-q', join(home, 'state'), clone], work);
    writeFileSync(join(clone, 'apps', 'default', 'broken.yaml'), 'apiVersion: mlink.ink/v1\nkind: App\nmetadata: {name: broken, project: default}\nspec: {port: 80}\n');
    await human(['add', '-A'], clone);
    await human(['commit', '-qm', 'A hand-written app without a source'], clone);
    await human(['push', '-q', 'origin', 'main'], clone);
    const broken = (await human(['rev-parse', 'HEAD'], clone)).trim();
    const oldSerial = (await https()).serial!;
    const seen: string[] = [];
    const failures: string[] = [];
    let stop = false;
    const poller = (async () => {
      // Bounded: a fresh TLS handshake every 100 ms for at most 90 s.
      for (let i = 0; i < 900 && !stop; i++) {
        const t0 = Date.now();
        try {
          const r = await https();
          if (r.status === 200) seen.push(r.serial ?? '?'); else failures.push(`${i}: status ${r.status}`);
        } catch (e) {
          failures.push(`${i}: ${(e as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, Math.max(0, 100 - (Date.now() - t0))));
      }
    })();
    // A 60 s leaf falls due 2/3 into its life; the drift check (every 2 s) renews it.
    await eventually('a new certificate is served', async () => (seen.length && seen.at(-1) !== oldSerial ? true : undefined), 80_000);
    await new Promise((r) => setTimeout(r, 1000));
    stop = true;
    await poller;
    expect(failures).toEqual([]);
    expect(seen[0]).toBe(oldSerial);
    const newSerial = seen.at(-1)!;
    expect(seen.slice(seen.indexOf(newSerial)).every((s) => s === newSerial)).toBe(true);
    const [after] = await docker.listContainers({ filters: { label: [`${LABEL.cluster}=${cluster}`, `${LABEL.name}=logistics`] } });
    expect(after!.Id).toBe(before!.Id);
    const note = await must('git', ['--git-dir', join(home, 'state'), 'notes', '--ref=mlink', 'show', broken]);
    expect(note).toMatch(/^ml\.ink ValidationFailed /);
    const records = note.split('\n-----\n').map((r) => parse(r.split('\n\n').slice(1).join('\n\n')) as { phase: string; resources: Array<{ name: string; result: string; message: string }> });
    expect(records.every((r) => r.phase === 'ValidationFailed')).toBe(true);
    expect(records.flatMap((r) => r.resources).find((x) => x.name === 'names')?.message).toMatch(/certificate for logistics\.internal\.test on local issued by .*past 2\/3 of its lifetime/);
    await human(['revert', '--no-edit', broken], clone);
    await human(['push', '-q', 'origin', 'main'], clone);
    process.stdout.write(`renewal under a polling client: ${seen.length} requests, ${seen.filter((s) => s === oldSerial).length} on the old leaf, 0 failed\n`);
  }, 120_000);

  it('git revert of the create removes the record, the certificate and the route; the old record is untouched', async () => {
    expect(files()).toEqual([`mlink-${cluster}--default--logistics.tls.yaml`, `mlink-${cluster}--default--logistics.yaml`]);
    const clone = join(work, 'revert');
    await human(['clone', '-q', join(home, 'state'), clone], work);
    await human(['revert', '--no-edit', createCommit], clone);
    await human(['push', '-q', 'origin', 'main'], clone);
    await eventually('route and certificate gone', async () => (files().length === 0 ? true : undefined), 30_000);
    await eventually('record gone', async () => ((await dig(host)) === '' && (await dig(`a-${host}`, 'TXT')) === '' ? true : undefined), 15_000);
    await expect(https()).rejects.toThrow(); // Traefik's default certificate: not signed by the root
    await legacyUntouched();
  }, 90_000);
});
