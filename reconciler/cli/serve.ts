// `mlink serve`: the MCP server over Streamable HTTP at /mcp, bearer token per agent;
// HTTPS when given a certificate, which any address beyond loopback needs.
import { parseArgs } from 'node:util';
import { startHttpServer } from '../../mcp/http.js';
import { defaultTokensFile } from '../state/tokens.js';
import { dataDir } from '../util/paths.js';
import { log } from '../util/log.js';
import { ENDPOINT_HELP, ENDPOINT_OPTIONS, endpointFrom } from './endpoint.js';

const HELP = `usage: mlink serve [--repo DIR] [--tokens FILE] [--listen HOST[:PORT]] [--tls-cert FILE --tls-key FILE] [--allow-host NAME]...

Serves MCP at http(s)://HOST:PORT/mcp (default http://127.0.0.1:7331/mcp). Agents
authenticate with a bearer token from \`mlink token add NAME\`. Host and Origin headers
must name this endpoint (DNS-rebinding protection).

${ENDPOINT_HELP}
  --host HOST, --port PORT   the same as --listen HOST:PORT
`;

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { repo: { type: 'string' }, tokens: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' }, ...ENDPOINT_OPTIONS, help: { type: 'boolean', short: 'h' } },
    }));
  } catch (e) {
    process.stderr.write(`mlink serve: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) { process.stdout.write(HELP); return 0; }
  const port = Number(values.port ?? 7331);
  if (!Number.isInteger(port) || port < 0 || port > 65535) { process.stderr.write(`mlink serve: --port must be 0-65535, got ${values.port}\n`); return 2; }
  const endpoint = endpointFrom(values, { host: values.host ?? '127.0.0.1', port }, { host: values.host !== undefined, port: values.port !== undefined });
  if ('error' in endpoint) { process.stderr.write(`mlink serve: ${endpoint.error}\n`); return 2; }
  try {
    const server = await startHttpServer({
      repoDir: values.repo ?? dataDir().stateRepo,
      tokensFile: values.tokens ?? defaultTokensFile(),
      host: endpoint.host,
      port: endpoint.port,
      extraHosts: endpoint.extraHosts,
      ...(endpoint.tls ? { tls: endpoint.tls } : {}),
    });
    process.stdout.write(`${server.url}\n`);
    log.info('mcp over http', { url: server.url, allowedHosts: server.allowedHosts, ...(server.certificate ? { certificate: server.certificate } : {}) });
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
