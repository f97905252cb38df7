// Writes and removes route files on a host's edge (atomically: its file writer renames
// into the watched directory), then waits until that Traefik's API shows the change, so
// "route written" means "route live". The API is asked as the host asks it: it listens
// on the host's own loopback.
import { join } from 'node:path';
import type { Host } from '../hosts/host.js';

/** Where a host's Traefik reads its route files and answers its API. */
export interface Edge {
  routesDir: string;
  /** Traefik's API as the host reaches it, e.g. http://127.0.0.1:18081 */
  api: string;
  /** Where clients reach its websecure entrypoint, when not the host's own address and 443 (the embedded default: loopback, 18443). */
  address?: string;
  httpsPort?: number;
}

async function serviceServers(host: Host, edge: Edge, router: string): Promise<string[] | null> {
  try {
    const res = await host.request(`${edge.api}/api/http/services/${router}@file`, { timeoutMs: 1000 });
    if (res.status === 404) return null;
    const body = JSON.parse(res.body) as { loadBalancer?: { servers?: Array<{ url: string }> } };
    return (body.loadBalancer?.servers ?? []).map((s) => s.url);
  } catch {
    return null;
  }
}

async function until(what: string, test: () => Promise<boolean>, timeoutMs: number, onTick: () => void): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await test())) {
    onTick();
    if (Date.now() > deadline) throw new Error(`${what} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export async function writeRouteFile(host: Host, edge: Edge, file: string, router: string, content: string, servers: string[], onTick: () => void = () => undefined, timeoutMs = 10_000): Promise<void> {
  await host.files.write(join(edge.routesDir, file), content);
  const want = [...servers].sort().join(' ');
  await until(`on host ${host.name}: Traefik did not load ${file}`, async () => ((await serviceServers(host, edge, router)) ?? []).sort().join(' ') === want, timeoutMs, onTick);
}

export async function removeRouteFile(host: Host, edge: Edge, file: string, router: string | undefined, onTick: () => void = () => undefined, timeoutMs = 10_000): Promise<void> {
  await host.files.remove(join(edge.routesDir, file));
  if (router) await until(`on host ${host.name}: Traefik still serves ${router}`, async () => (await serviceServers(host, edge, router)) === null, timeoutMs, onTick);
}
