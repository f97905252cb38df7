// Scheduled backups: each database whose manifest has `backups.schedule` gets a node-cron
// task on the control plane; a tick starts the backup as a durable workflow named for its
// minute, so a second control plane firing the same tick starts nothing new. The tasks
// follow main: a commit that adds, changes or removes a schedule is taken up at once.
import cron, { type ScheduledTask } from 'node-cron';
import { databasesOf } from '../model.js';
import { loadDesired } from '../source/desired.js';
import { MAIN, type StateStore } from '../state/store.js';
import type { ReconcilerClient } from '../temporal/client.js';
import type { Logger } from '../util/log.js';

export interface BackupSchedules { refresh(): Promise<void>; stop(): Promise<void>; scheduled(): string[] }

export function backupSchedules(deps: { store: StateStore; cluster: string; client: ReconcilerClient; log: Logger }): BackupSchedules {
  const tasks = new Map<string, { spec: string; task: ScheduledTask }>();
  let stopped = false;
  return {
    async refresh() {
      const commit = await deps.store.resolve(MAIN);
      // An invalid commit changes no schedule: the last good one goes on.
      const loaded = commit ? await loadDesired(deps.store, commit, deps.cluster).catch(() => undefined) : undefined;
      if (!loaded || stopped) return;
      const want = new Map(databasesOf(loaded.desired.resources).filter((d) => d.backups?.schedule).map((d) => [`${d.project}/${d.name}`, { project: d.project, name: d.name, schedule: d.backups!.schedule!, keep: d.backups!.keep }]));
      for (const [key, t] of tasks) {
        const w = want.get(key);
        if (!w || JSON.stringify([w.schedule, w.keep]) !== t.spec) { await t.task.stop(); tasks.delete(key); }
      }
      for (const [key, w] of want) {
        if (tasks.has(key) || !cron.validate(w.schedule)) continue;
        const task = cron.schedule(w.schedule, () => {
          deps.client.startBackup({ project: w.project, name: w.name, reason: `schedule "${w.schedule}"`, keep: w.keep }, new Date(), false)
            .then((id) => deps.log.info('scheduled backup started', { database: key, workflow: id }))
            .catch((e: unknown) => deps.log.error('could not start a scheduled backup', { database: key, phase: 'BackupFailed', error: e }));
        }, { noOverlap: true });
        tasks.set(key, { spec: JSON.stringify([w.schedule, w.keep]), task });
      }
    },
    async stop() {
      stopped = true;
      for (const t of tasks.values()) await t.task.stop();
      tasks.clear();
    },
    scheduled: () => [...tasks.keys()].sort(),
  };
}
