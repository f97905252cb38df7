// The reconcile loop as Temporal workflows. Deterministic: only @temporalio/workflow and
// types. A pass asks one local activity for its plan (load desired -> observe live ->
// diff -> plan, all in activities.ts), walks it, and records the status.
//
// One reconcileWorkflow per cluster (fixed id). Every trigger (a new commit, the drift
// timer, the MCP `sync` tool) is a signal; a burst of signals coalesces into one more
// pass, which always reads the newest commit on main.
import {
  ParentClosePolicy, condition, continueAsNew, defineQuery, defineSignal, executeChild, proxyActivities,
  proxyLocalActivities, setHandler, sleep, workflowInfo,
} from '@temporalio/workflow';
import { NON_RETRYABLE } from '../errors.js';
import { keyFields, keyOf } from '../model.js';
import type { Action, Plan, ResourcePlan } from '../plan/plan.js';
import type { ResourceStatus, StatusRecord } from '../status/record.js';
import type { Activities, PassPlan } from './activities.js';

export { backupWorkflow, restoreWorkflow, verifyBackupWorkflow } from './backup-workflows.js';

export interface Trigger { reason: string }
export interface ReconcileInput {
  cluster: string; drainMs?: number; pending?: Trigger; lastRecorded?: string; state?: ReconcileState;
  /** The names step of the last commit that could be applied: an invalid commit keeps its certificates renewed and records kept. */
  lastNames?: NamesStep;
}
type NamesStep = { action: Action; commit: string };
export interface ReconcileState { passes: number; running: boolean; lastCommit?: string; lastPhase?: string; lastError?: string }

export const reconcileSignal = defineSignal<[Trigger]>('reconcile');
export const stateQuery = defineQuery<ReconcileState>('state');

const retry = { initialInterval: '200ms', backoffCoefficient: 2, maximumInterval: '10s', maximumAttempts: 8, nonRetryableErrorTypes: NON_RETRYABLE };
// Heartbeats let the server notice a dead worker in seconds, not at the start-to-close
// timeout: after a crash the activity is retried on a live worker almost at once.
const io = proxyActivities<Activities>({ startToCloseTimeout: '2 minutes', heartbeatTimeout: '5 seconds', retry });
// Quick reads and idempotent checks run as local activities, inside the workflow task.
const local = proxyLocalActivities<Activities>({ startToCloseTimeout: '30 seconds', retry });
// Start, health check and route switch as one activity: each hand-off between activities
// costs a workflow task (30-40 ms on a busy 2-core host), and each of the three is
// idempotent, so a retry of the whole after a crash redoes nothing twice.
const rollouts = proxyActivities<Activities>({ startToCloseTimeout: '10 minutes', heartbeatTimeout: '5 seconds', retry });

/** The actions `rollOut` runs together, in plan order. */
const ROLLOUT = new Set<Action['type']>(['startReplica', 'createReplica', 'waitHealthy', 'writeRoute']);
// Builds heartbeat their progress; a step that fails on its input (BuildFailed) is not retried.
const builds = proxyActivities<Activities>({ startToCloseTimeout: '30 minutes', heartbeatTimeout: '30 seconds', retry: { ...retry, maximumAttempts: 3 } });
// A database's start builds its engine image the first time on a host (about a minute) and waits for the engine.
const databases = proxyActivities<Activities>({ startToCloseTimeout: '20 minutes', heartbeatTimeout: '30 seconds', retry: { ...retry, maximumAttempts: 5 } });

async function run(action: Action, commit: string, notes: string[] = []): Promise<void> {
  switch (action.type) {
    case 'buildImage': notes.push((await builds.buildImage(action)).note); return;
    case 'ensureNetwork': return local.ensureNetwork(action);
    case 'startReplica': case 'createReplica': case 'waitHealthy': case 'writeRoute': return rollouts.rollOut({ actions: [action], commit });
    case 'drain': return sleep(action.ms);
    case 'removeContainer': return io.removeContainer(action);
    case 'removeRoute': return io.removeRoute(action);
    case 'removeNetwork': return io.removeNetwork(action);
    case 'ensureEgress': return local.ensureEgress(action);
    case 'removeEgress': return io.removeEgress(action);
    case 'startDatabase': notes.push((await databases.startDatabase({ action, commit })).note); return;
    case 'waitDatabase': return databases.waitDatabase({ action, commit });
    case 'ensureNames': notes.push(...(await io.ensureNames({ action, commit })).notes); return;
  }
}

