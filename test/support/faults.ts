// The fault scenarios that bench:faults measures and test/e2e/faults.test.ts bounds:
// `mlink up` SIGKILLed at a random moment of a deploy then started again (R1), and an
// app's container removed by hand (drift). Both run against a local cluster that
// `mlink up` serves on this machine's edge; what they count is read from Docker, the
// routes dir and get_app, never from the reconciler's own view of itself.
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { readFileSync, readdirSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { readRoute } from '../../reconciler/edge/route.js';
import { containerAddresses } from '../../reconciler/hosts/containers.js';
import { CERT_FILE_SUFFIX, HOLDER_SUFFIX, networkName, routeFileName } from '../../reconciler/layout.js';
import { HELPER_KIND, LABEL } from '../../reconciler/model.js';
import { cfg, docker } from './infra.js';
import { call, connectAgent, startUp, stopUp, tearDown, type Up } from './mlink-up.js';

/** `mlink up`'s own drift interval when none is given (reconciler/cli/up.ts). */
export const DEFAULT_DRIFT_S = 30;
export const PROJECT = 'default';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One GET through an edge's plain-HTTP entrypoint (apps here are made with https_redirect: false). */
export function get(address: string, port: number, hostHeader: string, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const req = request({ host: address, port, path: '/', headers: { host: hostHeader }, timeout: timeoutMs, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', () => resolve({ status: 0, body: '' })).on('timeout', () => req.destroy());
    req.end();
  });
}

export const appHost = (name: string, project = PROJECT): string => `${name}.${project}.localhost`;

/** The body of a 200 from the local edge, or undefined. */
export async function page(name: string): Promise<string | undefined> {
  const r = await get(cfg.traefik.host, cfg.traefik.webPort, appHost(name), 2000);
  return r.status === 200 ? r.body.trim() : undefined;
}

/** Polls fn every `everyMs` until it gives a value or `ms` pass; undefined when the time is up. */
export async function within<T>(ms: number, fn: () => Promise<T | undefined>, everyMs = 50): Promise<T | undefined> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) return undefined;
    await sleep(everyMs);
  }
}

/** A client that fires a request every `everyMs` (each on its own, so one slow answer does not hold the next) and counts the answers. */
export class Poller {
  served = 0;
  failed = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly inflight = new Set<Promise<void>>();
  constructor(private readonly ask: () => Promise<boolean>, private readonly everyMs = 50) {}
  start(): this {
    this.timer = setInterval(() => {
      const p = this.ask().then((ok) => { if (ok) this.served++; else this.failed++; }, () => { this.failed++; });
      this.inflight.add(p);
      void p.finally(() => this.inflight.delete(p));
    }, this.everyMs);
    return this;
  }
  /** Stops firing and waits for the answers still on their way. */
  async stop(): Promise<{ served: number; failed: number }> {
    clearInterval(this.timer);
    await Promise.all(this.inflight);
    return { served: this.served, failed: this.failed };
  }
}

/** A cluster that `mlink up` serves on this machine, and an agent connected to it; `restart` keeps its data dir and token. */
export class LocalCluster {
  private constructor(public up: Up, public agent: Client, readonly drift: number) {}

  static async start(cluster: string, drift = DEFAULT_DRIFT_S): Promise<LocalCluster> {
    const up = await startUp({ cluster, drift });
    return new LocalCluster(up, await connectAgent(up), drift);
  }

  get name(): string { return this.up.cluster; }

  call<T = Record<string, unknown>>(tool: string, args: Record<string, unknown>): Promise<T> {
    return call<T>(this.agent, tool, args);
  }

  /** Stops the control plane (SIGINT: as Ctrl-C does; SIGKILL: a crash). */
  async stop(signal: NodeJS.Signals = 'SIGINT'): Promise<void> {
    await this.agent.close().catch(() => undefined);
    await stopUp(this.up, signal);
  }

  async start(): Promise<void> {
    this.up = await startUp({ cluster: this.up.cluster, home: this.up.home, token: this.up.token, drift: this.drift });
    this.agent = await connectAgent(this.up);
  }

  /** Everything it made removed: containers, networks, routes, egress rules, its workflow, its data dir. */
  async tearDown(): Promise<void> {
    await tearDown(this.up, this.agent);
  }

