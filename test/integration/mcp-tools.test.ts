// What tools/list tells a client before it calls anything: a title and annotations on
// every tool that match what it does, and number ranges a schema-driven client can see,
// the same as the JSON Schemas the state repo's files are checked against.
import { readFileSync } from 'node:fs';
import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, memoryClient, structured, tempState, writer, type TempState } from '../support/state-repo.js';

let t: TempState;
let tools: Tool[];

beforeAll(async () => {
  t = await tempState();
  tools = (await (await memoryClient(t.store, writer())).listTools()).tools;
});
afterAll(() => t.cleanup());

type Schema = { type?: string; minimum?: number; maximum?: number; properties?: Record<string, Schema>; items?: Schema; anyOf?: Schema[]; additionalProperties?: Schema | boolean; $ref?: string };
const schema = (file: string): Schema => JSON.parse(readFileSync(new URL(`../../schemas/${file}`, import.meta.url), 'utf8')) as Schema;
const app = schema('app.schema.json').properties!.spec!.properties!;
const db = schema('database.schema.json').properties!.spec!.properties!;
const res = (schema('defs.schema.json') as { $defs: Record<string, Schema> }).$defs.resources!.properties!;
const input = (tool: string): Record<string, Schema> => (tools.find((x) => x.name === tool)!.inputSchema as Schema).properties!;
const range = (s: Schema | undefined): [number | undefined, number | undefined] => {
  const inner = s?.anyOf?.find((a) => a.type !== 'null') ?? s;
  return [inner?.minimum, inner?.maximum];
};
const sub = (s: Schema): Record<string, Schema> => (s.anyOf?.find((a) => a.type !== 'null') ?? s).properties!;

const WRITES = new Set(['create_app', 'update_app', 'delete_app', 'create_database', 'update_database', 'delete_database', 'backup_database', 'restore_database', 'revert', 'sync']);
const DESTRUCTIVE = new Set(['update_app', 'delete_app', 'delete_database', 'restore_database', 'revert']);

describe('tools/list', () => {
  it('gives every tool a title and all five annotations, matching what it does', () => {
    expect(tools).toHaveLength(21);
    for (const tool of tools) {
      expect(tool.title, tool.name).toMatch(/^[A-Z]/);
      expect(tool.annotations, tool.name).toEqual({
        title: tool.title,
        readOnlyHint: !WRITES.has(tool.name),
        destructiveHint: DESTRUCTIVE.has(tool.name),
        idempotentHint: !WRITES.has(tool.name) || tool.name === 'sync' || tool.name === 'update_database',
        // only tools that fetch from outside ml.ink (source.git, image references)
        openWorldHint: tool.name === 'create_app' || tool.name === 'update_app',
      });
    }
  });

  it('puts the JSON Schemas\' ranges into the input schemas', () => {
    for (const tool of ['create_app', 'update_app']) {
      const p = input(tool);
      expect(range(p.port), `${tool} port`).toEqual([app.port!.minimum, app.port!.maximum]);
      expect(range(p.replicas), `${tool} replicas`).toEqual([app.replicas!.minimum, app.replicas!.maximum]);
      const r = sub(p.resources!);
      expect([range(r.cpu), range(r.memory_mb), range(r.pids)]).toEqual([[res.cpu!.minimum, res.cpu!.maximum], [res.memoryMb!.minimum, res.memoryMb!.maximum], [res.pids!.minimum, res.pids!.maximum]]);
      const h = sub(p.health_check!);
      const hc = app.healthCheck!.properties!;
      expect([range(h.interval_seconds), range(h.timeout_seconds), range(h.retries)])
        .toEqual([[hc.intervalSeconds!.minimum, hc.intervalSeconds!.maximum], [hc.timeoutSeconds!.minimum, hc.timeoutSeconds!.maximum], [hc.retries!.minimum, hc.retries!.maximum]]);
      const idle = app.scaleToZero!.properties!.idleTimeoutSeconds!;
      expect(range(sub(p.scale_to_zero!).idle_timeout_seconds)).toEqual([idle.minimum, idle.maximum]);
    }
    for (const tool of ['create_database', 'update_database']) {
      const d = input(tool);
      expect(range(sub(d.backups!).keep), `${tool} keep`).toEqual([db.backups!.properties!.keep!.minimum, db.backups!.properties!.keep!.maximum]);
      const r = sub(d.resources!);
      expect([range(r.cpu), range(r.memory_mb), range(r.pids)]).toEqual([[res.cpu!.minimum, res.cpu!.maximum], [res.memoryMb!.minimum, res.memoryMb!.maximum], [res.pids!.minimum, res.pids!.maximum]]);
    }
  });

  it('leaves no number in any input unbounded', () => {
    const unbounded: string[] = [];
    const walk = (s: Schema | undefined, path: string): void => {
      if (!s) return;
      if (s.type === 'number' || s.type === 'integer') {
        const [min, max] = [s.minimum, s.maximum];
        if (min === undefined || max === undefined || Math.abs(min) >= Number.MAX_SAFE_INTEGER || Math.abs(max) >= Number.MAX_SAFE_INTEGER) unbounded.push(path);
      }
      for (const [k, v] of Object.entries(s.properties ?? {})) walk(v, `${path}.${k}`);
      for (const a of s.anyOf ?? []) walk(a, path);
      walk(s.items, `${path}[]`);
      if (typeof s.additionalProperties === 'object') walk(s.additionalProperties, `${path}.*`);
    };
    for (const tool of tools) walk(tool.inputSchema as Schema, tool.name);
    expect(unbounded).toEqual([]);
  });

  it('list_hosts shows the embedded local host with every role, and says live state is unknown without a reconciler', async () => {
    const client = await memoryClient(t.store, writer('reader', { access: 'read' }));
    const r = structured<{ hosts: unknown[] }>(await call(client, 'list_hosts', {}));
    expect(r.hosts).toEqual([{
      name: 'local', address: 'local', roles: ['control', 'build', 'runtime'], path: 'mlink.yaml', labels: {}, schedulable: true,
      live: { known: false, reason: 'live state unknown: the reconciler is not running' },
    }]);
    await client.close();
  });
});
