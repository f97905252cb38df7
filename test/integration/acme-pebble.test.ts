// ACME end to end, offline: ml.ink's client orders a certificate from Pebble; Pebble
// resolves the name through the test's bind9 (a record ml.ink's own RFC 2136 client made)
// and validates HTTP-01 through a real Traefik, whose challenge router reaches ml.ink's
// responder ahead of the app's allow-list and redirect. The certificate then serves the app.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../infra/proc.js';
import { syncRecords } from '../../reconciler/dns/registry.js';
import { acmeChallengeConfig, edgeTlsConfig, renderDynamicYaml, type EdgeTlsSpec, type TraefikDynamic } from '../../reconciler/edge/tls-config.js';
import { createAccountKey, createChallengeResponder, issueAcmeCertificate, registerAcmeAccount, type AcmeCertificate } from '../../reconciler/tls/acme.js';
import { parseCertificate } from '../../reconciler/tls/cert-info.js';
import { startBind9, type Bind9 } from '../support/bind9.js';
import { eventually } from '../support/infra.js';
import { startPebble, type TestPebble } from '../support/pebble.js';
import { httpGet, httpsGet, startBackend } from '../support/tls-client.js';
import { startTraefik, type TestTraefik } from '../support/traefik-edge.js';

const host = 'shop.internal.test';
let bind: Bind9;
let traefik: TestTraefik;
let pebble: TestPebble;
let backend: Awaited<ReturnType<typeof startBackend>>;
let responderServer: Server;
let responderUrl = '';
let accountKeyPem = '';
let accountUrl: string | undefined;
const responder = createChallengeResponder();
/** What reached ml.ink's responder through Traefik. */
const served: Array<{ path: string; forwardedHost: string; status: number }> = [];
const tmp = mkdtempSync(join(tmpdir(), 'mlink-acme-'));

function writeApp(spec: Partial<EdgeTlsSpec>): void {
  const service: TraefikDynamic = { http: { routers: {}, services: { shop: { loadBalancer: { servers: [{ url: backend.url }] } } } } };
  traefik.writeDynamic('shop.yaml', renderDynamicYaml(edgeTlsConfig({
    router: 'shop', service: 'shop', hosts: [host], allowCidrs: ['127.0.0.2/32'], redirectToHttps: true, httpsPort: traefik.websecurePort, ...spec,
  }), service));
}

async function issue(names: string[]): Promise<AcmeCertificate> {
  const c = await issueAcmeCertificate({ directoryUrl: pebble.directoryUrl, directoryCaPem: pebble.listenerCaPem, accountKeyPem, accountUrl, dnsNames: names, responder });
  accountUrl = c.accountUrl;
  return c;
}

beforeAll(async () => {
  bind = await startBind9();
  traefik = await startTraefik();
  [pebble, backend, accountKeyPem] = await Promise.all([
    startPebble({ dnsServer: `127.0.0.1:${bind.port}`, httpPort: traefik.webPort }), startBackend('shop'), createAccountKey(),
  ]);
  responderServer = createServer((req, res) => {
    served.push({ path: req.url ?? '', forwardedHost: String(req.headers['x-forwarded-host'] ?? ''), status: 0 });
    responder.handle(req, res);
    served.at(-1)!.status = res.statusCode;
  });
  await new Promise<void>((r) => responderServer.listen(0, '127.0.0.1', () => r()));
  responderUrl = `http://127.0.0.1:${(responderServer.address() as { port: number }).port}`;
  const dns = await syncRecords({ server: { host: bind.host, port: bind.port }, zone: bind.zone, tsig: bind.tsig, owner: 'c1', desired: [{ name: host, addresses: ['127.0.0.1'] }], previouslyOwned: [] });
  expect(dns.applied).toHaveLength(1);
}, 240_000);
afterAll(async () => {
  await Promise.all([traefik?.stop(), pebble?.stop(), bind?.stop(), backend?.close(), new Promise((r) => (responderServer ? responderServer.close(r) : r(undefined)))]);
  rmSync(tmp, { recursive: true, force: true });
});

