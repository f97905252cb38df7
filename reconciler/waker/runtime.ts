// The waker's hands on its host: replicas started and stopped through the host's Docker
// socket, state files written beside the specs. A replica keeps its (stopped) container
// while it sleeps, env and all, so the waker needs no secret. Its network holder does not
// stay: a holder serves one start only (hosts/containers.ts). So on the way to sleep the
// holder is made anew (same name and MAC, created, not started: it costs nothing) and the
// replica made again from its own inspect to join it (Docker pins `container:<holder>` to
// the holder's id at create), and a wake is two starts, as a deploy's is.
import { request } from 'node:http';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
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

export function dockerReplicas(docker: DockerApi, dir: string): Replicas {
  const addressOf = async (holder: string, network: string): Promise<string> => {
    for (let i = 0; i < 250; i++) {
      const info = await docker.inspect(holder);
      const ip = info?.NetworkSettings.Networks[network]?.IPAddress;
      if (ip) return ip;
      if (!info?.State.Running) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`the network holder ${holder} got no address on ${network}`);
  };
  /** A stopped holder of the spec's and the replica joined to that very holder, made if either is not. */
  const prepare = async (r: WakeSpec['replicas'][number]): Promise<void> => {
    let holder = await docker.inspect(r.holder.name);
    if (!holder) {
      await docker.create(r.holder);
      holder = await docker.inspect(r.holder.name);
    }
    const c = await docker.inspect(r.container);
    if (!c) throw new Error(`replica ${r.container} is gone (a reconcile pass makes it again)`);
    const mode = c.HostConfig.NetworkMode;
    if (mode === `container:${holder!.Id}` || mode === `container:${r.holder.name}`) return;
    // Hostname and domain come from the holder in its namespace: Docker refuses them beside `container:`.
    const { Hostname: _h, Domainname: _d, ...config } = c.Config;
    await docker.remove(r.container);
    await docker.create({ ...config, name: r.container, HostConfig: { ...c.HostConfig, NetworkMode: `container:${r.holder.name}` } });
  };
  return {
    async start(spec) {
      return Promise.all(spec.replicas.map(async (r) => {
        await prepare(r);
        await docker.start(r.holder.name);
        const ip = await addressOf(r.holder.name, spec.network);
        await docker.start(r.container);
        return ip;
      }));
    },
    async stop(spec) {
      await Promise.all(spec.replicas.map(async (r) => {
        await docker.stop(r.container, STOP_SECONDS);
        // Its spent holder goes; the next wake finds a fresh one made.
        await docker.remove(r.holder.name);
        await prepare(r);
      }));
    },
    async running(spec: WakeSpec) {
      const ips = await Promise.all(spec.replicas.map(async (r) => {
        const [c, h] = await Promise.all([docker.inspect(r.container), docker.inspect(r.holder.name)]);
        return c?.State.Running ? h?.NetworkSettings.Networks[spec.network]?.IPAddress ?? '' : '';
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
