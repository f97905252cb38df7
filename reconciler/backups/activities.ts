// Backups and restores as Temporal activities (backup-workflows.ts runs them): a logical
// dump streamed from the server on its host into the control plane's backup store,
// compressed, checksummed and age-encrypted to the cluster's recipients; a restore drill
// that proves it; retention; Postgres's WAL archive (pgBackRest) mirrored into the store;
// and restores of a backup or to a point in time. Everything goes through the host
// seam, so the server may be on any runtime host.
import { ApplicationFailure, heartbeat } from '@temporalio/activity';
import { listBackups, defaultRestoreBackup, readMeta, type BackupMeta } from '../databases/backup-store.js';
import { BackupError, backupDatabase as dumpDatabase, restoreBackup } from '../databases/backups.js';
import { drillBackup as drill } from '../databases/drill.js';
import { flushWal, pitrBackup, restoreToTime } from '../databases/pitr.js';
import { pitrDir, syncPitrRepo } from '../databases/pitr-mirror.js';
import { applyRetention as prune } from '../databases/backup-store.js';
import type { HostPool } from '../hosts/pool.js';
import { serverInput } from '../hosts/databases.js';
import { credentialsPath, databaseContainerName, readClusterConfig, volumeName } from '../layout.js';
import { HELPER_KIND, LABEL, MANAGED_BY, type ResourceKey } from '../model.js';
import { loadDesired } from '../source/desired.js';
import { decryptSecret } from '../state/secrets.js';
import { MAIN, type StateStore } from '../state/store.js';
import type { Logger } from '../util/log.js';
import { checkCredentials, type Credentials } from '../databases/credentials.js';
import { hold, release } from './holds.js';
import { findServer, type Server } from './servers.js';

export interface BackupDeps {
  cluster: string;
  store: StateStore;
  hosts: HostPool;
  identity: () => Promise<string>;
  /** The backup store on the control host. */
  backupsRoot: string;
  holdsDir: string;
  log: Logger;
}

/** What a backup says of itself in results and notes (never a secret). */
export interface BackupSummary {
  id: string; project: string; name: string; engine: string; at: string; size: number; duration_ms: number;
  verified: boolean | null; drill?: { ok: boolean; at: string; reason?: string; tables?: number; rows?: number; keys?: number };
}

export function summary(m: BackupMeta): BackupSummary {
  const inv = m.drill?.inventory;
  return {
    id: m.id, project: m.project, name: m.name, engine: m.engine, at: m.finishedAt, size: m.size, duration_ms: m.durationMs,
    verified: m.drill ? m.drill.ok : null,
    ...(m.drill ? {
      drill: {
        ok: m.drill.ok, at: m.drill.at, ...(m.drill.reason ? { reason: m.drill.reason } : {}),
        ...(inv?.tables ? { tables: inv.tables.length, rows: inv.tables.reduce((a, t) => a + t.rows, 0) } : {}),
        ...(inv?.keys !== undefined ? { keys: inv.keys } : {}),
      },
    } : {}),
  };
}

/** A failure that retrying cannot mend (a damaged file, a database that does not run): the workflow reports it as is. */
function final(phase: string, message: string): never {
  throw ApplicationFailure.create({ type: phase, nonRetryable: true, message });
}

