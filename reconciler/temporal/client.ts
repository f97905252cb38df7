// Starting and signalling the reconcile workflow: one per cluster under a fixed id, so
// signal-with-start coalesces every trigger into the one loop.
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { taskQueue } from './worker.js';
import { reconcileSignal, stateQuery, type ReconcileState } from './workflows.js';

export function reconcileWorkflowId(cluster: string): string {
  return `mlink-reconcile-${cluster}`;
}

export class ReconcilerClient {
  private constructor(private readonly client: Client, private readonly connection: Connection, readonly cluster: string, private readonly drainMs: number) {}

  static async connect(opts: { address: string; namespace: string; cluster: string; drainMs?: number }): Promise<ReconcilerClient> {
    const connection = await Connection.connect({ address: opts.address });
    return new ReconcilerClient(new Client({ connection, namespace: opts.namespace }), connection, opts.cluster, opts.drainMs ?? 1000);
  }

  /** Asks for a reconcile pass of the newest commit on main. */
  async trigger(reason: string): Promise<void> {
    await this.client.workflow.signalWithStart('reconcileWorkflow', {
      workflowId: reconcileWorkflowId(this.cluster),
      taskQueue: taskQueue(this.cluster),
      args: [{ cluster: this.cluster, drainMs: this.drainMs }],
      signal: reconcileSignal,
      signalArgs: [{ reason }],
    });
  }

  /**
   * Ends a reconcile run whose workflow task keeps failing (a worker with new code cannot
   * replay an old run's pass). Safe because git, not the run, holds the state: the next
   * trigger starts a fresh run. Returns whether a run was ended.
   */
  async endStuckRun(minAttempts = 2): Promise<boolean> {
    const handle = this.client.workflow.getHandle(reconcileWorkflowId(this.cluster));
    try {
      const d = await handle.describe();
      const attempt = d.raw.pendingWorkflowTask?.attempt ?? 0;
      if (d.status.name !== 'RUNNING' || attempt < minAttempts) return false;
      await handle.terminate(`workflow task failed ${attempt} times (new worker code?); a fresh run takes over from git`);
      return true;
    } catch (e) {
      if (e instanceof WorkflowNotFoundError) return false;
      throw e;
    }
  }

  async state(): Promise<ReconcileState | undefined> {
    try {
      return await this.client.workflow.getHandle(reconcileWorkflowId(this.cluster)).query(stateQuery);
    } catch (e) {
      if (e instanceof WorkflowNotFoundError) return undefined;
      throw e;
    }
  }

  async close(): Promise<void> {
    await this.connection.close();
  }
}