/**
 * Child workflow: one resource's actions in order, up to the moment the new version
 * serves. If it never gets healthy it is removed and the old one keeps serving. What
 * follows the route switch (drain, remove the old containers) is handed back as
 * `retire`: the parent runs it beside its next passes, so a commit that lands while the
 * old version drains is not held up by it.
 */
export async function applyResourceWorkflow(input: { resource: ResourcePlan; commit: string }): Promise<{ notes: string[]; retire: Action[] }> {
  const started: Array<{ host: string; name: string }> = [];
  const routed = { done: false };
  const notes: string[] = [];
  const actions = input.resource.actions;
  try {
    for (let i = 0; i < actions.length; i++) {
      const action = actions[i]!;
      if (action.type === 'drain') return { notes, retire: actions.slice(i) };
      if (ROLLOUT.has(action.type)) {
        let end = i;
        while (end < actions.length && ROLLOUT.has(actions[end]!.type)) end++;
        const batch = actions.slice(i, end);
        // Named before they start: a rollback removes whatever of them the activity got to start.
        for (const a of batch) if (a.type === 'startReplica' || a.type === 'createReplica') started.push({ host: a.host, name: a.container });
        await rollouts.rollOut({ actions: batch, commit: input.commit });
        if (batch.some((a) => a.type === 'writeRoute')) routed.done = true;
        i = end - 1;
        continue;
      }
      await run(action, input.commit, notes);
    }
    return { notes, retire: [] };
  } catch (err) {
    if (!routed.done) {
      for (const { host, name } of started) await io.removeContainer({ type: 'removeContainer', host, id: name, name, reason: 'rollback: never served' });
    }
    throw err;
  }
}

/**
 * Old containers that no longer receive traffic, draining then being removed, while
 * later passes run. A pass plans without them (planPass leaves them out of the live
 * state) and claims back any its plan starts again (a quick revert): those are kept.
 */
class Retirements {
  /** `<host>/<container>` -> 'draining', or the removal in flight. */
  private readonly retiring = new Map<string, 'draining' | Promise<void>>();
  private readonly running: Promise<void>[] = [];

  names(): string[] { return [...this.retiring.keys()]; }

  start(actions: Action[]): void {
    const removals = actions.filter((a): a is Extract<Action, { type: 'removeContainer' }> => a.type === 'removeContainer');
    const drain = actions.find((a): a is Extract<Action, { type: 'drain' }> => a.type === 'drain');
    for (const a of removals) this.retiring.set(`${a.host}/${a.name}`, 'draining');
    this.running.push((async () => {
      if (drain) await sleep(drain.ms);
      for (const a of removals) {
        const id = `${a.host}/${a.name}`;
        if (this.retiring.get(id) !== 'draining') continue; // claimed by a later pass
        const removal = io.removeContainer(a);
        this.retiring.set(id, removal);
        // A removal that keeps failing leaves the container to the next pass, which plans it as stale.
        await removal.catch(() => undefined).finally(() => this.retiring.delete(id));
      }
    })());
  }

  /** Keeps the containers `plan` starts again; waits for any already being removed. */
  async claim(resources: ResourcePlan[]): Promise<void> {
    for (const r of resources) {
      for (const a of r.actions) {
        if (a.type !== 'startReplica' && a.type !== 'createReplica') continue;
        const id = `${a.host}/${a.container}`;
        const state = this.retiring.get(id);
        if (state === 'draining') this.retiring.delete(id);
        else if (state) await state.catch(() => undefined);
      }
    }
  }

  async settled(): Promise<void> { await Promise.all(this.running); }
}

