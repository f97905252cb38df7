// What `mlink host add` runs on a Debian host and what it writes there, rendered pure:
// apt-get and dpkg-query lines, daemon.json merged with the host's own, how dockerd is
// started, reloaded or restarted (systemd, or start-stop-daemon where no init system
// runs), and the edge's Traefik image and container. provision.ts runs these over SSH.
import { createHash } from 'node:crypto';
import { traefikStaticConfig } from '../../infra/setup/services.js';
import { LABEL, MANAGED_BY } from '../model.js';
import type { Command } from './host.js';

/** What a host needs from Debian for Docker, runsc's sandboxes and the egress rules. */
export const HOST_PACKAGES = ['docker.io', 'iptables', 'iproute2'] as const;

export const RUNSC_PATH = '/usr/local/bin/runsc';
export const DAEMON_JSON = '/etc/docker/daemon.json';
export const DOCKER_PID = '/var/run/docker.pid';
export const DOCKERD = '/usr/sbin/dockerd';
export const DOCKERD_LOG = '/var/log/dockerd.log';
export const EDGE_CONTAINER = 'mlink-edge';
export const EDGE_DIR = '/var/lib/mlink/edge';
/** The kind label of helper containers (hosts/containers.ts) ml.ink runs on a host for the host itself. */
export const EDGE_KIND = 'Edge';

const APT_ENV = ['env', 'DEBIAN_FRONTEND=noninteractive', 'NEEDRESTART_MODE=a'];
// apt waits for a lock held by an unattended upgrade instead of failing at once.
const APT_OPTS = ['-q', '-o', 'DPkg::Lock::Timeout=300'];

export const cmd = {
  osRelease: (): Command => ({ argv: ['cat', '/etc/os-release'] }),
  whoami: (): Command => ({ argv: ['id', '-u'] }),
  hasApt: (): Command => ({ argv: ['sh', '-c', 'command -v apt-get dpkg-query'] }),
  /** systemd's own test for "systemd is the init system". */
  systemd: (): Command => ({ argv: ['test', '-d', '/run/systemd/system'] }),
  packages: (pkgs: readonly string[]): Command => ({ argv: ['dpkg-query', '-W', '-f=${Package}\\t${db:Status-Status}\\t${Version}\\n', ...pkgs] }),
  aptUpdate: (): Command => ({ argv: [...APT_ENV, 'apt-get', ...APT_OPTS, 'update'] }),
  aptInstall: (pkgs: readonly string[]): Command => ({ argv: [...APT_ENV, 'apt-get', ...APT_OPTS, 'install', '-y', '--no-install-recommends', ...pkgs] }),
  sha256: (path: string): Command => ({ argv: ['sh', '-c', 'test -f "$1" && sha256sum "$1" || true', 'sha256', path] }),
  runscVersion: (): Command => ({ argv: [RUNSC_PATH, '--version'] }),
  mkdir: (dir: string): Command => ({ argv: ['mkdir', '-p', dir] }),
};

/** How dockerd is started, reloaded (SIGHUP re-reads daemon.json) and restarted on a host. */
export function dockerdCommands(systemd: boolean): { start: Command; reload: Command; restart: Command } {
  if (systemd) {
    return {
      start: { argv: ['systemctl', 'start', 'docker'] },
      reload: { argv: ['systemctl', 'reload', 'docker'] },
      restart: { argv: ['systemctl', 'restart', 'docker'] },
    };
  }
  // No init system (a container, a minimal VM): Debian's /etc/init.d/docker fails on
  // `ulimit -n` where it may not raise limits, so dockerd is started directly. It writes
  // its own pid file; start-stop-daemon uses it to know whether one already runs.
  const start: Command = { argv: ['start-stop-daemon', '--start', '--background', '--pidfile', DOCKER_PID, '--output', DOCKERD_LOG, '--exec', DOCKERD] };
  const stop = ['start-stop-daemon', '--stop', '--oknodo', '--retry', 'TERM/30/KILL/5', '--pidfile', DOCKER_PID, '--exec', DOCKERD];
  return {
    start,
    reload: { argv: ['start-stop-daemon', '--stop', '--signal', 'HUP', '--pidfile', DOCKER_PID, '--exec', DOCKERD] },
    restart: { argv: ['sh', '-c', `${stop.join(' ')} && ${start.argv.join(' ')}`] },
  };
}

