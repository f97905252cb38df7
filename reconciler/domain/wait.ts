// Waiting for a change to go live. What the reconciler did is read from what it records:
// the status note on each commit it applied (a note lists every resource it changed,
// with result, phase and message; a resource not listed was unchanged, so already as
// the commit says), and, for progress while a pass runs, the live status of each
// resource (build step, replicas started, route moved). A commit the reconciler skipped
// because a newer one landed is covered by the newer one's note.
import type { App } from '../../schemas/index.js';
import { manifestPath, resourceOfPath } from '../layout.js';
import { readNote } from '../state/notes.js';
import { MAIN, type StateStore } from '../state/store.js';
import { diffTrees } from '../state/tree.js';
import { parseNote, type StatusRecord } from '../status/record.js';
import { RECONCILER_NOT_RUNNING, type LiveStateProvider, type LiveStatus, type ResourceId } from './live-state.js';
import { readManifest } from './manifests.js';
import type { WriteResult } from './write.js';

export type ResourceState = 'live' | 'failed' | 'pending' | 'unknown';

export interface ResourceOutcome extends ResourceId {
  state: ResourceState;
  /** The failing phase (BuildFailed, HealthCheckFailed, ...), or where a pending change is. */
  phase?: string;
  /** For a failed build: the step that failed. */
  step?: string;
  reason: string;
  /** The commit whose status note decided the outcome. */
  recorded?: string;
  url?: string;
}

export interface WaitOutcome {
  /** live: every change applied; failed: one failed (see resources); timeout: the wait ran out first; proposal: nothing to wait for until a human merges it; unknown: nothing here can tell. */
  state: 'live' | 'failed' | 'timeout' | 'proposal' | 'unknown';
  commit: string | null;
  waited_ms: number;
  message: string;
  resources: ResourceOutcome[];
}

export interface WaitProgress { message: string; resource?: string }
export interface WaitLogLine { level: 'info' | 'warning' | 'error'; source: 'build' | 'runtime' | 'reconciler'; resource: string; text: string }

export interface WaitOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  onProgress?: (p: WaitProgress) => void;
  onLog?: (l: WaitLogLine) => void;
  pollMs?: number;
}

/** Phases a skipped resource carries when it cannot run as the commit says (not a dependency still on its way). */
const FAILED_PHASES = new Set(['ValidationFailed', 'BuildFailed', 'ApplyFailed', 'HealthCheckFailed', 'PruneFailed']);
const label = (r: ResourceId): string => `${r.kind === 'App' ? 'app' : 'database'} ${r.project}/${r.name}`;

export interface ChangedResource extends ResourceId { removed: boolean }

/** The resources a commit changes, from its diff against its first parent (an app's secrets count as the app). */
export async function changedResources(store: StateStore, commit: string): Promise<ChangedResource[]> {
  const c = await store.readCommit(commit);
  const parentTree = c.parents[0] ? (await store.readCommit(c.parents[0])).tree : null;
  const view = await store.view(commit);
  const out = new Map<string, ChangedResource>();
  for (const path of (await diffTrees(store.objects, parentTree, c.tree)).keys()) {
    const id = resourceOfPath(path);
    if (!id) continue;
    const key = `${id.kind}/${id.project}/${id.name}`;
    if (out.has(key)) continue;
    out.set(key, { ...id, removed: !(await view.blobOid(manifestPath(id.kind, id.project, id.name))) });
  }
  return [...out.values()];
}

/** Commits from main's head back to `commit` along first parents, newest first; null when `commit` is not among the last `limit`. */
export async function commitsSince(store: StateStore, commit: string, limit = 200): Promise<string[] | null> {
  const out: string[] = [];
  let at = await store.resolve(MAIN);
  while (at && out.length < limit) {
    out.push(at);
    if (at === commit) return out;
    at = (await store.readCommit(at)).parents[0] ?? null;
  }
  return null;
}

export interface NotedCommit { commit: string; record: StatusRecord }

/** What the notes say about one resource, newest note first. Pure. */
export type Decision = Omit<ResourceOutcome, keyof ResourceId> & { unlisted?: true };

