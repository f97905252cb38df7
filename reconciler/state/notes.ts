// Git notes on refs/notes/mlink: the reconciler records what it applied to a commit
// (phase, result, time) without rewriting history. `git log --notes=mlink` shows them.
import type { StateStore, Identity } from './store.js';
import { NOTES } from './store.js';

const RECONCILER: Identity = { name: 'ml.ink reconciler', email: 'reconciler@mlink.localhost' };

/** The note attached to `commit`, or null. Reads both flat and fanned-out (ab/cdef...) layouts. */
export async function readNote(store: StateStore, commit: string, ref = NOTES): Promise<string | null> {
  const view = await store.view(ref);
  return (await view.readText(commit)) ?? (await view.readText(`${commit.slice(0, 2)}/${commit.slice(2)}`));
}

/** Attaches (or replaces) the note on `commit`; one notes commit per call. */
export async function writeNote(store: StateStore, commit: string, text: string, opts: { ref?: string; author?: Identity } = {}): Promise<string | null> {
  if (!/^[0-9a-f]{40}$/.test(commit)) throw new Error(`writeNote needs a full commit id, got ${JSON.stringify(commit)}`);
  const result = await store.commit({
    ref: opts.ref ?? NOTES,
    author: opts.author ?? RECONCILER,
    message: `Notes added by ml.ink for ${commit.slice(0, 12)}`,
    prepare: async (view) => {
      const fanned = `${commit.slice(0, 2)}/${commit.slice(2)}`;
      const stale = (await view.blobOid(fanned)) ? [{ path: fanned, content: null }] : [];
      return [...stale, { path: commit, content: text.endsWith('\n') ? text : `${text}\n` }];
    },
  });
  return result.commit;
}
