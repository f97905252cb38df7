// The MCP server: one tool group per file under tools/, each a thin adapter over one
// domain function. No business logic here.
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { Domain } from '../reconciler/domain/index.js';
import { registerAppTools } from './tools/apps.js';
import { registerDatabaseTools } from './tools/databases.js';
import { registerHistoryTools } from './tools/history.js';
import { registerProposalTools } from './tools/proposals.js';
import { registerWhoamiTool } from './tools/whoami.js';

export const SERVER_INFO = { name: 'mlink', version: '0.1.0' };

export function buildServer(domain: Domain): McpServer {
  const server = new McpServer(SERVER_INFO, {
    instructions: 'ml.ink: describe apps and databases; every change is a git commit (or a proposal a human reviews). Start with whoami, then list_apps.',
  });
  registerWhoamiTool(server, domain);
  registerAppTools(server, domain);
  registerDatabaseTools(server, domain);
  registerHistoryTools(server, domain);
  registerProposalTools(server, domain);
  return server;
}
