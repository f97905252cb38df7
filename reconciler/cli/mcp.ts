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
import { runningReconciler } from '../status/running.js';
import type { LiveStateProvider } from '../domain/live-state.js';

const HELP = `usage: mlink mcp --agent NAME [--repo DIR] [--tokens FILE] [--projects a,b] [--propose] [--read-only]

Serves MCP on stdin/stdout. Commits are authored by NAME. If the tokens file has an agent
NAME, its projects, mode and access apply; flags narrow or override them.
`;

/**
 * The live state of the reconciler that runs for this repo on this host (`mlink up`),
 * observed from here as `mlink status` does; undefined when none runs. Loaded only then,
 * so a plain `mlink mcp` starts fast.
 */
async function reconcilerLiveState(store: StateStore): Promise<LiveStateProvider | undefined> {
  const running = runningReconciler(store.gitdir);
  if (!running) return undefined;
  const [{ clusterHosts }, { createLiveState }, { BuildRecords }] = await Promise.all([
    import('../hosts/cluster.js'), import('../status/live-state.js'), import('../image-builds/records.js'),
  ]);
  const hosts = await clusterHosts(await store.view(), { routesDir: running.routesDir, api: running.traefikApi });
  return createLiveState({
    cluster: running.cluster, store, hosts, webPort: running.webPort,
    ...(running.buildsDir ? { builds: new BuildRecords(running.buildsDir) } : {}),
  });
}

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
  const liveState = await reconcilerLiveState(store);
  const server = buildServer(createDomain({ store, agent, ...(liveState ? { liveState } : {}) }));
  const transport = new LineTransport(process.stdin, process.stdout, {
    onRefused: (e) => log.warn('mcp message refused', { code: e.error.code, id: e.id, reason: e.error.message }),
  });
  const closed = new Promise<void>((resolve) => { process.stdin.once('end', () => resolve()); process.stdin.once('close', () => resolve()); });
  await server.connect(transport);
  log.info('mcp on stdio', { agent: agent.name, mode: agent.mode, access: agent.access, repo: store.gitdir, live: liveState ? 'from the reconciler running for this repo' : 'unknown (no reconciler runs for this repo)' });
  await closed;
  await server.close();
  return 0;
}
