// What integration tests share: the infrastructure `mlink setup` brought up, a Docker
// client, and a label that marks everything a test run creates so it can clean up
// only that.
import Docker from 'dockerode';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { infraConfig } from '../../infra/config.js';
import { LocalHost } from '../../reconciler/hosts/host.js';

export const cfg = infraConfig();
export const docker = new Docker();
/** This machine through the host seam, as the reconciler sees it in the embedded default. */
export const host = new LocalHost('local', docker);
export const runId = `t${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
export const testLabel = 'ink.ml.test';

export async function removeTestContainers(id = runId): Promise<void> {
  const list = await docker.listContainers({ all: true, filters: { label: [`${testLabel}=${id}`] } });
  await Promise.all(list.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
}

export async function removeTestNetworks(id = runId): Promise<void> {
  const list = await docker.listNetworks({ filters: { label: [`${testLabel}=${id}`] } });
  await Promise.all(list.map((n) => docker.getNetwork(n.Id).remove().catch(() => undefined)));
}

/** Polls until fn returns a value (not undefined) or the time is up. */
export async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not true after ${timeoutMs} ms${last ? ` (last error: ${(last as Error).message})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** GET through Traefik's web entrypoint with a Host header (fetch would drop it). */
export function viaTraefik(host: string, path = '/', timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: cfg.traefik.host, port: cfg.traefik.webPort, path, headers: { host }, timeout: timeoutMs, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from Traefik for ${host} in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}
