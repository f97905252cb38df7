// A server process a test starts and stops itself (not detached: it dies with the test).
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';

export interface TestDaemon { name: string; proc: ChildProcess; logFile: string; stop(): Promise<void>; log(): string }

export function startDaemon(name: string, cmd: string, args: string[], logFile: string, env: NodeJS.ProcessEnv = process.env): TestDaemon {
  const out = createWriteStream(logFile, { flags: 'a' });
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  proc.stdout!.pipe(out);
  proc.stderr!.pipe(out);
  let exited = false;
  proc.once('exit', () => { exited = true; });
  return {
    name, proc, logFile,
    log: () => { try { return readFileSync(logFile, 'utf8'); } catch { return ''; } },
    async stop() {
      if (exited || proc.exitCode !== null) return;
      const gone = new Promise<void>((r) => proc.once('exit', () => r()));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(t);
    },
  };
}

/** Polls `probe` until it says yes; fails early with the log when the process exits. */
export async function waitReady(d: TestDaemon, probe: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (d.proc.exitCode !== null) throw new Error(`${d.name} exited with code ${d.proc.exitCode}:\n${d.log().split('\n').slice(-20).join('\n')}`);
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${d.name} not ready after ${timeoutMs} ms:\n${d.log().split('\n').slice(-20).join('\n')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
