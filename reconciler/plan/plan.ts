// plan: ordered actions, each with a reason, that take the hosts from live to desired.
// Pure data: the workflow walks it and hands each action to one activity.
import type { AppChange, Diff } from '../diff/diff.js';
import type { EgressPolicy } from '../hosts/egress-rules.js';
import { containerName, networkName, routeFileName, routerName, type DesiredApp } from '../model.js';

export type Action =
  | { type: 'ensureNetwork'; project: string; network: string; reason: string }
  | { type: 'buildImage'; app: DesiredApp; image: string; reason: string }
  | { type: 'startReplica'; app: DesiredApp; replica: number; container: string; network: string; reason: string }
  | { type: 'waitHealthy'; app: DesiredApp; containers: string[]; reason: string }
  | { type: 'writeRoute'; app: DesiredApp; file: string; router: string; containers: string[]; reason: string }
  | { type: 'drain'; ms: number; reason: string }
  | { type: 'removeContainer'; id: string; name: string; reason: string }
  | { type: 'removeRoute'; file: string; reason: string }
  | { type: 'removeNetwork'; network: string; reason: string }
  | { type: 'ensureEgress'; policy: EgressPolicy; reason: string }
  | { type: 'removeEgress'; project: string; reason: string };

export interface ResourcePlan {
  kind: 'App';
  project: string;
  name: string;
  change: 'create' | 'update' | 'heal' | 'remove';
  reason: string;
  actions: Action[];
}

export interface Plan {
  cluster: string;
  commit: string;
  /** Run before any resource: networks the apps join. */
  prepare: Action[];
  resources: ResourcePlan[];
  /** Run after every resource: networks no app uses any more. */
  cleanup: Action[];
  unchanged: string[];
}

export interface PlanOptions {
  /** How long the old containers keep serving after the route has moved (in-flight requests finish). */
  drainMs: number;
}

function deployActions(cluster: string, change: Extract<AppChange, { kind: 'create' | 'update' | 'heal' }>, opts: PlanOptions): Action[] {
  const { app } = change;
  const network = networkName(cluster, app.project);
  const file = routeFileName(cluster, app);
  const stale = 'stale' in change ? change.stale : [];
  const actions: Action[] = [];
  const containers: string[] = [];
  // Before anything starts: a failed build leaves the running version serving.
  if (app.build) actions.push({ type: 'buildImage', app, image: app.image, reason: `build source ${app.build.commit.slice(0, 12)}${app.build.path ? ` (${app.build.path})` : ''}; an existing image of the same source is reused` });
  for (let r = 0; r < app.replicas; r++) {
    const container = containerName(cluster, app, r);
    containers.push(container);
    actions.push({ type: 'startReplica', app, replica: r, container, network, reason: `${change.kind}: ${change.reason}` });
  }
  if (app.replicas > 0) {
    actions.push({ type: 'waitHealthy', app, containers, reason: `GET ${app.health.path} must answer before traffic moves` });
    actions.push({ type: 'writeRoute', app, file, router: routerName(cluster, app), containers, reason: `route ${app.hosts.join(', ')} to ${app.replicas} replica(s)` });
  } else {
    actions.push({ type: 'removeRoute', file, reason: 'replicas is 0' });
  }
  if (stale.length) {
    actions.push({ type: 'drain', ms: opts.drainMs, reason: 'let requests in flight on the old containers finish' });
    for (const c of stale) actions.push({ type: 'removeContainer', id: c.id, name: c.name, reason: c.running ? 'replaced' : 'stopped; replaced' });
  }
  return actions;
}

export function plan(diff: Diff, ctx: { cluster: string; commit: string }, opts: PlanOptions = { drainMs: 1000 }): Plan {
  const resources: ResourcePlan[] = [];
  const unchanged: string[] = [];
  for (const change of diff.apps) {
    if (change.kind === 'unchanged') {
      unchanged.push(`${change.app.project}/${change.app.name}`);
      continue;
    }
    if (change.kind === 'remove') {
      const actions: Action[] = [];
      if (change.route) actions.push({ type: 'removeRoute', file: change.route.file, reason: change.reason });
      for (const c of change.containers) actions.push({ type: 'removeContainer', id: c.id, name: c.name, reason: change.reason });
      resources.push({ kind: 'App', project: change.project, name: change.name, change: 'remove', reason: change.reason, actions });
      continue;
    }
    resources.push({
      kind: 'App', project: change.app.project, name: change.app.name, change: change.kind, reason: change.reason,
      actions: deployActions(ctx.cluster, change, opts),
    });
  }
  return {
    ...ctx,
    prepare: [
      ...diff.networks.ensure.map((p): Action => ({ type: 'ensureNetwork', project: p, network: networkName(ctx.cluster, p), reason: 'apps of this project join it' })),
      // Every pass, changed or not: a flush or a reboot is healed within one drift interval.
      ...(diff.egress ? [{ type: 'ensureEgress', policy: diff.egress, reason: 'egress rules are reapplied on every pass' } as const] : []),
    ],
    resources,
    cleanup: diff.networks.remove.flatMap((n): Action[] => [
      { type: 'removeNetwork', network: n.name, reason: `project ${n.project} has no apps left` },
      ...(diff.egress ? [{ type: 'removeEgress', project: n.project, reason: `project ${n.project} is gone` } as const] : []),
    ]),
    unchanged,
  };
}

/** One line per resource, for logs, notes and the MCP `plan` tool. */
export function summarise(p: Plan): string[] {
  return p.resources.map((r) => `${r.change} App ${r.project}/${r.name}: ${r.reason} (${r.actions.map((a) => a.type).join(' -> ')})`);
}
