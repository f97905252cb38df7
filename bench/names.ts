// bench:names: how long from an agent's create_app with a new domain to the first HTTPS
// 200 under a certificate the exported root verifies AND an A record in the zone (a real
// bind9 on loopback), beside the same app created with https_redirect: false to its first
// plain HTTP 200, in the same run; then how long one certificate takes to issue from the
// internal CA and from an ACME server (Pebble, HTTP-01 answered through a Traefik).
//
//   npm run bench:names [-- --apps 5 --issues 5]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { infraConfig } from '../infra/config.js';
import { must } from '../infra/proc.js';
import { runSetup } from '../infra/setup/index.js';
import { syncRecords } from '../reconciler/dns/registry.js';
import { acmeChallengeConfig, renderDynamicYaml } from '../reconciler/edge/tls-config.js';
import { createAccountKey, createChallengeResponder, issueAcmeCertificate } from '../reconciler/tls/acme.js';
import { createRootCa, issueLeaf } from '../reconciler/tls/ca.js';
import { startBind9 } from '../test/support/bind9.js';
import { ensureWebImage } from '../test/support/images.js';
import { call, connectAgent, removeCluster, removeHome, startUp, stopUp, upEnv } from '../test/support/mlink-up.js';
import { startPebble } from '../test/support/pebble.js';
import { httpGet, httpsGet } from '../test/support/tls-client.js';
import { startTraefik } from '../test/support/traefik-edge.js';

const { values } = parseArgs({ options: { apps: { type: 'string', default: '5' }, issues: { type: 'string', default: '5' } } });
const N = Number(values.apps);
const ISSUES = Number(values.issues);
const cfg = infraConfig();

