// What integration tests share: the infrastructure `mlink setup` brought up, a Docker
// client, and a label that marks everything a test run creates so it can clean up
// only that.
import Docker from 'dockerode';
import { randomBytes } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
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

/**
 * GET an app through Traefik as a browser would reach it: HTTPS on the websecure
 * entrypoint with SNI and Host set to its name (plain HTTP redirects there). The chain is
 * not checked here: these tests are about routing; test/e2e/names.test.ts checks the
 * certificates against the exported root.
 */
export function viaTraefik(host: string, path = '/', timeoutMs = 5000, opts: { method?: string; body?: string } = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      host: cfg.traefik.host, port: cfg.traefik.websecurePort, path, method: opts.method ?? 'GET', headers: { host }, servername: host,
      rejectUnauthorized: false, timeout: timeoutMs, agent: false,
    }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from Traefik for ${host} in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}
