// A Traefik of the test's own (never the shared one on 18080/18081): web and websecure
// entrypoints and an API port on free loopback ports, a file provider on a temp dir, and
// optional ACME settings in its static config. Stopped by the test.
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { infraConfig } from '../../infra/config.js';
import { startDaemon, waitReady } from './daemon.js';
import { freePort } from './ports.js';

export interface TestTraefik {
  webPort: number;
  websecurePort: number;
  apiPort: number;
  dir: string;
  dynamicDir: string;
  /** Writes a dynamic-config file atomically (rename), as the reconciler would. */
  writeDynamic(name: string, yaml: string): void;
  removeDynamic(name: string): void;
  /** Names of routers Traefik has loaded from the file provider. */
  routers(): Promise<Array<{ name: string; status: string }>>;
  log(): string;
  stop(): Promise<void>;
}

export async function startTraefik(opts: { staticExtra?: Record<string, unknown>; env?: NodeJS.ProcessEnv } = {}): Promise<TestTraefik> {
  const binary = infraConfig().traefik.binary;
  const dir = mkdtempSync(join(tmpdir(), 'mlink-traefik-'));
  const dynamicDir = join(dir, 'dynamic');
  mkdirSync(dynamicDir);
  const [webPort, websecurePort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const staticConfig = {
    entryPoints: {
      web: { address: `127.0.0.1:${webPort}` },
      websecure: { address: `127.0.0.1:${websecurePort}` },
      traefik: { address: `127.0.0.1:${apiPort}` },
    },
    ping: { entryPoint: 'traefik' },
    api: { insecure: true, dashboard: false },
    providers: { providersThrottleDuration: '10ms', file: { directory: dynamicDir, watch: true } },
    log: { level: 'INFO' },
    ...opts.staticExtra,
  };
  writeFileSync(join(dir, 'traefik.yaml'), stringify(staticConfig));
  const d = startDaemon('traefik', binary, [`--configFile=${join(dir, 'traefik.yaml')}`], join(dir, 'traefik.log'), { ...process.env, ...opts.env });
  const api = `http://127.0.0.1:${apiPort}`;
  await waitReady(d, async () => (await fetch(`${api}/ping`, { signal: AbortSignal.timeout(1000) })).ok);
  return {
    webPort, websecurePort, apiPort, dir, dynamicDir,
    writeDynamic(name, yaml) {
      const tmp = join(dir, `.${name}.tmp`);
      writeFileSync(tmp, yaml, { mode: 0o600 });
      renameSync(tmp, join(dynamicDir, name));
    },
    removeDynamic(name) { rmSync(join(dynamicDir, name), { force: true }); },
    async routers() {
      const r = await fetch(`${api}/api/http/routers`, { signal: AbortSignal.timeout(2000) });
      return ((await r.json()) as Array<{ name: string; status: string }>).map((x) => ({ name: x.name, status: x.status }));
    },
    log: d.log,
    async stop() { await d.stop(); rmSync(dir, { recursive: true, force: true }); },
  };
}
