// One commit, planned: its desired state, placed on the runtime hosts, paired with what
// runs there, and the ordered actions between the two. The loop's every pass
// (temporal/activities.ts planPass) and the MCP `plan` tool see the same plan.
import { resolveBindings } from './diff/bindings.js';
import { diff } from './diff/diff.js';
import type { HostPool } from './hosts/pool.js';
import { keyFields, keyOf, type LiveState, type ResourceKey } from './model.js';
import { namesAction } from './names/plan.js';
import { observe } from './observe/live.js';
import { place } from './placement.js';
import { plan, type Plan, type PlanOptions } from './plan/plan.js';
import { loadDesired, type Skipped } from './source/desired.js';
import type { StateStore } from './state/store.js';

export interface PlannedCommit { plan: Plan; skipped: Skipped[]; live: LiveState }

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
  const live = await observe(hosts.runtime(), cluster);
  // Old containers the workflow is draining and removing are its business, not this plan's.
  const retiring = new Set(opts.retiring ?? []);
  const seen = retiring.size ? { ...live, containers: live.containers.filter((c) => !retiring.has(`${c.host}/${c.name}`)) } : live;
  const placed = place(loaded.desired, seen, hosts.placementHosts(), hosts.names('build'));
  const bound = resolveBindings(placed.desired, seen);
  const skipped = [
    ...loaded.skipped,
    ...placed.unplaced.map((u): Skipped => ({ ...u, phase: 'Unschedulable' })),
    ...bound.waiting.map((w): Skipped => ({ ...w, phase: 'WaitingForDatabase' })),
  ];
  const p = plan(diff(bound.desired, seen), { cluster, commit }, { drainMs: opts.drainMs });
  const names = loaded.desired.names ? { names: namesAction(bound.desired, loaded.desired.names) } : {};
  return { plan: { ...p, ...names, waiting: bound.waiting.map(keyOf) }, skipped, live };
}
