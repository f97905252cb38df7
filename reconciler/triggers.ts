// What starts a reconcile pass: a new commit on main (chokidar on the repo's refs), the
// drift timer (node-cron), a serving replica that exited (Docker's events), and explicit
// requests (the MCP `sync` tool, start-up).
import { watch } from 'chokidar';
import { basename, join } from 'node:path';
import cron from 'node-cron';
import { readRoute } from './edge/route.js';
import type { Edge } from './edge/traefik.js';
import type { Host } from './hosts/host.js';
import { holderName, routeFileName } from './layout.js';
import { LABEL, MANAGED_BY, type LiveRoute } from './model.js';
import { restartDelayMs } from './waker/spec.js';

export interface Stoppable { stop(): Promise<void> }

/** Calls `onChange` whenever refs/heads/main (loose or packed) changes. */
export function watchMain(gitdir: string, onChange: () => void): Stoppable {
  const watcher = watch([join(gitdir, 'refs', 'heads'), join(gitdir, 'packed-refs')], {
    ignoreInitial: true,
    depth: 0,
    atomic: false, // git moves refs by rename; chokidar's atomic-write detection would hold each event 100 ms
    ignored: (p: string) => p.endsWith('.lock'),
  });
  const fire = (path: string): void => {
    const name = basename(path);
    if (name === 'main' || name === 'packed-refs') onChange();
  };
  watcher.on('add', fire).on('change', fire);
  return { stop: () => watcher.close() };
}

/** A cron expression that fires every `seconds` (seconds field when under a minute). */
export function driftSchedule(seconds: number): string {
  if (!Number.isInteger(seconds) || seconds < 1) throw new Error(`drift interval must be a whole number of seconds >= 1 (got ${seconds})`);
  if (seconds < 60) return `*/${seconds} * * * * *`;
  const minutes = Math.max(1, Math.round(seconds / 60));
  return `0 */${minutes} * * * *`;
}

export function driftTimer(seconds: number, onTick: () => void): Stoppable {
  const task = cron.schedule(driftSchedule(seconds), onTick, { noOverlap: true });
  return { stop: async () => { await task.stop(); } };
}

/** How long after a replica exits the watcher looks whether it is still down: its host's supervisor restarts one in about a second. */
const EXIT_LOOK_MS = 2500;

/**
 * Calls `onExit` when a replica that serves (its app's route is on its spec) exits and
 * is still down a moment later, or is removed by hand (its holder left behind). Its host's supervisor (waker/supervisor.ts) brings it
 * back, control plane or not, and says so in a record that observe reads; the pass this
 * asks for then sees what is left to do: nothing, or a replica to replace (its holder
 * went, there is no supervisor). A replica removed on purpose, or a new version that
 * exits before it served, starts nothing: a rollback handles that one. Also calls it
 * when the event stream comes back after Docker restarted.
 */
