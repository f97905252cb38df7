// What Temporal keeps of a cluster's reconciles: every run of its reconcile workflow and
// of every child workflow it started, each history with its payloads as stored (bytes,
// which `temporal workflow show -o json` prints as base64). secret-scan.ts searches them.
import { Client, Connection } from '@temporalio/client';
import { temporalAddress } from '../../infra/config.js';
import { reconcileWorkflowId } from '../../reconciler/temporal/client.js';
import { cfg } from './infra.js';

export interface Stored { workflowId: string; runId: string; history: unknown }

/** The child workflows a history started (their id and run). */
function children(history: unknown): Array<{ workflowId: string; runId: string }> {
  const events = (history as { events?: Array<{ childWorkflowExecutionStartedEventAttributes?: { workflowExecution?: { workflowId?: string; runId?: string } } }> }).events ?? [];
  return events.flatMap((e) => {
    const x = e.childWorkflowExecutionStartedEventAttributes?.workflowExecution;
    return x?.workflowId && x.runId ? [{ workflowId: x.workflowId, runId: x.runId }] : [];
  });
}

/**
 * Every run of the cluster's workflows (the reconcile loop, and its backups and restores
 * with `all`) and, through their histories, of every child workflow they started.
 */
export async function clusterHistories(cluster: string, opts: { all?: boolean } = {}): Promise<Stored[]> {
  const connection = await Connection.connect({ address: temporalAddress(cfg) });
  try {
    const client = new Client({ connection, namespace: cfg.temporal.namespace });
    const queue: Array<{ workflowId: string; runId: string }> = [];
    const prefixes = [reconcileWorkflowId(cluster), ...(opts.all ? [`mlink-backup-${cluster}-`, `mlink-restore-${cluster}-`] : [])];
    for (const prefix of prefixes) {
      for await (const w of client.workflow.list({ query: `WorkflowId STARTS_WITH '${prefix}'` })) queue.push({ workflowId: w.workflowId, runId: w.runId });
    }
    const seen = new Set<string>();
    const out: Stored[] = [];
    while (queue.length) {
      const w = queue.shift()!;
      if (seen.has(w.runId)) continue;
      seen.add(w.runId);
      const history = await client.workflow.getHandle(w.workflowId, w.runId).fetchHistory();
      out.push({ ...w, history });
      queue.push(...children(history));
    }
    return out;
  } finally {
    await connection.close();
  }
}
