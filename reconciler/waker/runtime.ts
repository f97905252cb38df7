// The waker's hands on its host: replicas started and stopped through the host's Docker
// socket, state files written beside the specs. A replica keeps its (stopped) container
// while it sleeps, env and all, so the waker needs no secret. A deploy starts replicas
// in a network holder's namespace (hosts/containers.ts), and a holder serves one start
// only; so on its way to sleep a replica is made again from its own inspect, owning its
// place on the project network with the holder's MAC (the egress rules know it by that),
// and the holder goes. A wake is then one `docker start`, and nothing runs while it sleeps.
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { flushNeighbour } from '../hosts/commands.js';
import type { DockerApi } from './docker-api.js';
import type { Replicas } from './session.js';
import { stateFile, type WakeSpec, type WakeState } from './spec.js';

/** How long a replica gets to stop on its own before Docker kills it. */
const STOP_SECONDS = 5;

export function get(url: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { timeout: timeoutMs, agent: false }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
    req.on('timeout', () => req.destroy()).on('error', () => resolve(0));
    req.end();
  });
}

export async function writeAtomic(path: string, content: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, content);
  await rename(tmp, path);
}

/** Runs a host command (the waker shares the host's network namespace); resolves with its exit code. */
export function run(argv: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
    child.on('error', () => resolve(127)).on('close', (code) => resolve(code ?? 1));
  });
}

export function dockerReplicas(docker: DockerApi, dir: string, log: (msg: string, fields: Record<string, unknown>) => void = () => undefined): Replicas {
  const addressOf = async (container: string, network: string): Promise<string> => {
    for (let i = 0; i < 250; i++) {
      const info = await docker.inspect(container);
      const ip = info?.NetworkSettings.Networks[network]?.IPAddress;
      if (ip) return ip;
      if (!info?.State.Running) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`${container} got no address on ${network}`);
  };
  /** Makes the (stopped) replica again as the owner of its network namespace, unless it is already. */
  const prepare = async (r: WakeSpec['replicas'][number], network: string): Promise<void> => {
    const c = await docker.inspect(r.container);
    if (!c) throw new Error(`replica ${r.container} is gone (a reconcile pass makes it again)`);
    // Running already (a reconcile pass started it): never taken from under it.
    if (c.State.Running || c.HostConfig.NetworkMode === network) return;
    // Hostname and domain were the holder's; Docker gives the replica its own.
    const { Hostname: _h, Domainname: _d, ...config } = c.Config;
    const mac = (r.holder as { MacAddress?: string }).MacAddress;
    await docker.remove(r.container);
    await docker.create({ ...config, ...(mac ? { MacAddress: mac } : {}), name: r.container, HostConfig: { ...c.HostConfig, NetworkMode: network } });
  };
  return {
    async start(spec) {
      return Promise.all(spec.replicas.map(async (r) => {
        const t0 = Date.now();
        await prepare(r, spec.network);
        const t1 = Date.now();
        await docker.start(r.container); // 304 when it runs already
        const t2 = Date.now();
        const ip = await addressOf(r.container, spec.network);
        // The address may have been another MAC's a moment ago: the host must not keep sending there (hosts/containers.ts says more).
        await run(flushNeighbour(ip).argv);
        log('replica started', { container: r.container, ip, ms: { prepare: t1 - t0, start: t2 - t1, address: Date.now() - t2 } });
        return ip;
      }));
    },
    async stop(spec) {
      await Promise.all(spec.replicas.map(async (r) => {
        await docker.stop(r.container, STOP_SECONDS);
        await docker.remove(r.holder.name);
        await prepare(r, spec.network);
      }));
    },
    async running(spec: WakeSpec) {
      const ips = await Promise.all(spec.replicas.map(async (r) => {
        // A replica a deploy started is in its holder's namespace; one the waker started owns its own.
        const [c, h] = await Promise.all([docker.inspect(r.container), docker.inspect(r.holder.name)]);
        if (!c?.State.Running) return '';
        return c.NetworkSettings.Networks[spec.network]?.IPAddress || (h?.State.Running ? h.NetworkSettings.Networks[spec.network]?.IPAddress ?? '' : '');
      }));
      return ips.filter(Boolean);
    },
    answers: async (url, timeoutMs) => {
      const s = await get(url, timeoutMs);
      return s >= 200 && s < 400;
    },
    save: (state: WakeState) => writeAtomic(join(dir, stateFile(state.id)), `${JSON.stringify(state)}\n`),
  };
}
