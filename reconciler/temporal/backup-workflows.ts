// Backups and restores as durable workflows: a backup is dumped, proven by a restore
// drill, and old ones are let go (never the newest verified one); a restore takes a
// safety backup of the database it overwrites first, then asks the reconcile loop for a
// pass (a point-in-time restore replaced the server, the loop starts it again).
// Deterministic: only @temporalio/workflow and types.
import { defineSignal, getExternalWorkflowHandle, proxyActivities } from '@temporalio/workflow';
import type { BackupSummary } from '../backups/activities.js';
import type { Activities } from './activities.js';
import { reconcileWorkflowId } from './ids.js';

// The reconcile loop's signal (workflows.ts), by its name.
const reconcile = defineSignal<[{ reason: string }]>('reconcile');

const retry = { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '30s', maximumAttempts: 3, nonRetryableErrorTypes: ['BackupFailed', 'ChecksumMismatch', 'DecryptFailed', 'RestoreFailed', 'HealthCheckFailed'] };
const backups = proxyActivities<Activities>({ startToCloseTimeout: '6 hours', heartbeatTimeout: '1 minute', retry });

export interface BackupInput { cluster: string; project: string; name: string; reason: string; keep: number }

export async function backupWorkflow(input: BackupInput): Promise<BackupSummary> {
  const made = await backups.backupDatabase({ project: input.project, name: input.name, reason: input.reason });
  const proven = await backups.drillBackup({ project: input.project, name: input.name, id: made.id });
  await backups.applyRetention({ project: input.project, name: input.name, keep: input.keep });
  return proven;
}

/** A backup's restore drill again (a file that may have been damaged since, a check after a move): its meta.json gets the new result. */
export async function verifyBackupWorkflow(input: { cluster: string; project: string; name: string; id: string }): Promise<BackupSummary> {
  return backups.drillBackup({ project: input.project, name: input.name, id: input.id });
}

export interface RestoreInput {
  cluster: string; project: string; name: string; backup?: string; at?: string; into: string;
  /** `into` is a database made for this restore: wait for its server, and there is nothing of it to back up first. */
  fresh?: boolean;
}
export interface RestoreOutcome { restored: string; safety?: BackupSummary; ms: number }

export async function restoreWorkflow(input: RestoreInput): Promise<RestoreOutcome> {
  if (input.fresh) await backups.waitServerRunning({ project: input.project, name: input.into });
  // Whatever is overwritten is backed up first, so a wrong restore can itself be undone.
  const safety = input.fresh ? undefined : await backups.backupDatabase({ project: input.project, name: input.into, reason: `safety backup before restoring into ${input.project}/${input.into}` });
  const r = await backups.restoreDatabase({ project: input.project, name: input.name, into: input.into, ...(input.backup ? { backup: input.backup } : {}), ...(input.at ? { at: input.at } : {}) });
  await getExternalWorkflowHandle(reconcileWorkflowId(input.cluster)).signal(reconcile, { reason: `restore of ${input.project}/${input.into} done` }).catch(() => undefined);
  // The safety backup is proven like any other, once the restore no longer waits for it.
  const proven = safety ? await backups.drillBackup({ project: input.project, name: input.into, id: safety.id }) : undefined;
  return { restored: r.restored, ...(proven ? { safety: proven } : {}), ms: r.ms };
}
