// The build as a Temporal activity, for workers on a host with the build role (the local
// host in the embedded default). It heartbeats its progress; a step that fails on its
// input becomes a non-retryable BuildFailed naming the step and the last log lines.
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Action } from '../plan/plan.js';
import { BuildFailure, type BuildOutcome, type Builder } from './builder.js';

type BuildAction = Extract<Action, { type: 'buildImage' }>;

export function createBuildActivities(builder: Builder | undefined): { buildImage(a: BuildAction): Promise<BuildOutcome> } {
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
        return await builder.build({ project: a.app.project, name: a.app.name, image: a.image, build: a.app.build }, (p) => {
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
