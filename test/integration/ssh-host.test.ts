// SshHost against a real sshd and dockerd: a test host (test/support/test-hosts.ts) is a
// machine of its own, reached only over SSH. Every Docker call the reconciler makes goes
// over the one pooled connection; commands, files and HTTP "as the host makes it" too.
// The pinned host key is enforced, and a cut connection is reconnected.
import type Docker from 'dockerode';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import { registryAddress } from '../../infra/config.js';
import { ensurePulled, follow, push, registryHas, tarContext } from '../../reconciler/image-builds/docker-steps.js';
import { HostKeyMismatchError, SshHost } from '../../reconciler/hosts/ssh-host.js';
import { probeHostKey } from '../../reconciler/hosts/ssh-keys.js';
import { cfg, eventually, runId, testLabel } from '../support/infra.js';
import { execIn, loadImage, removeTestHosts, startTestHost, type TestHost } from '../support/test-hosts.js';
import { relay } from '../support/zero-trust.js';

const BUSYBOX = cfg.images.busybox;
const label = { [testLabel]: runId };
let th: TestHost;
let host: SshHost;
const relays: Array<Awaited<ReturnType<typeof relay>>> = [];

async function deleteFromRegistry(repo: string, tag: string): Promise<void> {
  const base = `http://${registryAddress()}/v2/${repo}/manifests`;
  const head = await fetch(`${base}/${tag}`, { method: 'HEAD', headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json' } });
  const digest = head.headers.get('docker-content-digest');
  if (digest) await fetch(`${base}/${digest}`, { method: 'DELETE' });
}

async function sshConnections(): Promise<number> {
  const r = await execIn(th.containerId, ['ss', '-Htn', 'state', 'established', '( sport = :22 )']);
  return r.stdout.split('\n').filter(Boolean).length;
}

async function text(stream: NodeJS.ReadableStream): Promise<string> {
  let out = '';
  for await (const chunk of stream) out += chunk.toString();
  return out;
}

/** Docker's multiplexed log frames (8-byte header: stream, 0, 0, 0, length) split into stdout and stderr. */
function demuxed(buf: Buffer): { out: string; err: string } {
  const parts = { out: '', err: '' };
  for (let at = 0; at + 8 <= buf.length;) {
    const n = buf.readUInt32BE(at + 4);
    parts[buf[at] === 2 ? 'err' : 'out'] += buf.subarray(at + 8, at + 8 + n).toString();
    at += 8 + n;
  }
  return parts;
}

async function execOutput(c: Docker.Container, cmd: string[], input?: string): Promise<{ out: string; err: string; code: number | null }> {
  const exec = await c.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true, AttachStdin: input !== undefined });
  const stream = (await exec.start({ hijack: true, stdin: input !== undefined })) as Duplex;
  const out = new PassThrough();
  const err = new PassThrough();
  c.modem.demuxStream(stream, out, err);
  if (input !== undefined) stream.end(input);
  await new Promise((resolve) => stream.on('end', resolve).on('close', resolve));
  out.end();
  err.end();
  return { out: await text(out), err: await text(err), code: (await exec.inspect()).ExitCode };
}

async function webContainer(name: string, publish?: string): Promise<Docker.Container> {
  const c = await host.docker.createContainer({
    name: `${name}-${runId}`, Image: BUSYBOX, Labels: label,
    Cmd: ['sh', '-c', 'mkdir -p /www && echo "hello from $(hostname)" > /www/index.html && exec httpd -f -p 8080 -h /www'],
    ...(publish ? { ExposedPorts: { '8080/tcp': {} }, HostConfig: { PortBindings: { '8080/tcp': [{ HostIp: '127.0.0.1', HostPort: publish }] } } } : {}),
  });
  await c.start();
  return c;
}

beforeAll(async () => {
  th = await startTestHost({ name: 'ssh1' });
  host = th.connect();
  await loadImage(host, BUSYBOX);
});

afterAll(async () => {
  await host?.close();
  await removeTestHosts();
  await Promise.all(relays.map((r) => r.close()));
});

