// What the MCP tools and `mlink db` ask of backups: start one and wait (as long as the
// caller will) for its drill, list them from the store, start a restore and wait. The
// work itself runs as durable workflows (temporal/backup-workflows.ts), so it finishes
// even when the caller gives up waiting or the control plane restarts.
import type { BackupInfo, BackupService } from '../domain/live-state.js';
import { listBackups } from '../databases/backup-store.js';
import type { ReconcilerClient } from '../temporal/client.js';
import type { RestoreOutcome } from '../temporal/backup-workflows.js';
import { summary, type BackupSummary } from './activities.js';

export function createBackupService(client: ReconcilerClient, root: string): BackupService {
  return {
    async backup(id, waitMs) {
      const workflow = await client.startBackup({ project: id.project, name: id.name, reason: 'on demand', keep: id.keep }, new Date(), true);
      const o = await client.outcome<BackupSummary>(workflow, waitMs);
      if (o.state === 'running') return { state: 'running', workflow, message: `backup of ${id.project}/${id.name} still running after ${Math.round(waitMs / 1000)} s; list_backups shows it once it is done` };
      if (o.state === 'failed') return { state: 'failed', workflow, message: o.message };
      const b = o.result;
      return {
        state: 'done', workflow, backup: b as unknown as BackupInfo,
        message: `backup ${b.id} of ${id.project}/${id.name}: ${b.size} bytes, ${b.verified ? 'verified by a restore drill' : `drill failed: ${b.drill?.reason ?? 'unknown'}`}`,
      };
    },

    async list(id) {
      return (await listBackups(root, id.project, id.name)).backups.map((m) => summary(m) as unknown as BackupInfo);
    },

    async restore(req, waitMs) {
      const workflow = await client.startRestore({ project: req.project, name: req.name, into: req.into, ...(req.backup ? { backup: req.backup } : {}), ...(req.at ? { at: req.at } : {}), ...(req.fresh ? { fresh: true } : {}) }, new Date());
      const o = await client.outcome<RestoreOutcome>(workflow, waitMs);
      if (o.state === 'running') return { state: 'running', workflow, message: `restore into ${req.project}/${req.into} still running after ${Math.round(waitMs / 1000)} s` };
      if (o.state === 'failed') return { state: 'failed', workflow, message: o.message };
      const r = o.result;
      return {
        state: 'done', workflow, restored: r.restored, restore_ms: r.ms, ...(r.safety ? { safety_backup: r.safety as unknown as BackupInfo } : {}),
        message: `restored ${r.restored} in ${(r.ms / 1000).toFixed(1)} s${r.safety ? `; the data it replaced is in safety backup ${r.safety.id}` : ''}`,
      };
    },
  };
}