const pct = (xs: number[], p: number): number => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const ms = (x: number): string => `${x.toFixed(0).padStart(6)} ms`;
const line = (label: string, xs: number[]): string => `${label.padEnd(62)} p50 ${ms(pct(xs, 50))}   p90 ${ms(pct(xs, 90))}   min ${ms(Math.min(...xs))}`;

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function main(): Promise<void> {
  await runSetup({ cfg, skipDebian: true, out: () => undefined });
  const [image, bind] = await Promise.all([ensureWebImage(), startBind9()]);
  const cluster = `bn${Date.now().toString(36)}`;
  const home = mkdtempSync(join(tmpdir(), 'mlink-bench-names-'));
  const work = mkdtempSync(join(tmpdir(), 'mlink-bench-names-work-'));
  const mlink = (args: string[]): Promise<string> => must('node', ['bin/mlink.js', ...args], { env: upEnv(home) });
  process.stdout.write(`bench:names: ${N} apps each way (image ${image}, runsc), bind9 on 127.0.0.1:${bind.port}, edge https 127.0.0.1:${cfg.traefik.websecurePort}\n\n`);
  await mlink(['init', '--cluster', cluster]);
  writeFileSync(join(work, 'tsig'), bind.tsig.secret);
  await mlink(['dns', 'configure', '--server', `${bind.host}:${bind.port}`, '--zone', bind.zone, '--key-name', bind.tsig.name, '--secret-file', join(work, 'tsig')]);
  const root = await mlink(['ca', 'export']);
  const up = await startUp({ cluster, home, drift: 30 });
  const agent = await connectAgent(up);
  const both: number[] = [];
  const httpsOnly: number[] = [];
  const dnsOnly: number[] = [];
  const plain: number[] = [];
  try {
    for (let i = 0; i < N; i++) {
      const secure = `s${i}-${cluster}.${bind.zone}`;
      const t0 = performance.now();
      await call(agent, 'create_app', { name: `s${i}`, source: { image }, port: 8080, domains: [secure] });
      let httpsAt = 0;
      let dnsAt = 0;
      await until(`${secure}: HTTPS 200 and an A record`, async () => {
        if (!httpsAt && (await httpsGet({ host: secure, port: cfg.traefik.websecurePort, ca: root, timeoutMs: 1000 }).catch(() => undefined))?.status === 200) httpsAt = performance.now() - t0;
        if (!dnsAt && (await bind.dig([secure])) === '127.0.0.1') dnsAt = performance.now() - t0;
        return httpsAt && dnsAt ? true : undefined;
      });
      both.push(Math.max(httpsAt, dnsAt));
      httpsOnly.push(httpsAt);
      dnsOnly.push(dnsAt);

      const open = `p${i}-${cluster}.${bind.zone}`;
      const t1 = performance.now();
      await call(agent, 'create_app', { name: `p${i}`, source: { image }, port: 8080, domains: [open], https_redirect: false });
      await until(`${open}: plain HTTP 200`, async () => ((await httpGet({ host: open, port: cfg.traefik.webPort, timeoutMs: 1000 })).status === 200 ? true : undefined));
      plain.push(performance.now() - t1);
      // Untimed: its pass ends with its record, so the next create starts on an idle reconciler, as this one did.
      await until(`${open}: A record`, async () => ((await bind.dig([open])) === '127.0.0.1' ? true : undefined));
    }
  } finally {
    await agent.close().catch(() => undefined);
    await stopUp(up);
    await removeCluster(cluster);
    removeHome(up);
    rmSync(work, { recursive: true, force: true });
  }
  process.stdout.write(`${line('create_app -> HTTPS 200 (root-verified) and a DNS answer', both)}\n`);
  process.stdout.write(`${line('  of which: first HTTPS 200', httpsOnly)}\n`);
  process.stdout.write(`${line('  of which: first DNS answer from bind9', dnsOnly)}\n`);
  process.stdout.write(`${line('reference: same app, https_redirect false -> plain HTTP 200', plain)}\n`);
  process.stdout.write(`ratio p50 HTTPS+DNS / plain HTTP: ${(pct(both, 50) / pct(plain, 50)).toFixed(2)}x\n\n`);

  // Issuance alone: the internal CA in process, and Pebble over HTTP-01 through a Traefik of its own.
  const ca = await createRootCa();
  const internal: number[] = [];
  for (let i = 0; i < 50; i++) {
    const t0 = performance.now();
    await issueLeaf(ca, [`leaf${i}.internal.test`]);
    internal.push(performance.now() - t0);
  }
  const traefik = await startTraefik();
  const responder = createChallengeResponder();
  const server = createServer((req, res) => responder.handle(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const responderUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  traefik.writeDynamic('acme.yaml', renderDynamicYaml(acmeChallengeConfig({ router: 'acme', responderUrl })));
  await until('challenge route loaded', async () => ((await traefik.routers()).some((r) => r.name === 'acme@file') ? true : undefined), 10_000);
  const pebble = await startPebble({ dnsServer: `${bind.host}:${bind.port}`, httpPort: traefik.webPort });
  const acme: number[] = [];
  try {
    const names = Array.from({ length: ISSUES }, (_, i) => `acme${i}-${cluster}.${bind.zone}`);
    await syncRecords({ server: { host: bind.host, port: bind.port }, zone: bind.zone, tsig: bind.tsig, owner: `bench-${cluster}`, desired: names.map((name) => ({ name, addresses: ['127.0.0.1'] })), previouslyOwned: [] });
    const accountKeyPem = await createAccountKey();
    let accountUrl: string | undefined;
    for (const name of names) {
      const t0 = performance.now();
      const c = await issueAcmeCertificate({ directoryUrl: pebble.directoryUrl, directoryCaPem: pebble.listenerCaPem, accountKeyPem, accountUrl, dnsNames: [name], responder });
      acme.push(performance.now() - t0);
      accountUrl = c.accountUrl; // the first includes the account's registration
    }
  } finally {
    await Promise.all([pebble.stop(), traefik.stop(), new Promise((r) => server.close(r)), bind.stop()]);
  }
  process.stdout.write(`${line('certificate issuance, internal CA (EC P-256, in process)', internal)}\n`);
  process.stdout.write(`${line('certificate issuance, Pebble ACME (order, HTTP-01, finalize)', acme)}   (first includes registering the account)\n`);
}

await main();
