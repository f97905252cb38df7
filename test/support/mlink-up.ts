// Runs `mlink up` as a new user would, in its own data dir and under its own cluster
// name, sharing the host's infrastructure. Hands back where agents connect and an SDK
// MCP client logged in with the printed token.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { Client as TemporalClient, Connection } from '@temporalio/client';
import Docker from 'dockerode';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeClusterEgress } from '../../reconciler/hosts/egress.js';
import { LABEL } from '../../reconciler/model.js';
import { reconcileWorkflowId } from '../../reconciler/temporal/client.js';
import { temporalAddress } from '../../infra/config.js';
import { cfg } from './infra.js';

export interface Up {
  home: string;
  cluster: string;
  repo: string;
  url: string;
  token: string;
  child: ChildProcess;
  output: () => string;
}

export function upEnv(home: string): NodeJS.ProcessEnv {
  return { ...process.env, MLINK_HOME: home, MLINK_INFRA_HOME: cfg.dirs.home, MLINK_LOG_FORMAT: 'json' };
}

export async function startUp(opts: { cluster: string; home?: string; token?: string; drift?: number; args?: string[] }): Promise<Up> {
  const home = opts.home ?? mkdtempSync(join(tmpdir(), 'mlink-e2e-'));
  const child = spawn('node', ['bin/mlink.js', 'up', '--skip-setup', '--port', '0', '--cluster', opts.cluster, '--drift-interval', String(opts.drift ?? 2), ...(opts.args ?? [])], {
    env: upEnv(home), stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const deadline = Date.now() + 60_000;
  while (!/MCP endpoint\s+(\S+)/.test(out)) {
    if (child.exitCode !== null) throw new Error(`mlink up exited ${child.exitCode}:\n${err.slice(-3000)}`);
    if (Date.now() > deadline) throw new Error(`mlink up printed no endpoint in 60 s:\n${out}\n${err.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const url = /MCP endpoint\s+(\S+)/.exec(out)![1]!;
  const token = /agent token\s+(mlk_\S+)/.exec(out)?.[1] ?? opts.token;
  if (!token) throw new Error(`mlink up printed no token:\n${out}`);
  return { home, cluster: opts.cluster, repo: join(home, 'state'), url, token, child, output: () => `${out}\n${err}` };
}

export async function stopUp(up: Up, signal: NodeJS.Signals = 'SIGINT'): Promise<number | null> {
  if (up.child.exitCode !== null) return up.child.exitCode;
  const exited = new Promise<number | null>((r) => up.child.once('exit', (code) => r(code)));
  up.child.kill(signal);
  return exited;
}

/** Removes everything a test cluster left on the host: containers, route files, networks, egress rules. */
export async function removeCluster(cluster: string): Promise<void> {
  const docker = new Docker();
  const filters = { label: [`${LABEL.cluster}=${cluster}`] };
  const containers = await docker.listContainers({ all: true, filters });
  await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
  for (const f of readdirSync(cfg.traefik.routesDir).filter((f) => f.startsWith(`mlink-${cluster}--`))) rmSync(join(cfg.traefik.routesDir, f), { force: true });
  const networks = await docker.listNetworks({ filters });
  await Promise.all(networks.map((n) => docker.getNetwork(n.Id).remove().catch(() => undefined)));
  await removeClusterEgress(cluster);
  // and its reconcile workflow, which would otherwise wait for signals forever
  const connection = await Connection.connect({ address: temporalAddress(cfg) });
  try {
    await new TemporalClient({ connection }).workflow.getHandle(reconcileWorkflowId(cluster)).terminate('test cluster removed');
  } catch {
    // never started, or already ended
  } finally {
    await connection.close();
  }
}

export function removeHome(up: Up): void {
  rmSync(up.home, { recursive: true, force: true });
}

export async function connectAgent(up: Up): Promise<Client> {
  const client = new Client({ name: 'e2e-agent', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(up.url), { requestInit: { headers: { authorization: `Bearer ${up.token}` } } }));
  return client;
}

/** Calls a tool and returns its structured result, throwing with the message when it is an error. */
export async function call<T = Record<string, unknown>>(client: Client, name: string, args: Record<string, unknown>): Promise<T> {
  const r = await client.callTool({ name, arguments: args });
  if (r.isError) throw new Error(`${name} failed: ${JSON.stringify(r.content)}`);
  return r.structuredContent as T;
}
