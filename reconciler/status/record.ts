// Status goes back to git: a note on refs/notes/mlink for every commit the reconciler
// acted on, so `git log --notes=mlink` shows what ran, when, and with what result.
import { parse, stringify } from 'yaml';
import { readNote, writeNote } from '../state/notes.js';
import { MAIN, type StateStore } from '../state/store.js';
import type { Kind } from '../model.js';

export interface ResourceStatus {
  /** The resource's kind; `Cluster` for cluster-wide work (a network that could not be removed). */
  kind: Kind | 'Cluster';
  project: string;
  name: string;
  change: 'create' | 'update' | 'heal' | 'remove' | 'skip';
  result: 'ok' | 'failed' | 'pending';
  phase?: string;
  message: string;
}

export interface StatusRecord {
  commit: string;
  /** Applied: every change succeeded. Degraded: some resource failed. ValidationFailed: nothing applied. */
  phase: 'Applied' | 'Degraded' | 'ValidationFailed';
  message: string;
  at: string;
  trigger: string;
  resources: ResourceStatus[];
  unchanged: number;
}

export function renderNote(r: StatusRecord): string {
  const head = `ml.ink ${r.phase} ${r.commit.slice(0, 12)} at ${r.at} (${r.trigger}): ${r.message}`;
  return `${head}\n\n${stringify({ phase: r.phase, at: r.at, trigger: r.trigger, message: r.message, unchanged: r.unchanged, resources: r.resources })}`;
}

const SEPARATOR = '\n-----\n';

/** The newest record in a note (a note holds one record per reconcile of its commit, oldest first). */
export function parseNote(text: string): StatusRecord | undefined {
  const newest = text.split(SEPARATOR).at(-1) ?? '';
  const body = newest.split('\n\n').slice(1).join('\n\n');
  try {
    const doc = parse(body) as Omit<StatusRecord, 'commit'>;
    return doc && typeof doc === 'object' && 'phase' in doc ? ({ commit: '', ...doc } as StatusRecord) : undefined;
  } catch {
    return undefined;
  }
}

/** Appends this reconcile's record to the commit's note; earlier records (a failure, then its heal) stay. */
export async function recordStatus(store: StateStore, r: StatusRecord, keep = 20): Promise<void> {
  const previous = (await readNote(store, r.commit))?.trimEnd().split(SEPARATOR) ?? [];
  await writeNote(store, r.commit, [...previous.slice(-(keep - 1)), renderNote(r).trimEnd()].join(SEPARATOR));
}

/** The newest status note on main's history (looking back at most `depth` commits). */
export async function latestStatus(store: StateStore, depth = 50): Promise<StatusRecord | undefined> {
  let commit = await store.resolve(MAIN);
  for (let i = 0; commit && i < depth; i++) {
    const note = await readNote(store, commit);
    if (note) {
      const parsed = parseNote(note);
      if (parsed) return { ...parsed, commit };
    }
    commit = (await store.readCommit(commit)).parents[0] ?? null;
  }
  return undefined;
}
