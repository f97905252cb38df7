// Writes and removes route files atomically (rename in the watched directory), then
// waits until Traefik's API shows the change, so "route written" means "route live".
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface Edge {
  routesDir: string;
  /** Traefik's API, e.g. http://127.0.0.1:18081 */
  api: string;
}

async function serviceServers(edge: Edge, router: string): Promise<string[] | null> {
  try {
    const res = await fetch(`${edge.api}/api/http/services/${router}@file`, { signal: AbortSignal.timeout(1000) });
    if (res.status === 404) return null;
    const body = (await res.json()) as { loadBalancer?: { servers?: Array<{ url: string }> } };
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

export async function writeRouteFile(edge: Edge, file: string, router: string, content: string, servers: string[], onTick: () => void = () => undefined, timeoutMs = 10_000): Promise<void> {
  await mkdir(edge.routesDir, { recursive: true });
  const tmp = join(edge.routesDir, `.${file}.${process.pid}.tmp`);
  await writeFile(tmp, content);
  await rename(tmp, join(edge.routesDir, file));
  const want = [...servers].sort().join(' ');
  await until(`Traefik did not load ${file}`, async () => ((await serviceServers(edge, router)) ?? []).sort().join(' ') === want, timeoutMs, onTick);
}

export async function removeRouteFile(edge: Edge, file: string, router: string | undefined, onTick: () => void = () => undefined, timeoutMs = 10_000): Promise<void> {
  await rm(join(edge.routesDir, file), { force: true });
  if (router) await until(`Traefik still serves ${router}`, async () => (await serviceServers(edge, router)) === null, timeoutMs, onTick);
}