/** Where a resource's new containers went, for the note: "on rt1, rt2" (one entry per replica). */
function placedOn(r: ResourcePlan): string[] {
  const hosts = r.actions.flatMap((a) => (a.type === 'startReplica' || a.type === 'startDatabase' ? [a.host] : []));
  return hosts.length ? [`on ${hosts.join(', ')}`] : [];
}

function failureMessage(err: unknown): { phase: string; message: string } {
  let e = err as { cause?: unknown; type?: string; message?: string };
  while (e.cause && !(e as { type?: string }).type) e = e.cause as typeof e;
  const type = (e as { type?: string }).type;
  const phase = type === 'StalledError' ? 'ValidationFailed' : type === 'HealthCheckFailed' || type === 'BuildFailed' ? type : 'ApplyFailed';
  return { phase, message: e.message ?? String(err) };
}

/** Passes per run before continue-as-new keeps the history small. */
const PASSES_PER_RUN = 50;

export async function reconcileWorkflow(input: ReconcileInput): Promise<void> {
  const state: ReconcileState = { passes: 0, running: false, ...input.state };
  let pending: Trigger | undefined = input.pending ?? { reason: 'start' };
  let lastRecorded = input.lastRecorded;
  let lastNames = input.lastNames;
  setHandler(reconcileSignal, (t) => { pending = t; });
  setHandler(stateQuery, () => state);
  const retirements = new Retirements();

  // Many passes per run: the server delays the first task of a run that continued as new
  // right after it started (about a second here), so one pass per run would make every
  // back-to-back commit wait for it. A worker with new code that cannot replay this run
  // is handled by the client (endStuckRun): git holds the state, a fresh run takes over.
  for (let n = 0; n < PASSES_PER_RUN && !workflowInfo().continueAsNewSuggested; n++) {
    await condition(() => pending !== undefined);
    const trigger = pending!;
    pending = undefined;
    state.running = true;
    state.passes++;
    const snap = await local.planPass({ drainMs: input.drainMs ?? 1000, retiring: retirements.names() });
    if (snap.commit) {
      const record = await pass(snap, trigger, state.passes, retirements, lastNames);
      if ('plan' in snap && snap.plan.names) lastNames = { action: snap.plan.names, commit: snap.commit };
      // Something waits for a database that this pass got running: the next pass starts it, now.
      if ('plan' in snap && snap.plan.waiting.length && record.resources.some((r) => r.kind === 'Database' && r.result === 'ok')) pending ??= { reason: 'a database its apps wait for is ready' };
      state.lastCommit = snap.commit;
      state.lastPhase = record.phase;
      state.lastError = record.phase === 'Applied' ? undefined : record.message;
      // A note when something happened, or for a commit seen for the first time.
      if (record.resources.length > 0 || snap.commit !== lastRecorded) {
        await io.recordStatus(record);
        lastRecorded = snap.commit;
      }
    }
    state.running = false;
  }
  await retirements.settled();
  await continueAsNew<typeof reconcileWorkflow>({ ...input, pending, lastRecorded, state, ...(lastNames ? { lastNames } : {}) });
}

/** Apps' certificates and records (names/activities.ts), as one cluster-wide entry of the pass's status when it did or failed something. */
async function names(step: NamesStep): Promise<ResourceStatus[]> {
  const notes: string[] = [];
  try {
    await run(step.action, step.commit, notes);
    return notes.length ? [{ kind: 'Cluster', project: '-', name: 'names', change: 'update', result: 'ok', message: notes.join('; ') }] : [];
  } catch (err) {
    return [{ kind: 'Cluster', project: '-', name: 'names', change: 'update', result: 'failed', phase: 'ApplyFailed', message: failureMessage(err).message }];
  }
}

