// A real BIND 9 (Debian's bind9) for DNS tests: installed when missing, started on a free
// loopback port with one test zone that takes RFC 2136 updates signed by a TSIG key, and
// stopped by the test. Its files live in a temp dir.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { must, run } from '../../infra/proc.js';
import type { TsigKey } from '../../reconciler/dns/tsig.js';
import { startDaemon, waitReady } from './daemon.js';
import { freeTcpUdpPort } from './ports.js';

export interface Bind9 { host: string; port: number; zone: string; tsig: TsigKey; dir: string; dig(args: string[]): Promise<string>; stop(): Promise<void> }

async function installed(pkg: string): Promise<boolean> {
  const r = await run('dpkg-query', ['-W', '-f=${Status}', pkg]);
  return r.code === 0 && r.stdout.includes('install ok installed');
}

/** apt-get install bind9 dnsutils, once: a second call sees them installed and does nothing. */
export async function ensureBind9(): Promise<void> {
  const missing = [];
  for (const p of ['bind9', 'dnsutils']) if (!(await installed(p))) missing.push(p);
  if (missing.length === 0) return;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await must('apt-get', ['update', '-qq'], { env });
  await must('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env });
}

/** `zoneRecords`: extra zone-file lines (records that exist before ml.ink, say). */
export async function startBind9(opts: { zone?: string; zoneRecords?: string[] } = {}): Promise<Bind9> {
  await ensureBind9();
  const zone = opts.zone ?? 'internal.test';
  const dir = mkdtempSync(join(tmpdir(), 'mlink-bind9-'));
  const port = await freeTcpUdpPort();
  const tsig: TsigKey = { name: 'mlink-test', algorithm: 'hmac-sha256', secret: randomBytes(32).toString('base64') };
  writeFileSync(join(dir, 'zone.db'), [
    '$TTL 300',
    `@ IN SOA ns.${zone}. hostmaster.${zone}. 1 3600 600 86400 300`,
    `@ IN NS ns.${zone}.`,
    'ns IN A 127.0.0.1',
    ...(opts.zoneRecords ?? []),
    '',
  ].join('\n'));
  writeFileSync(join(dir, 'named.conf'), `
key "${tsig.name}" { algorithm hmac-sha256; secret "${tsig.secret}"; };
options {
  directory "${dir}";
  pid-file "${dir}/named.pid";
  session-keyfile "${dir}/session.key";
  managed-keys-directory "${dir}";
  listen-on port ${port} { 127.0.0.1; };
  listen-on-v6 { none; };
  recursion no;
  dnssec-validation no;
  notify no;
};
controls { };
zone "${zone}" { type primary; file "${dir}/zone.db"; allow-update { key "${tsig.name}"; }; };
`);
  const d = startDaemon('named', 'named', ['-g', '-c', join(dir, 'named.conf')], join(dir, 'named.log'));
  const dig = async (args: string[]): Promise<string> => (await must('dig', ['@127.0.0.1', '-p', String(port), '+short', '+time=2', '+tries=1', ...args])).trim();
  // dig prints time-outs on stdout too, so readiness is the SOA itself, after named says it runs.
  await waitReady(d, async () => /\brunning\b/.test(d.log()) && (await run('dig', ['@127.0.0.1', '-p', String(port), '+short', '+time=1', '+tries=1', zone, 'SOA'])).stdout.startsWith(`ns.${zone}.`));
  return {
    host: '127.0.0.1', port, zone, tsig, dir, dig,
    async stop() { await d.stop(); rmSync(dir, { recursive: true, force: true }); },
  };
}
