// The ACME path end to end, offline: mlink.yaml names an ACME directory (Pebble, Let's
// Encrypt's test server, trusted through a roots file committed to the state repo); an
// agent creates an app; ml.ink publishes its A record in a real bind9, routes the HTTP-01
// challenge through its own edge to the worker's responder, and serves the certificate
// Pebble issued. Pebble really resolves the name and really fetches the token.
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { must, run } from '../../infra/proc.js';
import { startBind9, type Bind9 } from '../support/bind9.js';
import { cfg, eventually, removeTestContainers, runId } from '../support/infra.js';
import { ensureWebImage } from '../support/images.js';
import { call, connectAgent, startUp, tearDown, upEnv, type Up } from '../support/mlink-up.js';
import { startPebble, type TestPebble } from '../support/pebble.js';
import { httpsGet } from '../support/tls-client.js';

const cluster = `na${runId}`.slice(0, 30);
const host = 'shop.internal.test';
let bind: Bind9;
let pebble: TestPebble;
let up: Up;
let agent: Client;
let image: string;
const home = mkdtempSync(join(tmpdir(), 'mlink-e2e-acme-'));
const work = mkdtempSync(join(tmpdir(), 'mlink-acme-work-'));
const mlink = (args: string[]): Promise<string> => must('node', ['bin/mlink.js', ...args], { env: upEnv(home) });
const human = (args: string[], cwd: string): Promise<string> => must('git', ['-c', 'user.name=Olive Operator', '-c', 'user.email=olive@example.test', ...args], { cwd });

beforeAll(async () => {
  [bind, image] = await Promise.all([startBind9(), ensureWebImage()]);
  // Pebble validates HTTP-01 on the embedded edge's web port, resolving names through the test's bind9.
  pebble = await startPebble({ dnsServer: `${bind.host}:${bind.port}`, httpPort: cfg.traefik.webPort });
}, 240_000);

afterAll(async () => {
  await tearDown(up, agent);
  await Promise.all([pebble?.stop(), bind?.stop()]);
  await removeTestContainers();
  rmSync(work, { recursive: true, force: true });
}, 60_000);

describe('certificates from an ACME directory', () => {
  it('an app created by an agent is served with a certificate Pebble issued through ml.ink\'s edge', async () => {
    await mlink(['init', '--cluster', cluster]);
    writeFileSync(join(work, 'tsig.secret'), bind.tsig.secret);
    await mlink(['dns', 'configure', '--server', `${bind.host}:${bind.port}`, '--zone', bind.zone, '--key-name', bind.tsig.name, '--secret-file', join(work, 'tsig.secret')]);
    const clone = join(work, 'ops');
    await human(['clone', '-q', join(home, 'state'), clone], work);
    mkdirSync(join(clone, 'tls'), { recursive: true });
    writeFileSync(join(clone, 'tls', 'acme-roots.pem'), pebble.listenerCaPem);
    const doc = parseDocument(readFileSync(join(clone, 'mlink.yaml'), 'utf8'));
    doc.setIn(['spec', 'tls'], doc.createNode({ issuer: 'acme', acme: { directoryUrl: pebble.directoryUrl, caFile: 'tls/acme-roots.pem' } }));
    writeFileSync(join(clone, 'mlink.yaml'), doc.toString());
    await human(['add', '-A'], clone);
    await human(['commit', '-qm', 'Certificates from our ACME server'], clone);
    await human(['push', '-q', 'origin', 'main'], clone);

    up = await startUp({ cluster, home });
    agent = await connectAgent(up);
    const doctor = JSON.parse((await run('node', ['bin/mlink.js', 'doctor', '--json'], { env: upEnv(home) })).stdout) as Array<{ component: string; ok: boolean; address: string; detail: string }>;
    expect(doctor.find((c) => c.component === 'tls issuer')).toMatchObject({ ok: true, address: pebble.directoryUrl, detail: 'directory answers (newOrder present)' });

    const t0 = performance.now();
    await call(agent, 'create_app', { name: 'shop', source: { image }, port: 8080, env: { GREETING: 'shop' }, domains: [host], allow_cidrs: ['127.0.0.1/32'], wait: 60 });
    const cert = await eventually('Pebble\'s certificate on the edge', async () => {
      const r = await call<{ live: { certificates?: Array<{ issuer: string; serial: string; not_after: string }>; dns?: Array<{ state: string }> } }>(agent, 'get_app', { name: 'shop' });
      return r.live.certificates?.[0]?.issuer.includes('Pebble Intermediate') ? r.live : undefined;
    }, 60_000);
    const root = await pebble.rootPem();
    const served = await eventually('HTTPS with the ACME certificate', async () => {
      const r = await httpsGet({ host, port: cfg.traefik.websecurePort, ca: root });
      return r.status === 200 ? r : undefined;
    }, 10_000);
    process.stdout.write(`create_app -> HTTPS 200 with Pebble's certificate: ${(performance.now() - t0).toFixed(0)} ms\n`);
    expect(served.body).toMatch(/^shop from /);
    expect(served.serial).toBe(cert.certificates![0]!.serial);
    expect(cert.dns).toEqual([expect.objectContaining({ state: 'synced' })]);
    expect(await bind.dig([host])).toBe('127.0.0.1');
    // The challenge came through the edge's web entrypoint, past the app's allow-list (Pebble is no allowed client of it).
    expect((await httpsGet({ host, port: cfg.traefik.websecurePort, ca: root, from: '127.0.0.2' })).status).toBe(403);
  }, 180_000);
});