export function decide(id: ResourceId, notes: NotedCommit[]): Decision {
  let invalid: NotedCommit | undefined;
  for (const n of notes) {
    if (n.record.phase === 'ValidationFailed') { invalid ??= n; continue; }
    const entry = n.record.resources.find((r) => r.kind === id.kind && r.project === id.project && r.name === id.name);
    const recorded = n.commit;
    if (!entry) return { state: 'live', reason: `unchanged by the reconcile of ${recorded.slice(0, 12)}: already as the commit says`, recorded, unlisted: true };
    if (entry.result === 'ok') return { state: 'live', reason: entry.message, recorded };
    if (entry.result === 'failed' || FAILED_PHASES.has(entry.phase ?? '')) {
      return { state: 'failed', ...(entry.phase ? { phase: entry.phase } : {}), ...stepOf(entry.message), reason: entry.message, recorded };
    }
    return { state: 'pending', ...(entry.phase ? { phase: entry.phase } : {}), reason: entry.message, recorded };
  }
  if (invalid) return { state: 'failed', phase: 'ValidationFailed', reason: `commit ${invalid.commit.slice(0, 12)} cannot be applied, so nothing since the last good commit runs: ${invalid.record.message}`, recorded: invalid.commit };
  return { state: 'pending', reason: 'no reconcile pass has recorded this commit yet' };
}

function stepOf(message: string): { step?: string } {
  // The step itself may hold quotes (sandbox: node --check "server.js"); it ends at `": `.
  const m = /at step "(.*?)": /.exec(message);
  return m?.[1] ? { step: m[1] } : {};
}

async function notesSince(store: StateStore, chain: string[]): Promise<NotedCommit[]> {
  const out: NotedCommit[] = [];
  for (const commit of chain) {
    const text = await readNote(store, commit);
    const record = text ? parseNote(text) : undefined;
    if (record) out.push({ commit, record: { ...record, commit } });
  }
  return out;
}

/** Follows one resource's live status and reports what changed since the last look, as progress and log lines. */
class Watcher {
  private said = '';
  private buildLines = new Map<string, number>();
  private runtimeLines = new Map<string, number>();
  /** `source`: the source commit the change builds (its manifest's), so only that build's log is followed. */
  constructor(readonly id: ResourceId, private readonly opts: WaitOptions, private readonly source?: string) {}

  say(message: string): void {
    if (message === this.said) return;
    this.said = message;
    this.opts.onProgress?.({ message: `${label(this.id)}: ${message}`, resource: `${this.id.project}/${this.id.name}` });
    this.opts.onLog?.({ level: 'info', source: 'reconciler', resource: `${this.id.project}/${this.id.name}`, text: message });
  }

  /** Progress of a pending change: its build, then its new replicas starting, answering, taking traffic. */
  async look(live: LiveStateProvider, status: LiveStatus, chain: string[]): Promise<void> {
    if (!status.known) return;
    await this.buildLog(live, status);
    const build = status.build as { phase?: string; progress?: string } | undefined;
    if (status.phase === 'Building' && build?.progress) {
      this.say(`build ${build.progress}`);
      return;
    }
    const fresh = (status.replicas ?? []).filter((r) => chain.includes(r.commit));
    if (!fresh.length) return;
    const running = fresh.filter((r) => r.running).length;
    const serving = fresh.filter((r) => r.serving).length;
    if (running < fresh.length) this.say(`rollout: ${running}/${fresh.length} new replica(s) running`);
    else if (serving < fresh.length) this.say(`health check: ${fresh.length} new replica(s) running, waiting for them to answer before traffic moves`);
    else this.say(`routed: traffic goes to ${serving} new replica(s)`);
    await this.follow(live, 'runtime', this.runtimeLines);
  }

  /** The change's own build log, up to its last line (also once the build is over: a quick one ends between looks). */
  async buildLog(live: LiveStateProvider, status: LiveStatus): Promise<void> {
    const build = status.known ? status.build as { commit?: string } | undefined : undefined;
    if (this.source && build?.commit === this.source) await this.follow(live, 'build', this.buildLines);
  }

