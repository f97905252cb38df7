// Each engine as ml.ink runs it, with real servers under gVisor: its own user with no
// capabilities, its credentials accepted and a wrong password refused (also from a
// second container on the network, with a bound app's env and a password that needs
// URL-encoding), data and access kept when the container is made again on its volume,
// back by itself after a crash, and no password in Docker's records or the logs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bindingEnv, newCredentials, type Credentials } from '../../reconciler/databases/credentials.js';
import type { EngineName } from '../../reconciler/databases/engines.js';
import { execIn } from '../../reconciler/databases/exec.js';
import { ensureEngineImage } from '../../reconciler/databases/images.js';
import { removeDatabaseContainer, runDatabase } from '../../reconciler/databases/lifecycle.js';
import { logTail, tryLogin, waitReady } from '../../reconciler/databases/ready.js';
import { docker, eventually } from '../support/infra.js';
import { ENGINE_NAMES, cleanup, count, engineImage, labels, seed, startDb, testMac, testNetwork } from '../support/databases.js';

let network = '';
beforeAll(async () => {
  for (const e of ENGINE_NAMES) await engineImage(e); // cached after the first run on a host
  network = await testNetwork('engines');
}, 600_000);
afterAll(cleanup);

const REFUSED: Record<EngineName, RegExp> = {
  postgres: /password authentication failed/, mysql: /Access denied/, redis: /WRONGPASS/,
};

/** What a bound app does first, from a container of its own on the network: connect with the env it is given. */
const CLIENT: Record<EngineName, string> = {
  postgres: 'psql -X -w "$DATABASE_URL" -tA -c "SELECT 1"',
  mysql: 'MYSQL_PWD="$DATABASE_PASSWORD" mariadb --no-defaults -h "$DATABASE_HOST" -P "$DATABASE_PORT" -u "$DATABASE_USER" -D "$DATABASE_NAME" -N -B -e "SELECT 1"',
  redis: 'redis-cli --no-auth-warning -u "$REDIS_URL" PING',
};

