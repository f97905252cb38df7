// Starting and signalling the reconcile workflow: one per cluster under a fixed id, so
// signal-with-start coalesces every trigger into the one loop.
import { Client, Connection, WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import type { BackupSummary } from '../backups/activities.js';
import type { BackupInput, RestoreInput, RestoreOutcome } from './backup-workflows.js';
import { backupWorkflowId, reconcileWorkflowId, restoreWorkflowId, taskQueue } from './ids.js';
import { reconcileSignal, stateQuery, type ReconcileState } from './workflows.js';

export { reconcileWorkflowId } from './ids.js';

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

  /** Starts a backup (or finds the one this schedule tick already started); returns its workflow id. */
  async startBackup(input: Omit<BackupInput, 'cluster'>, at: Date, onDemand: boolean): Promise<string> {
    const workflowId = backupWorkflowId(this.cluster, input.project, input.name, at, onDemand);
    try {
      await this.client.workflow.start('backupWorkflow', { workflowId, taskQueue: taskQueue(this.cluster), args: [{ ...input, cluster: this.cluster }] });
    } catch (e) {
      if ((e as Error).name !== 'WorkflowExecutionAlreadyStartedError') throw e;
    }
    return workflowId;
  }

  async startRestore(input: Omit<RestoreInput, 'cluster'>, at: Date): Promise<string> {
    const workflowId = restoreWorkflowId(this.cluster, input.project, input.into, at);
    await this.client.workflow.start('restoreWorkflow', { workflowId, taskQueue: taskQueue(this.cluster), args: [{ ...input, cluster: this.cluster }] });
    return workflowId;
  }

  async startVerify(project: string, name: string, id: string): Promise<string> {
    const workflowId = `mlink-verify-${this.cluster}-${project}-${name}-${id}-${Date.now()}`;
    await this.client.workflow.start('verifyBackupWorkflow', { workflowId, taskQueue: taskQueue(this.cluster), args: [{ cluster: this.cluster, project, name, id }] });
    return workflowId;
  }

  /** A backup or restore workflow's outcome, waiting at most `timeoutMs`: done with its result, failed with why, or still running. */
  async outcome<T extends BackupSummary | RestoreOutcome>(workflowId: string, timeoutMs: number): Promise<{ state: 'done'; result: T } | { state: 'failed'; message: string } | { state: 'running' }> {
    const handle = this.client.workflow.getHandle(workflowId);
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), timeoutMs).unref());
    try {
      const r = await Promise.race([handle.result() as Promise<T>, timer]);
      return r === 'timeout' ? { state: 'running' } : { state: 'done', result: r };
    } catch (e) {
      let c: unknown = e instanceof WorkflowFailedError ? e.cause : e;
      while ((c as { cause?: unknown })?.cause) c = (c as { cause: unknown }).cause;
      return { state: 'failed', message: (c as Error)?.message ?? String(e) };
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