  /** New lines of the build log or the newest container's output, as log lines. */
  private async follow(live: LiveStateProvider, kind: 'build' | 'runtime', seen: Map<string, number>): Promise<void> {
    if (!live.logs || !this.opts.onLog) return;
    const logs = await live.logs(this.id, { kind, lines: 1000 }).catch(() => undefined);
    if (!logs || logs.truncated) return;
    const source = logs.source.replace(/ \((Building|Built|Failed|running|exited|created)\)$/, '');
    const from = seen.get(source) ?? 0;
    seen.set(source, logs.lines.length);
    for (const text of logs.lines.slice(from)) this.opts.onLog({ level: 'info', source: kind, resource: `${this.id.project}/${this.id.name}`, text });
  }
}

/** The source commit an app's manifest at `commit` builds, if it builds from source. */
async function sourceCommit(store: StateStore, commit: string, id: ChangedResource): Promise<string | undefined> {
  if (id.kind !== 'App' || id.removed) return undefined;
  const found = await readManifest<App>(await store.view(commit), 'App', id.project, id.name).catch(() => undefined);
  const src = found?.manifest.spec.source;
  return src && 'repo' in src ? src.repo.commit : src && 'git' in src ? src.git.commit : undefined;
}

// One listener per sleep, removed when the timer fires: a wait polls many times on the
// same request signal, and listeners left behind would pile up on it.
const sleep = (ms: number, signal?: AbortSignal): Promise<void> => new Promise((resolve) => {
  const wake = (): void => { clearTimeout(t); signal?.removeEventListener('abort', wake); resolve(); };
  const t = setTimeout(wake, ms);
  signal?.addEventListener('abort', wake, { once: true });
});

/**
 * Waits until every resource a write changed is live or one failed, or the time runs out.
 * Returns at once for a proposal (nothing runs until a human merges it).
 */
