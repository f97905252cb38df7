// `mlink doctor` says OK for every component after set-up, and when dockerd is really
// stopped it says FAIL with the fix; `mlink setup` (the fix) brings it back.
import { describe, expect, it } from 'vitest';
import { alive, readPid, run } from '../../infra/proc.js';

const mlink = (args: string[]): ReturnType<typeof run> => run('node', ['bin/mlink.js', ...args]);

// The host's components. Doctor also prints a line per app and per cluster's egress
// rules; those speak of clusters (a stale one left by a killed run may FAIL), not of set-up.
const components = ['docker', 'runsc', 'temporal', 'traefik', 'registry', 'image mlink/busybox:latest', 'image mlink/debian:bookworm'];

function componentStates(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const m = /^(OK|FAIL)\s+(\S+(?: mlink\/\S+)?)\s/.exec(line);
    if (m && components.includes(m[2]!)) out[m[2]!] = m[1]!;
  }
  return out;
}

const allOk = Object.fromEntries(components.map((c) => [c, 'OK']));

describe('mlink doctor', () => {
  it('prints OK for every component after set-up', async () => {
    const r = await mlink(['doctor']);
    expect(r.stdout).toMatch(/^OK\s+docker\s/m);
    expect(r.stdout).toMatch(/^OK\s+runsc\s.*network (sandbox|host)/m);
    expect(componentStates(r.stdout)).toEqual(allOk);
  });

  it('prints FAIL with the fix while dockerd is stopped, and setup restarts it', async () => {
    const pid = readPid('/var/run/docker.pid');
    expect(pid, 'dockerd pid file').toBeDefined();
    process.kill(pid!, 'SIGTERM');
    for (let i = 0; i < 300 && alive(pid!); i++) await new Promise((r) => setTimeout(r, 100));
    expect(alive(pid!)).toBe(false);
    try {
      const r = await mlink(['doctor']);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/^FAIL\s+docker\s.*dockerd is not answering\n\s+fix: run `npx mlink setup`/m);
      expect(r.stdout).toMatch(/^OK\s+temporal\s/m); // only what is down is reported down
    } finally {
      const setup = await mlink(['setup', '--skip-debian']);
      expect(setup.code, setup.stderr).toBe(0);
    }
    expect(componentStates((await mlink(['doctor'])).stdout)).toEqual(allOk);
  }, 120_000);
});
