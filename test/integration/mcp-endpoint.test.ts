// `mlink serve` as an operator starts it: HTTPS from a certificate and key they give, the
// Host names it answers to (loopback, its address, the certificate's names, --allow-host),
// and clear refusals of flags that would put bearer tokens on the network in clear text or
// that do not fit together. The client is an SDK client in its own process that trusts
// the operator's CA, as a user's would.
import { spawn } from 'node:child_process';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CA_CERT_FILE, CA_KEY_FILE, ensureClusterCa } from '../../reconciler/tls/ca-store.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../infra/proc.js';
import { issueToken } from '../../mcp/http.js';
import { makeCertificate, type TestCertificate } from '../support/tls.js';
import { tempState, type TempState } from '../support/state-repo.js';

let t: TempState;
let tokensFile: string;
let token: string;
let certs: TestCertificate;

const serve = (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
  run(process.execPath, ['bin/mlink.js', 'serve', '--repo', t.repo, '--tokens', tokensFile, ...args], { env: { ...process.env, MLINK_HOME: t.home } });

/** Starts `mlink serve` and hands back its URL and a stop function. */
async function started(args: string[]): Promise<{ url: string; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, ['bin/mlink.js', 'serve', '--repo', t.repo, '--tokens', tokensFile, ...args], { env: { ...process.env, MLINK_HOME: t.home }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const deadline = Date.now() + 20_000;
  while (!/^https?:\/\/\S+\/mcp$/m.test(out)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`mlink serve did not start: ${out}${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: /^(https?:\/\/\S+\/mcp)$/m.exec(out)![1]!,
    stop: async () => { const exited = new Promise((r) => child.once('exit', r)); child.kill('SIGTERM'); await exited; },
  };
}

/** The fixture client in its own process: its CA trust comes from NODE_EXTRA_CA_CERTS, as a user's would. */
async function client(mode: 'tools' | 'host', url: string, host?: string, trust = certs.ca): Promise<Record<string, unknown>> {
  const r = await run(process.execPath, ['--import', 'tsx', 'test/fixtures/mcp-client.ts', mode, url, ...(host ? [host] : [])], {
    env: { ...process.env, MLINK_TOKEN: token, NODE_EXTRA_CA_CERTS: trust },
  });
  if (r.code !== 0) throw new Error(`mcp-client ${mode} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
}

beforeAll(async () => {
  t = await tempState();
  tokensFile = join(t.home, 'tokens.json');
  token = await issueToken(tokensFile, { name: 'remote', projects: ['*'], mode: 'commit', access: 'read' });
  certs = await makeCertificate(t.home, { ips: ['127.0.0.1'], dns: ['mlink.test'] });
});
afterAll(() => t.cleanup());

describe('mlink serve beyond plain loopback HTTP', () => {
  it('serves HTTPS with the given certificate; an SDK client that trusts its CA lists the tools', async () => {
    const s = await started(['--listen', '127.0.0.1:0', '--tls-cert', certs.cert, '--tls-key', certs.key]);
    try {
      expect(s.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/mcp$/);
      const got = await client('tools', s.url);
      expect(got.tools).toEqual(expect.arrayContaining(['whoami', 'get_app', 'list_apps']));
      expect(got.whoami).toMatchObject({ name: 'remote', access: 'read' });
      // the certificate's names are Host names it answers to; others are refused (DNS rebinding)
      expect(await client('host', s.url, `mlink.test:${new URL(s.url).port}`)).toMatchObject({ status: 200 });
      const evil = await client('host', s.url, `evil.example:${new URL(s.url).port}`);
      expect(evil.status).toBe(403);
      expect(String(evil.body)).toContain('Host \\"evil.example');
      expect(await client('host', s.url, 'other.test')).toMatchObject({ status: 403 });
    } finally {
      await s.stop();
    }
  }, 60_000);

  it('answers to a name given with --allow-host, and still to no other', async () => {
    const s = await started(['--listen', '127.0.0.1:0', '--tls-cert', certs.cert, '--tls-key', certs.key, '--allow-host', 'MCP.Internal']);
    try {
      expect(await client('host', s.url, 'mcp.internal')).toMatchObject({ status: 200 });
      expect(await client('host', s.url, 'mcp.internal.evil.example')).toMatchObject({ status: 403 });
    } finally {
      await s.stop();
    }
  }, 60_000);

  it.each([
    ['a certificate without its key', ['--tls-cert', 'cert.pem'], /--tls-cert needs --tls-key FILE too/],
    ['--insecure-http on loopback', ['--listen', '127.0.0.1:7331', '--insecure-http'], /--insecure-http is only for a --listen address beyond loopback/],
    ['--listen beside --host', ['--listen', '127.0.0.1', '--host', '127.0.0.1'], /--listen and --host both say where to listen/],
    ['an address that is not HOST[:PORT]', ['--listen', 'fd00::1:7331'], /--listen "fd00::1:7331" is not HOST\[:PORT\]/],
    ['a Host name with a scheme', ['--allow-host', 'https://x.test'], /--allow-host "https:\/\/x\.test" is not a host name/],
  ])('refuses %s, naming the flag and the fix', async (_label, args, message) => {
    const r = await serve(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });

  it('beyond loopback without a certificate, takes one from the cluster\'s internal CA, and says how to make the CA when there is none', async () => {
    // A data dir without its CA (moved away, or from before mlink init made one): refused before listening, with the way to make one.
    const keep = join(t.home, 'ca-kept');
    mkdirSync(keep);
    for (const f of [CA_KEY_FILE, CA_CERT_FILE]) renameSync(join(t.keys, f), join(keep, f));
    const none = await serve(['--listen', '0.0.0.0:0']);
    for (const f of [CA_KEY_FILE, CA_CERT_FILE]) renameSync(join(keep, f), join(t.keys, f));
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no certificate for --listen 0\.0\.0\.0: the cluster's internal CA in .*keys cannot be read .*`mlink init` makes it, or give --tls-cert FILE --tls-key FILE/);
    const { ca } = await ensureClusterCa(t.keys);
    const root = join(t.home, 'cluster-root.pem');
    writeFileSync(root, ca.certPem);
    const s = await started(['--listen', '0.0.0.0:0']);
    try {
      // an address of this machine beyond loopback, in the certificate; the client trusts only the cluster's root
      expect(s.url).toMatch(/^https:\/\/(?!127\.)\d+\.\d+\.\d+\.\d+:\d+\/mcp$/);
      const got = await client('tools', s.url, undefined, root);
      expect(got.tools).toEqual(expect.arrayContaining(['whoami', 'list_apps']));
    } finally {
      await s.stop();
    }
  }, 60_000);

  it('refuses a key that does not belong to the certificate, before listening', async () => {
    // the CA's key is a real key, just not this certificate's
    const r = await serve(['--listen', '127.0.0.1:0', '--tls-cert', certs.cert, '--tls-key', certs.ca.replace('ca.pem', 'ca.key')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--tls-key .*ca\.key does not belong to the certificate in --tls-cert .*server\.pem/);
  });
});
