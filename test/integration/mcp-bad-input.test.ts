// Bad input never reaches git: each case gets an isError result that names the problem,
// and no ref in the repository moves.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { call, git, memoryClient, refs, structured, tempState, text, writer, type TempState } from '../support/state-repo.js';

let t: TempState;
let client: Client;
const ok = { name: 'web', source: { image: 'nginx:1.27' }, port: 80 };

beforeAll(async () => {
  t = await tempState();
  client = await memoryClient(t.store, writer());
  structured(await call(client, 'create_app', ok));
});
afterAll(() => t.cleanup());

const cases: Array<[string, string, Record<string, unknown>, RegExp]> = [
  ['an invalid name', 'create_app', { ...ok, name: 'Web_1' }, /metadata\.name "Web_1" is not valid \(allowed: a DNS label/],
  ['a path-traversal name', 'create_app', { ...ok, name: '../x' }, /metadata\.name "\.\.\/x" is not valid/],
  ['a path-traversal project', 'create_app', { ...ok, name: 'x', project: '../../etc' }, /metadata\.project "\.\.\/\.\.\/etc" is not valid/],
  ['a path-traversal name on read', 'get_app', { name: '../mlink' }, /must be DNS labels/],
  ['an unknown field', 'create_app', { ...ok, name: 'x', replica: 2 }, /Unrecognized key: "replica"/],
  ['an unknown nested field', 'create_app', { ...ok, name: 'x', resources: { memory: '1Gi' } }, /Unrecognized key: "memory"/],
  ['a wrong type', 'create_app', { ...ok, name: 'x', port: '80' }, /expected number, received string at port/],
  ['an out-of-range value', 'create_app', { ...ok, name: 'x', port: 0 }, /Too small: expected number to be >=1 at port/],
  ['an out-of-range nested value', 'create_app', { ...ok, name: 'x', resources: { memory_mb: 8 } }, /Too small: expected number to be >=16 at resources\.memory_mb/],
  ['too many replicas', 'update_app', { name: 'web', replicas: 21 }, /Too big: expected number to be <=20 at replicas/],
  ['a wait beyond its limit', 'create_app', { ...ok, name: 'x', wait: 3600 }, /Too big: expected number to be <=900 at wait/],
  ['a duplicate create', 'create_app', ok, /already_exists: app default\/web already exists/],
  ['a 10 MB payload in one file', 'create_app', { ...ok, name: 'x', source: { files: { 'big.txt': 'x'.repeat(10 * 1024 * 1024) } } }, /Too big: expected string to have <=262144 characters at source\.files\.big\.txt/],
  ['a 10 MB payload over many files', 'create_app', { ...ok, name: 'x', source: { files: Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`f${i}.txt`, 'x'.repeat(256 * 1024)])) } }, /too_large: apps\/default\/x\.yaml: spec\.source\.files holds \d+ bytes in 40 files; at most 8388608 bytes/],
  ['no source at all', 'create_app', { ...ok, name: 'x', source: {} }, /spec\.source must NOT have fewer than 1 properties \(allowed: exactly one of/],
  ['an unsafe file path', 'create_app', { ...ok, name: 'x', source: { files: { '../../.git/config': 'x' } } }, /spec\.source\.files key "\.\.\/\.\.\/\.git\/config" is not valid/],
  ['two sources at once', 'create_app', { ...ok, name: 'x', source: { image: 'a', git: { url: 'https://h/r', ref: 'main' } } }, /spec\.source must NOT have more than 1 properties \(allowed: exactly one of \{ image \}, \{ files \}/],
  ['a bad secret name', 'create_app', { ...ok, name: 'x', secret_env: { 'bad-name': 'v' } }, /spec\.secretEnv\[0\] "bad-name" is not valid/],
  ['an allow-list entry that is not a network', 'create_app', { ...ok, name: 'x', allow_cidrs: ['10.0.0.300/8'] }, /invalid_input: apps\/default\/x\.yaml: spec\.allowCidrs\[0\]: "10\.0\.0\.300\/8" is not an IP network; write an address with an optional prefix length/],
  ['a prefix longer than the address', 'update_app', { name: 'web', allow_cidrs: ['10.0.0.0/33'] }, /spec\.allowCidrs\[0\]: "10\.0\.0\.0\/33" is not an IP network/],
  ['an empty allow-list', 'update_app', { name: 'web', allow_cidrs: [] }, /spec\.allowCidrs must NOT have fewer than 1 items/],
  ['a redirect setting that is not a boolean', 'update_app', { name: 'web', https_redirect: 'no' }, /expected boolean, received string at https_redirect/],
  ['a stale expected_revision', 'update_app', { name: 'web', port: 81, expected_revision: '0'.repeat(40) }, /conflict: apps\/default\/web\.yaml changed since revision 0{40}/],
  ['an update of a missing app', 'update_app', { name: 'nope', port: 81 }, /not_found: app default\/nope does not exist; create it with create_app/],
  ['a delete of a missing database', 'delete_database', { name: 'nope' }, /not_found: database default\/nope does not exist/],
  ['a bad engine', 'create_database', { name: 'db', engine: 'oracle' }, /expected one of "postgres"\|"mysql"\|"mariadb"\|"redis" at engine/],
  ['a revert of an unknown commit', 'revert', { commit: 'deadbeef' }, /not_found: commit deadbeef does not exist/],
  ['a revert of a non-id', 'revert', { commit: 'HEAD~1' }, /must be a commit id/],
  ['a proposal that does not exist', 'create_app', { ...ok, name: 'x', proposal: 'claude-nope' }, /not_found: proposal claude-nope does not exist/],
  ["another agent's proposal", 'create_app', { ...ok, name: 'x', proposal: 'other-123' }, /forbidden: proposal other-123 belongs to another agent/],
];

describe('bad input never reaches git', () => {
  it.each(cases)('%s', async (_label, tool, args, message) => {
    const before = refs(t.repo);
    const r = await call(client, tool, args);
    expect(r.isError).toBe(true);
    expect(text(r)).toMatch(message);
    expect(refs(t.repo)).toBe(before);
  });

  it('a token for another project or a read-only token is refused and nothing moves', async () => {
    const scoped = await memoryClient(t.store, writer('scoped', { projects: ['shop'] }));
    const reader = await memoryClient(t.store, writer('reader', { access: 'read' }));
    const before = refs(t.repo);
    const other = await call(scoped, 'create_app', ok);
    expect(text(other)).toMatch(/forbidden: agent "scoped" may not touch project "default" \(allowed: shop\)/);
    expect(text(await call(scoped, 'get_app', { name: 'web' }))).toMatch(/may not touch project "default"/);
    // a read-only token is not offered the write tools at all
    expect(text(await call(reader, 'update_app', { name: 'web', port: 81 }))).toMatch(/Tool update_app not found/);
    expect(text(await call(reader, 'delete_app', { name: 'web' }))).toMatch(/Tool delete_app not found/);
    expect(refs(t.repo)).toBe(before);
    // Reading is still allowed for the read-only agent, and the scoped one can write its own project.
    expect(structured<{ apps: unknown[] }>(await call(reader, 'list_apps', {})).apps).toHaveLength(1);
    expect(structured<{ apps: unknown[] }>(await call(scoped, 'list_apps', {})).apps).toHaveLength(0);
    structured(await call(scoped, 'create_app', { ...ok, project: 'shop' }));
    expect(git(t.repo, 'log', '-1', '--format=%an', 'main').trim()).toBe('scoped');
  });

  it('an invalid manifest pushed by a human is reported, not served as valid', async () => {
    const { join } = await import('node:path');
    const { writeFileSync, mkdirSync } = await import('node:fs');
    const clone = join(t.home, 'human');
    git(t.home, 'clone', '-q', t.repo, clone);
    mkdirSync(join(clone, 'apps', 'default'), { recursive: true });
    writeFileSync(join(clone, 'apps/default/broken.yaml'), 'apiVersion: mlink.ink/v1\nkind: App\nmetadata: {name: broken, project: default}\nspec: {port: 80}\n');
    git(clone, 'add', '.');
    git(clone, 'commit', '-qm', 'hand-written app');
    git(clone, 'push', '-q', 'origin', 'main');
    const list = structured<{ apps: Array<{ name: string }>; invalid: string[] }>(await call(client, 'list_apps', {}));
    expect(list.apps.map((a) => a.name)).not.toContain('broken');
    expect(list.invalid.join('\n')).toContain('apps/default/broken.yaml: spec is missing required field "source"');
    expect(text(await call(client, 'get_app', { name: 'broken' }))).toContain('the file in git is invalid');
  });
});
