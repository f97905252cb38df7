// The MCP server over Streamable HTTP, driven by the SDK's real Client: bearer tokens
// decide identity, projects and access; Host and Origin are checked against loopback.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { statSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureAgentToken, issueToken, startHttpServer, type RunningHttpServer } from '../../mcp/http.js';
import { call, git, head, refs, structured, tempState, text, type TempState } from '../support/state-repo.js';

let t: TempState;
let server: RunningHttpServer;
let tokensFile: string;
const tokens: Record<string, string> = {};

async function connect(token: string | undefined): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(server.url), token ? { requestInit: { headers: { authorization: `Bearer ${token}` } } } : undefined);
  const client = new Client({ name: 'http-agent', version: '1.0.0' });
  await client.connect(transport);
  return client;
}

function raw(headers: Record<string, string>, body = '{}'): Promise<{ status: number; body: string }> {
  const url = new URL(server.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path: '/mcp', method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers } }, (res) => {
      let data = '';
      res.on('data', (c) => { data += String(c); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

beforeAll(async () => {
  t = await tempState();
  tokensFile = join(t.home, 'tokens.json');
  tokens.alice = await issueToken(tokensFile, { name: 'alice', projects: ['*'], mode: 'commit', access: 'write' });
  tokens.shop = await issueToken(tokensFile, { name: 'shopper', projects: ['shop'], mode: 'commit', access: 'write' });
  tokens.reader = await issueToken(tokensFile, { name: 'reader', projects: ['*'], mode: 'commit', access: 'read' });
  server = await startHttpServer({ repoDir: t.repo, tokensFile, host: '127.0.0.1', port: 0 });
});
afterAll(async () => { await server.close(); t.cleanup(); });

describe('MCP over Streamable HTTP', () => {
  it('keeps only a hash of each token, in a file only its owner can read', async () => {
    expect(statSync(tokensFile).mode & 0o777).toBe(0o600);
    const file = readFileSync(tokensFile, 'utf8');
    for (const token of Object.values(tokens)) expect(file).not.toContain(token);
    expect(await ensureAgentToken(tokensFile, { name: 'alice', projects: ['*'], mode: 'commit', access: 'write' })).toEqual({ token: null, created: false });
    const fresh = await ensureAgentToken(tokensFile, { name: 'newcomer', projects: ['*'], mode: 'commit', access: 'read' });
    expect(fresh.created).toBe(true);
    expect(fresh.token).toMatch(/^mlk_/);
  });

  it('commits as the token holder, with the tool and request id as trailers, and git fsck stays clean', async () => {
    const client = await connect(tokens.alice);
    expect(structured(await call(client, 'whoami', {}))).toEqual({ name: 'alice', projects: ['*'], mode: 'commit', access: 'write' });
    const w = structured<{ commit: string; request_id: string; path: string }>(await call(client, 'create_app', { name: 'web', source: { image: 'nginx:1.27' }, port: 80 }));
    expect(w.path).toBe('apps/default/web.yaml');
    expect(git(t.repo, 'log', '-1', '--format=%an <%ae>%n%(trailers:key=Mlink-Tool,key=Mlink-Request-Id,valueonly)', w.commit).trim())
      .toBe(`alice <alice@agents.mlink>\ncreate_app\n${w.request_id}`);
    const app = structured<{ live: { known: boolean; reason: string } }>(await call(client, 'get_app', { name: 'web' }));
    expect(app.live).toEqual({ known: false, reason: 'live state unknown: the reconciler is not running' });
    expect(git(t.repo, 'fsck', '--strict', '--no-dangling')).toBe('');
    await client.close();
  });

  it('refuses a token for another project and a read-only token, leaving HEAD unchanged', async () => {
    const before = refs(t.repo);
    const shop = await connect(tokens.shop);
    expect(text(await call(shop, 'update_app', { name: 'web', port: 81 }))).toMatch(/forbidden: agent "shopper" may not touch project "default"/);
    const reader = await connect(tokens.reader);
    const r = await call(reader, 'create_app', { name: 'x', source: { image: 'nginx' }, port: 80 });
    expect(r.isError).toBe(true);
    expect(text(r)).toMatch(/Tool create_app not found/);
    expect(refs(t.repo)).toBe(before);
  });

  it('lists only the tools a read-only token may call, and says so in its instructions', async () => {
    const reader = await connect(tokens.reader);
    const names = (await reader.listTools()).tools.map((x) => x.name).sort();
    expect(names).toEqual(['app_logs', 'get_app', 'get_database', 'history', 'list_apps', 'list_backups', 'list_databases', 'list_hosts', 'list_proposals', 'plan', 'sync', 'whoami']);
    expect(reader.getInstructions()).toMatch(/This token is read-only/);
    const writer = await connect(tokens.alice);
    expect((await writer.listTools()).tools.map((x) => x.name)).toEqual(expect.arrayContaining(['create_app', 'update_app', 'delete_app', 'revert', 'create_database', 'delete_database']));
    expect(writer.getInstructions()).not.toMatch(/read-only/);
  });

  it('turns a 10 MB payload into an isError result without touching git', async () => {
    const client = await connect(tokens.alice);
    const before = head(t.repo);
    const files = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`f${i}.txt`, 'x'.repeat(256 * 1024)]));
    const r = await call(client, 'create_app', { name: 'big', source: { files }, port: 80 });
    expect(r.isError).toBe(true);
    expect(text(r)).toMatch(/too_large: .*spec\.source\.files/);
    expect(head(t.repo)).toBe(before);
  });

  it('rejects requests without a valid token', async () => {
    await expect(connect(undefined)).rejects.toThrow();
    await expect(connect('mlk_not-a-real-token')).rejects.toThrow();
    const res = await raw({});
    expect(res.status).toBe(401);
    expect(res.body).toContain('missing or unknown bearer token');
  });

  it('answers an oversized body, a body that is not JSON, a batch and a non-JSON-RPC body with a JSON-RPC error, and goes on', async () => {
    const auth = { authorization: `Bearer ${tokens.alice}` };
    const client = await connect(tokens.alice);
    const big = await raw(auth, `{"jsonrpc":"2.0","method":"tools/call","params":{"name":"create_app","arguments":{"env":{"A":"${'y'.repeat(17 * 1024 * 1024)}"}}},"id":41}`);
    expect(big.status).toBe(413);
    expect(JSON.parse(big.body)).toEqual({ jsonrpc: '2.0', id: 41, error: { code: -32600, message: expect.stringMatching(/is \d+ bytes, larger than the limit of 16777216 bytes/) } });
    expect(structured(await call(client, 'whoami', {}))).toMatchObject({ name: 'alice' });

    const broken = await raw(auth, '{"jsonrpc":"2.0","id":42,"method":"ping"');
    expect(broken.status).toBe(400);
    expect(JSON.parse(broken.body)).toMatchObject({ id: 42, error: { code: -32700, message: expect.stringMatching(/^Parse error: the message is not JSON/) } });
    expect(structured(await call(client, 'whoami', {}))).toMatchObject({ name: 'alice' });

    const batch = await raw(auth, JSON.stringify([{ jsonrpc: '2.0', id: 43, method: 'ping' }, { jsonrpc: '2.0', id: 44, method: 'tools/list' }]));
    expect(batch.status).toBe(400);
    expect((JSON.parse(batch.body) as Array<{ id: number; error: { code: number } }>).map((e) => [e.id, e.error.code])).toEqual([[43, -32600], [44, -32600]]);
    expect(structured(await call(client, 'whoami', {}))).toMatchObject({ name: 'alice' });

    const notRpc = await raw(auth, JSON.stringify({ id: 45, method: 'ping' }));
    expect(notRpc.status).toBe(400);
    expect(JSON.parse(notRpc.body)).toMatchObject({ id: 45, error: { code: -32600, message: expect.stringMatching(/without "jsonrpc": "2.0"/) } });
    expect(structured(await call(client, 'whoami', {}))).toMatchObject({ name: 'alice' });
    await client.close();
  }, 60_000);

  it('matches Host and Origin names case-insensitively, as DNS does', async () => {
    const port = new URL(server.url).port;
    const auth = { authorization: `Bearer ${tokens.alice}` };
    const ping = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' });
    expect((await raw({ ...auth, host: `LOCALHOST:${port}` }, ping)).status).toBe(200);
    expect((await raw({ ...auth, host: `LocalHost:${port}`, origin: `http://LOCALHOST:${port}` }, ping)).status).toBe(200);
    expect((await raw({ ...auth, host: `EVIL.example:${port}` }, ping)).status).toBe(403);
  });

  it('streams progress on the request\'s own response when the client gives a progressToken', async () => {
    const client = await connect(tokens.alice);
    const seen: string[] = [];
    const r = await client.callTool({ name: 'create_app', arguments: { name: 'waiter', source: { image: 'nginx:1.27' }, port: 80, wait: 1 } }, undefined, {
      onprogress: (p) => { seen.push(p.message ?? ''); },
    });
    expect(r.isError).toBeFalsy();
    // no reconciler runs beside this server: the wait says what it waited for, and why it ran out
    const w = (r.structuredContent as { wait: { state: string; message: string; resources: Array<{ name: string; state: string }> } }).wait;
    expect(w.state).toBe('timeout');
    expect(w.message).toMatch(/no reconciler runs in this server/);
    expect(w.resources).toEqual([expect.objectContaining({ name: 'waiter', state: 'pending', reason: 'no reconcile pass has recorded this commit yet' })]);
    expect(seen).toEqual([expect.stringMatching(/^app default\/waiter: committed [0-9a-f]{12}; waiting for the reconciler$/)]);
    await client.close();
  });

  it('remembers a log level per token across stateless requests and streams log lines to it', async () => {
    const client = await connect(tokens.alice);
    const logs: unknown[] = [];
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => { logs.push(n.params); });
    await client.setLoggingLevel('info');
    // no progressToken: the level alone makes the answer a stream
    await client.callTool({ name: 'delete_app', arguments: { name: 'waiter', wait: 1 } });
    expect(logs).toEqual([{ level: 'info', logger: 'mlink.reconciler', data: expect.stringMatching(/^default\/waiter: committed/) }]);
    // another token's requests do not inherit it
    const other = await connect(tokens.shop);
    const quiet: unknown[] = [];
    other.setNotificationHandler(LoggingMessageNotificationSchema, (n) => { quiet.push(n.params); });
    await other.callTool({ name: 'create_app', arguments: { name: 'cart', project: 'shop', source: { image: 'nginx:1.27' }, port: 80, wait: 1 } });
    expect(quiet).toEqual([]);
    await client.close();
    await other.close();
  });

  it('rejects a foreign Host or Origin (DNS rebinding) even with a valid token', async () => {
    const port = new URL(server.url).port;
    const auth = { authorization: `Bearer ${tokens.alice}` };
    const badHost = await raw({ ...auth, host: `evil.example:${port}` });
    expect(badHost.status).toBe(403);
    expect(JSON.parse(badHost.body).error.message).toBe(`Host "evil.example:${port}" is not allowed (allowed: localhost, 127.0.0.1, [::1], ::1)`);
    const badOrigin = await raw({ ...auth, origin: 'http://evil.example' });
    expect(badOrigin.status).toBe(403);
    expect(JSON.parse(badOrigin.body).error.message).toContain('Origin "http://evil.example" is not allowed');
    const goodOrigin = await raw({ ...auth, origin: `http://localhost:${port}` }, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }));
    expect(goodOrigin.status).toBe(200);
  });
});
