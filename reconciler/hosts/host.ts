// The host seam: everything the reconciler does to a machine goes through a Host. A host
// gives a Docker client, a command runner and a file writer, and makes HTTP requests as
// that machine makes them (to a replica's bridge address, to its edge's API on its own
// loopback). The embedded default is the local host with every role; a host reached over
// SSH (ssh-host.ts) gives the same four through one pooled connection. Commands are data
// (commands.ts renders them, pure); the host only runs them.
import Docker from 'dockerode';
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { dirname } from 'node:path';

/** A command as data: argv, and what goes to its stdin. */
export interface Command { argv: string[]; input?: string }
export interface RunResult { code: number; stdout: string; stderr: string }

export interface HttpAnswer { status: number; headers: Record<string, string | string[] | undefined>; body: string }
export interface HttpOptions { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number }

export interface HostFiles {
  /** Writes atomically (a temp file renamed into place), creating the directory. */
  write(path: string, content: string, opts?: { mode?: number }): Promise<void>;
  read(path: string): Promise<string | null>;
  remove(path: string): Promise<void>;
  /** Names in a directory; empty when it does not exist. */
  list(dir: string): Promise<string[]>;
}

export interface Host {
  readonly name: string;
  /** 'local', or the address it is reached at. */
  readonly address: string;
  readonly docker: Docker;
  readonly files: HostFiles;
  run(cmd: Command): Promise<RunResult>;
  request(url: string, opts?: HttpOptions): Promise<HttpAnswer>;
  close(): Promise<void>;
}

/** Runs `cmd` on `host` and throws, naming the host and the command, with its last lines when it fails. */
export async function must(host: Host, cmd: Command): Promise<string> {
  const r = await host.run(cmd);
  if (r.code !== 0) {
    const tail = (r.stderr || r.stdout).trim().split('\n').slice(-8).join(' | ');
    throw new Error(`on host ${host.name}: ${cmd.argv.join(' ')} exited ${r.code}: ${tail}`);
  }
  return r.stdout;
}

/** An HTTP request over any socket-making agent: the local one, or one whose sockets are SSH channels. */
export function requestVia(agent: import('node:http').Agent | undefined, url: string, opts: HttpOptions = {}): Promise<HttpAnswer> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host: u.hostname, port: u.port || 80, path: `${u.pathname}${u.search}`, method: opts.method ?? 'GET',
      headers: { ...(opts.body !== undefined ? { 'content-length': String(Buffer.byteLength(opts.body)) } : {}), ...opts.headers },
      timeout: opts.timeoutMs ?? 5000, ...(agent ? { agent } : { agent: false }),
    }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${u.host} in ${opts.timeoutMs ?? 5000} ms`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

export function runLocal(cmd: Command): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const [file, ...args] = cmd.argv;
    const child = spawn(file!, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', (e) => ((e as NodeJS.ErrnoException).code === 'ENOENT' ? resolve({ code: 127, stdout, stderr: `${file}: not found` }) : reject(e)));
    child.stdin.on('error', () => undefined); // it exited without reading its input
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.end(cmd.input ?? '');
  });
}

const localFiles: HostFiles = {
  async write(path, content, opts = {}) {
    await mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    await writeFile(tmp, content, { mode: opts.mode ?? 0o644 });
    await rename(tmp, path);
  },
  read: (path) => readFile(path, 'utf8').catch(() => null),
  remove: (path) => rm(path, { force: true }),
  list: (dir) => readdir(dir).catch(() => []),
};

/** The machine this process runs on, through the same seam as any other host. */
export class LocalHost implements Host {
  readonly address = 'local';
  readonly docker: Docker;
  readonly files = localFiles;

  constructor(readonly name = 'local', docker?: Docker) {
    this.docker = docker ?? new Docker();
  }

  run(cmd: Command): Promise<RunResult> {
    return runLocal(cmd);
  }

  request(url: string, opts?: HttpOptions): Promise<HttpAnswer> {
    return requestVia(undefined, url, opts);
  }

  async close(): Promise<void> {
    // nothing pooled
  }
}
