// An agent that deploys and waits, as a new user would: `mlink up`, an SDK client that
// calls create_app with wait and a progressToken on an app from source (its own
// Dockerfile, with a step slow enough to be seen under way), receives build,
// rollout and health progress (and the build log once it set a log level), and gets a
// result saying the app serves, true the moment it arrives (a request through Traefik
// right after it); a failing build comes back within the wait with its step; an update
// and a delete wait the same way; and `mlink mcp` on stdio beside `mlink up` waits too.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { LoggingMessageNotificationSchema, type CallToolResult, type LoggingMessageNotification } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOOLCHAINS } from '../../reconciler/image-builds/detect.js';
import { ensureToolchainImage, ensureWebImage } from '../support/images.js';
import { cfg, removeTestContainers, runId, viaTraefik } from '../support/infra.js';
import { connectAgent, removeCluster, removeHome, startUp, stopUp, upEnv, type Up } from '../support/mlink-up.js';

const cluster = `wait${runId}`.slice(0, 30);
// Traefik is shared with other clusters on this host: host names must be this run's own.
const sfx = runId.slice(-6);
const [site, broken, slow, local] = ['site', 'broken', 'slow', 'local'].map((n) => `${n}${sfx}`) as [string, string, string, string];
let up: Up;
let agent: Client;
let image: string;
const logs: LoggingMessageNotification['params'][] = [];

interface Waited { state: string; message: string; commit: string | null; waited_ms: number; resources: Array<{ name: string; state: string; phase?: string; step?: string; reason: string; url?: string }> }

/** A tool call with wait and a progressToken: the result, its wait outcome, and every progress message on the way. */
async function waitingCall(client: Client, name: string, args: Record<string, unknown>): Promise<{ result: CallToolResult; wait: Waited; progress: string[] }> {
  const progress: string[] = [];
  const result = await client.callTool({ name, arguments: args }, undefined, {
    onprogress: (p) => { progress.push(p.message ?? ''); },
    resetTimeoutOnProgress: true,
    timeout: 120_000,
  }) as CallToolResult;
  if (result.isError) throw new Error(`${name} failed: ${JSON.stringify(result.content)}`);
  return { result, wait: (result.structuredContent as { wait: Waited }).wait, progress };
}

const page = async (name: string): Promise<{ status: number; body: string }> => viaTraefik(`${name}.default.localhost`);

beforeAll(async () => {
  // The toolchain is the host's shared cache: built once, so the waits below time a build, not its base image.
  await ensureToolchainImage(TOOLCHAINS.node);
  image = await ensureWebImage();
  up = await startUp({ cluster });
  agent = await connectAgent(up);
  agent.setNotificationHandler(LoggingMessageNotificationSchema, (n) => { logs.push(n.params); });
  await agent.setLoggingLevel('info');
}, 600_000);

afterAll(async () => {
  await agent?.close().catch(() => undefined);
  if (!up) return;
  await stopUp(up);
  await removeCluster(cluster);
  removeHome(up);
  await removeTestContainers();
}, 60_000);