  async createApp(name: string, opts: { replicas?: number; env?: Record<string, string>; image: string }): Promise<string> {
    const r = await this.call<{ commit: string; wait?: { state: string; message: string } }>('create_app', {
      name, source: { image: opts.image }, port: 8080, replicas: opts.replicas ?? 1, env: opts.env ?? {}, https_redirect: false, wait: 120,
    });
    if (r.wait?.state !== 'live') throw new Error(`create_app ${name}: ${r.wait?.state}: ${r.wait?.message}`);
    return r.commit;
  }

  /** The app's containers (stopped ones too), as Docker lists them. */
  async containers(app: string): Promise<Array<{ id: string; name: string; running: boolean; replica: string; commit: string }>> {
    const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL.cluster}=${this.name}`, `${LABEL.kind}=App`, `${LABEL.name}=${app}`] } });
    return list.map((c) => ({ id: c.Id, name: (c.Names[0] ?? '').replace(/^\//, ''), running: c.State === 'running', replica: c.Labels[LABEL.replica] ?? '', commit: c.Labels[LABEL.commit] ?? '' }));
  }

  /**
   * Network holders (hosts/containers.ts) that hold nothing: a replica's whose replica is
   * gone, and spares beyond the two a project network keeps. The reconciler sweeps those
   * older than a minute at its drift checks; a killed `mlink up` leaves its spares behind.
   */
  async strayHolders(): Promise<string[]> {
    const all = await docker.listContainers({ all: true, filters: { label: [`${LABEL.cluster}=${this.name}`] } });
    const nameOf = (c: (typeof all)[number]): string => (c.Names[0] ?? '').replace(/^\//, '');
    const replicas = new Set(all.filter((c) => c.Labels[LABEL.kind] === 'App').map(nameOf));
    const holders = all.filter((c) => c.Labels[LABEL.kind] === HELPER_KIND.holder).map(nameOf);
    const orphans = holders.filter((h) => h.endsWith(HOLDER_SUFFIX) && !replicas.has(h.slice(0, -HOLDER_SUFFIX.length)));
    const spares = holders.filter((h) => !h.endsWith(HOLDER_SUFFIX));
    return [...orphans, ...spares.slice(2)];
  }

  /**
   * Route files of this cluster on the local edge that send traffic nowhere it should go:
   * a file for an app not in `apps`, or a route whose servers are not the addresses of
   * that app's running replicas.
   */
  async orphanRoutes(apps: string[]): Promise<string[]> {
    const mine = readdirSync(cfg.traefik.routesDir).filter((f) => f.startsWith(`mlink-${this.name}--`));
    const out: string[] = [];
    for (const f of mine) {
      const app = apps.find((a) => f === routeFileName(this.name, { project: PROJECT, name: a }) || f === routeFileName(this.name, { project: PROJECT, name: a }).replace(/\.yaml$/, CERT_FILE_SUFFIX));
      if (!app) { out.push(`${f}: no such app`); continue; }
      if (f.endsWith(CERT_FILE_SUFFIX)) continue;
      const route = readRoute(f, readFileSync(join(cfg.traefik.routesDir, f), 'utf8'), this.name, 'local');
      const running = (await this.containers(app)).filter((c) => c.running).map((c) => c.name);
      const ips = (await containerAddresses(docker, running, networkName(this.name, PROJECT))).filter(Boolean);
      const stray = (route?.servers ?? []).filter((s) => !ips.some((ip) => s.includes(`//${ip}:`)));
      if (stray.length) out.push(`${f}: ${stray.join(', ')} is no running replica's`);
    }
    return out;
  }
}

export interface KillTrial {
  /** When the SIGKILL came, ms after update_app returned its commit. */
  killedAtMs: number;
  /** Seconds until the new `mlink up` printed its endpoint. */
  restartS: number;
  /** Seconds from the restart's start to converged; undefined if it did not within the bound. */
  convergedS?: number;
  /** App containers beyond one per replica, counted once the deploy settled (or at the bound). */
  duplicates: number;
  orphanRoutes: string[];
  /** What was not right at the bound, for a trial that did not converge. */
  why?: string;
}

