// Test helpers for the state repo: a temp data dir (MLINK_HOME) with an initialised
// repo, git's own CLI against it, and an SDK Client connected in memory.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildServer } from '../../mcp/server.js';
import { createDomain, type LiveStateProvider } from '../../reconciler/domain/index.js';
import { initStateRepo } from '../../reconciler/state/init.js';
import { StateStore } from '../../reconciler/state/store.js';
import type { AgentPolicy } from '../../reconciler/state/tokens.js';

// Commit logs at info level would bury test output; tests that read logs raise it.
process.env.MLINK_LOG_LEVEL ??= 'warn';

export interface TempState { home: string; repo: string; keys: string; store: StateStore; cleanup(): void }

export async function tempState(): Promise<TempState> {
  const home = mkdtempSync(join(tmpdir(), 'mlink-test-'));
  const repo = join(home, 'state');
  const keys = join(home, 'keys');
  await initStateRepo({ dir: repo, keysDir: keys });
  return { home, repo, keys, store: StateStore.open(repo), cleanup: () => rmSync(home, { recursive: true, force: true }) };
}

/** git's own CLI on a repo (bare or not); returns stdout. */
export function git(dir: string, ...args: string[]): string {
  return execFileSync('git', ['-C', dir, ...args], {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    env: { ...process.env, GIT_AUTHOR_NAME: 'Human Reviewer', GIT_AUTHOR_EMAIL: 'human@example.com', GIT_COMMITTER_NAME: 'Human Reviewer', GIT_COMMITTER_EMAIL: 'human@example.com' },
  });
}

export const head = (repo: string): string => git(repo, 'rev-parse', 'refs/heads/main').trim();
export const refs = (repo: string): string => git(repo, 'for-each-ref', '--format=%(refname) %(objectname)');

export const writer = (name = 'claude', more: Partial<AgentPolicy> = {}): AgentPolicy => ({ name, projects: ['*'], mode: 'commit', access: 'write', ...more });

export async function memoryClient(store: StateStore, agent: AgentPolicy, liveState?: LiveStateProvider): Promise<Client> {
  const server = buildServer(createDomain({ store, agent, liveState }));
  const [serverSide, clientSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  const client = new Client({ name: 'test-agent', version: '1.0.0' });
  await client.connect(clientSide);
  return client;
}

export async function call(client: Client, name: string, args: Record<string, unknown>): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

export function text(r: CallToolResult): string {
  return r.content.map((c) => (c.type === 'text' ? c.text : '')).join('\n');
}

export function structured<T = Record<string, unknown>>(r: CallToolResult): T {
  if (r.isError) throw new Error(`tool failed: ${text(r)}`);
  return r.structuredContent as T;
}