describe('an SSH host: Docker over the pooled connection', () => {
  it('talks to the test host\'s own dockerd, not this machine\'s, with runsc registered', async () => {
    expect(await host.docker.ping()).toBeTruthy();
    const info = await host.docker.info();
    expect(info.Name).toBe('ssh1');
    expect(Object.keys(info.Runtimes as object)).toContain('runsc');
    expect((await host.docker.version()).ApiVersion).toMatch(/^1\.\d+$/);
  });

  it('keeps one SSH connection for many concurrent calls', async () => {
    await Promise.all(Array.from({ length: 30 }, () => host.docker.listContainers({ all: true })));
    await Promise.all(Array.from({ length: 20 }, (_, i) => host.run({ argv: ['echo', String(i)] })));
    expect(await sshConnections()).toBe(1);
  });

  it('creates, starts, inspects, lists, renames and removes containers; exec with output and stdin; logs', async () => {
    const c = await host.docker.createContainer({ name: `life-${runId}`, Image: BUSYBOX, Labels: label, Cmd: ['sh', '-c', 'echo started; echo oops >&2; exec sleep 600'] });
    await c.start();
    expect((await c.inspect()).State.Running).toBe(true);
    const listed = await host.docker.listContainers({ filters: { label: [`${testLabel}=${runId}`], name: [`life-${runId}`] } });
    expect(listed.map((x) => x.Id)).toEqual([c.id]);
    await c.rename({ name: `life2-${runId}` });
    expect((await c.inspect()).Name).toBe(`/life2-${runId}`);

    const ran = await execOutput(c, ['sh', '-c', 'echo out; echo err >&2; exit 7']);
    expect(ran).toEqual({ out: 'out\n', err: 'err\n', code: 7 });
    const piped = await execOutput(c, ['sh', '-c', 'tr a-z A-Z; echo done'], 'through stdin\n');
    expect(piped.out).toBe('THROUGH STDIN\ndone\n');

    expect(demuxed(await c.logs({ stdout: true, stderr: true, follow: false }) as unknown as Buffer)).toEqual({ out: 'started\n', err: 'oops\n' });

    // Following: a line written after the stream opened arrives on it.
    const followed = await c.logs({ stdout: true, follow: true, tail: 0 }) as unknown as NodeJS.ReadableStream & { destroy(): void };
    let got = Buffer.alloc(0);
    const arrived = new Promise<void>((resolve) => followed.on('data', (d: Buffer) => { got = Buffer.concat([got, d]); if (demuxed(got).out.includes('later\n')) resolve(); }));
    await execOutput(c, ['sh', '-c', 'echo later > /proc/1/fd/1']);
    await arrived;
    followed.destroy();
    expect(demuxed(got).out).toBe('later\n');

    await c.remove({ force: true });
    await expect(c.inspect()).rejects.toThrow(/no such container/i);
  });

  it('streams events: a container dying is seen with its exit code', async () => {
    const events = await host.docker.getEvents({ filters: { type: ['container'], event: ['die'], label: [`${testLabel}=${runId}`] } }) as unknown as NodeJS.ReadableStream & { destroy(): void };
    const seen = new Promise<{ Actor: { Attributes: Record<string, string> } }>((resolve) => {
      events.on('data', (d: Buffer) => resolve(JSON.parse(d.toString().split('\n')[0]!)));
    });
    const c = await host.docker.createContainer({ name: `dies-${runId}`, Image: BUSYBOX, Labels: label, Cmd: ['sh', '-c', 'exit 3'] });
    await c.start();
    const e = await seen;
    events.destroy();
    expect(e.Actor.Attributes.name).toBe(`dies-${runId}`);
    expect(e.Actor.Attributes.exitCode).toBe('3');
    await c.remove({ force: true });
  });

  it('leaves no channel open once a call is done: a finished exec, a destroyed logs or events stream', async () => {
    const c = await host.docker.createContainer({ name: `chan-${runId}`, Image: BUSYBOX, Labels: label, Cmd: ['sleep', '600'] });
    await c.start();
    for (let i = 0; i < 4; i++) expect((await execOutput(c, ['echo', String(i)])).out).toBe(`${i}\n`);
    const events = await host.docker.getEvents() as unknown as { destroy(): void };
    events.destroy();
    const logs = await c.logs({ stdout: true, follow: true }) as unknown as { destroy(): void };
    logs.destroy();
    await c.remove({ force: true });
    // sshd's only Unix socket left is its privilege-separation pair (no peer): none to Docker.
    await eventually('sshd holds no Docker connection', async () => {
      const r = await execIn(th.containerId, ['sh', '-c', `ss -Hxp | grep '"sshd"' | awk '$8 != 0' | wc -l`]);
      return r.stdout.trim() === '0' ? true : undefined;
    }, 5000);
  });

  it('creates, connects, inspects and removes networks; creates and removes volumes', async () => {
    const net = await host.docker.createNetwork({ Name: `net-${runId}`, Labels: label });
    const c = await webContainer('netted');
    await net.connect({ Container: c.id });
    const inspected = await net.inspect() as { Containers: Record<string, { IPv4Address: string }> };
    expect(Object.keys(inspected.Containers)).toEqual([c.id]);
    await net.disconnect({ Container: c.id });
    await c.remove({ force: true });
    await net.remove();
    expect((await host.docker.listNetworks({ filters: { name: [`net-${runId}`] } })).length).toBe(0);

    const vol = await host.docker.createVolume({ Name: `vol-${runId}`, Labels: label }) as unknown as { name: string };
    expect(vol.name).toBe(`vol-${runId}`);
    expect((await host.docker.listVolumes({ filters: { label: [`${testLabel}=${runId}`] } })).Volumes.map((v) => v.Name)).toEqual([`vol-${runId}`]);
    await host.docker.getVolume(`vol-${runId}`).remove();
  });

  it('loads, tags, lists, saves and removes images, and builds from a tar stream', async () => {
    const loaded = await host.docker.getImage(BUSYBOX).inspect();
    expect(loaded.Id).toBe((await import('../support/infra.js').then((m) => m.docker.getImage(BUSYBOX).inspect())).Id);
    await host.docker.getImage(BUSYBOX).tag({ repo: `mlink-test/again-${runId}`, tag: '1' });
    const names = (await host.docker.listImages()).flatMap((i) => i.RepoTags ?? []);
    expect(names).toContain(`mlink-test/again-${runId}:1`);
    const saved = await text(await host.docker.getImage(`mlink-test/again-${runId}:1`).get());
    expect(saved).toContain('manifest.json');
    await host.docker.getImage(`mlink-test/again-${runId}:1`).remove();

    const ctx = mkdtempSync(join(tmpdir(), 'ssh-build-'));
    try {
      writeFileSync(join(ctx, 'Dockerfile'), `FROM ${BUSYBOX}\nCOPY note.txt /note.txt\nRUN echo built >> /note.txt\n`);
      writeFileSync(join(ctx, 'note.txt'), 'from a tar stream\n');
      const stream = await host.docker.buildImage(tarContext(ctx), { t: `mlink-test/built-${runId}:1`, rm: true, forcerm: true });
      const lines: string[] = [];
      await follow(host.docker, stream, (e) => { if (typeof e.stream === 'string') lines.push(e.stream); if (e.error) lines.push(`error: ${String(e.error)}`); });
      expect(lines.join('')).toMatch(/Successfully tagged mlink-test\/built-/);
    } finally {
      rmSync(ctx, { recursive: true, force: true });
    }
    const c = await host.docker.createContainer({ Image: `mlink-test/built-${runId}:1`, Labels: label, Cmd: ['cat', '/note.txt'] });
    await c.start();
    await c.wait();
    expect(demuxed(await c.logs({ stdout: true }) as unknown as Buffer).out).toBe('from a tar stream\nbuilt\n');
    await c.remove({ force: true });
    await host.docker.getImage(`mlink-test/built-${runId}:1`).remove();
  });
  it('pushes to and pulls from a registry the host reaches on its network', async () => {
    // This machine's registry listens on loopback; a relay puts it on the test network's gateway.
    const r = await relay(th.gateway, 0, cfg.registry.port);
    relays.push(r);
    const at = `${th.gateway}:${(r.server.address() as AddressInfo).port}`;
    const repo = `mlink-test/ssh-${runId}`;
    await host.docker.getImage(BUSYBOX).tag({ repo: `${at}/${repo}`, tag: '1' });
    await push(host.docker, `${at}/${repo}:1`, () => undefined);
    expect(await registryHas(`${registryAddress()}/${repo}:1`)).toBe(true);
    await host.docker.getImage(`${at}/${repo}:1`).remove();
    expect(await ensurePulled(host.docker, `${at}/${repo}:1`)).toBe(true);
    expect((await host.docker.getImage(`${at}/${repo}:1`).inspect()).Id).toBe((await host.docker.getImage(BUSYBOX).inspect()).Id);
    await host.docker.getImage(`${at}/${repo}:1`).remove();
    await deleteFromRegistry(repo, '1');
  });
});

