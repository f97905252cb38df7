// whoami: the identity an agent's commits are authored as, and what it may do.
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import type { Domain } from '../../reconciler/domain/index.js';
import { handle, reads } from './shared.js';

export function registerWhoamiTool(server: McpServer, domain: Domain): void {
  server.registerTool('whoami', {
    title: 'Who am I',
    description: 'Your agent identity (commit author), the projects you may touch, whether your changes commit to main or become proposals, and whether you may write.',
    inputSchema: z.strictObject({}),
    outputSchema: { name: z.string(), projects: z.array(z.string()), mode: z.enum(['commit', 'propose']), access: z.enum(['read', 'write']) },
    annotations: reads('Who am I'),
  }, () => handle('whoami', () => domain.whoami(), (r) => `${r.name}: ${r.access} access, ${r.mode} mode, projects ${r.projects.join(', ')}`));
}
