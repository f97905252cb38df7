// Runs `mlink up` as a new user would, in its own data dir and under its own cluster
// name, sharing the host's infrastructure. Hands back where agents connect and an SDK
// MCP client logged in with the printed token.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pruneCluster } from '../../reconciler/prune.js';
import { temporalAddress } from '../../infra/config.js';
import { cfg, host } from './infra.js';

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
  const child = spawn('node', ['bin/mlink.js', 'up', '--skip-setup', '--port', '0', '--git-port', '0', '--cluster', opts.cluster, '--drift-interval', String(opts.drift ?? 2), ...(opts.args ?? [])], {
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
  // a process killed by a signal has no exit code, only its signal
  if (up.child.exitCode !== null || up.child.signalCode !== null) return up.child.exitCode;
  const exited = new Promise<number | null>((r) => up.child.once('exit', (code) => r(code)));
  up.child.kill(signal);
  return exited;
}

/**
 * Removes everything a test cluster left on the host (containers, route files, networks,
 * egress rules, its reconcile workflow), as `mlink prune --cluster` does; throws when
 * something could not go, so a test that leaves things behind says so.
 */
export async function removeCluster(cluster: string): Promise<void> {
  const r = await pruneCluster({
    cluster, host, routesDir: cfg.traefik.routesDir,
    temporal: { address: temporalAddress(cfg), namespace: cfg.temporal.namespace },
    force: true, // the test stopped its mlink up; its worker may still show as a recent poller
  });
  if (r.left.length) throw new Error(`cluster ${cluster} left things behind:\n${r.left.join('\n')}`);
}

/**
 * A test's end of its cluster: the agent's session closed, `mlink up` stopped, its test
 * hosts removed (`removeHosts`, once nothing drives them), what it left on this host
 * removed, its data dir gone.
 */
export async function tearDown(up: Up | undefined, agent?: Client, removeHosts?: () => Promise<void>): Promise<void> {
  await agent?.close().catch(() => undefined);
  if (up) await stopUp(up);
  await removeHosts?.();
  if (!up) return;
  await removeCluster(up.cluster);
  removeHome(up);
}

export function removeHome(up: Up): void {
  rmSync(up.home, { recursive: true, force: true });
}

export async function connectAgent(up: Up): Promise<Client> {
  const client = new Client({ name: 'e2e-agent', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(up.url), { requestInit: { headers: { authorization: `Bearer ${up.token}` } } }));
  return client;
}

/** Calls a tool and returns its structured result, throwing with the message when it is an error. A call with `wait` may take that long (and a little more). */
export async function call<T = Record<string, unknown>>(client: Client, name: string, args: Record<string, unknown>): Promise<T> {
  const waitS = typeof args.wait === 'number' ? args.wait : 0;
  const r = await client.callTool({ name, arguments: args }, undefined, waitS ? { timeout: (waitS + 60) * 1000 } : undefined);
  if (r.isError) throw new Error(`${name} failed: ${JSON.stringify(r.content)}`);
  return r.structuredContent as T;
}
