// A daemon's pid file that names a live process which is not the daemon (it died, and its
// pid was given to another process: once, a container's) must not make setup wait for a
// daemon that is not there: it is started. Found when `mlink setup` failed with "traefik
// was not ready after 30 s" while traefik.pid named the waker's node process; when the
// args file differs, the old check SIGTERMed that process instead (here: the test itself).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { alive, ensureDaemon, readPid, runs } from '../../infra/proc.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) {
    const pid = readPid(join(d, 'd.pid'));
    // Started detached, so in a process group of its own: the shell and its sleep go together.
    if (pid !== undefined && pid !== process.pid && alive(pid)) process.kill(-pid, 'SIGKILL');
    rmSync(d, { recursive: true, force: true });
  }
});

describe('daemon pid files', () => {
  it('tells a live process that runs the command from one that only has the pid', () => {
    expect(runs(process.pid, process.execPath)).toBe(true);
    expect(runs(process.pid, '/usr/local/bin/traefik')).toBe(false);
  });

  it('starts a daemon whose pid file names a live process that is not it, instead of waiting for it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mlink-pid-'));
    dirs.push(dir);
    const marker = join(dir, 'ready');
    // This test's own pid stands for the process that got the dead daemon's pid.
    writeFileSync(join(dir, 'd.pid'), String(process.pid));
    const how = await ensureDaemon({
      name: 'fake', cmd: '/bin/sh', args: ['-c', `touch ${marker}; sleep 30`],
      pidFile: join(dir, 'd.pid'), logFile: join(dir, 'd.log'), ready: async () => existsSync(marker), timeoutMs: 5000,
    });
    expect(how).toBe('started');
    const pid = Number(readFileSync(join(dir, 'd.pid'), 'utf8'));
    expect(pid).not.toBe(process.pid);
    expect(alive(pid)).toBe(true);
  });
});
