// HTTPS at the edge through a real Traefik of the test's own: the rendered routers serve
// the app with an internal-CA leaf given inline, plain HTTP redirects (or serves, when
// opted out), clients outside the allow-list get 403, and replacing the certificate while
// a client polls every 50 ms fails no request.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../infra/proc.js';
import { edgeTlsConfig, renderDynamicYaml, type EdgeTlsSpec, type TraefikDynamic } from '../../reconciler/edge/tls-config.js';
import { createRootCa, issueLeaf, type CaMaterial, type LeafCertificate } from '../../reconciler/tls/ca.js';
import { parseCertificate } from '../../reconciler/tls/cert-info.js';
import { eventually } from '../support/infra.js';
import { httpGet, httpsGet, startBackend } from '../support/tls-client.js';
import { startTraefik, type TestTraefik } from '../support/traefik-edge.js';

const host = 'logistics.internal.test';
const file = 'logistics.yaml';
let traefik: TestTraefik;
let backend: Awaited<ReturnType<typeof startBackend>>;
let ca: CaMaterial;
let leaf: LeafCertificate;
const tmp = mkdtempSync(join(tmpdir(), 'mlink-edge-tls-'));

function write(spec: Partial<EdgeTlsSpec>, cert = leaf): void {
  const service: TraefikDynamic = { http: { routers: {}, services: { logistics: { loadBalancer: { servers: [{ url: backend.url }] } } } } };
  traefik.writeDynamic(file, renderDynamicYaml(edgeTlsConfig({
    router: 'logistics', service: 'logistics', hosts: [host], allowCidrs: ['127.0.0.1/32'], redirectToHttps: true,
    httpsPort: traefik.websecurePort, certificate: { certPem: cert.certPem, keyPem: cert.keyPem }, ...spec,
  }), service));
}

const https = (from?: string): ReturnType<typeof httpsGet> => httpsGet({ host, port: traefik.websecurePort, ca: ca.certPem, from });
const http = (from?: string): ReturnType<typeof httpGet> => httpGet({ host, port: traefik.webPort, from });

beforeAll(async () => {
  ca = await createRootCa();
  leaf = await issueLeaf(ca, [host]);
  backend = await startBackend('logistics');
  traefik = await startTraefik();
});
afterAll(async () => {
  await traefik?.stop();
  await backend?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('edge TLS through Traefik', () => {
  it('serves HTTPS with the inline leaf to curl --cacert, and redirects plain HTTP', async () => {
    write({});
    const ok = await eventually('HTTPS 200', async () => { const r = await https(); return r.status === 200 ? r : undefined; });
    expect(ok.body).toBe(`logistics ${host}:${traefik.websecurePort}\n`);
    expect(ok.serial).toBe(parseCertificate(leaf.certPem).serial); // our leaf, not Traefik's default certificate

    writeFileSync(join(tmp, 'root.pem'), ca.certPem);
    const c = await run('curl', ['-sS', '--max-time', '5', '--cacert', join(tmp, 'root.pem'), '--resolve', `${host}:${traefik.websecurePort}:127.0.0.1`, `https://${host}:${traefik.websecurePort}/`]);
    expect(c.stderr).toBe('');
    expect(c.stdout).toBe(`logistics ${host}:${traefik.websecurePort}\n`);

    const r = await http();
    expect(r.status).toBe(301);
    expect(r.headers.location).toBe(`https://${host}:${traefik.websecurePort}/`);
    const followed = await run('curl', ['-sS', '-L', '--max-time', '5', '--cacert', join(tmp, 'root.pem'),
      '--resolve', `${host}:${traefik.webPort}:127.0.0.1`, '--resolve', `${host}:${traefik.websecurePort}:127.0.0.1`, `http://${host}:${traefik.webPort}/`]);
    expect(followed.stdout).toBe(`logistics ${host}:${traefik.websecurePort}\n`);
  });

  it('gives 403 to a client outside the allow-list, on HTTPS and HTTP, and 200 once it is let in', async () => {
    write({ allowCidrs: ['127.0.0.2/32'] });
    await eventually('outsider refused', async () => ((await https()).status === 403 ? true : undefined));
    expect((await https('127.0.0.1')).status).toBe(403);
    expect((await http('127.0.0.1')).status).toBe(403);
    expect((await https('127.0.0.2')).status).toBe(200);
    expect((await http('127.0.0.2')).status).toBe(301);

    write({ allowCidrs: ['127.0.0.1/32'] });
    await eventually('let in', async () => ((await https('127.0.0.1')).status === 200 ? true : undefined));
    expect((await https('127.0.0.2')).status).toBe(403);
  });

  it('serves plain HTTP too when the app opts out of the redirect', async () => {
    write({ redirectToHttps: false });
    const r = await eventually('HTTP 200', async () => { const x = await http(); return x.status === 200 ? x : undefined; });
    expect(r.body).toBe(`logistics ${host}:${traefik.webPort}\n`);
    expect((await https()).status).toBe(200);
    write({});
    await eventually('redirect back', async () => ((await http()).status === 301 ? true : undefined));
  });

  it('replaces the certificate while a client polls every 50 ms, with no failed request', async () => {
    write({});
    await eventually('HTTPS 200', async () => ((await https()).status === 200 ? true : undefined));
    const oldSerial = parseCertificate(leaf.certPem).serial;
    const renewed = await issueLeaf(ca, [host]);
    const newSerial = parseCertificate(renewed.certPem).serial;
    const seen: string[] = [];
    const failures: string[] = [];
    let stop = false;
    const poller = (async () => {
      // Bounded: at most 200 requests (10 s), a fresh TLS handshake each time.
      for (let i = 0; i < 200 && !stop; i++) {
        const started = Date.now();
        try {
          const r = await https();
          if (r.status !== 200) failures.push(`request ${i}: status ${r.status}`);
          else seen.push(r.serial ?? '?');
        } catch (e) {
          failures.push(`request ${i}: ${(e as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, Math.max(0, 50 - (Date.now() - started))));
      }
    })();
    await new Promise((r) => setTimeout(r, 500));
    write({}, renewed);
    await eventually('new certificate served', async () => (seen.at(-1) === newSerial ? true : undefined), 8000);
    await new Promise((r) => setTimeout(r, 1500));
    stop = true;
    await poller;
    expect(failures).toEqual([]);
    expect(seen[0]).toBe(oldSerial);
    expect(seen.at(-1)).toBe(newSerial);
    // Once the new one is out, the old one never comes back.
    expect(seen.slice(seen.indexOf(newSerial)).every((s) => s === newSerial)).toBe(true);
    expect(seen.length).toBeGreaterThan(30);
    process.stdout.write(`certificate swap: ${seen.length} requests, ${seen.filter((s) => s === oldSerial).length} on the old leaf, 0 failed\n`);
  });
});
