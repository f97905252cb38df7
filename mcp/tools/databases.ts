// Database tools: create_database, update_database, delete_database, get_database,
// list_databases, backup_database, list_backups, restore_database.
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type { Domain } from '../../reconciler/domain/index.js';
import { changes, expectedRevision, handle, liveOutput, mayWrite, name, project, proposal, reads, resources, wait, writeAndWait, writeOutput, writeText } from './shared.js';

const engine = z.enum(['postgres', 'mysql', 'mariadb', 'redis'])
  .describe('postgres (PostgreSQL 15), redis (Redis 7), or mysql, served by MariaDB 10.11 (MySQL-compatible; mariadb is the same engine)');
const version = z.string().max(16).optional()
  .describe('the release: "15" for postgres, "7" for redis, "10.11" for mysql/mariadb (the default); the minor version is the one Debian ships');
const backups = z.strictObject({
  schedule: z.string().max(64).optional().describe('when to back up, five-field cron, e.g. "0 3 * * *"'),
  keep: z.number().int().min(1).max(365).optional().describe('backups kept, 1-365 (default 7); the newest verified one is never deleted'),
});

export function registerDatabaseTools(server: McpServer, domain: Domain): void {
  if (mayWrite(domain)) {
    server.registerTool('create_database', {
      title: 'Create database',
      description: 'Describe a new database: commits databases/<project>/<name>.yaml and its credentials (made by ml.ink, encrypted; never shown), or opens a proposal in review mode. Bind it to an app with databases on create_app/update_app: the app gets <PREFIX>_URL, _HOST, _PORT, _USER, _PASSWORD, _NAME. With wait, returns once the server accepts its login.',
      inputSchema: z.strictObject({ name, project, engine, version, resources: resources.optional(), backups: backups.optional(), proposal, wait }),
      outputSchema: writeOutput,
      annotations: changes('Create database', { destructive: false, idempotent: false }),
    }, ({ wait: seconds, ...args }, extra) => handle('create_database', () => writeAndWait(server, domain, extra, seconds, () => domain.createDatabase(args)), writeText));

    server.registerTool('update_database', {
      title: 'Update database',
      description: 'Change a database\'s resources or backups (null removes them; omitted fields stay). The engine and its release cannot change in place: create a new database and restore a backup into it. A new spec restarts the server on the same data.',
      inputSchema: z.strictObject({
        name, project, version,
        resources: resources.nullable().optional(),
        backups: backups.nullable().optional(),
        expected_revision: expectedRevision, proposal, wait,
      }),
      outputSchema: writeOutput,
      annotations: changes('Update database', { destructive: false, idempotent: true }),
    }, ({ wait: seconds, ...args }, extra) => handle('update_database', () => writeAndWait(server, domain, extra, seconds, () => domain.updateDatabase(args)), writeText));

    server.registerTool('delete_database', {
      title: 'Delete database',
      description: 'Remove a database from the desired state: its server stops, its data is kept on its host as retained (list_databases shows it) and a revert of this commit brings it back with its data; only a human purges data (mlink db purge). Refused while apps are bound to it.',
      inputSchema: z.strictObject({ name, project, expected_revision: expectedRevision, proposal, wait }),
      outputSchema: writeOutput,
      annotations: changes('Delete database', { destructive: true, idempotent: false }),
    }, ({ wait: seconds, ...args }, extra) => handle('delete_database', () => writeAndWait(server, domain, extra, seconds, () => domain.deleteDatabase(args)), writeText));
  }

  if (mayWrite(domain)) {
    const runOutput = {
      state: z.enum(['done', 'failed', 'running']), workflow: z.string().describe('the Temporal workflow that runs it'), message: z.string(),
      backup: z.record(z.string(), z.unknown()).optional(), restored: z.string().optional(), restore_ms: z.number().optional(), safety_backup: z.record(z.string(), z.unknown()).optional(),
      created: z.record(z.string(), z.unknown()).optional().describe('the database this restore created (into a new name)'),
    };
    const waitFor = z.number().int().min(1).max(3600).optional().describe('seconds to wait for it to finish (default 600); it goes on after the call returns');

    server.registerTool('backup_database', {
      title: 'Back up database',
      description: 'Take a backup now: a logical dump (pg_dump -Fc, Redis RDB, mariadb-dump), compressed, checksummed and encrypted to the cluster key, then proven by a restore drill into a throwaway sandbox. Returns the backup with its drill result once done (or its workflow if the wait runs out).',
      inputSchema: z.strictObject({ name, project, wait: waitFor }),
      outputSchema: runOutput,
      annotations: changes('Back up database', { destructive: false, idempotent: false }),
    }, (args) => handle('backup_database', () => domain.backupDatabase(args), (r) => `${r.state}: ${r.message}`));

    server.registerTool('restore_database', {
      title: 'Restore database',
      description: 'Restore a backup (backup: an id from list_backups; default the newest verified one) or, for postgres, the data as it was at a time (at: RFC 3339), into the same database after an automatic safety backup, or into a new database of the same engine (into: a new name; it is created, with its own credentials). Apps bound to the database keep their connection settings.',
      inputSchema: z.strictObject({
        name, project,
        backup: z.string().max(64).optional().describe('a backup id from list_backups; default: the newest whose drill passed'),
        at: z.string().max(40).optional().describe('postgres only: the time to restore to, e.g. 2026-12-03T10:15:00Z (WAL is replayed to it)'),
        into: z.string().min(1).max(63).optional().describe('restore into this database instead (default: the same one); created when it does not exist'),
        wait: waitFor,
      }),
      outputSchema: runOutput,
      annotations: changes('Restore database', { destructive: true, idempotent: false }),
    }, (args) => handle('restore_database', () => domain.restoreDatabase(args), (r) => `${r.state}: ${r.message}`));
  }

  server.registerTool('list_backups', {
    title: 'List backups',
    description: 'A database\'s backups, newest first: time, size, whether its restore drill passed (verified) and what the drill found (tables and rows, or keys). restore_default is the one restore_database takes when none is named: the newest verified.',
    inputSchema: z.strictObject({ name, project }),
    outputSchema: { backups: z.array(z.record(z.string(), z.unknown())), restore_default: z.string().nullable() },
    annotations: reads('List backups'),
  }, (args) => handle('list_backups', () => domain.listBackups(args), (r) => r.backups.map((b) => `${String(b.id)}  ${String(b.at)}  ${String(b.size)} bytes  ${b.verified === true ? 'verified' : b.verified === false ? 'drill failed' : 'not verified yet'}`).join('\n') || 'no backups'));

  server.registerTool('get_database', {
    title: 'Get database',
    description: 'The database\'s manifest on main, its revision, the engine, where bound apps reach it (host and port; never the password), the apps bound to it, and its live status: phase (Running, Starting, ...), its host, size on disk.',
    inputSchema: z.strictObject({ name, project }),
    outputSchema: {
      database: z.record(z.string(), z.unknown()), revision: z.string(), path: z.string(), commit: z.string().nullable(),
      engine: z.string(), connect: z.object({ host: z.string(), port: z.number(), name: z.string() }), bound_apps: z.array(z.string()),
      last_backup: z.record(z.string(), z.unknown()).nullable(), live: liveOutput,
    },
    annotations: reads('Get database'),
  }, (args) => handle('get_database', () => domain.getDatabase(args), (r) => [
    `${r.path} @ ${r.revision}: ${r.engine}, reached at ${r.connect.host}:${r.connect.port}, bound to ${r.bound_apps.join(', ') || 'no app'}`,
    `live: ${r.live.known ? JSON.stringify(r.live) : r.live.reason}`,
  ].join('\n')));

  server.registerTool('list_databases', {
    title: 'List databases',
    description: 'Databases on main, optionally in one project, with their phase; and retained data: databases deleted from git whose data is still kept (size, since when).',
    inputSchema: z.strictObject({ project }),
    outputSchema: {
      databases: z.array(z.object({ name: z.string(), project: z.string(), engine: z.string(), revision: z.string(), path: z.string(), live: liveOutput })),
      retained: z.array(z.object({ project: z.string(), name: z.string(), engine: z.string(), version: z.string(), host: z.string(), volume: z.string(), since: z.string(), size_bytes: z.number().optional() })),
      invalid: z.array(z.string()), commit: z.string().nullable(),
    },
    annotations: reads('List databases'),
  }, (args) => handle('list_databases', () => domain.listDatabases(args), (r) => [
    ...r.databases.map((d) => `${d.project}/${d.name}  ${d.engine}  ${d.live.known ? String(d.live.phase) : 'live state unknown'}`),
    ...r.retained.map((d) => `${d.project}/${d.name}  ${d.engine} ${d.version}  retained since ${d.since}${d.size_bytes !== undefined ? `, ${d.size_bytes} bytes` : ''} (data kept; revert the delete to bring it back, or mlink db purge)`),
  ].join('\n') || 'no databases'));
}
