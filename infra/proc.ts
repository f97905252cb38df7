// Running host commands and keeping daemons up, idempotently. A daemon is started only
// when its readiness probe fails; a pid file left by a dead process is cleared first.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';

export interface RunResult { code: number; stdout: string; stderr: string }

export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string; onLine?: (line: string) => void } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let partial = '';
    const feed = (chunk: string): void => {
      if (!opts.onLine) return;
      partial += chunk;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) opts.onLine(l);
    };
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; feed(d); });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; feed(d); });
    child.on('error', reject);
    child.stdin.on('error', () => undefined); // a child that exits without reading its input
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs a command and throws with its last output lines when it fails. */
export async function must(cmd: string, args: string[], opts: Parameters<typeof run>[2] = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    const tail = (r.stderr || r.stdout).trim().split('\n').slice(-15).join('\n');
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}:\n${tail}`);
  }
  return r.stdout;
}

export async function which(cmd: string): Promise<string | undefined> {
  const r = await run('sh', ['-c', `command -v ${cmd}`]);
  return r.code === 0 ? r.stdout.trim() : undefined;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether `pid` is alive and runs `cmd`. A pid file outlives a daemon that died, and its
 * pid can belong to anyone by then (once, a container's process): that one is not ours
 * to wait for, nor to stop.
 */
export function runs(pid: number, cmd: string): boolean {
  if (!alive(pid)) return false;
  let argv0: string;
  try {
    argv0 = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? '';
  } catch {
    return true; // no /proc to ask: the signal's answer is all there is
  }
  return argv0 === cmd || basename(argv0) === basename(cmd);
}

export function readPid(pidFile: string): number | undefined {
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** Removes a pid file whose process is gone, so a daemon that checks it will start. */
export function clearStalePid(pidFile: string): void {
  const pid = readPid(pidFile);
  if (existsSync(pidFile) && (pid === undefined || !alive(pid))) rmSync(pidFile, { force: true });
}


export async function httpOk(url: string, timeoutMs = 1000): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

export async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs: number, hint: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > deadline) throw new Error(`${what} was not ready after ${Math.round(timeoutMs / 1000)} s${hint() ? `\n${hint()}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export function tail(file: string, lines = 20): string {
  if (!existsSync(file)) return '';
  return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
}

export interface DaemonSpec {
  name: string;
  cmd: string;
  args: string[];
  pidFile: string;
  logFile: string;
  ready: () => Promise<boolean>;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** Anything else that should restart the daemon when it changes (a config file's hash). */
  fingerprint?: string;
}

/**
 * Starts a daemon detached from this process (it outlives `mlink setup`), unless its
 * readiness probe already passes. Returns whether it was started here.
 */
export async function ensureDaemon(spec: DaemonSpec): Promise<'running' | 'started' | 'restarted'> {
  // A daemon we started with other arguments (an upgrade changed them) is restarted once.
  const argsFile = `${spec.pidFile}.args`;
  const wanted = JSON.stringify([spec.cmd, ...spec.args, spec.fingerprint ?? '']);
  const ours = readPid(spec.pidFile);
  const stale = ours !== undefined && runs(ours, spec.cmd) && (!existsSync(argsFile) || readFileSync(argsFile, 'utf8') !== wanted);
  if (stale) await stopDaemon(spec.pidFile);
  else if (await spec.ready()) return 'running';
  const result = await startDaemon(spec);
  writeFileSync(argsFile, wanted);
  return stale ? 'restarted' : result;
}

async function startDaemon(spec: DaemonSpec): Promise<'running' | 'started'> {
  const existing = readPid(spec.pidFile);
  if (existing !== undefined && runs(existing, spec.cmd)) {
    await waitFor(spec.name, spec.ready, spec.timeoutMs ?? 30_000, () => tail(spec.logFile));
    return 'running';
  }
  rmSync(spec.pidFile, { force: true });
  mkdirSync(dirname(spec.pidFile), { recursive: true });
  mkdirSync(dirname(spec.logFile), { recursive: true });
  const out = openSync(spec.logFile, 'a');
  const child = spawn(spec.cmd, spec.args, { detached: true, stdio: ['ignore', out, out], env: spec.env ?? process.env });
  closeSync(out);
  const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? 1)));
  child.unref();
  if (child.pid === undefined) throw new Error(`${spec.name}: could not start ${spec.cmd}`);
  writeFileSync(spec.pidFile, String(child.pid));
  let exitCode: number | undefined;
  void exited.then((c) => { exitCode = c; });
  await waitFor(spec.name, async () => {
    if (exitCode !== undefined) throw new Error(`${spec.name} exited with code ${exitCode} while starting:\n${tail(spec.logFile)}`);
    return spec.ready();
  }, spec.timeoutMs ?? 30_000, () => `last lines of ${spec.logFile}:\n${tail(spec.logFile)}`);
  return 'started';
}

export async function stopDaemon(pidFile: string, timeoutMs = 10_000): Promise<boolean> {
  const pid = readPid(pidFile);
  if (pid === undefined || !alive(pid)) { rmSync(pidFile, { force: true }); return false; }
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (alive(pid)) process.kill(pid, 'SIGKILL');
  rmSync(pidFile, { force: true });
  return true;
}
