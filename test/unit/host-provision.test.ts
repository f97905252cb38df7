// What `mlink host add` renders before it runs anything: daemon.json merged with the
// host's own, dockerd's start/reload commands with and without systemd, what dpkg-query
// and ldd say, the edge image's tag, and hosts/NAME.yaml from flags and the file there.
import { describe, expect, it } from 'vitest';
import { hostManifest, renderHostFile, sameHost } from '../../reconciler/hosts/host-file.js';
import {
  dockerdCommands, edgeContainer, edgeDockerfile, edgeImage, isDebian, lddPaths, mergeDaemonJson, parseDaemonJson, parseOsRelease, parsePackages, parseSha256,
} from '../../reconciler/hosts/provision-commands.js';

const KEY = `SHA256:${'a'.repeat(43)}`;
const runsc = { path: '/usr/local/bin/runsc', runtimeArgs: [] };

describe('daemon.json', () => {
  it('adds the runsc runtime, the registry and live-restore and keeps what the host has', () => {
    const have = { 'cgroup-parent': '/x', runtimes: { kata: { path: '/k' } }, 'insecure-registries': ['10.0.0.0/8'] };
    const m = mergeDaemonJson(have, { runsc, insecureRegistries: ['10.1.2.3:5000'] });
    expect(m.config).toEqual({ 'cgroup-parent': '/x', runtimes: { kata: { path: '/k' }, runsc }, 'insecure-registries': ['10.0.0.0/8', '10.1.2.3:5000'], 'live-restore': true });
    expect(m.changed.sort()).toEqual(['insecure-registries', 'live-restore', 'runtimes']);
    expect(m.reloadable).toBe(true);
  });

  it('says nothing changed when it is in place, so dockerd is left alone', () => {
    const have = { runtimes: { runsc }, 'insecure-registries': ['10.1.2.3:5000'], 'live-restore': true };
    expect(mergeDaemonJson(have, { runsc, insecureRegistries: ['10.1.2.3:5000'] }).changed).toEqual([]);
    expect(mergeDaemonJson({}, { runsc, insecureRegistries: [] }).config).toEqual({ runtimes: { runsc }, 'live-restore': true });
  });

  it('refuses a daemon.json that is not a JSON object, naming the host and the fix', () => {
    expect(() => parseDaemonJson('h1', '{ nope')).toThrow(/host h1: \/etc\/docker\/daemon.json is not valid JSON .*fix or remove it there/);
    expect(() => parseDaemonJson('h1', '[1]')).toThrow(/not a JSON object/);
    expect(parseDaemonJson('h1', null)).toEqual({});
  });
});

describe('dockerd', () => {
  it('is run by systemd where systemd is the init system, else by start-stop-daemon with its own pid file', () => {
    expect(dockerdCommands(true).start.argv).toEqual(['systemctl', 'start', 'docker']);
    expect(dockerdCommands(true).reload.argv).toEqual(['systemctl', 'reload', 'docker']);
    const plain = dockerdCommands(false);
    expect(plain.start.argv).toEqual(['start-stop-daemon', '--start', '--background', '--pidfile', '/var/run/docker.pid', '--output', '/var/log/dockerd.log', '--exec', '/usr/sbin/dockerd']);
    expect(plain.reload.argv).toEqual(['start-stop-daemon', '--stop', '--signal', 'HUP', '--pidfile', '/var/run/docker.pid', '--exec', '/usr/sbin/dockerd']);
  });
});

describe('what the host says', () => {
  it('reads os-release, dpkg-query, sha256sum and ldd', () => {
    const os = parseOsRelease('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n');
    expect(os).toEqual({ id: 'debian', idLike: [], versionId: '12', pretty: 'Debian GNU/Linux 12 (bookworm)' });
    expect(isDebian(os)).toBe(true);
    expect(isDebian(parseOsRelease('ID=ubuntu\nID_LIKE=debian\n'))).toBe(true);
    expect(isDebian(parseOsRelease('ID=fedora\n'))).toBe(false);
    expect([...parsePackages('docker.io\tinstalled\t20.10.24\niptables\tconfig-files\t1.8\n')]).toEqual([['docker.io', '20.10.24']]);
    expect(parseSha256(`${'0f'.repeat(32)}  /usr/local/bin/runsc\n`)).toBe('0f'.repeat(32));
    expect(parseSha256('')).toBeUndefined();
    expect(lddPaths('\tlinux-vdso.so.1 (0x0)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x1)\n\t/lib64/ld-linux-x86-64.so.2 (0x2)\n'))
      .toEqual(['/lib/x86_64-linux-gnu/libc.so.6', '/lib64/ld-linux-x86-64.so.2']);
  });
});

describe('the edge', () => {
  const o = { version: 'v3.6.1', webAddress: ':80', apiAddress: '127.0.0.1:18081', routesDir: '/var/lib/mlink/routes' };
  it('is tagged by Traefik version and what is baked in, so another port is another image', () => {
    const df = edgeDockerfile('mlink/busybox:latest', true);
    expect(edgeImage(o, df)).toMatch(/^mlink\/edge:v3\.6\.1-[0-9a-f]{12}$/);
    expect(edgeImage(o, df)).toBe(edgeImage({ ...o }, df));
    expect(edgeImage({ ...o, webAddress: ':8080' }, df)).not.toBe(edgeImage(o, df));
    expect(edgeImage(o, edgeDockerfile('mlink/busybox:latest', false))).not.toBe(edgeImage(o, df));
  });

  it('runs on the host network, restarts on its own and reads the routes directory', () => {
    const c = edgeContainer('mlink/edge:x', o);
    expect(c.name).toBe('mlink-edge');
    expect(c.HostConfig).toMatchObject({ NetworkMode: 'host', RestartPolicy: { Name: 'unless-stopped' }, Binds: expect.arrayContaining(['/var/lib/mlink/routes:/var/lib/mlink/routes:ro']) });
    expect(c.Labels).toEqual({ 'ink.ml.managed-by': 'mlink', 'ink.ml.kind': 'Edge' });
  });
});

describe('hosts/NAME.yaml', () => {
  it('takes the flags given and keeps what the file says for the rest', () => {
    const first = hostManifest({ name: 'h1', address: '10.0.0.5', hostKey: KEY, labels: { zone: 'a' }, capacity: { cpu: 2, memoryMb: 2048 } });
    expect(first.spec).toEqual({ address: '10.0.0.5', ssh: { user: 'root', port: 22, hostKey: KEY }, roles: ['build', 'runtime'], capacity: { cpu: 2, memoryMb: 2048 }, labels: { zone: 'a' } });
    const again = hostManifest({ name: 'h1', address: '10.0.0.5', hostKey: KEY, roles: ['runtime'] }, { ...first, spec: { ...first.spec, schedulable: false } });
    expect(again.spec).toEqual({ ...first.spec, roles: ['runtime'], schedulable: false });
    expect(sameHost(first, renderHostFile(first))).toBe(true);
    expect(sameHost(again, renderHostFile(first))).toBe(false);
  });

  it('refuses a field the schema refuses, naming it', () => {
    expect(() => hostManifest({ name: 'h1', address: 'bad address', hostKey: KEY })).toThrow(/hosts\/h1\.yaml: .*address/);
    expect(() => hostManifest({ name: 'h1', address: '10.0.0.5', hostKey: KEY, labels: { 'Bad Key': 'x' } })).toThrow(/hosts\/h1\.yaml: .*labels/);
  });
});