export interface OsRelease { id: string; idLike: string[]; versionId: string; pretty: string }

export function parseOsRelease(text: string): OsRelease {
  const v = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) v.set(m[1]!, m[2]!.replace(/^"(.*)"$/, '$1'));
  }
  return { id: v.get('ID') ?? '', idLike: (v.get('ID_LIKE') ?? '').split(/\s+/).filter(Boolean), versionId: v.get('VERSION_ID') ?? '', pretty: v.get('PRETTY_NAME') ?? v.get('ID') ?? 'unknown' };
}

export function isDebian(os: OsRelease): boolean {
  return os.id === 'debian' || os.idLike.includes('debian');
}

/** dpkg-query's lines: the version of each package that is installed. */
export function parsePackages(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const [pkg, status, version] = line.split('\t');
    if (pkg && status === 'installed' && version) out.set(pkg, version);
  }
  return out;
}

export function parseSha256(text: string): string | undefined {
  return /^([0-9a-f]{64})\s/.exec(text.trim())?.[1];
}

export interface DaemonWants {
  runsc: { path: string; runtimeArgs: string[] };
  /** Registries reached over plain HTTP on the private network (the cluster's registry). */
  insecureRegistries: string[];
}

// Keys dockerd re-reads on SIGHUP; a change to any other key needs a restart.
const RELOADABLE = new Set(['runtimes', 'default-runtime', 'insecure-registries', 'registry-mirrors', 'labels', 'debug', 'live-restore', 'max-concurrent-downloads', 'max-concurrent-uploads', 'max-download-attempts', 'shutdown-timeout']);

/**
 * daemon.json with the runsc runtime, the insecure registries and live-restore added to
 * what the host has (its other keys, its other runtimes and registries kept), and which
 * keys changed.
 */
export function mergeDaemonJson(existing: Record<string, unknown>, want: DaemonWants): { config: Record<string, unknown>; changed: string[]; reloadable: boolean } {
  const config: Record<string, unknown> = { ...existing };
  const runtimes = { ...(existing.runtimes as Record<string, unknown> | undefined ?? {}) };
  runtimes.runsc = { path: want.runsc.path, runtimeArgs: want.runsc.runtimeArgs };
  config.runtimes = runtimes;
  // Apps keep running while dockerd restarts (infra/setup/docker.ts says more).
  config['live-restore'] = true;
  const registries = [...(existing['insecure-registries'] as string[] | undefined ?? [])];
  for (const r of want.insecureRegistries) if (!registries.includes(r)) registries.push(r);
  if (registries.length) config['insecure-registries'] = registries;
  const changed = Object.keys(config).filter((k) => JSON.stringify(config[k]) !== JSON.stringify(existing[k]));
  return { config, changed, reloadable: changed.every((k) => RELOADABLE.has(k)) };
}

export function renderDaemonJson(config: Record<string, unknown>): string {
  return `${JSON.stringify(config, null, 2)}\n`;
}

/** Parses a host's daemon.json; throws naming the host and the fix when it is not a JSON object. */
export function parseDaemonJson(host: string, text: string | null): Record<string, unknown> {
  if (text === null || !text.trim()) return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`host ${host}: ${DAEMON_JSON} is not valid JSON (${(e as Error).message}); fix or remove it there, then run \`mlink host add\` again`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`host ${host}: ${DAEMON_JSON} is not a JSON object; fix or remove it there, then run \`mlink host add\` again`);
  return v as Record<string, unknown>;
}

