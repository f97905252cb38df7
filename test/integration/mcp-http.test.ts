// The MCP server over Streamable HTTP, driven by the SDK's real Client: bearer tokens
// decide identity, projects and access; Host and Origin are checked against loopback.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
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
    expect(text(r)).toMatch(/read-only token, so create_app is not allowed/);
    expect(refs(t.repo)).toBe(before);
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
