// The internal CA, checked by tools that know nothing of ml.ink: openssl verifies its
// leaves, curl and node's TLS accept a real HTTPS server serving one, and refuse it without
// the root or for a name the leaf does not cover.
import { statSync, writeFileSync, mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { connect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../infra/proc.js';
import { createRootCa, issueLeaf } from '../../reconciler/tls/ca.js';
import { CA_REPO_PATH, ensureClusterCa } from '../../reconciler/tls/ca-store.js';
import { parseCertificate } from '../../reconciler/tls/cert-info.js';

const dir = mkdtempSync(join(tmpdir(), 'mlink-ca-'));
const keysDir = join(dir, 'keys');
const name = 'logistics.internal.test';
let server: Server;
let port = 0;
let rootFile = '';

beforeAll(async () => {
  const { ca } = await ensureClusterCa(keysDir);
  const leaf = await issueLeaf(ca, [name, 'www.logistics.internal.test']);
  rootFile = join(dir, 'root.pem');
  writeFileSync(rootFile, ca.certPem);
  writeFileSync(join(dir, 'leaf.pem'), leaf.certPem);
  server = createServer({ cert: leaf.certPem, key: leaf.keyPem }, (_req, res) => res.end('hello over tls\n'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  await new Promise((r) => server?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const curl = (host: string, extra: string[] = []): ReturnType<typeof run> =>
  run('curl', ['-sS', '--max-time', '5', '--resolve', `${host}:${port}:127.0.0.1`, ...extra, `https://${host}:${port}/`]);

function nodeTls(host: string, ca?: string): Promise<{ authorized: boolean; error?: string }> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, servername: host, ca, rejectUnauthorized: false }, () => {
      const err = s.authorizationError ? String(s.authorizationError) : undefined;
      const out = { authorized: s.authorized, ...(err ? { error: err } : {}) };
      s.end();
      resolve(out);
    });
    s.on('error', (e) => resolve({ authorized: false, error: e.message }));
  });
}

describe('internal CA', () => {
  it('keeps the root key in the keys dir at 0600 and hands the root certificate over for the state repo', async () => {
    const again = await ensureClusterCa(keysDir);
    expect(again.created).toBe(false);
    expect(statSync(again.keyFile).mode & 0o777).toBe(0o600);
    expect(again.change.path).toBe(CA_REPO_PATH);
    expect(again.change.content).toBe(readFileSync(rootFile, 'utf8'));
    expect(again.change.content).not.toContain('PRIVATE KEY');
    const info = parseCertificate(again.change.content);
    expect(info.isCa).toBe(true);
  });

  it('issues leaves that openssl verifies against the root, and not against another root', async () => {
    const ok = await run('openssl', ['verify', '-CAfile', rootFile, join(dir, 'leaf.pem')]);
    expect(ok.stdout.trim()).toBe(`${join(dir, 'leaf.pem')}: OK`);
    expect(ok.code).toBe(0);
    const other = await createRootCa({ commonName: 'someone else' });
    writeFileSync(join(dir, 'other.pem'), other.certPem);
    const bad = await run('openssl', ['verify', '-CAfile', join(dir, 'other.pem'), join(dir, 'leaf.pem')]);
    expect(bad.code).not.toBe(0);
    const leaf = parseCertificate(readFileSync(join(dir, 'leaf.pem'), 'utf8'));
    expect(leaf.dnsNames).toEqual([name, 'www.logistics.internal.test']);
    expect(leaf.issuer).toContain('ml.ink internal CA');
    const days = (leaf.notAfter.getTime() - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29.9);
    expect(days).toBeLessThan(30.1);
  });

  it('serves HTTPS that curl accepts with --cacert root.pem, and refuses without it', async () => {
    const ok = await curl(name, ['--cacert', rootFile]);
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toBe('hello over tls\n');
    const untrusted = await curl(name);
    expect(untrusted.code).toBe(60); // curl: peer certificate cannot be authenticated
    const wrongName = await curl('other.internal.test', ['--cacert', rootFile]);
    expect(wrongName.code).toBe(60);
    expect(wrongName.stderr).toMatch(/no alternative certificate subject name matches|does not match/);
  });

  it('is accepted by node tls with ca: root, and not with the system roots', async () => {
    const root = readFileSync(rootFile, 'utf8');
    expect(await nodeTls(name, root)).toEqual({ authorized: true });
    expect((await nodeTls(name)).authorized).toBe(false);
  });

  it('issues a leaf in milliseconds', async () => {
    const { ca } = await ensureClusterCa(keysDir);
    const times: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = performance.now();
      await issueLeaf(ca, [`app${i}.internal.test`]);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    const median = times[10]!;
    process.stdout.write(`internal CA leaf issuance: median ${median.toFixed(1)} ms, max ${times[19]!.toFixed(1)} ms over 20\n`);
    expect(median).toBeLessThan(200);
  });
});