/** Whether the app is as `commit` says: serves `greeting`, one running container per replica (all of that commit), get_app live at that commit. */
export async function convergedOn(c: LocalCluster, app: string, replicas: number, commit: string, greeting: string): Promise<string | true> {
  const body = await page(app);
  if (!body?.startsWith(`${greeting} `)) return `serves ${body === undefined ? 'no 200' : JSON.stringify(body.split(' ')[0])}, not ${greeting}`;
  const list = await c.containers(app);
  const wanted = Array.from({ length: replicas }, (_, i) => String(i));
  const good = list.filter((x) => x.running && x.commit === commit).map((x) => x.replica).sort();
  if (list.length !== replicas || JSON.stringify(good) !== JSON.stringify(wanted)) {
    return `containers ${list.map((x) => `${x.replica}:${x.running ? 'running' : 'stopped'}@${x.commit.slice(0, 7)}`).join(' ')}, want ${replicas} running @${commit.slice(0, 7)}`;
  }
  const { live } = await c.call<{ live: { known: boolean; phase?: string; appliedCommit?: string } }>('get_app', { name: app });
  if (live.phase !== 'Running' || live.appliedCommit !== commit) return `get_app says ${live.phase} at ${live.appliedCommit?.slice(0, 7)}`;
  return true;
}

/** How long a deploy of `app` takes unhurt: update_app returned -> the new version serves and the old containers are gone. A kill is aimed inside this window. */
export async function deployWindowMs(c: LocalCluster, app: string, replicas: number, greeting: string): Promise<number> {
  const { commit } = await c.call<{ commit: string }>('update_app', { name: app, env: { GREETING: greeting } });
  const t0 = performance.now();
  const ok = await within(60_000, async () => ((await convergedOn(c, app, replicas, commit, greeting)) === true ? true : undefined));
  if (!ok) throw new Error(`a deploy of ${app} without faults did not converge in 60 s: ${await convergedOn(c, app, replicas, commit, greeting)}`);
  return performance.now() - t0;
}

/**
 * R1, one trial: update_app (a new env value), SIGKILL of `mlink up` a random moment
 * within `windowMs` after the commit, `mlink up` again; then, within `boundMs`, the new
 * version converged? Duplicates and orphan routes are counted once it has and the old
 * version's drain is past (or at the bound).
 */
export async function killDuringDeploy(c: LocalCluster, opts: { app: string; replicas: number; greeting: string; windowMs: number; boundMs: number; random?: () => number }): Promise<KillTrial> {
  const { app, replicas, greeting } = opts;
  const { commit } = await c.call<{ commit: string }>('update_app', { name: app, env: { GREETING: greeting } });
  const killedAtMs = Math.round((opts.random ?? Math.random)() * opts.windowMs);
  await sleep(killedAtMs);
  await c.stop('SIGKILL');
  const t0 = performance.now();
  await c.start();
  const restartS = (performance.now() - t0) / 1000;
  let why = '';
  const ok = await within(opts.boundMs, async () => {
    const r = await convergedOn(c, app, replicas, commit, greeting);
    if (r === true) return true;
    why = r;
    return undefined;
  }, 100);
  const convergedS = ok ? (performance.now() - t0) / 1000 : undefined;
  // Past the old version's drain (1 s) and its removal, then count what is left over.
  await sleep(3000);
  const duplicates = Math.max(0, (await c.containers(app)).length - replicas);
  return { killedAtMs, restartS, ...(convergedS !== undefined ? { convergedS } : { why }), duplicates, orphanRoutes: await c.orphanRoutes([app]) };
}

/** Drift: the app's (one) container removed by hand; seconds until the edge serves it again, or undefined within `boundMs`. */
export async function removedByHand(c: LocalCluster, app: string, boundMs: number): Promise<number | undefined> {
  const [victim] = (await c.containers(app)).filter((x) => x.running);
  if (!victim) throw new Error(`${app} has no running container to remove`);
  await docker.getContainer(victim.id).remove({ force: true });
  const t0 = performance.now();
  const back = await within(boundMs, async () => ((await page(app)) ? true : undefined), 50);
  return back ? (performance.now() - t0) / 1000 : undefined;
}