// ---- the edge: Traefik in a container on a runtime host

export interface EdgeOptions {
  /** Traefik's version (infra/config.ts versions.traefik). */
  version: string;
  /** Where the web entrypoint listens on the host: `:80` (every address) by default. */
  webAddress: string;
  /** Where the websecure entrypoint listens on the host: `:443` (every address) by default. */
  websecureAddress?: string;
  /** Where the API and ping answer, on the host's loopback (REMOTE_EDGE). */
  apiAddress: string;
  routesDir: string;
}

export function edgeStaticConfig(o: EdgeOptions): string {
  return traefikStaticConfig({ web: o.webAddress, websecure: o.websecureAddress ?? ':443', api: o.apiAddress, routesDir: o.routesDir, writtenBy: 'mlink host add' });
}

/** The edge image's tag: Traefik's version and the hash of what is baked in with it (static config, Dockerfile). */
export function edgeImage(o: EdgeOptions, dockerfile: string): string {
  const hash = createHash('sha256').update(edgeStaticConfig(o)).update(dockerfile).digest('hex').slice(0, 12);
  return `mlink/edge:${o.version}-${hash}`;
}

/**
 * The shared libraries `ldd` says a binary loads (the loader included). Traefik built
 * here links libc dynamically (cgo in net and os/user); busybox's image has none, so they
 * go into the edge image at the same paths.
 */
export function lddPaths(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /=>\s*(\/\S+)\s*\(/.exec(line) ?? /^\s*(\/\S+)\s*\(/.exec(line);
    if (m && !out.includes(m[1]!)) out.push(m[1]!);
  }
  return out;
}

export function edgeDockerfile(baseImage: string, withLibs: boolean): string {
  return [
    `FROM ${baseImage}`,
    ...(withLibs ? ['COPY rootfs/ /'] : []),
    'COPY traefik /usr/local/bin/traefik',
    'COPY traefik.yaml /etc/traefik/traefik.yaml',
    'ENTRYPOINT ["/usr/local/bin/traefik", "--configFile=/etc/traefik/traefik.yaml", "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false"]',
    '',
  ].join('\n');
}

/**
 * The edge container: host networking (it serves on the host's own addresses and reaches
 * replicas' bridge addresses), restarted by dockerd on its own so the host keeps serving
 * when the control plane is away, routes read from the host's directory.
 */
export function edgeContainer(image: string, o: EdgeOptions): import('dockerode').ContainerCreateOptions {
  return {
    name: EDGE_CONTAINER,
    Image: image,
    Labels: { [LABEL.managedBy]: MANAGED_BY, [LABEL.kind]: EDGE_KIND },
    HostConfig: {
      NetworkMode: 'host',
      RestartPolicy: { Name: 'unless-stopped' },
      Binds: [`${o.routesDir}:${o.routesDir}:ro`, `${EDGE_DIR}:${EDGE_DIR}:ro`],
      ReadonlyRootfs: true,
      CapDrop: ['ALL'],
      CapAdd: ['NET_BIND_SERVICE'],
      SecurityOpt: ['no-new-privileges'],
      LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } },
    },
  };
}

/**
 * Traefik's default certificate as dynamic configuration beside the routes: without one
 * it makes a new key on every configuration change, which slows each route switch
 * (see infra/setup/services.ts writeDefaultCertificate).
 */
export function edgeDefaultCertificate(): { file: string; certFile: string; keyFile: string; content: string } {
  const certFile = `${EDGE_DIR}/default-cert.pem`;
  const keyFile = `${EDGE_DIR}/default-key.pem`;
  return {
    file: 'edge-default-certificate.yaml', certFile, keyFile,
    content: ['# Written by mlink host add; edits are overwritten.', 'tls:', '  stores:', '    default:', '      defaultCertificate:', `        certFile: "${certFile}"`, `        keyFile: "${keyFile}"`, ''].join('\n'),
  };
}
