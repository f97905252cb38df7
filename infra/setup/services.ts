// The daemons ml.ink runs on loopback in the embedded default: the Temporal dev server
// (state in the data dir), Traefik (file provider on a directory ml.ink owns) and a
// private image registry. Each starts detached only when its probe fails.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { InfraConfig } from '../config.js';
import { ensureDaemon, httpOk, run, type DaemonSpec } from '../proc.js';
import type { Step } from './step.js';

export async function temporalReady(cfg: InfraConfig): Promise<boolean> {
  const r = await run(cfg.temporal.binary, ['operator', 'cluster', 'health', '--address', `${cfg.temporal.host}:${cfg.temporal.port}`, '--command-timeout', '2s']);
  return r.code === 0 && r.stdout.includes('SERVING');
}

export function traefikReady(cfg: InfraConfig): Promise<boolean> {
  return httpOk(`http://${cfg.traefik.host}:${cfg.traefik.apiPort}/ping`);
}

export function registryReady(cfg: InfraConfig): Promise<boolean> {
  return httpOk(`http://${cfg.registry.host}:${cfg.registry.port}/v2/`);
}

export interface TraefikStatic {
  /** host:port of the web entrypoint (`:80` is every address). */
  web: string;
  /** host:port of the websecure entrypoint (`:443` on a real edge). */
  websecure: string;
  /** host:port of the API and ping. */
  api: string;
  routesDir: string;
  /** Who writes the file, for its header. */
  writtenBy: string;
}

/** Traefik's static config: web, websecure and API entrypoints, ping, the file provider on a watched directory. */
export function traefikStaticConfig(o: TraefikStatic): string {
  return [
    `# Written by ${o.writtenBy}; edits are overwritten.`,
    'entryPoints:',
    `  web:`,
    `    address: "${o.web}"`,
    // HTTPS for every app host name; the certificates are files beside the routes (edge/app-tls.ts).
    `  websecure:`,
    `    address: "${o.websecure}"`,
    '    http:',
    '      tls: {}',
    `  traefik:`,
    `    address: "${o.api}"`,
    'ping:',
    '  entryPoint: traefik',
    'api:',
    '  insecure: true',
    '  dashboard: false',
    'providers:',
    '  providersThrottleDuration: 10ms',
    '  file:',
    `    directory: "${o.routesDir}"`,
    '    watch: true',
    'log:',
    '  level: WARN',
    '',
  ].join('\n');
}

type DaemonArgs = Omit<DaemonSpec, 'name' | 'pidFile' | 'logFile'>;

/**
 * A daemon as a set-up step. There is no separate "done" check: ensureDaemon leaves a
 * daemon that answers with the same arguments alone, and (re)starts it otherwise, so a
 * changed config is picked up once. `start` writes what the daemon reads and returns its
 * command line and a line for the progress output.
 */
function daemonStep(name: string, file: string, start: (cfg: InfraConfig) => { daemon: DaemonArgs; where: string }): Step {
  return {
    name,
    async done() {
      return undefined;
    },
    async apply({ cfg }) {
      const { daemon, where } = start(cfg);
      const how = await ensureDaemon({ name, ...daemon, pidFile: join(cfg.dirs.run, `${file}.pid`), logFile: join(cfg.dirs.run, `${file}.log`) });
      return `${how}: ${where}`;
    },
  };
}

export function temporalStep(): Step {
  return daemonStep('temporal server', 'temporal', (cfg) => {
    mkdirSync(dirname(cfg.temporal.db), { recursive: true });
    return {
      daemon: {
        cmd: cfg.temporal.binary,
        args: ['server', 'start-dev', '--headless', '--ip', cfg.temporal.host, '--port', String(cfg.temporal.port),
          '--http-port', String(cfg.temporal.port + 1), '--metrics-port', String(cfg.temporal.port + 2),
          '--db-filename', cfg.temporal.db, '--namespace', cfg.temporal.namespace, '--log-level', 'warn',
          // WAL halves each write's latency; a crash can lose at most the last moments of
          // history, which the reconciler rebuilds from git on its next pass.
          '--sqlite-pragma', 'journal_mode=wal', '--sqlite-pragma', 'synchronous=normal'],
        ready: () => temporalReady(cfg),
        timeoutMs: 60_000,
      },
      where: `${cfg.temporal.host}:${cfg.temporal.port}, state in ${cfg.temporal.db}`,
    };
  });
}

/**
 * Traefik's default TLS certificate, made once, as dynamic configuration beside the
 * routes. Without one Traefik generates a new RSA key on every configuration change,
 * which made each route switch take 40-330 ms here instead of under 10 ms.
 */
export function writeDefaultCertificate(cfg: InfraConfig): string {
  const dir = dirname(cfg.traefik.staticConfig);
  const cert = join(dir, 'default-cert.pem');
  const key = join(dir, 'default-key.pem');
  if (!existsSync(cert) || !existsSync(key)) {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', key, '-out', cert, '-days', '3650', '-subj', '/CN=mlink default certificate'], { stdio: 'pipe' });
  }
  const file = join(cfg.traefik.routesDir, 'edge-default-certificate.yaml');
  writeFileSync(file, [
    '# Written by mlink setup; edits are overwritten. Traefik\'s default certificate: without',
    '# one it makes a new key on every route change, which slows each switch down.',
    'tls:',
    '  stores:',
    '    default:',
    '      defaultCertificate:',
    `        certFile: "${cert}"`,
    `        keyFile: "${key}"`,
    '',
  ].join('\n'));
  return file;
}

export function traefikStep(): Step {
  return daemonStep('traefik', 'traefik', (cfg) => {
    mkdirSync(cfg.traefik.routesDir, { recursive: true });
    mkdirSync(dirname(cfg.traefik.staticConfig), { recursive: true });
    writeDefaultCertificate(cfg);
    const config = traefikStaticConfig({ web: `${cfg.traefik.host}:${cfg.traefik.webPort}`, websecure: `${cfg.traefik.host}:${cfg.traefik.websecurePort}`, api: `${cfg.traefik.host}:${cfg.traefik.apiPort}`, routesDir: cfg.traefik.routesDir, writtenBy: 'mlink setup' });
    writeFileSync(cfg.traefik.staticConfig, config);
    return {
      daemon: {
        cmd: cfg.traefik.binary,
        args: [`--configFile=${cfg.traefik.staticConfig}`, '--global.checkNewVersion=false', '--global.sendAnonymousUsage=false'],
        fingerprint: createHash('sha256').update(config).digest('hex'), // a changed config restarts Traefik once
        ready: () => traefikReady(cfg),
      },
      where: `web on ${cfg.traefik.host}:${cfg.traefik.webPort}, websecure on ${cfg.traefik.websecurePort}, routes from ${cfg.traefik.routesDir}`,
    };
  });
}

export function registryStep(): Step {
  return daemonStep('image registry', 'registry', (cfg) => {
    mkdirSync(cfg.registry.storage, { recursive: true });
    const config = [
      'version: 0.1',
      'log:',
      '  level: warn',
      'storage:',
      '  filesystem:',
      `    rootdirectory: "${cfg.registry.storage}"`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: "${cfg.registry.host}:${cfg.registry.port}"`,
      '',
    ].join('\n');
    writeFileSync(cfg.registry.config, config);
    return {
      daemon: {
        cmd: 'docker-registry',
        args: ['serve', cfg.registry.config],
        fingerprint: createHash('sha256').update(config).digest('hex'),
        ready: () => registryReady(cfg),
      },
      where: `${cfg.registry.host}:${cfg.registry.port}`,
    };
  });
}
