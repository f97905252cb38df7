// Pebble, Let's Encrypt's ACME test server, built from the Go module proxy into the data
// dir's bin (once; named with its version) and started by a test on free loopback ports.
// It resolves challenge names through the DNS server the test names and validates HTTP-01
// on `httpPort` (the test Traefik's web entrypoint). Validation is real: PEBBLE_VA_ALWAYS_VALID
// stays unset; only the VA's random 0-15 s sleep before validating is switched off.
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { infraConfig } from '../../infra/config.js';
import { must } from '../../infra/proc.js';
import { createRootCa, issueLeaf } from '../../reconciler/tls/ca.js';
import { startDaemon, waitReady } from './daemon.js';
import { freePort } from './ports.js';

export const PEBBLE_VERSION = 'v2.10.3';

export function pebbleBinary(): string {
  return join(infraConfig().dirs.bin, `pebble-${PEBBLE_VERSION}`);
}

/** `go install github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3` into the data dir's bin, unless it is there. */
export async function ensurePebble(): Promise<string> {
  const out = pebbleBinary();
  if (existsSync(out)) return out;
  mkdirSync(join(out, '..'), { recursive: true });
  const gobin = `${out}.gobin`;
  rmSync(gobin, { recursive: true, force: true });
  await must('go', ['install', '-trimpath', '-ldflags=-s -w', `github.com/letsencrypt/pebble/v2/cmd/pebble@${PEBBLE_VERSION}`], { env: { ...process.env, GOBIN: gobin, GOFLAGS: '-mod=mod' } });
  renameSync(join(gobin, 'pebble'), out);
  rmSync(gobin, { recursive: true, force: true });
  return out;
}

export interface TestPebble {
  directoryUrl: string;
  /** The root that signs Pebble's own HTTPS listener (trust it to talk ACME). */
  listenerCaPem: string;
  /** Pebble's issuing root and intermediate for this run (what issued certificates chain to). */
  rootPem(): Promise<string>;
  intermediatePem(): Promise<string>;
  log(): string;
  stop(): Promise<void>;
}

export async function startPebble(opts: { dnsServer: string; httpPort: number }): Promise<TestPebble> {
  const binary = await ensurePebble();
  const dir = mkdtempSync(join(tmpdir(), 'mlink-pebble-'));
  const [port, mgmt, tlsPort] = [await freePort(), await freePort(), await freePort()];
  const listenerCa = await createRootCa({ commonName: 'pebble listener test root' });
  const listener = await issueLeaf(listenerCa, ['pebble.test'], { ipAddresses: ['127.0.0.1'] });
  writeFileSync(join(dir, 'cert.pem'), listener.certPem);
  writeFileSync(join(dir, 'key.pem'), listener.keyPem, { mode: 0o600 });
  writeFileSync(join(dir, 'pebble.json'), JSON.stringify({
    pebble: {
      listenAddress: `127.0.0.1:${port}`, managementListenAddress: `127.0.0.1:${mgmt}`,
      certificate: join(dir, 'cert.pem'), privateKey: join(dir, 'key.pem'),
      httpPort: opts.httpPort, tlsPort, ocspResponderURL: '', externalAccountBindingRequired: false,
      retryAfter: { authz: 1, order: 1 }, keyAlgorithm: 'ecdsa',
      profiles: { default: { description: 'ml.ink tests', validityPeriod: 7_776_000 } },
    },
  }, null, 2));
  const d = startDaemon('pebble', binary, ['-config', join(dir, 'pebble.json'), '-dnsserver', opts.dnsServer], join(dir, 'pebble.log'),
    { ...process.env, PEBBLE_VA_NOSLEEP: '1' });
  const agent = new Agent({ ca: listenerCa.certPem });
  const get = (url: string): Promise<string> => new Promise((resolve, reject) => {
    request(url, { agent, timeout: 2000, headers: { 'user-agent': 'mlink-test' } }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => { body += c; }).on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: ${res.statusCode}`))));
    }).on('timeout', function (this: { destroy(e: Error): void }) { this.destroy(new Error(`${url}: no answer`)); }).on('error', reject).end();
  });
  const directoryUrl = `https://127.0.0.1:${port}/dir`;
  let lastErr = '';
  try {
    await waitReady(d, async () => (await get(directoryUrl).catch((e: Error) => { lastErr = e.message; return ''; })).includes('newOrder'));
  } catch (err) {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`${(err as Error).message}\nlast probe error: ${lastErr}`);
  }
  return {
    directoryUrl, listenerCaPem: listenerCa.certPem,
    rootPem: () => get(`https://127.0.0.1:${mgmt}/roots/0`),
    intermediatePem: () => get(`https://127.0.0.1:${mgmt}/intermediates/0`),
    log: d.log,
    async stop() { agent.destroy(); await d.stop(); rmSync(dir, { recursive: true, force: true }); },
  };
}
