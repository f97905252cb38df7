// `mlink mcp --repo DIR --agent NAME`: the MCP server on stdio for one local agent.
// stdout carries MCP only; logs go to stderr.
import { parseArgs } from 'node:util';
import { buildServer } from '../../mcp/server.js';
import { LineTransport } from '../../mcp/stdio.js';
import { createDomain } from '../domain/index.js';
import { StateStore } from '../state/store.js';
import { DEFAULT_POLICY, checkPolicy, defaultTokensFile, findAgent, type AgentPolicy } from '../state/tokens.js';
import { dataDir } from '../util/paths.js';
import { log } from '../util/log.js';

const HELP = `usage: mlink mcp --agent NAME [--repo DIR] [--tokens FILE] [--projects a,b] [--propose] [--read-only]

Serves MCP on stdin/stdout. Commits are authored by NAME. If the tokens file has an agent
NAME, its projects, mode and access apply; flags narrow or override them.
`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      repo: { type: 'string' }, agent: { type: 'string' }, tokens: { type: 'string' }, projects: { type: 'string' },
      propose: { type: 'boolean' }, 'read-only': { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) { process.stderr.write(HELP); return 0; }
  if (!values.agent) { process.stderr.write(`mlink mcp: --agent NAME is required\n\n${HELP}`); return 2; }
  let agent: AgentPolicy;
  let store: StateStore;
  try {
    const known = await findAgent(values.tokens ?? defaultTokensFile(), values.agent);
    agent = checkPolicy({
      ...(known ?? { ...DEFAULT_POLICY, name: values.agent }),
      ...(values.projects ? { projects: values.projects.split(',').map((p) => p.trim()) } : {}),
      ...(values.propose ? { mode: 'propose' as const } : {}),
      ...(values['read-only'] ? { access: 'read' as const } : {}),
    });
    store = StateStore.open(values.repo ?? dataDir().stateRepo);
  } catch (err) {
    process.stderr.write(`mlink mcp: ${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
  const server = buildServer(createDomain({ store, agent }));
  const transport = new LineTransport(process.stdin, process.stdout, {
    onRefused: (e) => log.warn('mcp message refused', { code: e.error.code, id: e.id, reason: e.error.message }),
  });
  const closed = new Promise<void>((resolve) => { process.stdin.once('end', () => resolve()); process.stdin.once('close', () => resolve()); });
  await server.connect(transport);
  log.info('mcp on stdio', { agent: agent.name, mode: agent.mode, access: agent.access, repo: store.gitdir });
  await closed;
  await server.close();
  return 0;
}
