// `mlink up`: everything on embedded defaults, in one process. Set-up (idempotent), the
// state repo (created if missing), the reconciler (Temporal worker, watchers, drift
// timer) and the MCP endpoint; prints where agents connect. Ctrl-C stops the control
// plane; containers and Traefik keep serving.
import { parseArgs } from 'node:util';
import { infraConfig, temporalAddress } from '../../infra/config.js';
import { runSetup } from '../../infra/setup/index.js';
import { startHttpServer } from '../../mcp/http.js';
import { startEngine } from '../engine.js';
import { startGitHttpServer } from '../source-repos/git-http.js';
import { initStateRepo } from '../state/init.js';
import { StateStore } from '../state/store.js';
import { announceReconciler } from '../status/running.js';
import { defaultTokensFile, ensureAgentToken } from '../state/tokens.js';
import { log } from '../util/log.js';
import { dataDir } from '../util/paths.js';
import { ENDPOINT_HELP, ENDPOINT_OPTIONS, endpointFrom } from './endpoint.js';

const HELP = `usage: mlink up [--repo DIR] [--cluster NAME] [--port 7331] [--listen HOST[:PORT] --tls-cert FILE --tls-key FILE] [--git-port 7332] [--drift-interval SECONDS] [--agent NAME] [--skip-setup]

Runs ml.ink on embedded defaults: sets up Docker with runsc, Temporal, Traefik and the
registry if needed, creates the state repo if missing, starts the reconciler and serves
MCP at http://127.0.0.1:PORT/mcp (or where --listen says, over HTTPS) and the apps'
source repos (read-only git over HTTP) at http://127.0.0.1:GIT-PORT/<project>/<app>.git.
Prints the agent token the first time.

${ENDPOINT_HELP}
`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      repo: { type: 'string' }, cluster: { type: 'string' }, port: { type: 'string' }, 'drift-interval': { type: 'string' }, agent: { type: 'string' },
      'skip-setup': { type: 'boolean' }, 'drain-ms': { type: 'string' }, 'git-port': { type: 'string' }, ...ENDPOINT_OPTIONS, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) { process.stdout.write(HELP); return 0; }
  const dirs = dataDir();
  const port = Number(values.port ?? process.env.MLINK_MCP_PORT ?? 7331);
  const driftSeconds = Number(values['drift-interval'] ?? process.env.MLINK_DRIFT_INTERVAL ?? 30);
  const drainMs = Number(values['drain-ms'] ?? 1000);
  const gitPort = Number(values['git-port'] ?? process.env.MLINK_GIT_PORT ?? 7332);
  for (const [flag, v, ok] of [['--port', port, port >= 0 && port <= 65535], ['--git-port', gitPort, gitPort >= 0 && gitPort <= 65535], ['--drift-interval', driftSeconds, driftSeconds >= 1], ['--drain-ms', drainMs, drainMs >= 0]] as const) {
    if (!Number.isInteger(v) || !ok) { process.stderr.write(`mlink up: ${flag} got ${v}; give a whole number in range (see --help)\n`); return 2; }
  }
  const endpoint = endpointFrom(values, { host: '127.0.0.1', port }, { port: values.port !== undefined });
  if ('error' in endpoint) { process.stderr.write(`mlink up: ${endpoint.error}\n`); return 2; }
  try {
    // A certificate that cannot be used stops us before anything starts.
    await endpoint.tls?.load();
    const cfg = infraConfig();
    if (!values['skip-setup']) await runSetup({ cfg });
    const repoDir = values.repo ?? dirs.stateRepo;
    const init = await initStateRepo({ dir: repoDir, keysDir: dirs.keys, clusterName: values.cluster });
    if (init.created) log.info('state repo created', { repo: init.dir, commit: init.commit });

    const engine = await startEngine({
      repoDir, keysDir: dirs.keys, log, driftSeconds, drainMs,
      temporal: { address: temporalAddress(cfg), namespace: cfg.temporal.namespace },
      routesDir: cfg.traefik.routesDir,
      traefikApi: `http://${cfg.traefik.host}:${cfg.traefik.apiPort}`,
      webPort: cfg.traefik.webPort,
      httpsPort: cfg.traefik.websecurePort,
      build: { sourcesDir: dirs.sources, buildsDir: dirs.builds },
    });
    const gitServer = await startGitHttpServer({ root: dirs.sources, port: gitPort, log });
    const tokensFile = defaultTokensFile();
    const agent = values.agent ?? 'agent';
    const { token } = await ensureAgentToken(tokensFile, { name: agent, projects: ['*'], mode: 'commit', access: 'write' });
    const server = await startHttpServer({
      repoDir, tokensFile, host: endpoint.host, port: endpoint.port, extraHosts: endpoint.extraHosts, liveState: engine.liveState,
      ...(endpoint.tls ? { tls: endpoint.tls } : {}),
    });
    // `mlink mcp` on stdio for this repo shows the same live state.
    const withdraw = announceReconciler(StateStore.open(repoDir).gitdir, { cluster: engine.cluster, routesDir: cfg.traefik.routesDir, traefikApi: `http://${cfg.traefik.host}:${cfg.traefik.apiPort}`, webPort: cfg.traefik.webPort, buildsDir: dirs.builds });

    process.stdout.write([
      '',
      'ml.ink is up.',
      `  MCP endpoint   ${server.url}`,
      ...(server.certificate ? [`  certificate    ${server.certificate}; Host names allowed: ${server.allowedHosts.join(', ')}`] : []),
      token ? `  agent token    ${token}   (agent "${agent}", all projects; shown once, keep it)` : `  agent token    agent "${agent}" already has one; \`npx mlink token add ${agent}\` issues a new one`,
      `  apps served at https://<app>.<project>.localhost:${cfg.traefik.websecurePort}/ (Traefik; plain HTTP on ${cfg.traefik.webPort} redirects)`,
      `  cluster CA     ${init.caFile}   (trust it: \`npx mlink ca export > mlink-root.pem\`)`,
      `  state repo     ${init.dir}   (git clone it to review, revert, audit)`,
      `  source repos   ${gitServer.url}/<project>/<app>.git   (git clone what agents sent; read-only)`,
      `  cluster        ${engine.cluster}; drift check every ${driftSeconds} s`,
      '',
      'Ctrl-C stops the control plane; running apps keep serving.',
      '',
    ].join('\n'));

    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    log.info('stopping');
    withdraw();
    await server.close();
    await gitServer.close();
    await engine.stop();
    // All is stopped; a connection some library still holds (once, a Docker socket) must not keep Ctrl-C from ending it.
    setTimeout(() => {
      log.warn('exiting: something still held the process open 2 s after everything stopped');
      process.exit(process.exitCode ?? 0);
    }, 2000).unref();
    return 0;
  } catch (e) {
    process.stderr.write(`mlink up: ${(e as Error).message}\n`);
    return 1;
  }
}