export function createBackupActivities(deps: BackupDeps) {
  const { cluster, store, hosts, backupsRoot: root } = deps;

  async function server(project: string, name: string): Promise<Server> {
    const s = await findServer(hosts, cluster, project, name);
    if (!s?.running) final('BackupFailed', `database ${project}/${name} has no running server${s ? ` (${s.container} on ${s.host.name} is stopped)` : ''}; it must run to be backed up or restored into`);
    return s;
  }

  async function credentials(project: string, name: string): Promise<Credentials> {
    const armored = await (await store.view(MAIN)).readText(credentialsPath(project, name));
    if (armored === null) final('RestoreFailed', `database ${project}/${name} has no credentials on main`);
    const c = JSON.parse(await decryptSecret(armored, await deps.identity())) as Credentials;
    checkCredentials(c);
    return c;
  }

  return {
    /** Dumps the database into the store (and, for Postgres, takes a pgBackRest base backup and mirrors the WAL archive). */
    async backupDatabase(input: { project: string; name: string; reason: string }): Promise<BackupSummary> {
      const s = await server(input.project, input.name);
      const recipients = (await readClusterConfig(await store.view(MAIN))).spec.secrets.recipients;
      const beat = setInterval(() => heartbeat('dumping'), 5000);
      try {
        const meta = await dumpDatabase(s.host.docker, s.container, s.engine, { root, project: input.project, name: input.name, recipients, image: s.image }).catch((e: unknown) => {
          if (e instanceof BackupError) final(e.phase, e.message);
          throw e;
        });
        if (s.engine === 'postgres') {
          await pitrBackup(s.host.docker, s.container, { type: 'full', retentionFull: 2 });
          const flushed = await flushWal(s.host.docker, s.container);
          await syncPitrRepo(s.host.docker, s.container, { dir: pitrDir(root, input.project, input.name), recipients, restorableUntil: flushed.until });
        }
        deps.log.info('database backed up', { database: `${input.project}/${input.name}`, backup: meta.id, bytes: meta.size, ms: meta.durationMs, reason: input.reason });
        return summary(meta);
      } finally {
        clearInterval(beat);
      }
    },

    /** Restores the backup into a throwaway sandboxed server and checks it; the result goes into its meta.json. */
    async drillBackup(input: { project: string; name: string; id: string }): Promise<BackupSummary> {
      // The drill needs the engine's image on the database's host, not its server running; a
      // restore that replaced the server gives it back to the reconciler, which makes it again.
      let s = await findServer(hosts, cluster, input.project, input.name);
      for (let i = 0; !s && i < 120; i++) {
        heartbeat('waiting for the database server to be made again');
        await new Promise((r) => setTimeout(r, 1000));
        s = await findServer(hosts, cluster, input.project, input.name);
      }
      if (!s) final('BackupFailed', `database ${input.project}/${input.name} has no server on any runtime host to take its engine's image from`);
      const beat = setInterval(() => heartbeat('drill'), 5000);
      try {
        const result = await drill(s.host.docker, {
          root, project: input.project, name: input.name, id: input.id, identity: await deps.identity(), image: s.image,
          labels: { [LABEL.managedBy]: MANAGED_BY, [LABEL.cluster]: cluster, [LABEL.kind]: HELPER_KIND.restoreDrill, [LABEL.project]: input.project, [LABEL.name]: input.name },
        });
        deps.log.info('restore drill', { database: `${input.project}/${input.name}`, backup: input.id, ok: result.ok, reason: result.reason, ms: result.ms });
        return summary(await readMeta(root, input.project, input.name, input.id));
      } finally {
        clearInterval(beat);
      }
    },

    /** Keeps `keep` backups, and always the newest verified one. */
    async applyRetention(input: { project: string; name: string; keep: number }): Promise<string[]> {
      return prune(root, input.project, input.name, input.keep);
    },

    /** Until the database's server runs (a database made for a restore into it), heartbeating; at most 20 minutes. */
    async waitServerRunning(input: { project: string; name: string }): Promise<void> {
      const deadline = Date.now() + 20 * 60_000;
      for (;;) {
        const s = await findServer(hosts, cluster, input.project, input.name);
        if (s?.running && (await s.host.docker.getContainer(s.container).inspect()).State.Health?.Status !== 'starting') return;
        if (Date.now() > deadline) final('RestoreFailed', `database ${input.project}/${input.name} did not start within 20 minutes; get_database says why`);
        heartbeat('waiting for the database to run');
        await new Promise((r) => setTimeout(r, 1000));
      }
    },

    /**
     * Restores into `into` (the same database, or another, already running): a backup's
     * dump into its running server, or, for the same Postgres database, its data to a
     * time, with the reconciler held off while its server is replaced.
     */
    async restoreDatabase(input: { project: string; name: string; backup?: string; at?: string; into: string }): Promise<{ restored: string; ms: number }> {
      const t0 = Date.now();
      const target = await server(input.project, input.into);
      const beat = setInterval(() => heartbeat('restoring'), 5000);
      try {
        if (input.at) return { restored: await restoreAt(input.project, input.name, new Date(input.at), target), ms: Date.now() - t0 };
        const { backups } = await listBackups(root, input.project, input.name);
        const chosen = input.backup ? backups.find((b) => b.id === input.backup) : defaultRestoreBackup(backups);
        if (!chosen) final('RestoreFailed', input.backup ? `backup ${input.backup} of ${input.project}/${input.name} does not exist; list_backups shows them` : `${input.project}/${input.name} has no verified backup to restore; name one with backup (list_backups)`);
        // The load restarts Redis's server: a pass that saw it stopped would replace it mid-restore, so the reconciler is held off until it is done.
        const key: ResourceKey = { kind: 'Database', project: input.project, name: input.into };
        await hold(deps.holdsDir, key, `restore of backup ${chosen.id} into ${input.project}/${input.into}`, 60 * 60_000);
        try {
          await restoreBackup(target.host.docker, target.container, target.engine, { root, project: input.project, name: input.name, id: chosen.id, identity: await deps.identity() }).catch((e: unknown) => {
            if (e instanceof BackupError) final(e.phase, e.message);
            throw e;
          });
        } finally {
          await release(deps.holdsDir, key);
        }
        return { restored: `backup ${chosen.id} of ${input.project}/${input.name} into ${input.project}/${input.into}`, ms: Date.now() - t0 };
      } finally {
        clearInterval(beat);
      }
    },
  };

  /** Postgres to a time, in place: WAL flushed, the reconciler held off, the server replaced by a recovering one on the same volumes, then handed back. */
  async function restoreAt(project: string, name: string, at: Date, s: Server): Promise<string> {
    if (s.engine !== 'postgres') final('RestoreFailed', `a point-in-time restore is for postgres databases; ${project}/${name} is ${s.engine}: restore a backup instead`);
    if (at.getTime() > Date.now()) final('RestoreFailed', `at: ${at.toISOString()} is in the future`);
    const loaded = await loadDesired(store, (await store.resolve(MAIN))!, cluster);
    const db = loaded.desired.resources.find((r) => r.kind === 'Database' && r.project === project && r.name === name);
    if (!db || db.kind !== 'Database') final('RestoreFailed', `database ${project}/${name} is not in git`);
    await flushWal(s.host.docker, s.container);
    const key: ResourceKey = { kind: 'Database', project, name };
    await hold(deps.holdsDir, key, `restore of ${project}/${name} to ${at.toISOString()}`, 60 * 60_000);
    try {
      await s.host.docker.getContainer(s.container).remove({ force: true });
      const volume = volumeName(cluster, db);
      const input = serverInput(cluster, '', { ...db, host: s.host.name }, `${databaseContainerName(cluster, db)}-recover`, volume, await credentials(project, name), { tag: s.image, upstream: '' });
      const recovering = {
        ...input, network: 'none', mac: undefined, aliases: [], restart: 'no' as const,
        labels: { [LABEL.managedBy]: MANAGED_BY, [LABEL.cluster]: cluster, [LABEL.kind]: 'DatabaseRecovery', [LABEL.project]: project, [LABEL.name]: name },
      };
      delete (recovering as { mac?: string }).mac;
      try {
        await restoreToTime(s.host.docker, { target: at, into: recovering, volumeLabels: {} });
      } catch (e) {
        final('RestoreFailed', `${project}/${name} to ${at.toISOString()}: ${(e as Error).message}`);
      } finally {
        await s.host.docker.getContainer(recovering.name).stop().catch(() => undefined);
        await s.host.docker.getContainer(recovering.name).remove({ force: true }).catch(() => undefined);
      }
      return `${project}/${name} to ${at.toISOString()} (pgBackRest, WAL replayed to that time)`;
    } finally {
      await release(deps.holdsDir, key);
    }
  }
}

export type BackupActivities = ReturnType<typeof createBackupActivities>;
