// Readiness with each engine's own probe, run inside the container by exec: first the
// engine's liveness check (pg_isready, mariadb-admin ping), then a real query over TCP
// with the app's user and password (SELECT 1; for Redis an authenticated PING), so
// "ready" means a bound app can log in. The password travels in the exec's environment
// (PGPASSWORD, MYSQL_PWD, REDISCLI_AUTH), never in its command line.
import type Docker from 'dockerode';
import type { Credentials } from './credentials.js';
import { ENGINES, engineOf, type EngineName } from './engines.js';
import { execIn, tail } from './exec.js';

export interface Probe { cmd: string[]; user?: string; env?: Record<string, string>; expect: (stdout: string) => boolean }

/** The engine's liveness check, no login: does the server answer at all. */
export function livenessProbe(engine: EngineName): Probe | undefined {
  if (engine === 'postgres') return { cmd: ['pg_isready', '-q', '-h', '/run/postgresql'], user: 'postgres', expect: () => true };
  if (engine === 'mysql') return { cmd: ['mariadb-admin', '--no-defaults', '-S', '/run/mysqld/mysqld.sock', 'ping'], user: 'mysql', expect: (o) => o.includes('alive') };
  return undefined; // Redis answers PING only after AUTH (the default user is off): the login probe is its probe
}

/** A query as the app's user over TCP: what a bound app does first. */
export function loginProbe(c: Credentials): Probe {
  const port = String(ENGINES[c.engine].port);
  if (c.engine === 'postgres') {
    return {
      cmd: ['psql', '-X', '-w', '-q', '-h', '127.0.0.1', '-p', port, '-U', c.user, '-d', c.database, '-tA', '-c', 'SELECT 1'],
      user: 'postgres', env: { PGPASSWORD: c.password, PGCONNECT_TIMEOUT: '5' }, expect: (o) => o.trim() === '1',
    };
  }
  if (c.engine === 'mysql') {
    return {
      cmd: ['mariadb', '--no-defaults', '--protocol=TCP', '-h', '127.0.0.1', '-P', port, '-u', c.user, '-D', c.database, '-N', '-B', '-e', 'SELECT 1'],
      user: 'mysql', env: { MYSQL_PWD: c.password }, expect: (o) => o.trim() === '1',
    };
  }
  return {
    cmd: ['redis-cli', '--no-auth-warning', '-h', '127.0.0.1', '-p', port, '--user', c.user, '-n', c.database, 'PING'],
    user: 'redis', env: { REDISCLI_AUTH: c.password }, expect: (o) => o.trim() === 'PONG',
  };
}

export interface LoginResult { ok: boolean; ms: number; detail: string }

async function runProbe(docker: Docker, container: string, p: Probe): Promise<LoginResult> {
  const t0 = Date.now();
  const r = await execIn(docker, container, p.cmd, { user: p.user, env: p.env, timeoutMs: 10_000 });
  const out = r.stdout.toString('utf8');
  const ok = r.code === 0 && p.expect(out);
  return { ok, ms: Date.now() - t0, detail: ok ? 'ok' : tail(`${r.stderr}\n${out}`) || `exit ${r.code}` };
}

/** Logs in with `c` and runs the probe query once: ok, or the engine's refusal. */
export function tryLogin(docker: Docker, container: string, c: Credentials): Promise<LoginResult> {
  return runProbe(docker, container, loginProbe(c));
}

/** The container's last log lines (its stdout and stderr, demultiplexed). */
export async function logTail(docker: Docker, container: string, lines = 20): Promise<string> {
  const buf = (await docker.getContainer(container).logs({ stdout: true, stderr: true, tail: lines, follow: false })) as unknown as Buffer;
  const out: string[] = [];
  for (let at = 0; at + 8 <= buf.length;) {
    const size = buf.readUInt32BE(at + 4);
    out.push(buf.subarray(at + 8, at + 8 + size).toString('utf8'));
    at += 8 + size;
  }
  return out.join('').trim();
}

export interface Ready { ms: number; attempts: number }

/**
 * Waits until the engine answers its own probe and the app's user can run a query.
 * Throws naming the container, the phase and the cause: the container exited (with
 * its last log lines), or the time ran out (with the last refusal).
 */
export async function waitReady(docker: Docker, container: string, engine: string, creds: Credentials, timeoutMs: number): Promise<Ready> {
  const e = engineOf(engine).name;
  const t0 = Date.now();
  const live = livenessProbe(e);
  let attempts = 0;
  let last = 'no answer yet';
  let alive = live === undefined;
  while (Date.now() - t0 < timeoutMs) {
    attempts++;
    const info = await docker.getContainer(container).inspect();
    if (!info.State.Running) {
      // A restarting container comes back by itself; an exited one will not.
      if (info.State.Restarting) {
        last = `the server is restarting (restart ${info.RestartCount}; it exited with code ${info.State.ExitCode}: ${tail(await logTail(docker, container), 4)})`;
      } else {
        throw new Error(`HealthCheckFailed: ${container}: the ${e} server exited (code ${info.State.ExitCode}) before it was ready: ${tail(await logTail(docker, container), 6)}`);
      }
    } else {
      try {
        if (!alive && live) {
          const r = await runProbe(docker, container, live);
          alive = r.ok;
          last = r.ok ? 'answers its probe' : `probe: ${r.detail}`;
        }
        if (alive) {
          const r = await tryLogin(docker, container, creds);
          if (r.ok) return { ms: Date.now() - t0, attempts };
          last = `login: ${r.detail}`;
        }
      } catch (err) {
        last = (err as Error).message; // the container went away between inspect and exec, say
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`HealthCheckFailed: ${container}: the ${e} server was not ready after ${timeoutMs} ms (${last})`);
}
