// Proposal tools: list_proposals (approving is for humans: `mlink review`).
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type { Domain } from '../../reconciler/domain/index.js';
import { handle, reads } from './shared.js';

export function registerProposalTools(server: McpServer, domain: Domain): void {
  server.registerTool('list_proposals', {
    title: 'List proposals',
    description: 'Open proposals (changes waiting for a human to approve): id, agent, files and commits. Add to your own with the proposal field of a write tool.',
    inputSchema: z.strictObject({}),
    outputSchema: {
      proposals: z.array(z.object({
        id: z.string(), branch: z.string(), head: z.string(), base: z.string().nullable(), agent: z.string(), subject: z.string(), updated: z.string(),
        commits: z.array(z.object({ commit: z.string(), subject: z.string() }).passthrough()),
        files: z.array(z.object({ path: z.string(), change: z.string() })),
      })),
    },
    annotations: reads('List proposals'),
  }, () => handle('list_proposals', () => domain.listProposals(), (r) => r.proposals.map((p) => `${p.id} by ${p.agent}: ${p.subject} (${p.files.length} files)`).join('\n') || 'no open proposals'));
}
