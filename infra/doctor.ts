// `mlink doctor`: one line per component with version, address and OK or FAIL plus the
// fix. It only looks; `mlink setup` is what changes things.
import { existsSync } from 'node:fs';
import { infraConfig, registryAddress, temporalAddress, versions, type InfraConfig } from './config.js';
import { run } from './proc.js';
import { dockerReady, registeredRunsc } from './setup/docker.js';
import { imageExists } from './setup/images.js';
import { readRuntimeChoice } from './setup/runsc.js';
import { registryReady, temporalReady, traefikReady } from './setup/services.js';
import { sandboxChecks } from './sandbox-doctor.js';

export interface Check {
  component: string;
  ok: boolean;
  version: string;
  address: string;
  detail: string;
  fix?: string;
}

async function firstLine(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args).catch(() => ({ code: 1, stdout: '', stderr: '' }));
  return r.code === 0 ? (r.stdout.trim().split('\n')[0] ?? '') : '';
}

export async function checks(cfg: InfraConfig = infraConfig()): Promise<Check[]> {
  const out: Check[] = [];
  const docker = await dockerReady();
  const dockerVersion = docker ? await firstLine('docker', ['version', '--format', '{{.Server.Version}}']) : '';
  out.push({
    component: 'docker', ok: docker, version: dockerVersion || '-', address: 'unix:///var/run/docker.sock',
    detail: docker ? 'dockerd answering' : 'dockerd is not answering',
    fix: docker ? undefined : 'run `npx mlink setup` (starts dockerd), or start dockerd yourself',
  });

  const choice = readRuntimeChoice(cfg.runsc.choice);
  const reg = existsSync('/etc/docker/daemon.json') ? registeredRunsc() : undefined;
  const runscOk = !!choice && !!reg && reg.path === choice.path && existsSync(choice.path) && docker;
  const net = choice ? (choice.runtimeArgs.find((a) => a.startsWith('--network=')) ?? '--network=sandbox') : '';
  // A build from the Go module proxy carries no version string of its own: its module version is in the file name.
  const runscVersion = choice ? (await firstLine(choice.path, ['--version'])).replace('VERSION_MISSING', choice.kind === 'current' ? versions.gvisor : '?') : '';
  out.push({
    component: 'runsc', ok: runscOk, version: runscVersion || '-', address: choice?.path ?? '-',
    detail: choice ? `${choice.kind} gVisor, ${net.replace('--network=', 'network ')}` : 'no runsc registered as a Docker runtime',
    fix: runscOk ? undefined : docker ? 'run `npx mlink setup` (registers runsc in /etc/docker/daemon.json)' : 'start dockerd first: `npx mlink setup`',
  });

  const temporal = existsSync(cfg.temporal.binary) && (await temporalReady(cfg));
  out.push({
    component: 'temporal', ok: temporal, version: existsSync(cfg.temporal.binary) ? `cli ${versions.temporalCli} ${(/\(Server [^,)]+/.exec(await firstLine(cfg.temporal.binary, ['--version']))?.[0] ?? '').replace('(', '(')})`.replace(' )', '') : '-',
    address: temporalAddress(cfg), detail: temporal ? 'dev server SERVING' : 'no Temporal server answering',
    fix: temporal ? undefined : 'run `npx mlink setup` (starts the Temporal dev server)',
  });

  const traefik = await traefikReady(cfg);
  const traefikVersion = existsSync(cfg.traefik.binary) ? versions.traefik : '';
  out.push({
    component: 'traefik', ok: traefik, version: traefikVersion || '-', address: `http://${cfg.traefik.host}:${cfg.traefik.webPort}`,
    detail: traefik ? `websecure on https://${cfg.traefik.host}:${cfg.traefik.websecurePort}, routes from ${cfg.traefik.routesDir}` : 'Traefik ping does not answer',
    fix: traefik ? undefined : 'run `npx mlink setup` (builds and starts Traefik)',
  });

  const registry = await registryReady(cfg);
  out.push({
    component: 'registry', ok: registry, version: registry ? 'distribution 2' : '-', address: registryAddress(cfg),
    detail: registry ? '/v2/ answering' : 'registry does not answer', fix: registry ? undefined : 'run `npx mlink setup` (starts docker-registry)',
  });

  for (const ref of [cfg.images.busybox, cfg.images.debian]) {
    const has = docker && (await imageExists(ref));
    out.push({
      component: `image ${ref}`, ok: has, version: '-', address: 'local docker',
      detail: has ? 'present' : docker ? 'missing' : 'unknown: dockerd is not answering',
      fix: has ? undefined : 'run `npx mlink setup` (builds base images from Debian)',
    });
  }
  if (docker) out.push(...(await sandboxChecks()));
  return out;
}

export function formatChecks(list: Check[]): string {
  const w = (f: (c: Check) => string): number => Math.max(...list.map((c) => f(c).length));
  const wc = w((c) => c.component);
  const wv = w((c) => c.version);
  const wa = w((c) => c.address);
  return list.map((c) => {
    const line = `${c.ok ? 'OK  ' : 'FAIL'}  ${c.component.padEnd(wc)}  ${c.version.padEnd(wv)}  ${c.address.padEnd(wa)}  ${c.detail}`;
    return c.fix ? `${line}\n      fix: ${c.fix}` : line;
  }).join('\n') + '\n';
}