export function watchReplicaExits(host: Host, edge: Edge, cluster: string, onExit: (what: string) => void): Stoppable {
  const { docker } = host;
  let stopped = false;
  let stream: NodeJS.ReadableStream | undefined;
  let retry: NodeJS.Timeout | undefined;
  // Like Docker's restart policy, a replica that keeps exiting is replaced ever later: 0, 1, 2, 4 ... 60 s, reset after 10 quiet minutes.
  const exits = new Map<string, { n: number; last: number; pending: boolean }>();
  const ask = (app: string, what: string): void => {
    const now = Date.now();
    const e = exits.get(app) ?? { n: 0, last: 0, pending: false };
    if (now - e.last > 600_000) e.n = 0;
    exits.set(app, e);
    if (e.pending) return;
    const delay = restartDelayMs(e.n);
    Object.assign(e, { n: e.n + 1, last: now, pending: true });
    setTimeout(() => { e.pending = false; if (!stopped) onExit(`a replica of ${app} on ${host.name} ${what}${delay ? ` (again: asked ${delay / 1000} s later)` : ''}`); }, delay).unref();
  };
  /** The app's route on this edge if it serves the spec these labels name (a replica's, or a removed one's from its event). */
  const routeServing = async (labels: Record<string, string>): Promise<{ app: string; route: LiveRoute } | undefined> => {
    const app = { project: labels[LABEL.project] ?? '', name: labels[LABEL.name] ?? '' };
    if (!app.name) return undefined;
    const file = routeFileName(cluster, app);
    const route = readRoute(file, (await host.files.read(join(edge.routesDir, file))) ?? '', cluster, host.name);
    return route && route.specHash === labels[LABEL.specHash] ? { app: `${app.project}/${app.name}`, route } : undefined;
  };
  /** Whether the replica's holder has an address, and whether that address is one of the route's servers. */
  const holderAddress = async (replica: string, route: LiveRoute): Promise<{ ip?: string; routed: boolean }> => {
    const holder = await docker.getContainer(holderName(replica)).inspect().catch(() => undefined);
    const ip = Object.values(holder?.NetworkSettings.Networks ?? {})[0]?.IPAddress;
    return { ...(ip ? { ip } : {}), routed: !!ip && route.servers.some((s) => new URL(s).hostname === ip) };
  };
  /** The app (`project/name`) of a replica of the version its route serves, in the state asked for (down after a die, up after a start). */
  const serving = async (id: string, up: boolean): Promise<string | undefined> => {
    const info = await docker.getContainer(id).inspect().catch(() => undefined);
    if (!info || info.State.Running !== up) return undefined;
    const found = await routeServing(info.Config.Labels);
    if (!found) return undefined;
    // Up: started again by its host's supervisor after a backoff, which took it out of its route; the pass puts it back.
    if (up) {
      if (found.route.wake) return undefined;
      const h = await holderAddress(info.Name.replace(/^\//, ''), found.route);
      if (!h.ip || h.routed) return undefined;
    }
    return found.app;
  };
  /** The app of a removed replica whose holder still serves its route's address: a removal by hand, not the reconciler's (it removes the holder too). */
  const removedWhileServing = async (attrs: Record<string, string>): Promise<string | undefined> => {
    const found = attrs.name ? await routeServing(attrs) : undefined;
    return found && !found.route.wake && (await holderAddress(attrs.name!, found.route)).routed ? found.app : undefined;
  };
  const connect = (again: boolean): void => {
    const filters = { type: ['container' as const], event: ['die', 'start', 'destroy'], label: [`${LABEL.managedBy}=${MANAGED_BY}`, `${LABEL.cluster}=${cluster}`, `${LABEL.kind}=App`] };
    docker.getEvents({ filters }).then((s) => {
      if (stopped) { (s as unknown as { destroy(): void }).destroy(); return; }
      stream = s;
      if (again) onExit('Docker events again (dockerd restarted?)');
      let partial = '';
      s.on('data', (d: Buffer) => {
        const lines = (partial + d.toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines.filter(Boolean)) {
          let e: { id?: string; Action?: string; status?: string; Actor?: { Attributes?: Record<string, string> } };
          try { e = JSON.parse(line) as typeof e; } catch { continue; }
          const id = e.id;
          if (!id) continue;
          if ((e.Action ?? e.status) === 'destroy') {
            // Removed by hand while it served (`docker rm -f`): inspect has nothing left to say, the event's labels do.
            const attrs = e.Actor?.Attributes ?? {};
            setTimeout(() => void removedWhileServing(attrs).then((app) => { if (app && !stopped) ask(app, 'was removed'); }), 500).unref();
            continue;
          }
          if ((e.Action ?? e.status) === 'start') {
            setTimeout(() => void serving(id, true).then((app) => { if (app && !stopped) onExit(`a replica of ${app} on ${host.name} runs again, outside its route`); }), 1000).unref();
            continue;
          }
          // A moment later: a removal (die, then destroy), a rollback, or the host's supervisor's restart has run by then.
          setTimeout(() => void serving(id, false).then((app) => { if (app && !stopped) ask(app, 'exited'); }), EXIT_LOOK_MS).unref();
        }
      });
      let gone = false;
      const lost = (): void => {
        if (gone || stopped) return;
        gone = true;
        retry = setTimeout(() => connect(true), 1000);
      };
      s.on('end', lost);
      s.on('error', lost);
    }, () => { if (!stopped) retry = setTimeout(() => connect(true), 1000); });
  };
  connect(false);
  return {
    stop: async () => {
      stopped = true;
      clearTimeout(retry);
      (stream as unknown as { destroy?: () => void } | undefined)?.destroy?.();
    },
  };
}
