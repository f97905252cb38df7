// Docker Engine with gVisor's runsc registered as the runtime `runsc`. dockerd is started
// detached when it is not answering; pid files left by a dead daemon are cleared first.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { clearStalePid, ensureDaemon, readPid, run } from '../proc.js';
import type { Step } from './step.js';

const daemonJson = '/etc/docker/daemon.json';
const dockerPid = '/var/run/docker.pid';
const containerdPid = '/var/run/docker/containerd/containerd.pid';

export interface RuntimeChoice {
  /** `current`: gVisor built from its Go module, default sandbox network. `debian`: Debian's 2022 runsc with --network=host. */
  kind: 'current' | 'debian';
  path: string;
  runtimeArgs: string[];
  reason: string;
  /** Binaries tried before this one that could not start a container (not tried again). */
  failed?: string[];
}

export async function dockerReady(): Promise<boolean> {
  const r = await run('docker', ['version', '--format', '{{.Server.Version}}']);
  return r.code === 0 && r.stdout.trim().length > 0;
}

function readDaemonJson(): Record<string, unknown> {
  if (!existsSync(daemonJson)) return {};
  try {
    return JSON.parse(readFileSync(daemonJson, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${daemonJson} is not valid JSON (${(e as Error).message}); fix or remove it, then run mlink setup again`);
  }
}

export function registeredRunsc(): { path: string; runtimeArgs?: string[] } | undefined {
  const runtimes = readDaemonJson().runtimes as Record<string, { path: string; runtimeArgs?: string[] }> | undefined;
  return runtimes?.runsc;
}

/** Writes the runsc runtime into daemon.json; returns true when the file changed. */
export function registerRunsc(choice: RuntimeChoice): boolean {
  const cfg = readDaemonJson();
  const runtimes = (cfg.runtimes ?? {}) as Record<string, unknown>;
  const want = { path: choice.path, runtimeArgs: choice.runtimeArgs };
  if (JSON.stringify(runtimes.runsc) === JSON.stringify(want)) return false;
  cfg.runtimes = { ...runtimes, runsc: want };
  mkdirSync('/etc/docker', { recursive: true });
  writeFileSync(daemonJson, JSON.stringify(cfg, null, 2) + '\n');
  return true;
}

/**
 * `live-restore`: containers keep running while dockerd stops or restarts (a package
 * upgrade, a crash), so apps do not go down with it. Works with runsc and the network
 * holders (tried: a replica answered while dockerd was down and after it came back).
 */
export function liveRestoreSet(): boolean {
  return readDaemonJson()['live-restore'] === true;
}

/** Writes `live-restore: true` into daemon.json; returns true when the file changed. */
export function setLiveRestore(): boolean {
  const cfg = readDaemonJson();
  if (cfg['live-restore'] === true) return false;
  cfg['live-restore'] = true;
  mkdirSync('/etc/docker', { recursive: true });
  writeFileSync(daemonJson, JSON.stringify(cfg, null, 2) + '\n');
  return true;
}

/** Asks a running dockerd to re-read daemon.json (runtimes reload on SIGHUP). */
export async function reloadDocker(): Promise<void> {
  const pid = readPid(dockerPid);
  if (pid !== undefined) process.kill(pid, 'SIGHUP');
  await new Promise((r) => setTimeout(r, 500));
}

export function dockerStep(logDir: string): Step {
  return {
    name: 'docker engine',
    async done() {
      if (!liveRestoreSet() || !(await dockerReady())) return undefined;
      const v = await run('docker', ['version', '--format', '{{.Server.Version}}']);
      return `dockerd ${v.stdout.trim()} answering, live-restore on`;
    },
    async apply({ progress }) {
      // live-restore is re-read on SIGHUP: a running dockerd takes it without a restart.
      if (setLiveRestore() && (await dockerReady())) {
        progress('live-restore on: containers keep running while dockerd restarts');
        await reloadDocker();
        return 'dockerd answering; live-restore turned on';
      }
      clearStalePid(dockerPid);
      clearStalePid(containerdPid);
      progress('starting dockerd');
      await ensureDaemon({
        name: 'dockerd',
        cmd: 'dockerd',
        args: ['--pidfile', dockerPid],
        pidFile: join(logDir, 'dockerd.pid'),
        logFile: join(logDir, 'dockerd.log'),
        ready: dockerReady,
        timeoutMs: 60_000,
      });
      return 'dockerd started';
    },
  };
}