async function pass(snap: Exclude<PassPlan, { commit: null }>, trigger: Trigger, seq: number, retirements: Retirements, lastNames?: NamesStep): Promise<StatusRecord> {
  const commit = snap.commit;
  const at = new Date().toISOString();
  const base = { commit, at, trigger: trigger.reason };
  if ('invalid' in snap) {
    // The last good state keeps running, so its certificates are still renewed.
    const resources = lastNames ? await names(lastNames) : [];
    return { ...base, phase: 'ValidationFailed', message: `not applied; the last good state keeps running: ${snap.invalid}`, resources, unchanged: 0 };
  }
  const p = snap.plan;
  await retirements.claim(p.resources);
  // A network or egress step that fails (a host that stopped answering mid-pass) is reported; the rest of the pass goes on.
  const prepared: ResourceStatus[] = [];
  for (const a of p.prepare) {
    try {
      await run(a, commit);
    } catch (err) {
      prepared.push({ kind: 'Cluster', project: '-', name: a.type, change: 'update', result: 'failed', phase: 'ApplyFailed', message: failureMessage(err).message });
    }
  }
  const info = workflowInfo();
  // Every resource starts at once, but waits for what it depends on (an app for its databases).
  const outcomes = new Map<string, Promise<ResourceStatus>>();
  const apply = async (r: ResourcePlan): Promise<ResourceStatus> => {
    const id = { ...keyFields(r.key), change: r.change };
    const waiting = await blockedBy(r, p, outcomes);
    if (waiting) return { ...id, result: 'pending', phase: 'WaitingForDatabase', message: waiting };
    try {
      const out = await executeChild(applyResourceWorkflow, {
        workflowId: `${info.workflowId}/${r.key.kind}/${r.key.project}/${r.key.name}/${info.runId}/${seq}`,
        args: [{ resource: r, commit }],
        parentClosePolicy: ParentClosePolicy.TERMINATE,
      });
      if (out?.retire?.length) retirements.start(out.retire);
      return { ...id, result: 'ok', message: [r.reason, ...placedOn(r), ...(out?.notes ?? [])].join('; ') };
    } catch (err) {
      const { phase, message } = failureMessage(err);
      return { ...id, result: 'failed', phase, message };
    }
  };
  for (const r of p.resources) outcomes.set(keyOf(r.key), Promise.resolve().then(() => apply(r)));
  const resources: ResourceStatus[] = [...prepared, ...(await Promise.all(outcomes.values()))];
  for (const a of p.cleanup) {
    try {
      await run(a, commit);
    } catch (err) {
      resources.push({ kind: 'Cluster', project: '-', name: a.type, change: 'remove', result: 'failed', phase: 'PruneFailed', message: failureMessage(err).message });
    }
  }
  // Last: certificates and records follow where the resources now run.
  if (p.names) resources.push(...(await names({ action: p.names, commit })));
  for (const s of p.stalled) {
    const [kind, id] = s.key.split(' ') as [ResourceStatus['kind'], string];
    const [project, name] = id.split('/') as [string, string];
    resources.push({ kind, project, name, change: 'skip', result: 'failed', phase: 'ValidationFailed', message: s.reason });
  }
  for (const s of snap.skipped) resources.push({ kind: s.kind, project: s.project, name: s.name, change: 'skip', result: 'pending', phase: s.phase, message: s.reason });
  const failed = resources.filter((r) => r.result === 'failed');
  return {
    ...base,
    phase: failed.length ? 'Degraded' : 'Applied',
    message: failed.length ? `${failed.length} of ${resources.length} change(s) failed` : `${p.resources.length} change(s) applied, ${p.unchanged.length} unchanged`,
    resources,
    unchanged: p.unchanged.length,
  };
}

/** Why `r` cannot start yet (a database it needs is not ready), or undefined once all it needs is ready. */
async function blockedBy(r: ResourcePlan, p: Plan, outcomes: Map<string, Promise<ResourceStatus>>): Promise<string | undefined> {
  for (const dep of r.after) {
    if (p.ready.includes(dep)) continue;
    const running = outcomes.get(dep);
    if (running) {
      const s = await running;
      if (s.result === 'ok') continue;
      return `${dep} is not ready (${s.phase ?? s.result}: ${s.message}); this starts once it is`;
    }
    const stalled = p.stalled.find((x) => x.key === dep);
    return stalled ? `${dep} cannot be applied: ${stalled.reason}` : `${dep} is not ready yet; this starts once it is`;
  }
  return undefined;
}