describe('an SSH host: commands, files, HTTP', () => {
  it('runs argv exactly: spaces, quotes, $(), ; and backticks stay arguments', async () => {
    const hostile = ['a b', `it's "quoted"`, '$(touch /tmp/pwned)', '; touch /tmp/pwned2', '`touch /tmp/pwned3`', '$HOME', '', 'new\nline', '*'];
    const r = await host.run({ argv: ['printf', '[%s]\n', ...hostile] });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(hostile.map((a) => `[${a}]\n`).join(''));
    expect((await execIn(th.containerId, ['sh', '-c', 'ls /tmp/pwned* 2>/dev/null | wc -l'])).stdout.trim()).toBe('0');
  });

  it('gives stdin, the exit code and both outputs; a missing program exits 127', async () => {
    expect(await host.run({ argv: ['sh', '-c', 'cat; echo warn >&2; exit 4'], input: 'in\n' })).toEqual({ code: 4, stdout: 'in\n', stderr: 'warn\n' });
    expect((await host.run({ argv: ['no-such-program-here'] })).code).toBe(127);
    await expect(host.run({ argv: [] })).rejects.toThrow(/argv is empty/);
  });

  it('writes files atomically with their mode, reads, lists and removes them, making directories', async () => {
    const dir = `/srv/mlink-${runId}/routes/deep`;
    await host.files.write(`${dir}/a.yaml`, 'one: 1\n', { mode: 0o600 });
    expect(await host.files.read(`${dir}/a.yaml`)).toBe('one: 1\n');
    expect((await execIn(th.containerId, ['stat', '-c', '%a', `${dir}/a.yaml`])).stdout.trim()).toBe('600');
    // Replace under a reader: it sees the old file or the new one, never a part of either.
    const a = `${'a'.repeat(300_000)}\n`;
    const b = `${'b'.repeat(300_000)}\n`;
    await host.files.write(`${dir}/a.yaml`, a);
    const reader = execIn(th.containerId, ['sh', '-c', `touch ${dir}/.reading; while [ ! -e ${dir}/.stop ]; do md5sum < ${dir}/a.yaml; done | sort -u`]);
    await eventually('the reader runs', async () => ((await host.files.list(dir)).includes('.reading') ? true : undefined));
    for (let i = 0; i < 20; i++) await host.files.write(`${dir}/a.yaml`, i % 2 ? a : b);
    await host.files.write(`${dir}/.stop`, '');
    const seen = (await reader).stdout.trim().split('\n').map((l) => l.split(' ')[0]).sort();
    const md5 = (t: string): string => createHash('md5').update(t).digest('hex');
    expect(seen).toEqual([md5(a), md5(b)].sort());
    await host.files.remove(`${dir}/.reading`);
    await host.files.remove(`${dir}/.stop`);
    expect((await host.files.read(`${dir}/a.yaml`)) === a).toBe(true);
    expect((await execIn(th.containerId, ['stat', '-c', '%a', `${dir}/a.yaml`])).stdout.trim()).toBe('644');
    expect((await execIn(th.containerId, ['sh', '-c', `ls -a ${dir} | grep -c tmp`])).stdout.trim()).toBe('0');
    await host.files.write(`${dir}/b.yaml`, 'two\n');
    expect(await host.files.list(dir)).toEqual(['a.yaml', 'b.yaml']);
    await host.files.remove(`${dir}/a.yaml`);
    await host.files.remove(`${dir}/a.yaml`);
    expect(await host.files.list(dir)).toEqual(['b.yaml']);
    expect(await host.files.read(`${dir}/a.yaml`)).toBeNull();
    expect(await host.files.list(`/srv/mlink-${runId}/none`)).toEqual([]);
    await expect(host.files.write('/proc/mlink-no', 'x')).rejects.toThrow(/host ssh1: writing \/proc\/mlink-no over SFTP/);
  });

  it('makes HTTP requests as the host does: to a container\'s bridge address and to its own loopback', async () => {
    const c = await webContainer('web', '18181');
    const ip = (await c.inspect()).NetworkSettings.Networks.bridge!.IPAddress;
    const viaBridge = await eventually('busybox httpd answers on its bridge address', async () => {
      const r = await host.request(`http://${ip}:8080/index.html`).catch(() => undefined);
      return r?.status === 200 ? r : undefined;
    });
    expect(viaBridge.body).toBe(`hello from ${c.id.slice(0, 12)}\n`);
    const viaLoopback = await host.request('http://127.0.0.1:18181/index.html');
    expect(viaLoopback.status).toBe(200);
    expect(viaLoopback.body).toBe(viaBridge.body);
    await expect(host.request('http://127.0.0.1:1/')).rejects.toThrow(/connect to 127\.0\.0\.1:1|refused/i);
    await c.remove({ force: true });
  });
});

