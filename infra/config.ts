// The infrastructure ml.ink runs on one host in the embedded default: fixed versions of
// what is built from source, and the loopback ports ml.ink owns. Every port can be moved
// with an environment variable so ml.ink can share a host with other services.
import { join } from 'node:path';
import { dataDir, type DataDir } from '../reconciler/util/paths.js';

export const versions = {
  temporalCli: 'v1.5.1', // Temporal server v1.29.1; later tags carry a local replace that `go install` refuses
  traefik: 'v3.6.1', // keep in step with infra/traefik/go.mod
  gvisor: 'v0.0.0-20260905035102-160fafc42237', // gVisor's Go-buildable branch, as the module proxy serves it
} as const;

export interface InfraConfig {
  dirs: DataDir;
  temporal: { host: string; port: number; namespace: string; binary: string; db: string };
  traefik: { host: string; webPort: number; websecurePort: number; apiPort: number; binary: string; staticConfig: string; routesDir: string };
  registry: { host: string; port: number; storage: string; config: string };
  runsc: { binary: string; choice: string };
  images: { busybox: string; debian: string };
}

function port(name: string, fallback: number): number {
  const raw = process.env[name];
  if (!raw) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`${name}=${raw} is not a TCP port; set it to a number from 1 to 65535`);
  return n;
}

/**
 * The shared infrastructure's data dir: MLINK_INFRA_HOME when several ml.ink data dirs
 * (MLINK_HOME) share one host's Docker, Temporal and Traefik, else the data dir itself.
 */
export function infraDir(): DataDir {
  return process.env.MLINK_INFRA_HOME ? dataDir(process.env.MLINK_INFRA_HOME) : dataDir();
}

export function infraConfig(dirs: DataDir = infraDir()): InfraConfig {
  return {
    dirs,
    temporal: {
      host: '127.0.0.1',
      port: port('MLINK_TEMPORAL_PORT', 17233),
      namespace: 'default',
      binary: join(dirs.bin, `temporal-${versions.temporalCli}`),
      db: dirs.temporalDb,
    },
    traefik: {
      host: '127.0.0.1',
      webPort: port('MLINK_TRAEFIK_PORT', 18080),
      websecurePort: port('MLINK_TRAEFIK_TLS_PORT', 18443),
      apiPort: port('MLINK_TRAEFIK_API_PORT', 18081),
      binary: join(dirs.bin, `traefik-${versions.traefik}`),
      staticConfig: join(dirs.home, 'traefik', 'traefik.yaml'),
      routesDir: dirs.routes,
    },
    registry: {
      host: '127.0.0.1',
      port: port('MLINK_REGISTRY_PORT', 15000),
      storage: dirs.registry,
      config: join(dirs.home, 'registry.yaml'),
    },
    // `-static`: runsc re-executes itself inside the sandbox's chroot, where no dynamic loader exists.
    runsc: { binary: join(dirs.bin, `runsc-${versions.gvisor}-static`), choice: join(dirs.run, 'runsc.json') },
    images: { busybox: 'mlink/busybox:latest', debian: 'mlink/debian:bookworm' },
  };
}

export function temporalAddress(cfg: InfraConfig = infraConfig()): string {
  return process.env.TEMPORAL_ADDRESS ?? `${cfg.temporal.host}:${cfg.temporal.port}`;
}

export function registryAddress(cfg: InfraConfig = infraConfig()): string {
  return `${cfg.registry.host}:${cfg.registry.port}`;
}
