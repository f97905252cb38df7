// `mlink serve`: the MCP server over Streamable HTTP at /mcp, bearer token per agent.
import { parseArgs } from 'node:util';
import { LOOPBACK_HOSTS, startHttpServer } from '../../mcp/http.js';
import { defaultTokensFile } from '../state/tokens.js';
import { dataDir } from '../util/paths.js';
import { log } from '../util/log.js';

const HELP = `usage: mlink serve [--repo DIR] [--tokens FILE] [--host 127.0.0.1] [--port 7331] [--allow-host NAME]...

Serves MCP at http://HOST:PORT/mcp. Agents authenticate with a bearer token from
\`mlink token add NAME\`. Host and Origin headers must be loopback unless --allow-host
names another host (DNS-rebinding protection).
`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      repo: { type: 'string' }, tokens: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' },
      'allow-host': { type: 'string', multiple: true }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) { process.stdout.write(HELP); return 0; }
  const port = Number(values.port ?? 7331);
  if (!Number.isInteger(port) || port < 0 || port > 65535) { process.stderr.write(`mlink serve: --port must be 0-65535, got ${values.port}\n`); return 2; }
  try {
    const server = await startHttpServer({
      repoDir: values.repo ?? dataDir().stateRepo,
      tokensFile: values.tokens ?? defaultTokensFile(),
      host: values.host ?? '127.0.0.1',
      port,
      allowedHosts: values['allow-host'] ? [...LOOPBACK_HOSTS, ...values['allow-host']] : undefined,
    });
    process.stdout.write(`${server.url}\n`);
    log.info('mcp over http', { url: server.url });
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await server.close();
    return 0;
  } catch (err) {
    process.stderr.write(`mlink serve: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