describe('an SSH host: a dropped connection, a changed host key', () => {
  it('reconnects once after the connection is cut, and an open events stream ends', async () => {
    await host.docker.ping();
    const events = await host.docker.getEvents() as unknown as NodeJS.ReadableStream;
    const ended = new Promise<string>((resolve) => { events.on('end', () => resolve('end')); events.on('error', () => resolve('error')); events.on('close', () => resolve('close')); });
    // Kill the sshd processes serving this connection (found by its port), not sshd itself.
    const ss = (await execIn(th.containerId, ['ss', '-Htnp', 'state', 'established', '( sport = :22 )'])).stdout;
    const pids = [...ss.matchAll(/pid=(\d+)/g)].map((m) => m[1]!);
    expect(pids.length).toBeGreaterThan(0);
    await execIn(th.containerId, ['kill', '-9', ...pids]);
    expect(await ended).toMatch(/end|error|close/);
    expect((await host.docker.info()).Name).toBe('ssh1');
    expect((await host.run({ argv: ['echo', 'back'] })).stdout).toBe('back\n');
    expect(await host.files.list('/')).toContain('etc');
    expect(await sshConnections()).toBe(1);
  });

  it('shows the host key as ssh-keygen -lf does, and refuses a changed one naming both fingerprints, running nothing', async () => {
    expect(await probeHostKey(th.address, 22)).toBe(th.hostKey);
    const old = th.hostKey;
    await execIn(th.containerId, ['sh', '-c', 'rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && kill -HUP "$(cat /run/sshd.pid)"']);
    const now = (await execIn(th.containerId, ['ssh-keygen', '-lf', '/etc/ssh/ssh_host_ed25519_key.pub'])).stdout.split(' ')[1]!;
    expect(now).not.toBe(old);
    await eventually('sshd shows its new key', async () => ((await probeHostKey(th.address).catch(() => '')) === now ? true : undefined));

    const pinned = new SshHost({ name: 'ssh1', address: th.address, privateKey: th.privateKey, hostKey: old });
    try {
      const err = await pinned.run({ argv: ['touch', '/tmp/ran-despite-mismatch'] }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(HostKeyMismatchError);
      expect((err as Error).message).toContain('host ssh1');
      expect((err as Error).message).toContain(`pinned ${old}`);
      expect((err as Error).message).toContain(`showed ${now}`);
      await expect(pinned.docker.createContainer({ Image: BUSYBOX, Labels: label, name: `mismatch-${runId}` })).rejects.toThrow(/host key mismatch/);
      await expect(pinned.files.write('/tmp/written-despite-mismatch', 'x')).rejects.toThrow(/host key mismatch/);
    } finally {
      await pinned.close();
    }
    expect((await execIn(th.containerId, ['sh', '-c', 'ls /tmp/*-despite-mismatch 2>/dev/null | wc -l'])).stdout.trim()).toBe('0');
    expect((await execIn(th.containerId, ['docker', 'ps', '-aq', '--filter', `name=mismatch-${runId}`])).stdout.trim()).toBe('');
  });
});
