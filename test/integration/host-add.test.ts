// `mlink host add` as an operator runs it, against a bare test host that has only sshd:
// it asks for its key to be authorized, then installs Docker, runsc and the edge over
// SSH, pins the host key and commits hosts/NAME.yaml; a second run changes nothing;
// `mlink host list` and list_hosts show the host's health; a database's data on it stops
// `mlink host remove`; a host whose key changed is refused, naming both keys, and
// nothing runs there. Everything on the host goes over SSH; `docker exec` only plays the
// operator at the host's console and checks facts.
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../infra/proc.js';
import { clusterHosts, localEdge } from '../../reconciler/hosts/cluster.js';
import { LABEL, MANAGED_BY } from '../../reconciler/model.js';
import { probeHostKey } from '../../reconciler/hosts/ssh-keys.js';
import type { SshHost } from '../../reconciler/hosts/ssh-host.js';
import { demux } from '../../reconciler/status/app-logs.js';
import { createLiveState } from '../../reconciler/status/live-state.js';
import { MAIN } from '../../reconciler/state/store.js';
import { cfg, eventually, runId, testLabel } from '../support/infra.js';
import { call, git, head, memoryClient, structured, tempState, writer, type TempState } from '../support/state-repo.js';
import { execIn, loadImage, removeTestHosts, startTestHost, type TestHost } from '../support/test-hosts.js';

const NAME = 'ha-bare';
let t: TempState;
let bare: TestHost;
let ssh: SshHost;
let registry: string;
let firstMs = 0;

const env = (): NodeJS.ProcessEnv => ({
  ...process.env, MLINK_HOME: t.home, MLINK_INFRA_HOME: cfg.dirs.home,
  GIT_AUTHOR_NAME: 'Olga Operator', GIT_AUTHOR_EMAIL: 'olga@example.com',
});

async function mlink(...args: string[]): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const t0 = Date.now();
  const r = await run(process.execPath, ['bin/mlink.js', ...args], { env: env() });
  return { ...r, ms: Date.now() - t0 };
}

const addArgs = (): string[] => ['host', 'add', NAME, bare.address, '--roles', 'build,runtime', '--cpu', '2', '--memory-mb', '2048', '--label', 'zone=test', '--registry', registry];

