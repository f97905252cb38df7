// The daemons ml.ink runs on loopback in the embedded default: the Temporal dev server
// (state in the data dir), Traefik (file provider on a directory ml.ink owns) and a
// private image registry. Each starts detached only when its probe fails.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { InfraConfig } from '../config.js';
import { ensureDaemon, httpOk, run } from '../proc.js';
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

export function traefikStaticConfig(cfg: InfraConfig): string {
  return [
    '# Written by mlink setup; edits are overwritten.',
    'entryPoints:',
    `  web:`,
    `    address: "${cfg.traefik.host}:${cfg.traefik.webPort}"`,
    `  traefik:`,
    `    address: "${cfg.traefik.host}:${cfg.traefik.apiPort}"`,
    'ping:',
    '  entryPoint: traefik',
    'api:',
    '  insecure: true',
    '  dashboard: false',
    'providers:',
    '  providersThrottleDuration: 10ms',
    '  file:',
    `    directory: "${cfg.traefik.routesDir}"`,
    '    watch: true',
    'log:',
    '  level: WARN',
    '',
  ].join('\n');
}

export function temporalStep(): Step {
  return {
    name: 'temporal server',
    async done() {
      return undefined; // ensureDaemon decides: running as configured, or (re)started
    },
    async apply({ cfg }) {
      mkdirSync(dirname(cfg.temporal.db), { recursive: true });
      const how = await ensureDaemon({
        name: 'temporal dev server',
        cmd: cfg.temporal.binary,
        args: ['server', 'start-dev', '--headless', '--ip', cfg.temporal.host, '--port', String(cfg.temporal.port),
          '--http-port', String(cfg.temporal.port + 1), '--metrics-port', String(cfg.temporal.port + 2),
          '--db-filename', cfg.temporal.db, '--namespace', cfg.temporal.namespace, '--log-level', 'warn',
          // WAL halves each write's latency; a crash can lose at most the last moments of
          // history, which the reconciler rebuilds from git on its next pass.
          '--sqlite-pragma', 'journal_mode=wal', '--sqlite-pragma', 'synchronous=normal'],
        pidFile: join(cfg.dirs.run, 'temporal.pid'),
        logFile: join(cfg.dirs.run, 'temporal.log'),
        ready: () => temporalReady(cfg),
        timeoutMs: 60_000,
      });
      return `${how} on ${cfg.temporal.host}:${cfg.temporal.port}, state in ${cfg.temporal.db}`;
    },
  };
}

export function traefikStep(): Step {
  return {
    name: 'traefik',
    async done() {
      return undefined; // ensureDaemon decides: running as configured, or (re)started
    },
    async apply({ cfg }) {
      mkdirSync(cfg.traefik.routesDir, { recursive: true });
      mkdirSync(dirname(cfg.traefik.staticConfig), { recursive: true });
      const config = traefikStaticConfig(cfg);
      writeFileSync(cfg.traefik.staticConfig, config);
      const how = await ensureDaemon({
        name: 'traefik',
        cmd: cfg.traefik.binary,
        // the config's hash in the arguments: a changed config restarts Traefik once
        args: [`--configFile=${cfg.traefik.staticConfig}`, `--global.checkNewVersion=false`, `--global.sendAnonymousUsage=false`],
        fingerprint: createHash('sha256').update(config).digest('hex'),
        pidFile: join(cfg.dirs.run, 'traefik.pid'),
        logFile: join(cfg.dirs.run, 'traefik.log'),
        ready: () => traefikReady(cfg),
      });
      return `${how}: web on ${cfg.traefik.host}:${cfg.traefik.webPort}, routes from ${cfg.traefik.routesDir}`;
    },
  };
}

export function registryStep(): Step {
  return {
    name: 'image registry',
    async done({ cfg }) {
      return (await registryReady(cfg)) ? `serving on ${cfg.registry.host}:${cfg.registry.port}` : undefined;
    },
    async apply({ cfg }) {
      mkdirSync(cfg.registry.storage, { recursive: true });
      writeFileSync(cfg.registry.config, [
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
      ].join('\n'));
      await ensureDaemon({
        name: 'registry',
        cmd: 'docker-registry',
        args: ['serve', cfg.registry.config],
        pidFile: join(cfg.dirs.run, 'registry.pid'),
        logFile: join(cfg.dirs.run, 'registry.log'),
        ready: () => registryReady(cfg),
      });
      return `serving on ${cfg.registry.host}:${cfg.registry.port}`;
    },
  };
}