describe('wait: a write returns when its change is live, or failed, with progress on the way', () => {
  it('create_app from source with wait: build progress and log lines, then a result saying it serves, and it does', async () => {
    // its own Dockerfile, with a step slow enough that the build is seen under way
    const dockerfile = `FROM ${image}\nRUN sleep 3 && echo ${runId} > /built\nENV GREETING=waited-${runId}\n`; // this run's own RUN: no build cache
    const { wait, progress } = await waitingCall(agent, 'create_app', { name: site, source: { files: { Dockerfile: dockerfile } }, port: 8080, wait: 240 });
    // the result is true when it arrives: no polling needed
    const served = await page(site);
    expect(served.status).toBe(200);
    expect(served.body).toMatch(new RegExp(`^waited-${runId} from `));
    expect(wait).toMatchObject({ state: 'live', resources: [{ name: site, state: 'live', url: `https://${site}.default.localhost:${cfg.traefik.websecurePort}/` }] });
    expect(progress[0]).toMatch(new RegExp(`^app default/${site}: committed [0-9a-f]{12}; waiting for the reconciler$`));
    expect(progress).toEqual(expect.arrayContaining([`app default/${site}: build 5/5 image: Step 2/3 : RUN sleep 3 && echo ${runId} > /built`]));
    // (the last progress, "live", is sent just before the result; the SDK client drops one that arrives in the same read as the result, so it is not asserted)
    expect(wait.message).toBe(`app default/${site} is live at https://${site}.default.localhost:${cfg.traefik.websecurePort}/`);
    // the build log reached the client that set a level, line by line, to its end
    const built = logs.filter((l) => l.logger === 'mlink.build').map((l) => String(l.data));
    expect(built).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`^default/${site}: detect: method dockerfile`)), expect.stringMatching(new RegExp(`^default/${site}: built \\S+ in [\\d.]+ s \\(dockerfile\\)$`))]));
  }, 300_000);

  it('a build that fails returns within the wait, naming the failing step', async () => {
    const t0 = Date.now();
    const { wait } = await waitingCall(agent, 'create_app', {
      name: broken, source: { files: { 'package.json': '{"name":"b","main":"server.js"}', 'server.js': 'require("http").createServer((q, s) => { s.end("x" }).listen(8080);\n' } }, port: 8080, wait: 240,
    });
    expect(wait.state).toBe('failed');
    expect(wait.resources).toEqual([expect.objectContaining({ name: broken, state: 'failed', phase: 'BuildFailed', step: 'sandbox: node --check "server.js"' })]);
    expect(wait.message).toMatch(new RegExp(`app default/${broken} failed \\(BuildFailed at step "sandbox: node --check "server\\.js""\\): .*SyntaxError`));
    expect(Date.now() - t0).toBeLessThan(240_000);
    expect(logs.some((l) => l.level === 'error' && String(l.data).startsWith(`default/${broken}: build failed at step`))).toBe(true);
  }, 300_000);

  it('update_app with wait on an app that is slow to answer: rollout and health check progress, then the new version serves', async () => {
    await waitingCall(agent, 'create_app', { name: slow, source: { image }, port: 8080, env: { GREETING: 'one' }, wait: 60 });
    expect((await page(slow)).body).toMatch(/^one from /);
    const { wait, progress } = await waitingCall(agent, 'update_app', { name: slow, env: { GREETING: 'two', DELAY: '3' }, wait: 60 });
    expect(wait.state).toBe('live');
    expect((await page(slow)).body).toMatch(/^two from /);
    expect(progress).toEqual(expect.arrayContaining([
      `app default/${slow}: health check: 1 new replica(s) running, waiting for them to answer before traffic moves`,
    ]));
  }, 180_000);

  it('delete_app with wait returns once the app is gone from Traefik', async () => {
    const { wait, progress } = await waitingCall(agent, 'delete_app', { name: slow, wait: 60 });
    expect(wait).toMatchObject({ state: 'live', message: `app default/${slow} is removed` });
    expect(progress).toContain(`app default/${slow}: committed ${wait.commit?.slice(0, 12)}; waiting for the reconciler`);
    expect((await page(slow)).status).toBe(404);
  }, 120_000);

  it('over stdio beside mlink up: the same wait, progress and live status', async () => {
    const stdio = new Client({ name: 'stdio-agent', version: '1.0.0' });
    await stdio.connect(new StdioClientTransport({
      command: process.execPath, args: ['bin/mlink.js', 'mcp', '--repo', up.repo, '--agent', 'local'],
      env: upEnv(up.home) as Record<string, string>, stderr: 'ignore',
    }));
    try {
      const { wait, progress } = await waitingCall(stdio, 'create_app', { name: local, source: { image }, port: 8080, env: { GREETING: 'stdio', DELAY: '2' }, wait: 60 });
      expect(wait.state).toBe('live');
      expect((await page(local)).body).toMatch(/^stdio from /);
      expect(progress).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`^app default/${local}: health check: `))]));
      const got = (await stdio.callTool({ name: 'get_app', arguments: { name: local } })) as CallToolResult;
      expect((got.structuredContent as { live: { known: boolean; phase: string } }).live).toMatchObject({ known: true, phase: 'Running' });
    } finally {
      await stdio.close();
    }
  }, 120_000);
});
