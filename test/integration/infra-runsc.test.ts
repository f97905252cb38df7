// The runtime is really gVisor: a container started with runtime runsc sees gVisor's
// kernel, not the host's.
import { networkInterfaces } from 'node:os';
import { afterAll, describe, expect, it } from 'vitest';
import { cfg, docker, removeTestContainers, runId, testLabel } from '../support/infra.js';

afterAll(() => removeTestContainers());

async function dmesg(runtime: string): Promise<string> {
  const c = await docker.createContainer({
    Image: cfg.images.busybox,
    Cmd: ['dmesg'],
    Labels: { [testLabel]: runId },
    HostConfig: { Runtime: runtime },
  });
  await c.start();
  await c.wait();
  const logs = (await c.logs({ stdout: true, stderr: true })).toString('utf8');
  await c.remove({ force: true });
  return logs;
}

describe('runsc runtime', () => {
  it('runs a container whose kernel is gVisor', async () => {
    const out = await dmesg('runsc');
    expect(out).toMatch(/Starting gVisor/);
  });

  it('is not what runc gives (the check can fail)', async () => {
    const out = await dmesg('runc');
    expect(out).not.toMatch(/gVisor/);
  });

  it('gives the sandbox its own network on the bridge', async () => {
    const c = await docker.createContainer({
      Image: cfg.images.busybox,
      Cmd: ['sh', '-c', 'ip -4 addr show eth0'],
      Labels: { [testLabel]: runId },
      HostConfig: { Runtime: 'runsc' },
    });
    await c.start();
    await c.wait();
    const out = (await c.logs({ stdout: true, stderr: true })).toString('utf8');
    await c.remove({ force: true });
    const addr = /inet (\d+\.\d+\.\d+\.\d+)/.exec(out)?.[1];
    expect(addr, out).toBeDefined();
    const hostAddrs = Object.values(networkInterfaces()).flat().map((i) => i?.address);
    expect(hostAddrs).not.toContain(addr);
  });
});
