// The MCP server: one tool group per file under tools/, each a thin adapter over one
// domain function. No business logic here.
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SetLevelRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import type { Domain } from '../reconciler/domain/index.js';
import { memoryLevel, type LogLevelStore } from './session.js';
import { registerAppTools } from './tools/apps.js';
import { registerDatabaseTools } from './tools/databases.js';
import { registerHistoryTools } from './tools/history.js';
import { registerHostTools } from './tools/hosts.js';
import { registerProposalTools } from './tools/proposals.js';
import { attachLogLevel } from './tools/shared.js';
import { registerWhoamiTool } from './tools/whoami.js';

export const SERVER_INFO = { name: 'mlink', version: '0.1.0' };

export interface ServerOptions {
  /** Where the client's log level lives; default this server's memory (one stdio session). */
  logLevel?: LogLevelStore;
}

export function buildServer(domain: Domain, opts: ServerOptions = {}): McpServer {
  const readOnly = domain.agent.access !== 'write';
  const server = new McpServer(SERVER_INFO, {
    capabilities: { logging: {} },
    instructions: 'ml.ink: describe apps and databases; every change is a git commit (or a proposal a human reviews). Start with whoami, then list_apps. '
      + 'Pass wait (seconds) to a write to get its outcome (live, or the failing phase and step) in the result; with a progressToken you get build, rollout and health progress meanwhile, and after logging/setLevel the build and deploy log lines.'
      + (readOnly ? ' This token is read-only: only the tools it may call are listed.' : ''),
  });
  const level = opts.logLevel ?? memoryLevel();
  attachLogLevel(server, level);
  // The SDK keeps the level per session id; a stateless HTTP server has none, so the store decides.
  server.server.setRequestHandler(SetLevelRequestSchema, async (req) => {
    level.set(req.params.level);
    return {};
  });
  registerWhoamiTool(server, domain);
  registerAppTools(server, domain);
  registerDatabaseTools(server, domain);
  registerHistoryTools(server, domain);
  registerProposalTools(server, domain);
  registerHostTools(server, domain);
  return server;
}
