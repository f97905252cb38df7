// Test hosts are machines of their own as far as ml.ink can tell: their own address, host
// key and dockerd; runc and runsc (gVisor) containers run inside; a published port answers
// on the host's address from this machine; iptables inside works (egress rules go there).
// Everything is done through SshHost, as the product would; `docker exec` only checks facts.
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SshHost } from '../../reconciler/hosts/ssh-host.js';
import { probeHostKey } from '../../reconciler/hosts/ssh-keys.js';
import { cfg, eventually, runId, testLabel } from '../support/infra.js';
import { execIn, loadImage, removeTestHosts, startTestHost, type TestHost } from '../support/test-hosts.js';

const BUSYBOX = cfg.images.busybox;
const label = { [testLabel]: runId };
let one: TestHost;
let two: TestHost;
let bare: TestHost;
let host: SshHost;

async function runTo(c: Docker.Container): Promise<string> {
  await c.start();
  await c.wait();
  const raw = await c.logs({ stdout: true, stderr: true }) as unknown as Buffer;
  let out = '';
  for (let at = 0; at + 8 <= raw.length; at += 8 + raw.readUInt32BE(at + 4)) out += raw.subarray(at + 8, at + 8 + raw.readUInt32BE(at + 4)).toString();
  return out;
}

async function get(url: string, timeoutMs = 2000): Promise<{ status: number; body: string } | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.status, body: await res.text() };
  } catch {
    return undefined;
  }
}

beforeAll(async () => {
  const started = Date.now();
  [one, two, bare] = await Promise.all([startTestHost({ name: 'th-one' }), startTestHost({ name: 'th-two' }), startTestHost({ name: 'th-bare', bare: true })]);
  console.log(`three test hosts up in ${Date.now() - started} ms`);
  host = one.connect();
  await loadImage(host, BUSYBOX);
});

afterAll(async () => {
  await host?.close();
  await removeTestHosts();
});

describe('test hosts', () => {
  it('are machines of their own: addresses, host keys and Docker daemons differ', async () => {
    expect(new Set([one.address, two.address, bare.address]).size).toBe(3);
    expect(new Set([one.hostKey, two.hostKey, bare.hostKey]).size).toBe(3);
    for (const h of [one, two, bare]) expect(await probeHostKey(h.address)).toBe(h.hostKey);
    const other = two.connect();
    try {
      expect((await other.docker.info()).Name).toBe('th-two');
      expect((await host.docker.info()).Name).toBe('th-one');
      expect((await other.docker.listImages()).flatMap((i) => i.RepoTags ?? [])).not.toContain(BUSYBOX);
    } finally {
      await other.close();
    }
  });

  it('run runc and runsc containers; under runsc the kernel is gVisor\'s', async () => {
    const runc = await host.docker.createContainer({ Image: BUSYBOX, Labels: label, Cmd: ['sh', '-c', 'dmesg 2>&1 | head -n 3; echo ran'] });
    const runsc = await host.docker.createContainer({ Image: BUSYBOX, Labels: label, Cmd: ['sh', '-c', 'dmesg 2>&1 | head -n 3; echo ran'], HostConfig: { Runtime: 'runsc' } });
    const [a, b] = [await runTo(runc), await runTo(runsc)];
    expect(a).toMatch(/ran\n$/);
    expect(a).not.toContain('gVisor');
    expect(b).toContain('Starting gVisor');
    expect(b).toMatch(/ran\n$/);
    await Promise.all([runc.remove({ force: true }), runsc.remove({ force: true })]);
  });

  it('publish ports on their own address, and iptables inside them decides what reaches a container', async () => {
    const c = await host.docker.createContainer({
      Image: BUSYBOX, Labels: label, ExposedPorts: { '8080/tcp': {} },
      Cmd: ['sh', '-c', 'mkdir -p /www && echo "from inside th-one" > /www/index.html && exec httpd -f -p 8080 -h /www'],
      HostConfig: { Runtime: 'runsc', PortBindings: { '8080/tcp': [{ HostPort: '18080' }] } },
    });
    await c.start();
    const url = `http://${one.address}:18080/index.html`;
    const ok = await eventually('the published port answers from this machine', async () => ((await get(url))?.status === 200 ? true : undefined));
    expect(ok).toBe(true);
    expect((await get(url))?.body).toBe('from inside th-one\n');
    // A rule in DOCKER-USER, as the egress rules are placed, cuts the container off; removing it restores it.
    const rule = ['DOCKER-USER', '-p', 'tcp', '--dport', '8080', '-j', 'DROP'];
    expect((await host.run({ argv: ['iptables', '-w', '-I', ...rule] })).code).toBe(0);
    expect(await get(url, 1000)).toBeUndefined();
    expect((await host.run({ argv: ['iptables', '-w', '-D', ...rule] })).code).toBe(0);
    expect((await get(url))?.status).toBe(200);
    await c.remove({ force: true });
  });

  it('die hard and come back like a reboot: same address and key, Docker\'s data kept, the same SshHost reconnects', async () => {
    await host.run({ argv: ['true'] });
    await one.kill();
    const down = Date.now();
    const err = await host.run({ argv: ['true'] }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/host th-one/);
    expect(Date.now() - down).toBeLessThan(30_000);
    await one.restart();
    expect(await probeHostKey(one.address)).toBe(one.hostKey);
    expect((await host.run({ argv: ['hostname'] })).stdout).toBe('th-one\n');
    expect((await host.docker.getImage(BUSYBOX).inspect()).RepoTags).toContain(BUSYBOX);
  });

  it('a bare host answers over SSH and has no Docker yet', async () => {
    const b = bare.connect();
    try {
      expect((await b.run({ argv: ['hostname'] })).stdout).toBe('th-bare\n');
      expect((await b.run({ argv: ['sh', '-c', 'command -v dockerd runsc iptables'] })).code).not.toBe(0);
      expect((await b.run({ argv: ['sh', '-c', 'command -v apt-get ip'] })).code).toBe(0);
      await expect(b.docker.ping()).rejects.toThrow(/host th-bare: no Docker answering on \/var\/run\/docker\.sock/);
    } finally {
      await b.close();
    }
    expect((await execIn(bare.containerId, ['sh', '-c', 'test -e /var/run/docker.sock || echo none'])).stdout).toBe('none\n');
  });
});
