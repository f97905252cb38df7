// The control plane's host health checks: every host of the pool, on an interval (mlink.yaml
// spec.hostHealth), SSH and Docker answering within a deadline. Each result moves the
// host's condition (conditions.ts, pure); the pool's listeners (engine.ts) ask for a pass
// when a host is Lost or back. The conditions, with where each runtime host keeps its
// databases' data, are kept in a file of the data dir: `mlink status`, `mlink host list`
// and a restarted control plane read them there.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { LiveVolume } from '../model.js';
import { readClusterConfig } from '../source/desired.js';
import type { StateStore } from '../state/store.js';
import type { Logger } from '../util/log.js';
import { conditionText, HEALTH_DEFAULTS, nextCondition, type HealthSettings, type HostCondition, type Probe } from './conditions.js';
import type { HostPool } from './pool.js';
import { within } from '../util/deadline.js';

export interface HealthFile {
  cluster: string;
  /** When the checks last ran. */
  at: string;
  settings: HealthSettings;
  /** Hosts that are not Ready, and every runtime host's database volumes as last seen. */
  hosts: Record<string, { condition?: HostCondition; volumes?: LiveVolume[] }>;
}

export function healthFile(dir: string, cluster: string): string {
  return join(dir, `${cluster}.json`);
}

export async function readHealthFile(file: string): Promise<HealthFile | undefined> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as HealthFile;
  } catch {
    return undefined;
  }
}

/** Puts what the file says into the pool: conditions, and volumes as last seen where the pool has seen nothing yet. */
export function loadHealth(pool: HostPool, file: HealthFile | undefined): void {
  if (file?.at) pool.healthCheckedAt = file.at;
  for (const [name, h] of Object.entries(file?.hosts ?? {})) {
    if (!pool.names().includes(name)) continue;
    if (h.condition) pool.setCondition(name, h.condition);
    if (h.volumes && !pool.lastSeen(name)) pool.remember(name, { containers: [], routes: [], networks: [], volumes: h.volumes });
  }
}

/** SSH (a remote host) and Docker answering within `timeoutMs` each. */
export async function probeHost(pool: HostPool, name: string, timeoutMs: number): Promise<Probe> {
  let step = 'ssh';
  try {
    const host = pool.get(name);
    if (host.address !== 'local') {
      const r = await within(timeoutMs, 'ssh', host.run({ argv: ['true'] }));
      if (r.code !== 0) throw new Error(`\`true\` exited ${r.code}`);
    }
    step = 'docker';
    await within(timeoutMs, 'docker', host.docker.ping());
    return { ok: true };
  } catch (e) {
    const m = (e as Error).message;
    return { ok: false, failed: m.startsWith(`${step}:`) ? m : `${step}: ${m}` };
  }
}

export interface HostMonitor {
  /** One round of checks now (the interval runs them too). */
  check(): Promise<void>;
  stop(): Promise<void>;
}

export function startHostMonitor(opts: { pool: HostPool; store: StateStore; cluster: string; dir: string; log: Logger }): HostMonitor {
  const { pool, log } = opts;
  const file = healthFile(opts.dir, opts.cluster);
  let settings: HealthSettings = HEALTH_DEFAULTS;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  const round = async (): Promise<void> => {
    try {
      const config = await readClusterConfig(await opts.store.view());
      settings = { ...HEALTH_DEFAULTS, ...config.spec.hostHealth };
    } catch {
      // an invalid mlink.yaml is the pass's to report; the last good settings stay
    }
    // A quarter of the time to Lost (5 s by default): a host slow under load is not taken for a dead one, and Lost still takes several failed checks.
    const timeoutMs = Math.max(1000, Math.min(10_000, (settings.lostAfterSeconds * 1000) / 4));
    const names = pool.names();
    const probes = await Promise.all(names.map((n) => probeHost(pool, n, timeoutMs)));
    const now = Date.now();
    names.forEach((name, i) => {
      const { condition, transition } = nextCondition(pool.condition(name), probes[i]!, now, settings.lostAfterSeconds * 1000);
      pool.setCondition(name, condition);
      if (transition === 'lost') log.warn('host lost: its apps move to the other runtime hosts', { host: name, condition: conditionText(condition) });
      else if (transition === 'failing') log.warn('host not answering its health checks', { host: name, check: condition.check, lostAfterSeconds: settings.lostAfterSeconds });
      else if (transition === 'back') log.info('host answers again: its stale replicas and routes go before it takes new work', { host: name });
      else if (transition === 'recovered') log.info('host answers its health checks again', { host: name });
    });
    const hosts: HealthFile['hosts'] = {};
    for (const name of names) {
      const c = pool.condition(name);
      const volumes = pool.lastSeen(name)?.volumes;
      if (c || volumes?.length) hosts[name] = { ...(c ? { condition: c } : {}), ...(volumes?.length ? { volumes } : {}) };
    }
    pool.healthCheckedAt = new Date(now).toISOString();
    // Every round, so its readers can tell from `at` that the checks run.
    const doc: HealthFile = { cluster: opts.cluster, at: new Date(now).toISOString(), settings, hosts };
    await mkdir(dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify(doc, null, 2)}\n`);
    await rename(tmp, file);
  };

  const check = (): Promise<void> => {
    running ??= round().catch((e: unknown) => log.warn('host health checks', { error: e })).finally(() => { running = undefined; });
    return running;
  };
  const loop = (): void => {
    if (stopped) return;
    timer = setTimeout(() => void check().finally(loop), settings.checkIntervalSeconds * 1000);
  };
  void readHealthFile(file).then((f) => loadHealth(pool, f)).finally(() => { void check().finally(loop); });
  return {
    check,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
