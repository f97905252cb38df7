// The build as a Temporal activity: the worker drives the build host its input names (the
// local host in the embedded default, else one reached over SSH), so a retry builds on the
// same host. It heartbeats its progress; a step that fails on its input becomes a
// non-retryable BuildFailed naming the step and the last log lines.
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Action } from '../plan/plan.js';
import type { BuildPlane } from './build-plane.js';
import { BuildFailure, type BuildOutcome } from './builder.js';

type BuildAction = Extract<Action, { type: 'buildImage' }>;

export function createBuildActivities(builder: BuildPlane | undefined): { buildImage(a: BuildAction): Promise<BuildOutcome> } {
  return {
    async buildImage(a: BuildAction): Promise<BuildOutcome> {
      if (!builder || !a.app.build) {
        throw ApplicationFailure.create({ type: 'BuildFailed', nonRetryable: true, message: 'build failed at step "schedule": this worker has no build role (no builder configured)' });
      }
      let progress = 'starting';
      // This activity's context, taken now: progress may come from a build started with its commit, outside it.
      const ctx = Context.current();
      const beat = setInterval(() => ctx.heartbeat(progress), 2000);
      try {
        const host = a.host || builder.hostOf(a.app);
        return await builder.build(a.app, host, (p) => {
          progress = p;
          ctx.heartbeat(p);
        });
      } catch (e) {
        if (e instanceof BuildFailure) {
          throw ApplicationFailure.create({ type: 'BuildFailed', nonRetryable: true, message: e.message, details: [{ step: e.step, tail: e.tail }] });
        }
        throw e;
      } finally {
        clearInterval(beat);
      }
    },
  };
}