/** GET on the host's own address (port 80, its edge) with a Host header. */
function viaEdge(address: string, hostHeader: string, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: address, port: 80, path, headers: { host: hostHeader }, timeout: 5000, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${address}:80`)));
    req.on('error', reject);
    req.end();
  });
}

const sshdLog = async (): Promise<string[]> => (await execIn(bare.containerId, ['cat', '/var/log/sshd.log'])).stdout.split('\n');

beforeAll(async () => {
  t = await tempState();
  bare = await startTestHost({ name: NAME, bare: true });
  registry = `${bare.gateway}:${cfg.registry.port}`;
  // What the operator's machine already has in daemon.json is kept. Here: the test host's
  // containers get cgroups of the host's own subtree, removed with it.
  await execIn(bare.containerId, ['sh', '-c', `mkdir -p /etc/docker && printf '{"cgroup-parent": "/mlink-test-host-${NAME}-${runId}"}\\n' > /etc/docker/daemon.json`]);
  ssh = bare.connect();
});

afterAll(async () => {
  await ssh?.close();
  await removeTestHosts();
  t?.cleanup();
});

describe('mlink host add', () => {
  it('refuses bad flags naming the flag and the fix, before it connects to anything', async () => {
    const before = head(t.repo);
    const cases: Array<[string[], RegExp]> = [
      [['--roles', 'web'], /--roles: "web" is not a role; give build, runtime or build,runtime/],
      [['--cpu', '2'], /--cpu and --memory-mb go together/],
      [['--host-key', 'abc'], /--host-key: "abc" is not an SSH host key fingerprint/],
      [['--label', 'Zone=x'], /hosts\/ha-bare\.yaml: .*labels/],
      [['--port', '99999'], /--port 99999: expected a whole number from 1 to 65535/],
    ];
    for (const [flags, why] of cases) {
      const r = await mlink('host', 'add', NAME, bare.address, ...flags);
      expect(r.code, flags.join(' ')).not.toBe(0);
      expect(r.stderr).toMatch(why);
      expect(r.stdout).not.toContain('host key of');
    }
    expect(head(t.repo)).toBe(before);
  }, 60_000);

  it('shows the control plane\'s public key and the line to authorize it when the host does not accept it yet; nothing is committed', async () => {
    const before = head(t.repo);
    const r = await mlink(...addArgs());
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toContain(`host key of ${bare.address}:22: ${bare.hostKey}`);
    const pub = readFileSync(join(t.keys, 'ssh', 'id_ed25519.pub'), 'utf8').trim();
    expect(r.stderr).toContain(`root@${bare.address}:22 does not accept the control plane's key`);
    expect(r.stderr).toContain(`echo '${pub}' >> ~root/.ssh/authorized_keys`);
    expect(head(t.repo)).toBe(before);
    // The operator does what it says, at the host's console.
    expect((await execIn(bare.containerId, ['sh', '-c', `echo '${pub}' >> ~root/.ssh/authorized_keys`])).code).toBe(0);
  });

  it('installs Docker, runsc and the edge on a bare host, pins its key and commits hosts/NAME.yaml', async () => {
    const r = await mlink(...addArgs());
    firstMs = r.ms;
    console.log(`host add on a bare host: ${r.ms} ms\n${r.stdout}`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\[2\/8\] packages: done, installed docker\.io \d/);
    expect(r.stdout).toMatch(/\[3\/8\] runsc: done, uploaded/);
    expect(r.stdout).toMatch(/\[8\/8\] edge: done, started mlink-edge/);

    // Committed as the person who ran it, the key pinned.
    expect(git(t.repo, 'log', '-1', '--format=%an <%ae>%n%s%n%b')).toMatch(new RegExp(`^Olga Operator <olga@example.com>\\nAdd host ${NAME} \\(build, runtime\\) at ${bare.address.replace(/\./g, '\\.')}\\n[^]*host key ${bare.hostKey.replace(/[+/]/g, '\\$&')} pinned`));
    const file = parse(git(t.repo, 'show', `main:hosts/${NAME}.yaml`)) as { spec: Record<string, unknown> };
    expect(file.spec).toEqual({
      address: bare.address, ssh: { user: 'root', port: 22, hostKey: bare.hostKey }, roles: ['build', 'runtime'],
      capacity: { cpu: 2, memoryMb: 2048 }, labels: { zone: 'test' },
    });

    // Docker over SSH, with runsc registered and the registry reachable over plain HTTP; the host's own setting kept.
    const info = await ssh.docker.info() as { Runtimes: Record<string, unknown>; RegistryConfig: { IndexConfigs: Record<string, { Secure: boolean }> }; CgroupParent?: string };
    expect(Object.keys(info.Runtimes)).toContain('runsc');
    expect(info.RegistryConfig.IndexConfigs[registry]?.Secure).toBe(false);
    expect(JSON.parse((await ssh.files.read('/etc/docker/daemon.json'))!)).toMatchObject({ 'cgroup-parent': `/mlink-test-host-${NAME}-${runId}` });

    // A container under runsc there runs gVisor's kernel.
    const c = await ssh.docker.createContainer({ Image: cfg.images.busybox, Cmd: ['dmesg'], Labels: { [testLabel]: runId }, HostConfig: { Runtime: 'runsc' } });
    await c.start();
    await c.wait();
    expect(demux(await c.logs({ stdout: true, stderr: true }) as unknown as Buffer)).toContain('Starting gVisor');
    await c.remove({ force: true });

    // The edge answers on the host's address, port 80: 404 for a name it has no route for,
    // and it serves what a route file in /var/lib/mlink/routes says.
    expect((await viaEdge(bare.address, 'unknown.example')).status).toBe(404);
    await ssh.files.write('/var/lib/mlink/routes/probe.yaml', [
      'http:', '  routers:', '    probe:', '      rule: "Host(`probe.example`)"', '      entryPoints: [web]', '      service: probe',
      '  services:', '    probe:', '      loadBalancer:', '        servers:', '          - url: "http://127.0.0.1:18081"', '',
    ].join('\n'));
    const served = await eventually('the edge serves the route file', async () => {
      const a = await viaEdge(bare.address, 'probe.example', '/ping');
      return a.status === 200 ? a : undefined;
    });
    expect(served.body).toBe('OK');
    await ssh.files.remove('/var/lib/mlink/routes/probe.yaml');
  }, 600_000);

  it('changes nothing and makes no commit when run again', async () => {
    const before = head(t.repo);
    const r = await mlink(...addArgs());
    console.log(`host add again: ${r.ms} ms (first run ${firstMs} ms)\n${r.stdout}`);
    expect(r.code, r.stderr).toBe(0);
    const steps = r.stdout.split('\n').filter((l) => /^\[\d\/8\] [^:]+: (ok|done),/.test(l));
    expect(steps).toHaveLength(8);
    expect(steps.filter((l) => !/: ok,/.test(l))).toEqual([]);
    expect(r.stdout).toContain(`hosts/${NAME}.yaml unchanged; no commit`);
    expect(head(t.repo)).toBe(before);
  }, 120_000);

  it('mlink host list and list_hosts show it with its roles, health and what runs there', async () => {
    const r = await mlink('host', 'list', '--json');
    expect(r.stderr).toBe('');
    const hosts = (JSON.parse(r.stdout) as { hosts: Array<Record<string, unknown> & { name: string }> }).hosts;
    expect(hosts.map((h) => h.name).sort()).toEqual([NAME, 'local']);
    expect(hosts.find((h) => h.name === 'local')).toMatchObject({ address: 'local', roles: ['control', 'build', 'runtime'] });
    expect(hosts.find((h) => h.name === NAME)).toMatchObject({
      address: bare.address, roles: ['build', 'runtime'], hostKey: bare.hostKey, capacity: { cpu: 2, memoryMb: 2048 }, labels: { zone: 'test' },
      ssh: { ok: true }, docker: { ok: true, detail: expect.stringMatching(/^20\./) }, edge: { ok: true }, running: { Edge: 1 },
    });
    const table = await mlink('host', 'list');
    expect(table.stdout).toMatch(new RegExp(`^${NAME}\\s+${bare.address.replace(/\./g, '\\.')}:22\\s+build,runtime\\s+SHA256:\\S+\\s+Ready, \\(no health checks yet: is \`mlink up\` running\\?\\)\\s+ok \\d+ ms\\s+ok \\d+ ms \\(20\\.[^)]*\\)\\s+ok \\d+ ms\\s+2 cpu, 2048 MiB\\s+Edge 1$`, 'm'));

    // The same through MCP, as the reconciler's live state gives it.
    const view = await t.store.view(MAIN);
    const pool = await clusterHosts(view, localEdge(), { keysDir: t.keys });
    try {
      const live = createLiveState({ cluster: 'local', store: t.store, hosts: pool, webPort: cfg.traefik.webPort });
      const client = await memoryClient(t.store, writer('reader', { access: 'read' }), live);
      const got = structured<{ hosts: Array<Record<string, unknown> & { name: string }> }>(await call(client, 'list_hosts', {}));
      expect(got.hosts.find((h) => h.name === 'local')).toMatchObject({ address: 'local', roles: ['control', 'build', 'runtime'], path: 'mlink.yaml', live: { known: true } });
      expect(got.hosts.find((h) => h.name === NAME)).toMatchObject({
        address: bare.address, roles: ['build', 'runtime'], path: `hosts/${NAME}.yaml`, ssh: { user: 'root', port: 22, host_key: bare.hostKey },
        capacity: { cpu: 2, memory_mb: 2048 }, labels: { zone: 'test' }, schedulable: true,
        live: { known: true, ssh: { ok: true }, docker: { ok: true }, edge: { ok: true }, running: { Edge: 1 } },
      });
      await client.close();
    } finally {
      await pool.close();
    }
  }, 60_000);

  it('mlink host remove is refused while a database\'s data is on the host, and commits the removal once it is gone', async () => {
    const volume = `mlink-local-default-orders-data-${runId}`;
    await ssh.docker.createVolume({ Name: volume, Labels: { [LABEL.managedBy]: MANAGED_BY, [LABEL.cluster]: 'local', [LABEL.kind]: 'Database', [LABEL.project]: 'default', [LABEL.name]: 'orders', [testLabel]: runId } });
    const before = head(t.repo);
    const refused = await mlink('host', 'remove', NAME, '--yes');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`host ${NAME} holds the data of database default/orders (volume ${volume})`);
    expect(head(t.repo)).toBe(before);
    await ssh.docker.getVolume(volume).remove();
    const r = await mlink('host', 'remove', NAME, '--yes');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`the reconciler moves the apps placed on ${NAME} to the other runtime hosts`);
    expect(git(t.repo, 'log', '-1', '--format=%an%n%s')).toBe(`Olga Operator\nRemove host ${NAME} (build, runtime) at ${bare.address}\n`);
    expect(git(t.repo, 'ls-tree', '--name-only', 'main', 'hosts/')).not.toContain(NAME);
    // Added back: the host is ready as it was, only the file is committed again.
    const again = await mlink(...addArgs());
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.split('\n').filter((l) => /^\[\d\/8\] [^:]+: done,/.test(l))).toEqual([]);
    expect(git(t.repo, 'log', '-1', '--format=%s')).toBe(`Add host ${NAME} (build, runtime) at ${bare.address}\n`);
  }, 120_000);

  it('refuses a host whose key changed, naming the host and both fingerprints, and runs nothing there', async () => {
    const before = head(t.repo);
    const old = bare.hostKey;
    // The host is reinstalled (new host keys) or another machine answers at its address.
    await execIn(bare.containerId, ['sh', '-c', 'rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && kill -HUP "$(cat /run/sshd.pid)"']);
    const now = await eventually('sshd shows its new key', async () => {
      const k = await probeHostKey(bare.address).catch(() => undefined);
      return k && k !== old ? k : undefined;
    }, 20_000);
    const logBefore = (await sshdLog()).length;
    // The log shows sessions when there are some: the earlier runs' are there.
    expect((await sshdLog()).join('\n')).toMatch(/Accepted publickey for root/);
    const r = await mlink(...addArgs());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`host ${NAME} (${bare.address}:22): SSH host key mismatch: hosts/${NAME}.yaml pins ${old}, the server showed ${now}; refused, nothing was run there`);
    const listed = await mlink('host', 'list', '--json');
    const h = (JSON.parse(listed.stdout) as { hosts: Array<{ name: string; ssh: { ok: boolean; error?: string } }> }).hosts.find((x) => x.name === NAME)!;
    expect(h.ssh.ok).toBe(false);
    expect(h.ssh.error).toContain(`pinned ${old}, the server showed ${now}`);
    // sshd saw connections that never authenticated: no session, no command.
    const fresh = (await sshdLog()).slice(logBefore - 1).join('\n');
    expect(fresh).not.toMatch(/Accepted|session opened|subsystem request/i);
    expect(head(t.repo)).toBe(before);
  }, 60_000);
});