export async function waitForChange(store: StateStore, live: LiveStateProvider, change: Pick<WriteResult, 'commit' | 'proposal'>, opts: WaitOptions): Promise<WaitOutcome> {
  const t0 = Date.now();
  const done = (state: WaitOutcome['state'], message: string, resources: ResourceOutcome[], commit: string | null): WaitOutcome => ({ state, commit, waited_ms: Date.now() - t0, message, resources });
  if (change.proposal) return done('proposal', `the change is on proposal ${change.proposal}: it goes live once a human merges it (mlink review approve ${change.proposal})`, [], change.commit);
  const commit = change.commit ?? (await store.resolve(MAIN));
  if (!commit) return done('live', 'nothing to wait for: the state repo is empty', [], null);
  const ids = await changedResources(store, commit);
  if (!ids.length) return done('live', `commit ${commit.slice(0, 12)} changes no app or database: nothing to wait for`, [], commit);
  const watchers = await Promise.all(ids.map(async (id) => new Watcher(id, opts, await sourceCommit(store, commit, id))));
  for (const w of watchers) w.say(`committed ${commit.slice(0, 12)}; waiting for the reconciler`);
  let looked = 0;
  for (;;) {
    const chain = (await commitsSince(store, commit)) ?? [commit];
    const notes = await notesSince(store, chain);
    const decisions = ids.map((id) => decide(id, notes));
    // The notes say when it is settled and are cheap to read; live status asks Docker on
    // every runtime host, so it is read once they settle it, and for progress once a second.
    const over = !!opts.signal?.aborted || Date.now() - t0 >= opts.timeoutMs;
    if (decisions.some((d) => d.state === 'pending') && !over && Date.now() - looked < LOOK_MS) {
      await sleep(Math.min(opts.pollMs ?? NOTE_POLL_MS, Math.max(0, opts.timeoutMs - (Date.now() - t0))), opts.signal);
      continue;
    }
    looked = Date.now();
    const states = live.statusMany ? await live.statusMany(ids) : await Promise.all(ids.map((id) => live.status(id)));
    const outcomes = ids.map((id, i) => outcome(id, decisions[i]!, states[i]!));
    for (const [i, w] of watchers.entries()) {
      const o = outcomes[i]!;
      if (o.state !== 'pending') await w.buildLog(live, states[i]!);
      if (o.state === 'live') w.say(ids[i]!.removed ? 'removed' : o.url ? `live, serving at ${o.url}` : 'live');
      else if (o.state === 'failed') {
        w.say(`failed (${o.phase ?? 'Failed'}${o.step ? ` at step "${o.step}"` : ''})`);
        opts.onLog?.({ level: 'error', source: 'reconciler', resource: `${o.project}/${o.name}`, text: o.reason });
      } else if (o.state === 'pending') await w.look(live, states[i]!, chain);
    }
    const failed = outcomes.filter((o) => o.state === 'failed');
    const pending = outcomes.map((o, i) => [o, states[i]!] as const).filter(([o]) => o.state === 'pending');
    const unknown = outcomes.filter((o) => o.state === 'unknown');
    if (failed.length) return done('failed', failed.map((o) => `${label(o)} failed (${o.phase ?? 'Failed'}${o.step ? ` at step "${o.step}"` : ''}): ${o.reason}`).join('\n'), outcomes, commit);
    if (!pending.length && unknown.length) return done('unknown', unknown.map((o) => `${label(o)}: ${o.reason}`).join('\n'), outcomes, commit);
    if (!pending.length) return done('live', outcomes.map((o, i) => `${label(o)} is ${ids[i]!.removed ? 'removed' : `live${o.url ? ` at ${o.url}` : ''}`}`).join('\n'), outcomes, commit);
    if (opts.signal?.aborted || Date.now() - t0 >= opts.timeoutMs) {
      const noReconciler = states.every((st) => !st.known && st.reason === RECONCILER_NOT_RUNNING);
      const hint = noReconciler ? ' (no reconciler runs in this server: is `mlink up` running for this state repo?)' : '';
      const lines = pending.map(([o, s]) => `${label(o)} still pending: ${o.reason}${statusLine(s)}`);
      return done('timeout', `${opts.signal?.aborted ? 'the wait was cancelled' : `the wait ran out after ${Math.round((Date.now() - t0) / 1000)} s`}${hint}; get_app shows how it goes on:\n${lines.join('\n')}`, outcomes, commit);
    }
    await sleep(Math.min(opts.pollMs ?? NOTE_POLL_MS, Math.max(0, opts.timeoutMs - (Date.now() - t0))), opts.signal);
  }
}

/** How often a wait reads the commit's notes, and how often at most it reads live status for progress. */
const NOTE_POLL_MS = 50;
const LOOK_MS = 1000;

/** One resource's outcome: the notes' decision, with the live status's URL and failing step. */
function outcome(id: ChangedResource, d: Decision, s: LiveStatus): ResourceOutcome {
  const base = { kind: id.kind, project: id.project, name: id.name };
  const { unlisted, ...decision } = d;
  // A kind this reconciler does not run is in no note; its live status says so (and is not "unchanged").
  if (unlisted && !s.known && s.reason !== RECONCILER_NOT_RUNNING) return { ...base, state: 'unknown', reason: s.reason };
  return {
    ...base, ...decision,
    // the build record names the failed step exactly; the note's message is the fallback
    ...(d.state === 'failed' && d.phase === 'BuildFailed' && s.known ? stepFromBuild(s) : {}),
    ...(d.state === 'live' && !id.removed && s.known && s.url ? { url: s.url } : {}),
  };
}

function stepFromBuild(s: Extract<LiveStatus, { known: true }>): { step?: string } {
  const b = s.build as { phase?: string; step?: string } | undefined;
  return b?.phase === 'Failed' && b.step ? { step: b.step } : {};
}

function statusLine(s: LiveStatus): string {
  if (!s.known) return '';
  return `; now ${s.phase}${s.progress && s.phase === 'Building' ? ` (build ${s.progress})` : ''}${s.message ? `: ${s.message}` : ''}`;
}
