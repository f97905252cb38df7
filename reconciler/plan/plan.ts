// plan: ordered actions, each with a reason, that take the hosts from live to desired.
// Each kind plans its own changes (plan/app.ts, plan/database.ts); this composes them
// with what every pass needs around them: networks and egress rules first, networks no
// resource uses last, and the order between resources (an app after its databases).
// Pure data: the workflow walks it and hands each action to one activity.
import type { Change, Diff } from '../diff/diff.js';
import type { EgressPolicy } from '../hosts/egress-rules.js';
import { networkName } from '../layout.js';
import { keyOf, type Kind } from '../model.js';
import type { Action, ResourcePlan } from './actions.js';
import { appAfter, deployActions, removeActions, type PlanOptions } from './app.js';
import { databaseActions, databaseRemoveActions } from './database.js';

export type { Action, ActionOf, ResourcePlan } from './actions.js';
export type { PlanOptions } from './app.js';

export interface Plan {
  cluster: string;
  commit: string;
  /** Run before any resource: networks the resources join, egress rules. */
  prepare: Action[];
  resources: ResourcePlan[];
  /** Run after every resource: networks no resource uses any more. */
  cleanup: Action[];
  /** Run last: apps' certificates and DNS records, brought to where the apps now run (names/plan.ts). */
  names?: Action;
  /** Resources (keyOf) that need nothing. */
  unchanged: string[];
  /** Resources (keyOf) that need nothing, so answer now: a resource waiting for one of them need not wait. */
  ready: string[];
  /** Resources git describes that cannot be applied as they are, with the reason (a human must change git). */
  stalled: Array<{ key: string; reason: string }>;
  /** Resources (keyOf) that wait for another to run first (an app for its database): a pass that readies one runs the next pass at once. */
  waiting: string[];
}

function egressOf(diff: Diff, host: string, cluster: string): EgressPolicy {
  return diff.egress.find((e) => e.host === host)?.policy ?? { cluster, projects: [], deny: [], control: [] };
}

type PlannedChange<K extends Kind> = Exclude<Extract<Change, { kind: K }>, { change: 'unchanged' | 'stalled' }>;

/** Each kind plans its own changes; a new kind adds its entry here and its own plan file. */
const KINDS: { [K in Kind]: (change: PlannedChange<K>, diff: Diff, ctx: { cluster: string }, opts: PlanOptions) => ResourcePlan } = {
  App: (change, _diff, ctx, opts) => change.change === 'remove'
    ? { key: change.key, change: 'remove', reason: change.reason, actions: removeActions(change), after: [] }
    : { key: change.key, change: change.change, reason: change.reason, actions: deployActions(ctx.cluster, change, opts), after: appAfter(change.app) },
  Database: (change, diff, ctx) => change.change === 'remove'
    ? { key: change.key, change: 'remove', reason: change.reason, actions: databaseRemoveActions(change), after: [] }
    : { key: change.key, change: change.change, reason: change.reason, actions: databaseActions(ctx.cluster, change, egressOf(diff, change.db.host, ctx.cluster)), after: [] },
};

function resourcePlan(change: PlannedChange<Kind>, diff: Diff, ctx: { cluster: string }, opts: PlanOptions): ResourcePlan {
  return (KINDS[change.kind] as (c: PlannedChange<Kind>, d: Diff, x: { cluster: string }, o: PlanOptions) => ResourcePlan)(change, diff, ctx, opts);
}

export function plan(diff: Diff, ctx: { cluster: string; commit: string }, opts: PlanOptions = { drainMs: 1000 }): Plan {
  const resources: ResourcePlan[] = [];
  const unchanged: string[] = [];
  const ready: string[] = [];
  const stalled: Plan['stalled'] = [];
  for (const change of diff.changes) {
    if (change.change === 'unchanged') {
      unchanged.push(keyOf(change.key));
      ready.push(keyOf(change.key));
    } else if (change.change === 'stalled') {
      stalled.push({ key: keyOf(change.key), reason: change.reason });
    } else {
      resources.push(resourcePlan(change, diff, ctx, opts));
    }
  }
  return {
    ...ctx,
    prepare: [
      ...diff.networks.ensure.map((n): Action => ({ type: 'ensureNetwork', host: n.host, project: n.project, network: networkName(ctx.cluster, n.project), reason: 'resources of this project join it' })),
      // Every pass, changed or not: a flush or a reboot is healed within one drift interval.
      ...diff.egress.map((e): Action => ({ type: 'ensureEgress', host: e.host, policy: e.policy, reason: 'egress rules are reapplied on every pass' })),
    ],
    resources,
    cleanup: diff.networks.remove.flatMap((n): Action[] => [
      { type: 'removeNetwork', host: n.host, network: n.name, reason: `project ${n.project} has nothing left on ${n.host}` },
      { type: 'removeEgress', host: n.host, project: n.project, reason: `project ${n.project} is gone from ${n.host}` },
    ]),
    unchanged,
    ready,
    stalled,
    waiting: [],
  };
}

/** One line per resource, for logs, notes and the MCP `plan` tool. */
export function summarise(p: Plan): string[] {
  return [
    ...p.resources.map((r) => `${r.change} ${keyOf(r.key)}: ${r.reason} (${r.actions.map((a) => a.type).join(' -> ')})`),
    ...p.stalled.map((s) => `stalled ${s.key}: ${s.reason}`),
  ];
}
