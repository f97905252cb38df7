// Builds start when their commit lands on main, not when the reconcile pass gets to
// them (~0.1 s later: signal, plan, child workflow, activity hand-off). The pass's
// buildImage activity then joins the build already running (Builder.build runs one
// build per image), so its result, failure and log are the same either way. Only on a
// worker with a build host, for apps whose image their build host does not have yet.
import { loadDesired } from '../source/desired.js';
import { MAIN, type StateStore } from '../state/store.js';
import type { Logger } from '../util/log.js';
import type { BuildPlane } from './build-plane.js';
import { appsOf } from '../model.js';

export function buildsOnCommit(deps: { store: StateStore; cluster: string; builder: BuildPlane; log: Logger }): () => Promise<void> {
  const { store, cluster, builder, log } = deps;
  let seen = '';
  return async () => {
    const commit = await store.resolve(MAIN);
    if (!commit || commit === seen) return;
    seen = commit;
    // An invalid commit stalls the pass, which says why; nothing to build for it here.
    const loaded = await loadDesired(store, commit, cluster).catch(() => undefined);
    for (const app of appsOf(loaded?.desired.resources ?? [])) {
      if (!app.build) continue;
      // No build host, a host not reachable: the pass's activity reports it.
      if (await builder.has(app).catch(() => true)) continue;
      log.debug('build started with its commit', { app: `${app.project}/${app.name}`, commit: commit.slice(0, 12), image: app.image });
      // A failure is recorded with the build; the pass's activity reports it.
      try { builder.start(app); } catch { /* reported by the pass */ }
    }
  };
}
