import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { SchemaError, validateApp, validateClusterConfig, validateDatabase, validateManifest } from '../../schemas/index.js';

const template = (p: string): unknown => parse(readFileSync(new URL(`../../state-repo-template/${p}`, import.meta.url), 'utf8'));
const app = (spec: Record<string, unknown>, metadata: Record<string, unknown> = { name: 'web', project: 'default' }): unknown =>
  ({ apiVersion: 'mlink.ink/v1', kind: 'App', metadata, spec: { source: { image: 'nginx:1.27' }, port: 80, ...spec } });

function problems(fn: () => unknown): string {
  try { fn(); } catch (err) { if (err instanceof SchemaError) return err.message; throw err; }
  throw new Error('expected a SchemaError');
}

describe('schemas', () => {
  it('accepts the example manifests shipped in the template', () => {
    expect(validateApp('hello.yaml', template('examples/apps/default/hello.yaml')).metadata.name).toBe('hello');
    expect(validateDatabase('notes-db.yaml', template('examples/databases/default/notes-db.yaml')).spec.engine).toBe('postgres');
  });

  it('accepts the template cluster config once init adds a recipient, and rejects it without one', () => {
    const cfg = template('mlink.yaml') as { spec: { secrets: { recipients: string[] } } };
    expect(problems(() => validateClusterConfig('mlink.yaml', cfg))).toContain('spec.secrets.recipients');
    cfg.spec.secrets.recipients = ['age1efyzxg7d7v59t3nqtpag9v6g92relq6ql7eznh29q0hl6kuz9fpssynhcn'];
    expect(validateClusterConfig('mlink.yaml', cfg).spec.hosts[0]?.roles).toEqual(['control', 'build', 'runtime']);
  });

  it('names the file, the field and what is allowed for a bad name', () => {
    const msg = problems(() => validateApp('apps/default/x.yaml', app({}, { name: '../x', project: 'default' })));
    expect(msg).toMatch(/^apps\/default\/x\.yaml: metadata\.name "\.\.\/x" is not valid \(allowed: a DNS label/);
  });

  it.each(['Web', '-web', 'web-', 'a'.repeat(64), 'we_b', ''])('rejects %j as a name', (name) => {
    expect(() => validateApp('f', app({}, { name, project: 'default' }))).toThrow(SchemaError);
  });

  it('lists the allowed fields when a field is unknown', () => {
    expect(problems(() => validateApp('f', app({ prot: 80 })))).toContain('unknown field "prot" in spec (allowed fields: source, port,');
  });

  it('rejects unsafe file paths in source.files and names the key', () => {
    for (const bad of ['../etc/passwd', '/abs', 'a/../b', 'a//b', './x', '.git/config/..']) {
      const msg = problems(() => validateApp('f', app({ source: { files: { [bad]: 'x' } } })));
      expect(msg).toContain('spec.source.files key');
    }
    expect(validateApp('f', app({ source: { files: { 'src/index.js': 'x', '.env.example': 'y' } } }))).toBeTruthy();
  });

  it('requires exactly one kind of source', () => {
    expect(problems(() => validateApp('f', app({ source: { image: 'a', git: { url: 'https://x/y', ref: 'main' } } })))).toContain('exactly one of');
    expect(problems(() => validateApp('f', app({ source: {} })))).toContain('spec.source');
  });

  it('bounds sizes: ports, replicas, resources, env count', () => {
    expect(problems(() => validateApp('f', app({ port: 70000 })))).toContain('spec.port must be <= 65535');
    expect(problems(() => validateApp('f', app({ replicas: 21 })))).toContain('spec.replicas');
    expect(problems(() => validateApp('f', app({ resources: { memoryMb: 1 } })))).toContain('spec.resources.memoryMb must be >= 16');
    const env = Object.fromEntries(Array.from({ length: 129 }, (_, i) => [`V${i}`, 'x']));
    expect(problems(() => validateApp('f', app({ env })))).toContain('spec.env must NOT have more than 128 properties');
  });

  it('says which kinds exist when kind is wrong', () => {
    expect(problems(() => validateManifest('f', { kind: 'Deployment' }))).toContain('kind must be "App" or "Database"');
  });

  it('reports every problem at once', () => {
    const msg = problems(() => validateApp('f', app({ port: 'x', replicas: -1 })));
    expect(msg).toContain('spec.port');
    expect(msg).toContain('spec.replicas');
  });
});
