// Secret values go in encrypted and never come out: not in any git object, tool result
// or log line. Only the cluster's private key (in the data dir) decrypts them.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decryptSecret, loadClusterKey } from '../../reconciler/state/secrets.js';
import { call, git, memoryClient, structured, tempState, text, writer, type TempState } from '../support/state-repo.js';

let t: TempState;
const SECRET = 'sk-live-7d1f0c9a-DO-NOT-LEAK';
const ROTATED = 'sk-rotated-42b8e1-DO-NOT-LEAK';
const seen: string[] = [];
let logs = '';
const realWrite = process.stderr.write.bind(process.stderr);

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)]));
}

beforeAll(async () => {
  t = await tempState();
  process.env.MLINK_LOG_LEVEL = 'debug';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    logs += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  const client = await memoryClient(t.store, writer());
  const record = async (tool: string, args: Record<string, unknown>): Promise<void> => { seen.push(JSON.stringify(await call(client, tool, args))); };
  await record('create_app', { name: 'api', source: { image: 'nginx' }, port: 80, secret_env: { STRIPE_KEY: SECRET, DB_PASSWORD: SECRET } });
  await record('create_app', { name: 'api', source: { image: 'nginx' }, port: 80, secret_env: { STRIPE_KEY: SECRET } }); // duplicate: error path
  await record('create_app', { name: 'bad_name', source: { image: 'nginx' }, port: 80, secret_env: { K: SECRET } }); // invalid: error path
  await record('update_app', { name: 'api', secret_env: { STRIPE_KEY: ROTATED, DB_PASSWORD: null } });
  await record('get_app', { name: 'api' });
  await record('list_apps', {});
  await record('history', { name: 'api' });
  await record('plan', {});
});
afterAll(() => {
  process.stderr.write = realWrite;
  process.env.MLINK_LOG_LEVEL = 'warn';
  t.cleanup();
});

describe('secrets', () => {
  it('appear in no git object, loose or packed', () => {
    const scan = (): string => execFileSync('git', ['-C', t.repo, 'cat-file', '--batch-all-objects', '--batch'], { encoding: 'latin1', maxBuffer: 512 * 1024 * 1024 });
    let all = scan();
    expect(all).toContain('STRIPE_KEY'); // the scan really reads the objects
    for (const s of [SECRET, ROTATED]) expect(all).not.toContain(s);
    git(t.repo, 'gc', '-q');
    all = scan();
    for (const s of [SECRET, ROTATED]) expect(all).not.toContain(s);
    for (const f of files(t.repo)) expect(readFileSync(f, 'latin1')).not.toContain(SECRET);
  });

  it('appear in no tool result and no log line', () => {
    expect(seen.join('\n')).toContain('STRIPE_KEY');
    expect(logs).toContain('"msg":"committed"');
    for (const s of [SECRET, ROTATED]) {
      expect(seen.join('\n')).not.toContain(s);
      expect(logs).not.toContain(s);
    }
  });

  it('are stored age-encrypted to the cluster key, which only the data dir holds', async () => {
    const key = await loadClusterKey(t.keys);
    expect(statSync(join(t.keys, 'cluster.agekey')).mode & 0o777).toBe(0o600);
    const armored = git(t.repo, 'show', 'main:secrets/default/api/STRIPE_KEY.age');
    expect(armored).toMatch(/^-----BEGIN AGE ENCRYPTED FILE-----/);
    expect(await decryptSecret(armored, key.identity)).toBe(ROTATED);
    expect(git(t.repo, 'ls-tree', '--name-only', 'main', 'secrets/default/api/').trim()).toBe('secrets/default/api/STRIPE_KEY.age');
    expect(git(t.repo, 'show', 'main:mlink.yaml')).toContain(key.recipient);
    expect(git(t.repo, 'log', '-p', '--all')).not.toContain('AGE-SECRET-KEY-');
  });

  it('names only: the manifest lists secret names and get_app shows them', async () => {
    const client = await memoryClient(t.store, writer());
    const app = structured<{ app: { spec: { secretEnv: string[] } } }>(await call(client, 'get_app', { name: 'api' }));
    expect(app.app.spec.secretEnv).toEqual(['STRIPE_KEY']);
    expect(text(await call(client, 'update_app', { name: 'api', secret_env: { X: '' } }))).toContain('secret_env.X is empty; pass null to remove a secret');
  });

  it('go away with the app', async () => {
    const client = await memoryClient(t.store, writer());
    structured(await call(client, 'delete_app', { name: 'api' }));
    expect(git(t.repo, 'ls-tree', '-r', '--name-only', 'main')).not.toContain('secrets/');
  });
});