describe('ACME through Pebble and Traefik', () => {
  it('fails to issue while the challenge meets the app\'s allow-list: Pebble really validates', async () => {
    writeApp({});
    await eventually('app routed', async () => ((await httpGet({ host, port: traefik.webPort, path: '/.well-known/acme-challenge/x' })).status === 403 ? true : undefined));
    const err = await issue([host]).then(() => undefined, (e: Error) => e.message);
    expect(err).toMatch(/ACME .*certificate for shop.internal.test not issued: .*403/);
    expect(served).toEqual([]); // the allow-list stopped Pebble before the responder
  });

  it('issues a certificate once the challenge router is in, and the edge serves it', async () => {
    traefik.writeDynamic('acme-challenge.yaml', renderDynamicYaml(acmeChallengeConfig({ router: 'mlink-acme', responderUrl })));
    await eventually('challenge routed', async () => ((await httpGet({ host, port: traefik.webPort, path: '/.well-known/acme-challenge/x' })).status === 404 ? true : undefined));
    served.length = 0; // forget the probe's 404
    const t0 = performance.now();
    const cert = await issue([host]);
    const ms = performance.now() - t0;
    process.stdout.write(`Pebble issuance (order, HTTP-01 through Traefik, finalize, download): ${ms.toFixed(0)} ms\n`);

    // Pebble fetched the token over HTTP through Traefik's web entrypoint, and got the key authorization.
    // (Pebble's VA fetches from several "perspectives", so more than once.)
    expect(served.length).toBeGreaterThan(0);
    expect(served.every((x) => x.status === 200 && x.forwardedHost.startsWith(host) && /^\/\.well-known\/acme-challenge\/[\w-]{20,}$/.test(x.path))).toBe(true);
    // The account is the same one on every call: registering a known key again gives its URL back.
    expect(await registerAcmeAccount({ directoryUrl: pebble.directoryUrl, directoryCaPem: pebble.listenerCaPem, accountKeyPem })).toBe(cert.accountUrl);
    const info = parseCertificate(cert.certPem);
    expect(info.dnsNames).toEqual([host]);
    expect(info.issuer).toMatch(/Pebble Intermediate/);
    writeFileSync(join(tmp, 'root.pem'), await pebble.rootPem());
    writeFileSync(join(tmp, 'chain.pem'), cert.chainPem);
    writeFileSync(join(tmp, 'leaf.pem'), cert.certPem);
    const v = await run('openssl', ['verify', '-CAfile', join(tmp, 'root.pem'), '-untrusted', join(tmp, 'chain.pem'), join(tmp, 'leaf.pem')]);
    expect(v.stdout.trim()).toBe(`${join(tmp, 'leaf.pem')}: OK`);

    writeApp({ allowCidrs: ['127.0.0.1/32'], certificate: { certPem: cert.chainPem, keyPem: cert.keyPem } });
    const root = await pebble.rootPem();
    const r = await eventually('HTTPS with the ACME certificate', async () => {
      const x = await httpsGet({ host, port: traefik.websecurePort, ca: root });
      return x.status === 200 ? x : undefined;
    });
    expect(r.serial).toBe(info.serial);
    expect(r.body).toBe(`shop ${host}:${traefik.websecurePort}\n`);
    const c = await run('curl', ['-sS', '--max-time', '5', '--cacert', join(tmp, 'root.pem'), '--resolve', `${host}:${traefik.websecurePort}:127.0.0.1`, `https://${host}:${traefik.websecurePort}/`]);
    expect(c.stdout).toBe(`shop ${host}:${traefik.websecurePort}\n`);
  });

  it('refuses a name the ACME server cannot resolve, with the server\'s reason', async () => {
    const err = await issue(['nodns.internal.test']).then(() => undefined, (e: Error) => e.message);
    expect(err).toMatch(/nodns.internal.test not issued: .*could not resolve URL "http:\/\/nodns.internal.test:\d+\/.well-known\/acme-challenge\//i);
  });
});
