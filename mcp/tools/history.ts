// History tools: history, revert, plan.
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type { Domain } from '../../reconciler/domain/index.js';
import { changes, handle, liveOutput, mayWrite, name, project, proposal, reads, wait, writeAndWait, writeOutput, writeText } from './shared.js';

const logEntry = z.object({
  commit: z.string(),
  author: z.object({ name: z.string(), email: z.string() }),
  date: z.string(),
  subject: z.string(),
  trailers: z.record(z.string(), z.string()),
  parents: z.array(z.string()),
});

export function registerHistoryTools(server: McpServer, domain: Domain): void {
  server.registerTool('history', {
    title: 'History',
    description: 'Commits on main, newest first: for one app or database when name is given, else for the whole repo.',
    inputSchema: z.strictObject({ kind: z.enum(['app', 'database']).optional().describe('default app'), name: name.optional(), project, limit: z.number().int().min(1).max(200).optional().describe('default 20') }),
    outputSchema: { commits: z.array(logEntry), paths: z.array(z.string()) },
    annotations: reads('History'),
  }, (args) => handle('history', () => domain.history(args), (r) => r.commits.map((c) => `${c.commit.slice(0, 12)} ${c.date} ${c.author.name}: ${c.subject}`).join('\n') || 'no commits'));

  if (mayWrite(domain)) {
    server.registerTool('revert', {
      title: 'Revert commit',
      description: 'Undo an earlier commit on main with a new commit (like git revert). Fails with a conflict if the files it touched changed since; revert the later commits first. With wait, returns once what it brings back (or takes away) is live.',
      inputSchema: z.strictObject({ commit: z.string().max(40).describe('the commit id (7-40 hex digits) from history'), proposal, wait }),
      outputSchema: writeOutput,
      annotations: changes('Revert commit', { destructive: true, idempotent: false }),
    }, ({ wait: seconds, ...args }, extra) => handle('revert', () => writeAndWait(server, domain, extra, seconds, () => domain.revert(args)), writeText));
  }

  server.registerTool('sync', {
    title: 'Sync now',
    description: 'Ask the reconciler to apply the newest commit on main now, instead of waiting for the next drift check. Returns at once; get_app shows the result.',
    inputSchema: z.strictObject({}),
    outputSchema: { requested: z.boolean(), message: z.string() },
    annotations: changes('Sync now', { destructive: false, idempotent: true }),
  }, () => handle('sync', () => domain.sync(), (r) => r.message));

  server.registerTool('plan', {
    title: 'Plan',
    description: 'The desired state on main (every app and database with its revision) and what the reconciler would change. Live state is unknown until the reconciler runs.',
    inputSchema: z.strictObject({ project }),
    outputSchema: {
      commit: z.string().nullable(),
      desired: z.array(z.object({ kind: z.string(), project: z.string(), name: z.string(), revision: z.string() })),
      invalid: z.array(z.string()),
      live: liveOutput,
    },
    annotations: reads('Plan'),
  }, (args) => handle('plan', () => domain.plan(args), (r) => {
    const lines = r.desired.map((d) => `${d.kind} ${d.project}/${d.name} @ ${d.revision.slice(0, 12)}`);
    const live = r.live.known ? r.live.actions.map((a) => `${a.action} ${a.kind} ${a.project}/${a.name}: ${a.reason}`) : [r.live.reason];
    return [`desired at ${r.commit ?? '(empty)'}:`, ...lines, '', ...live].join('\n');
  }));
}