describe('mlink host add on a host that already runs Docker', () => {
  it('adds only what is missing: dockerd re-reads its config and what runs there keeps running', async () => {
    const ready = await startTestHost({ name: 'ha-ready' });
    const conn = ready.connect();
    try {
      const pub = readFileSync(join(t.keys, 'ssh', 'id_ed25519.pub'), 'utf8').trim();
      await execIn(ready.containerId, ['sh', '-c', `echo '${pub}' >> ~root/.ssh/authorized_keys`]);
      await loadImage(conn, cfg.images.busybox);
      const running = await conn.docker.createContainer({ Image: cfg.images.busybox, Cmd: ['sleep', '600'], Labels: { [testLabel]: runId }, HostConfig: { Runtime: 'runsc' } });
      await running.start();
      const r = await mlink('host', 'add', 'ha-ready', ready.address, '--roles', 'runtime', '--host-key', ready.hostKey, '--registry', registry);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/packages: ok, docker\.io/);
      expect(r.stdout).toMatch(/runsc: ok,/);
      expect(r.stdout).toContain('docker daemon: done, dockerd re-read daemon.json (SIGHUP)');
      expect(r.stdout).toMatch(/edge: done, started mlink-edge/);
      const info = await running.inspect();
      expect(info.State.Running).toBe(true);
      expect(info.RestartCount).toBe(0);
      expect(git(t.repo, 'log', '-1', '--format=%s')).toBe(`Add host ha-ready (runtime) at ${ready.address}\n`);
    } finally {
      await conn.close();
      await ready.stop();
    }
  }, 180_000);
});
