// plan, App part: the actions that take one app from what runs to what git says.
// Start the new replicas, wait for their health checks, move each edge's route, then
// drain and remove the old ones. Pure.
import type { AppChange } from '../diff/app.js';
import { containerName, networkName, routeFileName, routerName } from '../layout.js';
import { keyOf, type DesiredApp } from '../model.js';
import type { Action } from './actions.js';

export interface PlanOptions {
  /** How long the old containers keep serving after the route has moved (in-flight requests finish). */
  drainMs: number;
}

/** The databases an app waits for. */
export function appAfter(app: DesiredApp): string[] {
  return app.databases.map((d) => keyOf({ kind: 'Database', project: d.project, name: d.name }));
}

export function deployActions(cluster: string, change: Extract<AppChange, { change: 'create' | 'update' | 'heal' }>, opts: PlanOptions): Action[] {
  const { app } = change;
  const network = networkName(cluster, app.project);
  const file = routeFileName(cluster, app);
  const stale = 'stale' in change ? change.stale : [];
  const strays = 'strayRoutes' in change ? change.strayRoutes : [];
  const asleep = ('asleep' in change ? change.asleep : undefined) ?? [];
  const restarting = ('restarting' in change ? change.restarting : undefined) ?? [];
  const actions: Action[] = [];
  const replicas: Array<{ host: string; container: string }> = [];
  const routed: Array<{ host: string; container: string }> = [];
  // Before anything starts: a failed build leaves the running version serving.
  if (app.build) actions.push({ type: 'buildImage', app, host: app.buildHost ?? '', image: app.image, reason: `build source ${app.build.commit.slice(0, 12)}${app.build.path ? ` (${app.build.path})` : ''}; an existing image of the same source is reused` });
  for (let r = 0; r < app.replicas; r++) {
    const container = containerName(cluster, app, r);
    const host = app.placement[r]!;
    routed.push({ host, container });
    if (asleep.includes(host)) {
      actions.push({ type: 'createReplica', host, app, replica: r, container, network, reason: `${change.change} while asleep: the next request starts it` });
      continue;
    }
    const back = restarting.find((c) => c.replica === r && c.name === container);
    if (back) {
      // Its host starts it again (waker/supervisor.ts); in the route meanwhile only if that is now, not after a backoff.
      if (back.restarting!.restarts > 0) routed.pop();
      continue;
    }
    replicas.push({ host, container });
    actions.push({ type: 'startReplica', host, app, replica: r, container, network, reason: `${change.change}: ${change.reason}` });
  }
  if (replicas.length) actions.push({ type: 'waitHealthy', app, replicas, reason: `GET ${app.health.path} must answer before traffic moves` });
  if (app.replicas > 0) {
    for (const host of [...new Set(routed.map((x) => x.host))]) {
      const here = routed.filter((x) => x.host === host).map((x) => x.container);
      actions.push({ type: 'writeRoute', host, app, file, router: routerName(cluster, app), containers: here, reason: `route ${app.domains.join(', ')} to ${here.length} replica(s) on ${host}` });
    }
  }
  for (const r of strays) actions.push({ type: 'removeRoute', host: r.host, file: r.file, reason: app.replicas === 0 ? 'replicas is 0' : `no replica of it runs on ${r.host} any more` });
  if (stale.length) {
    actions.push({ type: 'drain', ms: opts.drainMs, reason: 'let requests in flight on the old containers finish' });
    for (const c of stale) actions.push({ type: 'removeContainer', host: c.host, id: c.id, name: c.name, reason: c.running ? 'replaced' : 'stopped; replaced' });
  }
  return actions;
}

export function removeActions(change: Extract<AppChange, { change: 'remove' }>): Action[] {
  return [
    ...change.routes.map((r): Action => ({ type: 'removeRoute', host: r.host, file: r.file, reason: change.reason })),
    ...change.containers.map((c): Action => ({ type: 'removeContainer', host: c.host, id: c.id, name: c.name, reason: change.reason })),
  ];
}
