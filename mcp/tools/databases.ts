// Database tools: create_database, delete_database, get_database, list_databases.
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type { Domain } from '../../reconciler/domain/index.js';
import { changes, expectedRevision, handle, liveOutput, mayWrite, name, project, proposal, reads, resources, writeOutput, writeText } from './shared.js';

export function registerDatabaseTools(server: McpServer, domain: Domain): void {
  if (mayWrite(domain)) {
    server.registerTool('create_database', {
      title: 'Create database',
      description: 'Describe a new database. Commits databases/<project>/<name>.yaml (or opens a proposal in review mode). Bind it to an app with update_app databases.',
      inputSchema: z.strictObject({
        name,
        project,
        engine: z.enum(['postgres', 'mysql', 'redis']),
        version: z.string().max(16).optional().describe('major version, e.g. "16"'),
        storage_gb: z.number().int().min(1).max(2048).optional().describe('disk size in GiB, 1-2048'),
        resources: resources.optional(),
        backups: z.strictObject({ schedule: z.string().max(64).optional().describe('five-field cron'), keep: z.number().int().min(1).max(365).optional().describe('backups kept, 1-365') }).optional(),
        proposal,
      }),
      outputSchema: writeOutput,
      annotations: changes('Create database', { destructive: false, idempotent: false }),
    }, (args) => handle('create_database', () => domain.createDatabase(args), writeText));

    server.registerTool('delete_database', {
      title: 'Delete database',
      description: 'Remove a database from the desired state. The reconciler decides what happens to its data; check get_database first.',
      inputSchema: z.strictObject({ name, project, expected_revision: expectedRevision, proposal }),
      outputSchema: writeOutput,
      annotations: changes('Delete database', { destructive: true, idempotent: false }),
    }, (args) => handle('delete_database', () => domain.deleteDatabase(args), writeText));
  }

  server.registerTool('get_database', {
    title: 'Get database',
    description: 'The database\'s manifest on main, its revision, and its live status (unknown until the reconciler runs).',
    inputSchema: z.strictObject({ name, project }),
    outputSchema: { database: z.record(z.string(), z.unknown()), revision: z.string(), path: z.string(), commit: z.string().nullable(), live: liveOutput },
    annotations: reads('Get database'),
  }, (args) => handle('get_database', () => domain.getDatabase(args), (r) => `${r.path} @ ${r.revision}\nlive: ${r.live.known ? JSON.stringify(r.live) : r.live.reason}\n${JSON.stringify(r.database, null, 2)}`));

  server.registerTool('list_databases', {
    title: 'List databases',
    description: 'Databases on main, optionally in one project.',
    inputSchema: z.strictObject({ project }),
    outputSchema: { databases: z.array(z.object({ name: z.string(), project: z.string(), engine: z.string(), revision: z.string(), path: z.string() })), invalid: z.array(z.string()), commit: z.string().nullable() },
    annotations: reads('List databases'),
  }, (args) => handle('list_databases', () => domain.listDatabases(args), (r) => r.databases.map((d) => `${d.project}/${d.name}  ${d.engine}`).join('\n') || 'no databases'));
}
