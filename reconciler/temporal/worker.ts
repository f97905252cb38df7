// The Temporal worker that runs the reconcile workflows and their activities. More
// workers on more machines can share the task queue (point TEMPORAL_ADDRESS at a
// cluster); the embedded default runs one inside `mlink up`.
import { DefaultLogger, NativeConnection, Runtime, Worker, type LogLevel } from '@temporalio/worker';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../util/log.js';
import { createActivities, type ActivityDeps } from './activities.js';
import { taskQueue } from './ids.js';

let runtimeInstalled = false;

/** Sends the Temporal SDK's own warnings and errors into our structured log, once per process. */
function installRuntimeLogger(log: Logger): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const sdk = log.child({ component: 'temporal-sdk' });
  const level = (process.env.MLINK_TEMPORAL_LOG_LEVEL ?? 'WARN') as LogLevel;
  try {
    Runtime.install({
      logger: new DefaultLogger(level, (e) => {
        const fields = { ...(e.meta ?? {}) } as Record<string, unknown>;
        if (e.level === 'ERROR') sdk.error(e.message, fields);
        else if (e.level === 'WARN') sdk.warn(e.message, fields);
        else sdk.debug(e.message, fields);
      }),
    });
  } catch {
    // a runtime was installed by the embedding process (tests): keep it
  }
}

export { taskQueue } from './ids.js';

export interface WorkerHandle {
  worker: Worker;
  /** Resolves when the worker has stopped. */
  done: Promise<void>;
  stop(): Promise<void>;
}

export async function startWorker(opts: { address: string; namespace: string; deps: ActivityDeps }): Promise<WorkerHandle> {
  installRuntimeLogger(opts.deps.log);
  const connection = await NativeConnection.connect({ address: opts.address });
  const worker = await Worker.create({
    connection,
    namespace: opts.namespace,
    taskQueue: taskQueue(opts.deps.cluster),
    workflowsPath: fileURLToPath(new URL('./workflows.ts', import.meta.url)),
    activities: createActivities(opts.deps),
    maxConcurrentActivityTaskExecutions: 50,
    // A workflow task on a dead worker's sticky queue waits this long before any worker may
    // take it (the SDK's default is 10 s): after a crashed `mlink up`, the pass in flight
    // resumes that much later. A live worker starts its sticky tasks in milliseconds.
    stickyQueueScheduleToStartTimeout: '2s',
    shutdownGraceTime: '5s',
  });
  const done = worker.run().finally(() => connection.close());
  return {
    worker,
    done,
    async stop() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await done;
    },
  };
}
