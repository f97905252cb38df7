// The MCP endpoint beyond loopback, as an analyst's laptop elsewhere on the private
// network would reach it: `mlink up --listen` on an address of this machine that is not
// loopback (one end of a veth pair), HTTPS with a certificate the operator's CA signed,
// and an SDK client inside a network namespace (the laptop) at the other end that
// connects over TLS and lists the tools. A wrong Host is refused there too.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { must, run } from '../../infra/proc.js';
import { runId } from '../support/infra.js';
import { removeCluster, removeHome, startUp, stopUp, type Up } from '../support/mlink-up.js';
import { makeCertificate, type TestCertificate } from '../support/tls.js';

const cluster = `lsn${runId}`.slice(0, 30);
const ns = `mcp-${runId}`;
const tag = runId.slice(-7);
const [hostIf, nsIf] = [`mh${tag}`, `mn${tag}`];
// A /30 in RFC 2544 benchmark space (198.18.0.0/15), picked per run so parallel runs differ.
const n = parseInt(runId.slice(-4), 16) % 250;
const [hostIp, laptopIp] = [`198.19.${n}.1`, `198.19.${n}.2`];
let up: Up;
let certs: TestCertificate;
let dir: string;

async function laptop(mode: 'tools' | 'host', url: string, host?: string): Promise<Record<string, unknown>> {
  const r = await run('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', 'test/fixtures/mcp-client.ts', mode, url, ...(host ? [host] : [])], {
    env: { ...process.env, MLINK_TOKEN: up.token, NODE_EXTRA_CA_CERTS: certs.ca },
  });
  if (r.code !== 0) throw new Error(`the laptop's client failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mlink-listen-'));
  await must('ip', ['netns', 'add', ns]);
  await must('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf]);
  await must('ip', ['link', 'set', nsIf, 'netns', ns]);
  await must('ip', ['addr', 'add', `${hostIp}/30`, 'dev', hostIf]);
  await must('ip', ['link', 'set', hostIf, 'up']);
  await must('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
  await must('ip', ['netns', 'exec', ns, 'ip', 'addr', 'add', `${laptopIp}/30`, 'dev', nsIf]);
  await must('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', nsIf, 'up']);
  certs = await makeCertificate(dir, { ips: [hostIp], dns: ['mlink.test'] });
  up = await startUp({ cluster, args: ['--listen', hostIp, '--tls-cert', certs.cert, '--tls-key', certs.key] });
}, 120_000);

afterAll(async () => {
  if (up) {
    await stopUp(up);
    await removeCluster(cluster);
    removeHome(up);
  }
  await run('ip', ['link', 'del', hostIf]);
  await run('ip', ['netns', 'del', ns]);
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe('mlink up --listen with TLS, reached from another host on the network', () => {
  it('prints an https endpoint on the listen address and the certificate it serves', () => {
    expect(up.url).toMatch(new RegExp(`^https://${hostIp.replace(/\./g, '\\.')}:\\d+/mcp$`));
    expect(up.output()).toMatch(/certificate {4}.*server\.pem \(valid until .*\); Host names allowed: .*198\.19\.\d+\.1.*mlink\.test/);
  });

  it('an SDK client in another network namespace connects over TLS and lists the tools', async () => {
    const got = await laptop('tools', up.url);
    expect(got.tools).toEqual(expect.arrayContaining(['create_app', 'get_app', 'whoami']));
    expect(got.whoami).toMatchObject({ name: 'agent', access: 'write' });
  }, 60_000);

  it('refuses a Host name that is not this endpoint\'s, from there too', async () => {
    const port = new URL(up.url).port;
    const evil = await laptop('host', up.url, `rebind.evil.example:${port}`);
    expect(evil.status).toBe(403);
    expect(String(evil.body)).toContain('is not allowed');
    expect(await laptop('host', up.url, `mlink.test:${port}`)).toMatchObject({ status: 200 });
  }, 60_000);

  it('does not listen on loopback or answer plain HTTP there: the endpoint is the one address, over TLS only', async () => {
    const port = new URL(up.url).port;
    const plain = await run('ip', ['netns', 'exec', ns, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', `http://${hostIp}:${port}/mcp`]);
    expect(plain.stdout).not.toMatch(/^2/);
    const loop = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', `http://127.0.0.1:${port}/mcp`]);
    expect(loop.stdout).toBe('000');
  });
});
