// One commit, planned: its desired state, placed on the runtime hosts, paired with what
// runs there, and the ordered actions between the two. The loop's every pass
// (temporal/activities.ts planPass) and the MCP `plan` tool see the same plan.
import { resolveBindings } from './diff/bindings.js';
import { diff } from './diff/diff.js';
import type { HostPool } from './hosts/pool.js';
import { keyFields, keyOf, type LiveState, type ResourceKey } from './model.js';
import { namesAction } from './names/plan.js';
import { observeReachable } from './observe/reachable.js';
import { place } from './placement.js';
import { plan, type Action, type Plan, type PlanOptions } from './plan/plan.js';
import { loadDesired, type Skipped } from './source/desired.js';
import type { StateStore } from './state/store.js';

export interface PlannedCommit {
  plan: Plan;
  skipped: Skipped[];
  live: LiveState;
  /** Runtime hosts this pass could not observe in time: it acts on nothing there. */
  unreachable: string[];
}

/** The hosts an action touches. */
export function actionHosts(a: Action): string[] {
  if (a.type === 'waitHealthy') return a.replicas.map((r) => r.host);
  return 'host' in a && a.host ? [a.host] : [];
}

/** Plans `commit`. Throws StalledError when the commit as a whole cannot be applied. `retiring` (`<host>/<container>`) are left out of the live state. */
export async function planCommit(store: StateStore, hosts: HostPool, cluster: string, commit: string, opts: PlanOptions & { retiring?: string[]; held?: Array<ResourceKey & { by: string }> }): Promise<PlannedCommit> {
  const loaded = await loadDesired(store, commit, cluster);
  // A resource an operation holds (a restore replacing a database's server) is left alone until it is done.
  for (const h of opts.held ?? []) {
    const key = keyOf(h);
    if (!loaded.desired.resources.some((r) => keyOf(r) === key)) continue;
    loaded.desired.resources = loaded.desired.resources.filter((r) => keyOf(r) !== key);
    loaded.desired.held.push(keyFields(h));
    loaded.skipped.push({ ...keyFields(h), phase: 'Held', reason: `held by the ${h.by}; the reconciler takes it back when that is done` });
  }
  hosts.configure(loaded.hosts, loaded.registry);
  const observed = await observeReachable(hosts, cluster);
  const live = observed.live;
  const unreachable = observed.unreachable.map((u) => u.host);
  // Old containers the workflow is draining and removing are its business, not this plan's.
  const retiring = new Set(opts.retiring ?? []);
  const seen = retiring.size ? { ...live, containers: live.containers.filter((c) => !retiring.has(`${c.host}/${c.name}`)) } : live;
  const placed = place(loaded.desired, seen, hosts.placementHosts(unreachable), hosts.names('build'));
  const bound = resolveBindings(placed.desired, seen);
  const skipped = [
    ...loaded.skipped,
    ...placed.unplaced.map((u): Skipped => ({ ...keyFields(u), reason: u.reason, phase: u.phase ?? 'Unschedulable' })),
    ...bound.waiting.map((w): Skipped => ({ ...w, phase: 'WaitingForDatabase' })),
  ];
  const full = plan(diff(bound.desired, seen), { cluster, commit }, { drainMs: opts.drainMs });
  // A host that did not answer (not Lost yet) gets no action: a resource with work there waits for it to answer or be Lost.
  const off = (a: Action): boolean => actionHosts(a).some((h) => unreachable.includes(h));
  const deferred = full.resources.filter((r) => r.actions.some(off));
  for (const r of deferred) {
    const where = [...new Set(r.actions.flatMap(actionHosts).filter((h) => unreachable.includes(h)))];
    skipped.push({ ...keyFields(r.key), phase: 'HostUnreachable', reason: `${r.change} waits: host ${where.join(', ')} does not answer (${observed.unreachable.filter((u) => where.includes(u.host)).map((u) => u.error).join('; ')}); it moves if the host stays silent until it is Lost` });
  }
  const p: Plan = {
    ...full,
    prepare: full.prepare.filter((a) => !off(a)),
    resources: full.resources.filter((r) => !deferred.includes(r)),
    cleanup: full.cleanup.filter((a) => !off(a)),
  };
  const names = loaded.desired.names ? { names: namesAction(bound.desired, loaded.desired.names) } : {};
  return { plan: { ...p, ...names, waiting: bound.waiting.map(keyOf) }, skipped, live, unreachable };
}
