// `mlink mcp` over stdio, driven by the SDK's real Client through the real binary; then
// the repo is read with git's own CLI.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LoggingMessageNotificationSchema, McpError, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { spawnMcp, type RawStdio } from '../support/raw-mcp.js';
import { call, git, head, structured, tempState, text, type TempState } from '../support/state-repo.js';

let t: TempState;
let client: Client;
let stderr = '';

beforeAll(async () => {
  t = await tempState();
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: ['bin/mlink.js', 'mcp', '--repo', t.repo, '--agent', 'claude'],
    env: { ...process.env, MLINK_HOME: t.home, MLINK_LOG_LEVEL: 'info', MLINK_LOG_FORMAT: 'json' } as Record<string, string>,
    stderr: 'pipe',
  });
  client = new Client({ name: 'stdio-agent', version: '1.0.0' });
  await client.connect(transport);
  (transport.stderr as PassThrough | null)?.on('data', (c) => { stderr += String(c); });
}, 30_000);
afterAll(async () => { await client.close(); t.cleanup(); });

describe('MCP over stdio (mlink mcp)', () => {
  it('lists every tool with input and output schemas', async () => {
    const { tools } = await client.listTools();
    expect(tools.map((x) => x.name).sort()).toEqual(['app_logs', 'backup_database', 'create_app', 'create_database', 'delete_app', 'delete_database', 'get_app', 'get_database', 'history', 'list_apps', 'list_backups', 'list_databases', 'list_hosts', 'list_proposals', 'plan', 'restore_database', 'revert', 'sync', 'update_app', 'update_database', 'whoami']);
    const create = tools.find((x) => x.name === 'create_app')!;
    expect(create.inputSchema.required).toEqual(expect.arrayContaining(['name', 'source', 'port']));
    expect((create.inputSchema as { additionalProperties?: boolean }).additionalProperties).toBe(false);
    expect(create.outputSchema?.properties).toHaveProperty('commit');
  });

  it('commits as the agent; git log shows the author and trailers; git revert by a human works', async () => {
    const created = structured<{ commit: string; request_id: string }>(await call(client, 'create_app', { name: 'api', project: 'shop', source: { image: 'registry.local/shop/api:1.2.0' }, port: 3000, replicas: 2 }));
    const updated = structured<{ commit: string }>(await call(client, 'update_app', { name: 'api', project: 'shop', replicas: 3 }));
    expect(git(t.repo, 'fsck', '--strict', '--no-dangling')).toBe('');
    const log = git(t.repo, 'log', '-2', '--format=%an|%ae|%s|%(trailers:key=Mlink-Tool,valueonly,separator=)|%(trailers:key=Mlink-Agent,valueonly,separator=)', 'main').trim().split('\n');
    expect(log).toEqual([
      'claude|claude@agents.mlink|update app shop/api: replicas 3|update_app|claude',
      'claude|claude@agents.mlink|create app shop/api: image registry.local/shop/api:1.2.0, port 3000|create_app|claude',
    ]);
    expect(git(t.repo, 'log', '-1', '--format=%(trailers:key=Mlink-Request-Id,valueonly)', created.commit).trim()).toBe(created.request_id);

    const clone = join(t.home, 'human');
    git(t.home, 'clone', '-q', t.repo, clone);
    git(clone, 'revert', '--no-edit', updated.commit);
    git(clone, 'push', '-q', 'origin', 'main');
    expect(structured<{ app: { spec: { replicas: number } } }>(await call(client, 'get_app', { name: 'api', project: 'shop' })).app.spec.replicas).toBe(2);
    expect(git(t.repo, 'fsck', '--strict', '--no-dangling')).toBe('');
  });

  it('answers bad input with isError over stdio too, and writes nothing', async () => {
    const before = head(t.repo);
    const r = await call(client, 'create_app', { name: '../../x', source: { image: 'nginx' }, port: 80 });
    expect(r.isError).toBe(true);
    expect(text(r)).toContain('metadata.name "../../x" is not valid');
    expect(head(t.repo)).toBe(before);
  });

  it('plan reports desired state and says live state is unknown', async () => {
    const p = structured<{ desired: Array<{ name: string }>; live: { known: boolean; reason: string } }>(await call(client, 'plan', {}));
    expect(p.desired.map((d) => d.name)).toEqual(['api']);
    expect(p.live).toEqual({ known: false, reason: 'live state unknown: the reconciler is not running' });
  });

  it('answers a message above the size limit with an error for its id, and keeps answering', async () => {
    const before = head(t.repo);
    // 17 MiB: above the 16 MiB a message may have (the SDK's own transport went deaf above 10 MiB)
    const err = await client.callTool({ name: 'create_app', arguments: { name: 'huge', source: { image: 'nginx' }, port: 80, env: { BIG: 'x'.repeat(17 * 1024 * 1024) } } }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(McpError);
    expect((err as McpError).code).toBe(-32600);
    expect((err as McpError).message).toMatch(/the message is \d+ bytes, larger than the limit of 16777216 bytes/);
    expect(structured(await call(client, 'whoami', {}))).toMatchObject({ name: 'claude' });
    // 10 MiB in one env value reaches the tool now, and its schema says what is wrong
    const big = await call(client, 'create_app', { name: 'big', source: { image: 'nginx' }, port: 80, env: { BIG: 'x'.repeat(10 * 1024 * 1024) } });
    expect(text(big)).toMatch(/Too big: expected string to have <=4096 characters at env\.BIG/);
    expect(structured(await call(client, 'whoami', {}))).toMatchObject({ name: 'claude' });
    expect(head(t.repo)).toBe(before);
  }, 60_000);

  it('sends progress and, once the client set a level, log lines while a write waits', async () => {
    const progress: string[] = [];
    const logs: Array<{ level: string; data: unknown }> = [];
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => { logs.push(n.params); });
    const r = await client.callTool({ name: 'delete_app', arguments: { name: 'api', project: 'shop', wait: 1 } }, undefined, { onprogress: (p) => { progress.push(p.message ?? ''); } }) as CallToolResult;
    expect(structured<{ wait: { state: string } }>(r).wait.state).toBe('timeout');
    expect(progress).toEqual([expect.stringMatching(/^app shop\/api: committed [0-9a-f]{12}; waiting for the reconciler$/)]);
    expect(logs).toEqual([]); // no level set yet: no log lines
    await client.setLoggingLevel('info');
    const again = await client.callTool({ name: 'revert', arguments: { commit: structured<{ wait: { commit: string } }>(r).wait.commit, wait: 1 } }) as CallToolResult;
    expect(structured<{ wait: { state: string } }>(again).wait.state).toBe('timeout');
    expect(logs).toEqual([{ level: 'info', logger: 'mlink.reconciler', data: expect.stringMatching(/^shop\/api: committed [0-9a-f]{12}; waiting for the reconciler$/) }]);
    await client.setLoggingLevel('error');
    await client.callTool({ name: 'delete_app', arguments: { name: 'api', project: 'shop', wait: 1 } });
    expect(logs).toHaveLength(1); // info lines are below the level now
  }, 30_000);

  it('logs to stderr only: one JSON line per commit with the request id', async () => {
    await new Promise((r) => setTimeout(r, 100));
    const lines = stderr.trim().split('\n').map((l) => JSON.parse(l) as { msg: string; tool?: string });
    expect(lines.filter((l) => l.msg === 'committed').map((l) => l.tool)).toEqual(['create_app', 'update_app', 'delete_app', 'revert', 'delete_app']);
  });
});

