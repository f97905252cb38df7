// Helpers for the zero-trust tests: fake hosts in network namespaces the test creates
// (a metadata service, "internet" hosts) with a SYN counter that shows whether a packet
// ever arrived, TCP relays that stand in for control-plane ports on a host address, and
// probes run inside app containers. Never aims traffic at a real outside address: every
// address probed is one of these hosts, and the route to it is checked first.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runId } from './infra.js';

export function sh(cmd: string, args: string[], timeoutMs = 20_000): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, out: `${stdout}${stderr}`.trim() });
    });
  });
}

async function must(cmd: string, args: string[]): Promise<string> {
  const r = await sh(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.out}`);
  return r.out;
}

export interface FakeHost {
  ns: string;
  addresses: string[];
  /** SYNs that reached `address` (any port) since the host was made. */
  syns(address: string): Promise<number>;
  remove(): Promise<void>;
}

/**
 * A host in its own network namespace, reached from the host over a veth pair on a
 * 198.18.<n>.0/30 link (RFC 2544 benchmark space), answering HTTP on `ports` at each of
 * `addresses` with "<marker> <address>". Host routes send only those /32s to it.
 */
export async function fakeHost(name: string, n: number, addresses: string[], ports: number[]): Promise<FakeHost> {
  const ns = `zt-${runId}-${name}`;
  const tag = `${runId.slice(-6)}${n}`;
  const [hostIf, nsIf] = [`zh${tag}`, `zn${tag}`];
  const [hostIp, nsIp] = [`198.18.${n}.1`, `198.18.${n}.2`];
  const www = mkdtempSync(join(tmpdir(), `zt-${name}-`));
  const servers: ChildProcess[] = [];
  const inNs = (args: string[]): Promise<string> => must('ip', ['netns', 'exec', ns, ...args]);
  const remove = async (): Promise<void> => {
    for (const s of servers) if (s.pid && s.exitCode === null) s.kill('SIGKILL');
    for (const a of addresses) await sh('ip', ['route', 'del', `${a}/32`, 'via', nsIp]);
    await sh('ip', ['link', 'del', hostIf]);
    await sh('ip', ['netns', 'del', ns]);
    rmSync(www, { recursive: true, force: true });
  };
  try {
    await must('ip', ['netns', 'add', ns]);
    await must('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf]);
    await must('ip', ['link', 'set', nsIf, 'netns', ns]);
    await must('ip', ['addr', 'add', `${hostIp}/30`, 'dev', hostIf]);
    await must('ip', ['link', 'set', hostIf, 'up']);
    await inNs(['ip', 'link', 'set', 'lo', 'up']);
    await inNs(['ip', 'addr', 'add', `${nsIp}/30`, 'dev', nsIf]);
    await inNs(['ip', 'link', 'set', nsIf, 'up']);
    await inNs(['ip', 'route', 'add', 'default', 'via', hostIp]);
    for (const a of addresses) {
      await inNs(['ip', 'addr', 'add', `${a}/32`, 'dev', 'lo']);
      await inNs(['iptables', '-A', 'INPUT', '-d', `${a}/32`, '-p', 'tcp', '--syn']);
      await must('ip', ['route', 'add', `${a}/32`, 'via', nsIp]);
      const route = await must('ip', ['route', 'get', a]);
      if (!route.includes(`dev ${hostIf}`)) throw new Error(`${a} does not route to the test's namespace (${route}); refusing to probe it`);
    }
    writeFileSync(join(www, 'index.html'), `fake-${name}-${runId}\n`);
    for (const port of ports) {
      const s = spawn('ip', ['netns', 'exec', ns, 'busybox', 'httpd', '-f', '-p', String(port), '-h', www], { stdio: 'ignore' });
      servers.push(s);
    }
    await new Promise((r) => setTimeout(r, 200));
  } catch (e) {
    await remove();
    throw e;
  }
  return {
    ns,
    addresses,
    async syns(address) {
      const out = await inNs(['iptables', '-n', '-v', '-x', '-L', 'INPUT']);
      const line = out.split('\n').find((l) => l.includes(` ${address} `) || l.trim().endsWith(address));
      return Number(line?.trim().split(/\s+/)[0] ?? 0);
    },
    remove,
  };
}

/** A TCP relay on `host:port` to 127.0.0.1:`target`, counting connections: a control-plane port bound to a host address. */
export async function relay(host: string, port: number, target: number): Promise<{ server: Server; connections: () => number; close: () => Promise<void> }> {
  let count = 0;
  const server = createServer((sock) => {
    count++;
    const up = connect(target, '127.0.0.1');
    sock.pipe(up).pipe(sock);
    sock.on('error', () => up.destroy());
    up.on('error', () => sock.destroy());
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, () => resolve()));
  return { server, connections: () => count, close: () => new Promise((r) => server.close(() => r())) };
}

export interface Probe { reached: boolean; out: string }

/**
 * An HTTP/1.0 GET to `host:port` from inside a container with busybox nc (busybox wget
 * crashes under Debian's 2022 runsc). Reached means a TCP connection was made (any answer,
 * even an error status or a close); refused, unreachable or timed out means not. A
 * reachable target is tried up to `tries` times (connections under that runsc drop now and then).
 */
export async function probe(container: string, url: string, tries = 3): Promise<Probe> {
  const u = new URL(url);
  const port = u.port || '80';
  const script = `printf 'GET ${u.pathname} HTTP/1.0\r\nHost: ${u.hostname}\r\n\r\n' | nc -w 3 ${u.hostname} ${port}`;
  let last: Probe = { reached: false, out: '' };
  for (let i = 0; i < tries; i++) {
    const r = await sh('docker', ['exec', container, 'sh', '-c', script], 15_000);
    const failed = /unreachable|refused|timed out|No route|Network is|can't connect/i.test(r.out);
    last = { reached: /HTTP\/1\.[01] \d{3}/.test(r.out) || (r.code === 0 && !failed), out: r.out.slice(0, 300) };
    if (last.reached) return last;
  }
  return last;
}