/** A client container under runsc on the network; `hosts`: /etc/hosts entries (gVisor's network stack cannot reach Docker's embedded DNS). */
async function fromClient(engine: EngineName, image: string, env: Record<string, string>, hosts: string[]): Promise<{ code: number; out: string }> {
  const c = await docker.createContainer({
    Image: image, User: engine === 'mysql' ? 'mysql' : engine, Entrypoint: ['bash', '-c', CLIENT[engine]], Labels: labels,
    Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    HostConfig: { Runtime: 'runsc', NetworkMode: network, CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'], ExtraHosts: hosts },
  });
  try {
    await c.start();
    const { StatusCode } = (await c.wait()) as { StatusCode: number };
    return { code: StatusCode, out: await logTail(docker, c.id, 10) };
  } finally {
    await c.remove({ force: true }).catch(() => undefined);
  }
}

describe.each(ENGINE_NAMES)('%s', (engine) => {
  // A password any URL must encode: @ : / % # ? + & =
  const creds: Credentials = { ...newCredentials(engine), password: `p@ss:w/rd%#?+&=${Math.random().toString(36).slice(2, 12)}` };
  const alias = `${engine}-db`;
  let name = '';

  it('starts under gVisor as its own user with no capabilities, and only its password logs in', async () => {
    const db = await startDb(engine, network, `${engine}-a`, { credentials: creds, aliases: [alias] });
    name = db.input.name;
    const info = await docker.getContainer(name).inspect();
    expect(info.HostConfig.Runtime).toBe('runsc');
    expect(info.NetworkSettings.Networks[network]?.MacAddress).toBe(db.input.mac);
    const status = (await execIn(docker, name, ['cat', '/proc/1/status'])).stdout.toString();
    expect(status).toMatch(/^Uid:\s+999\s+999\s+999\s+999$/m);
    expect(status).toMatch(/^CapEff:\s+0000000000000000$/m);
    expect(status).toMatch(/^CapPrm:\s+0000000000000000$/m);
    expect((await execIn(docker, name, ['dmesg'])).stdout.toString()).toMatch(/gVisor/);
    expect(await tryLogin(docker, name, creds)).toMatchObject({ ok: true });
    const wrong = await tryLogin(docker, name, { ...creds, password: `${creds.password}x` });
    expect(wrong.ok).toBe(false);
    expect(wrong.detail).toMatch(REFUSED[engine]);
    console.log(`${engine}: create to first authenticated query ${db.running.ms.total} ms (start request ${db.running.ms.start} ms, then ${db.running.ms.ready} ms)`);
  }, 180_000);

  it("is reached by a bound app's env from another gVisor container on the network, by name through /etc/hosts", async () => {
    const { tag } = await engineImage(engine);
    const ip = (await docker.getContainer(name).inspect()).NetworkSettings.Networks[network]!.IPAddress;
    const hosts = [`${alias}:${ip}`];
    const env = bindingEnv(creds, { host: alias });
    const good = await fromClient(engine, tag, env, hosts);
    expect(good, good.out).toMatchObject({ code: 0 });
    expect(good.out).toMatch(engine === 'redis' ? /PONG/ : /^1$/m);
    const prefix = engine === 'redis' ? 'REDIS' : 'DATABASE';
    const bad = await fromClient(engine, tag, bindingEnv({ ...creds, password: 'not-the-password-at-all' }, { host: alias }), hosts);
    expect(bad.out).toMatch(REFUSED[engine]);
    expect(env[`${prefix}_URL`]).toContain(encodeURIComponent(creds.password));
  }, 120_000);

  it('keeps its data and its users when the container is made again on the same volume', async () => {
    await seed(engine, name, 25, 'kept');
    const input = { name, engine, image: (await engineImage(engine)).tag, credentials: creds, volume: `${name}-data`, network, mac: testMac(), labels, resources: { cpu: 1, memoryMb: 512, pids: 256 } };
    // Redis persists on its AOF every second; the others commit synchronously.
    if (engine === 'redis') await new Promise((r) => setTimeout(r, 1500));
    await removeDatabaseContainer(docker, name);
    await expect(docker.getContainer(name).inspect()).rejects.toThrow(/no such container/i);
    const again = await runDatabase(docker, { ...input, name: `${name}-again` }, { volumeLabels: labels });
    expect(again.created).toBe(true);
    expect(await count(engine, `${name}-again`)).toBe(25);
    expect(await tryLogin(docker, `${name}-again`, creds)).toMatchObject({ ok: true });
    console.log(`${engine}: start on an existing volume to first authenticated query ${again.ms.total} ms`);
    name = `${name}-again`;
  }, 180_000);

  it('comes back by itself after its sandbox is killed, data and all', async () => {
    const before = await docker.getContainer(name).inspect();
    process.kill(before.State.Pid, 'SIGKILL');
    await eventually('the restart policy brings the server back', async () => {
      const now = await docker.getContainer(name).inspect();
      return now.RestartCount > before.RestartCount && now.State.Running ? true : undefined;
    }, 60_000);
    await waitReady(docker, name, engine, creds, 120_000);
    expect(await count(engine, name)).toBe(25);
  }, 180_000);

  it('never shows the password in its container record, command lines or logs', async () => {
    const info = JSON.stringify(await docker.getContainer(name).inspect());
    expect(info).not.toContain(creds.password);
    expect(info).not.toContain(encodeURIComponent(creds.password));
    const logs = await logTail(docker, name, 10_000);
    expect(logs).not.toContain(creds.password);
    const ps = await execIn(docker, name, ['bash', '-c', 'cat /proc/[0-9]*/cmdline | tr "\\0" " "']);
    expect(ps.stdout.toString()).not.toContain(creds.password);
  }, 60_000);
});

describe('engine images', () => {
  it('are found without building once built, and one build serves callers who ask at once', async () => {
    const t0 = Date.now();
    const cached = await ensureEngineImage(docker, 'redis');
    expect(cached.built).toBe(false);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(cached.tag).toMatch(/^mlink\/redis:7\.0\.\d+-[0-9a-z_.]+-[0-9a-f]{12}$/);
    const a: string[] = [];
    const b: string[] = [];
    const [x, y] = await Promise.all([
      ensureEngineImage(docker, 'redis', { refresh: true, onProgress: (l) => a.push(l) }),
      ensureEngineImage(docker, 'redis', { refresh: true, onProgress: (l) => b.push(l) }),
    ]);
    expect([x.built, y.built].sort()).toEqual([false, true]);
    expect(x.tag).toBe(y.tag);
    expect(a.some((l) => l.startsWith('Step 1/'))).toBe(true);
    expect(b.some((l) => l.startsWith('Step 1/'))).toBe(true);
    expect(b.filter((l) => l.startsWith('Step 1/'))).toHaveLength(1);
    await expect(docker.getContainer('mlink-engine-build-redis').inspect()).rejects.toThrow(/no such container/i);
  }, 300_000);
});
