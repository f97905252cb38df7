// Workflow ids and task queues, derived from the cluster's name: pure, so workflows, the
// client and the worker agree on them.

export function reconcileWorkflowId(cluster: string): string {
  return `mlink-reconcile-${cluster}`;
}

export function taskQueue(cluster: string): string {
  return `mlink-${cluster}`;
}

/** One backup's workflow: a scheduled one is named for its minute, so two control planes firing the same schedule start it once. */
export function backupWorkflowId(cluster: string, project: string, name: string, at: Date, onDemand: boolean): string {
  const stamp = onDemand ? at.toISOString() : at.toISOString().slice(0, 16);
  return `mlink-backup-${cluster}-${project}-${name}-${onDemand ? 'now-' : ''}${stamp}`;
}

export function restoreWorkflowId(cluster: string, project: string, into: string, at: Date): string {
  return `mlink-restore-${cluster}-${project}-${into}-${at.toISOString()}`;
}