describe('MCP over stdio, byte by byte: every line it cannot take gets an answer, and the session goes on', () => {
  let raw: RawStdio;
  beforeAll(async () => {
    raw = spawnMcp(['--repo', t.repo, '--agent', 'claude'], { ...process.env, MLINK_HOME: t.home });
    await raw.handshake();
  }, 30_000);
  afterAll(async () => { await raw?.close(); });

  const error = (m: Record<string, unknown>): { code: number; message: string } => m.error as { code: number; message: string };

  it('an oversized line: -32600 with the id read from its end (where the SDK puts it), then whoami', async () => {
    const line = `{"method":"tools/call","params":{"name":"create_app","arguments":{"name":"x","env":{"A":"${'y'.repeat(17 * 1024 * 1024)}","id":"not-this-one"}}},"jsonrpc":"2.0","id":"big-1"}`;
    await raw.send(line);
    const a = await raw.answer('big-1', 20_000);
    expect(error(a).code).toBe(-32600);
    expect(error(a).message).toMatch(/larger than the limit of 16777216 bytes/);
    expect(await raw.whoami('after-big')).toMatchObject({ name: 'claude', access: 'write' });
  }, 60_000);

  it('a line that is not JSON: -32700, with its id when one can be read, then whoami', async () => {
    await raw.send('{"jsonrpc":"2.0","id":"broken-1","method":"tools/call","params":{');
    const a = await raw.answer('broken-1');
    expect(error(a)).toMatchObject({ code: -32700 });
    expect(error(a).message).toMatch(/^Parse error: the message is not JSON/);
    const before = raw.received.length;
    await raw.send('this is not json at all');
    expect(await raw.whoami('after-garbage')).toMatchObject({ name: 'claude' });
    const unnamed = raw.received.slice(before).find((m) => !('id' in m));
    expect(unnamed && error(unnamed).code).toBe(-32700);
  });

  it('a batch: -32600 for each request in it, then whoami', async () => {
    await raw.send([{ jsonrpc: '2.0', id: 'b-1', method: 'ping' }, { jsonrpc: '2.0', id: 'b-2', method: 'tools/list' }]);
    for (const id of ['b-1', 'b-2']) {
      const a = await raw.answer(id);
      expect(error(a).code).toBe(-32600);
      expect(error(a).message).toMatch(/JSON-RPC batches are not supported/);
    }
    expect(await raw.whoami('after-batch')).toMatchObject({ name: 'claude' });
  });

  it('JSON that is not JSON-RPC: -32600 naming what is missing, then whoami', async () => {
    await raw.send({ id: 'nr-1', method: 'ping' });
    expect(error(await raw.answer('nr-1'))).toMatchObject({ code: -32600, message: expect.stringMatching(/without "jsonrpc": "2.0"/) });
    expect(await raw.whoami('after-not-rpc')).toMatchObject({ name: 'claude' });
  });
});
