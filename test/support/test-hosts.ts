// Test hosts: machines of their own as far as ml.ink can tell, on this one machine. Each
// is a container from the Debian base image with its own address on a test network, its
// own sshd (host keys made at its first start), dockerd and runsc, and reached by ml.ink
// only over SSH. A "bare" host has only sshd, for `mlink host add` to install Docker and
// runsc on. Tests may `docker exec` into one only to make a fault or to check a fact.
// Facts a test may need: no init system runs (a bare host's dockerd, once installed,
// starts with `start-stop-daemon --start --background ... --exec /usr/sbin/dockerd`;
// Debian's /etc/init.d/docker fails on its `ulimit -n 1048576` here); sshd logs to
// /var/log/sshd.log; this machine is the network's gateway address; the inner dockerd
// takes plain-HTTP registries in TEST_HOSTS_RANGE.
import { createHash } from 'node:crypto';
import { copyFileSync, createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readdir, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { must, run } from '../../infra/proc.js';
import type { Host } from '../../reconciler/hosts/host.js';
import { copyImage } from '../../reconciler/hosts/image-copy.js';
import { SshHost } from '../../reconciler/hosts/ssh-host.js';
import { generateControlKey, type KeyPair } from '../../reconciler/hosts/ssh-keys.js';
import { cfg, docker, eventually, runId, testLabel } from './infra.js';

export interface TestHost {
  name: string;
  /** Its address on the test network: what a host file in the state repo would name. */
  address: string;
  port: 22;
  user: 'root';
  /** Its ed25519 host key's fingerprint, as `ssh-keygen -lf` prints it inside. */
  hostKey: string;
  /** The key authorized for root on it (made once per test run). */
  privateKey: string;
  publicKey: string;
  /** This machine as the test host sees it (the test network's gateway). */
  gateway: string;
  containerId: string;
  bare: boolean;
  /** An SshHost for it (a new connection; close it). */
  connect(): SshHost;
  /** Removes the host and its disk. */
  stop(): Promise<void>;
  /** A host dying hard: SIGKILL to everything on it. */
  kill(): Promise<void>;
  /** Restarts it like a reboot (after kill() too): same address, same keys, same disk. */
  restart(): Promise<void>;
}

const CGROUPS = '/sys/fs/cgroup';
const testKey: KeyPair = generateControlKey(`mlink-test-${runId}`);

/** The key every test host authorizes for root: what an operator gives the control plane (its data dir's keys/ssh/id_ed25519). */
export function testControlKey(): KeyPair {
  return testKey;
}

const HOST_PACKAGES = ['docker.io', 'openssh-server', 'iptables', 'iproute2', 'util-linux'];
const BARE_PACKAGES = ['openssh-server', 'iproute2'];

function dockerfile(bare: boolean): string {
  const pkgs = (bare ? BARE_PACKAGES : HOST_PACKAGES).join(' ');
  return [
    `FROM ${cfg.images.debian}`,
    `RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${pkgs} && rm -rf /var/lib/apt/lists/*`,
    ...(bare ? [] : ['COPY runsc /usr/local/bin/runsc', 'COPY daemon.json /etc/docker/daemon.json']),
    // The package made host keys; every host makes its own at first start instead.
    'RUN rm -f /etc/ssh/ssh_host_* && mkdir -p -m 700 /root/.ssh',
    '',
  ].join('\n');
}

// The test network's range may hold a registry over plain HTTP (a relay to this machine's).
export const TEST_HOSTS_RANGE = '10.231.0.0/16';
const innerDaemon = JSON.stringify({ runtimes: { runsc: { path: '/usr/local/bin/runsc', runtimeArgs: [] } }, 'insecure-registries': [TEST_HOSTS_RANGE] }, null, 2);

async function fileHash(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

const images = new Map<boolean, Promise<string>>();

/** The test host image (`mlink-test/host:<hash>` or `mlink-test/host-bare:<hash>`), built once and cached. */
export function testHostImage(bare = false): Promise<string> {
  let p = images.get(bare);
  if (!p) {
    p = buildImage(bare);
    images.set(bare, p);
    p.catch(() => images.delete(bare));
  }
  return p;
}

async function buildImage(bare: boolean): Promise<string> {
  const text = dockerfile(bare);
  const h = createHash('sha256').update(text);
  if (!bare) h.update(innerDaemon).update(await fileHash(cfg.runsc.binary));
  const tag = `mlink-test/host${bare ? '-bare' : ''}:${h.digest('hex').slice(0, 16)}`;
  if ((await run('docker', ['image', 'inspect', tag])).code === 0) return tag;
  const ctx = mkdtempSync(join(tmpdir(), 'mlink-test-host-'));
  try {
    writeFileSync(join(ctx, 'Dockerfile'), text);
    if (!bare) {
      copyFileSync(cfg.runsc.binary, join(ctx, 'runsc'));
      writeFileSync(join(ctx, 'daemon.json'), innerDaemon);
    }
    await must('docker', ['build', '-q', '--label', 'ink.ml.test-image=host', '-t', tag, ctx], { env: { ...process.env, DOCKER_BUILDKIT: '0' } });
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
  return tag;
}

let network: Promise<{ name: string; subnet: string; gateway: string }> | undefined;
let nextHost = 10;

/** One network per test run, on a /24 no other Docker network holds, so hosts keep fixed addresses. */
function testNetwork(): Promise<{ name: string; subnet: string; gateway: string }> {
  network ??= (async () => {
    const name = `mlink-test-hosts-${runId}`;
    const start = Number.parseInt(runId.slice(-4), 16) % 200;
    let last: unknown;
    for (let i = 0; i < 50; i++) {
      const third = (start + i) % 250;
      const subnet = `10.231.${third}.0/24`;
      const gateway = `10.231.${third}.1`;
      try {
        await docker.createNetwork({ Name: name, Driver: 'bridge', Labels: { [testLabel]: runId }, IPAM: { Config: [{ Subnet: subnet, Gateway: gateway }] } });
        return { name, subnet, gateway };
      } catch (e) {
        last = e;
        if (!/overlap/i.test((e as Error).message)) throw e;
      }
    }
    throw new Error(`no free /24 in 10.231.0.0/16 for the test hosts' network: ${(last as Error).message}`);
  })();
  network.catch(() => { network = undefined; });
  return network;
}

const startup = [
  'set -e',
  'ssh-keygen -A >/dev/null',
  'printf "%s\\n" "$MLINK_TEST_AUTHORIZED_KEY" > /root/.ssh/authorized_keys',
  'chmod 600 /root/.ssh/authorized_keys',
  'mkdir -p /run/sshd',
];

/** Starts a test host and waits until it answers over SSH (and, unless bare, its Docker answers). */
export async function startTestHost(opts: { name: string; bare?: boolean }): Promise<TestHost> {
  const bare = opts.bare ?? false;
  const [image, net] = await Promise.all([testHostImage(bare), testNetwork()]);
  const address = net.subnet.replace(/0\/24$/, String(nextHost++));
  const cname = `mlink-test-host-${opts.name}-${runId}`;
  const labels = { [testLabel]: runId, 'ink.ml.test-host': opts.name };
  await docker.createVolume({ Name: `${cname}-docker`, Labels: labels });
  // The inner dockerd's containers get cgroups of their own subtree, removed with the host
  // (a host killed hard leaves its containers' cgroups behind otherwise).
  const cgroupParent = `mlink-test-host-${opts.name}-${runId}`;
  const cmd = bare ? [...startup, 'exec /usr/sbin/sshd -D -E /var/log/sshd.log'] : [...startup, '/usr/sbin/sshd -E /var/log/sshd.log', `exec dockerd --cgroup-parent=/${cgroupParent}`];
  const container = await docker.createContainer({
    name: cname,
    Hostname: opts.name,
    Image: image,
    Entrypoint: ['/bin/sh', '-c', cmd.join('\n')],
    Env: [`MLINK_TEST_AUTHORIZED_KEY=${testKey.publicKey}`],
    Labels: labels,
    HostConfig: {
      // --privileged is refused on this machine (no CAP_SYS_RESOURCE); this is what works.
      CapAdd: ['ALL'], CapDrop: ['SYS_RESOURCE'],
      SecurityOpt: ['seccomp=unconfined', 'apparmor=unconfined'],
      MaskedPaths: [], ReadonlyPaths: [], // the CLI's --security-opt systempaths=unconfined
      Init: true,
      Tmpfs: { '/run': '' },
      // Docker's data on a volume (ext4 underneath): overlay2 works on it, and it outlives a restart.
      Binds: [`${cname}-docker:/var/lib/docker`, '/sys/fs/cgroup:/sys/fs/cgroup:rw'],
      NetworkMode: net.name,
    },
    NetworkingConfig: { EndpointsConfig: { [net.name]: { IPAMConfig: { IPv4Address: address } } } },
  });
  const c = docker.getContainer(container.id);
  await c.start();
  const hostKey = await eventually(`test host ${opts.name}: host key made`, async () => {
    const r = await execIn(container.id, ['ssh-keygen', '-lf', '/etc/ssh/ssh_host_ed25519_key.pub']);
    return r.code === 0 ? r.stdout.split(' ')[1] : undefined;
  }, 20_000);
  const host: TestHost = {
    name: opts.name, address, port: 22, user: 'root', hostKey, privateKey: testKey.privateKey, publicKey: testKey.publicKey,
    gateway: net.gateway, containerId: container.id, bare,
    connect: () => new SshHost({ name: opts.name, address, privateKey: testKey.privateKey, hostKey: host.hostKey }),
    stop: async () => {
      await c.remove({ force: true, v: true }).catch(() => undefined);
      await docker.getVolume(`${cname}-docker`).remove().catch(() => undefined);
      await removeCgroups(cgroupParent);
    },
    kill: async () => { await c.kill().catch(() => undefined); },
    restart: async () => {
      await c.restart({ t: 5 });
      await ready(host);
    },
  };
  await ready(host);
  return host;
}

/** Waits until the host answers over SSH, and its dockerd over SSH too unless it is bare. */
async function ready(host: TestHost): Promise<void> {
  await eventually(`test host ${host.name}: ${host.bare ? 'sshd' : 'sshd and dockerd'} answer over SSH`, async () => {
    const ssh = host.connect();
    try {
      const r = await ssh.run({ argv: ['true'] });
      if (r.code !== 0) return undefined;
      if (!host.bare) await ssh.docker.ping();
      return true;
    } finally {
      await ssh.close();
    }
  }, 60_000);
}

/** Runs a command inside a test host's container: for tests making a fault or checking a fact only. */
export async function execIn(containerId: string, argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run('docker', ['exec', containerId, ...argv]);
}

/** Copies an image from this machine's Docker into a host: docker save here, docker load there, over its SSH. */
export async function loadImage(host: Pick<Host, 'docker' | 'name'>, ref: string): Promise<void> {
  await copyImage(docker, host, ref);
}

/** Removes the cgroup subtree `parent` in every hierarchy, leaves first (its processes are gone). */
async function removeCgroups(parent: string): Promise<void> {
  const roots = await readdir(CGROUPS, { withFileTypes: true }).catch(() => []);
  const remove = async (dir: string): Promise<void> => {
    const subs = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const d of subs) if (d.isDirectory()) await remove(join(dir, d.name));
    // A cgroup empties a moment after its last process exits.
    for (let i = 0; i < 20; i++) {
      try {
        await rmdir(dir);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  for (const r of roots) if (r.isDirectory()) await remove(join(CGROUPS, r.name, parent));
}

/** Removes the test hosts (containers, their disks, their network, their cgroups) a test run made. */
export async function removeTestHosts(id = runId): Promise<void> {
  const filters = { label: [`${testLabel}=${id}`, 'ink.ml.test-host'] };
  const list = await docker.listContainers({ all: true, filters });
  await Promise.all(list.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined)));
  await Promise.all(list.map((c) => removeCgroups(`mlink-test-host-${c.Labels['ink.ml.test-host']}-${id}`)));
  const vols = await docker.listVolumes({ filters });
  await Promise.all((vols.Volumes ?? []).map((v) => docker.getVolume(v.Name).remove().catch(() => undefined)));
  const nets = await docker.listNetworks({ filters: { label: [`${testLabel}=${id}`], name: [`mlink-test-hosts-${id}`] } });
  await Promise.all(nets.map((n) => docker.getNetwork(n.Id).remove().catch(() => undefined)));
  if (id === runId) network = undefined;
}
