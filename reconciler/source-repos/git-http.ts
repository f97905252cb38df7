// The internal source repos over git's smart HTTP protocol, read-only, so a human can
// `git clone http://127.0.0.1:PORT/<project>/<app>.git` exactly what an agent sent.
// Each request runs git's own `git http-backend` as a CGI program; pushes are refused
// (sources change through create_app/update_app, which pin the commit in a manifest).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Logger } from '../util/log.js';

const REPO_PATH = /^\/([a-z][a-z0-9-]{0,62})\/([a-z][a-z0-9-]{0,62})\.git(\/(info\/refs|git-upload-pack|HEAD|objects\/.+))$/;

export interface GitHttpServer { url: string; close(): Promise<void> }

function deny(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(`${message}\n`);
}

export function gitHttpBackend(): string {
  for (const p of ['/usr/lib/git-core/git-http-backend', '/usr/libexec/git-core/git-http-backend']) if (existsSync(p)) return p;
  return 'git-http-backend';
}

/** Serves `root` (holding <project>/<app>.git) on host:port; loopback by default. */
export async function startGitHttpServer(opts: { root: string; host?: string; port?: number; log?: Logger }): Promise<GitHttpServer> {
  const backend = gitHttpBackend();
  const server = createServer((req, res) => serve(req, res));

  function serve(req: IncomingMessage, res: ServerResponse): void {
    const [path = '/', query = ''] = (req.url ?? '/').split('?', 2);
    const m = REPO_PATH.exec(path);
    if (!m) return deny(res, 404, 'not found: clone http://HOST:PORT/<project>/<app>.git');
    if (/service=git-receive-pack/.test(query) || path.endsWith('git-receive-pack')) {
      return deny(res, 403, 'these source repos are read-only: change an app\'s source with update_app');
    }
    if (!existsSync(join(opts.root, m[1]!, `${m[2]}.git`, 'HEAD'))) return deny(res, 404, `no source repo ${m[1]}/${m[2]}.git`);
    const child = spawn(backend, [], {
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        GIT_PROJECT_ROOT: opts.root,
        GIT_HTTP_EXPORT_ALL: '1',
        PATH_INFO: path,
        QUERY_STRING: query,
        REQUEST_METHOD: req.method ?? 'GET',
        CONTENT_TYPE: req.headers['content-type'] ?? '',
        CONTENT_LENGTH: req.headers['content-length'] ?? '',
        HTTP_CONTENT_ENCODING: req.headers['content-encoding'] ?? '',
        HTTP_GIT_PROTOCOL: String(req.headers['git-protocol'] ?? ''),
        REMOTE_ADDR: req.socket.remoteAddress ?? '',
        REMOTE_USER: '',
        GATEWAY_INTERFACE: 'CGI/1.1',
        SERVER_PROTOCOL: 'HTTP/1.1',
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    req.pipe(child.stdin);
    let head = Buffer.alloc(0);
    let sent = false;
    child.stdout.on('data', (chunk: Buffer) => {
      if (sent) { res.write(chunk); return; }
      head = Buffer.concat([head, chunk]);
      let end = head.indexOf('\r\n\r\n');
      let sep = 4;
      if (end === -1) { end = head.indexOf('\n\n'); sep = 2; }
      if (end === -1) return;
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of head.subarray(0, end).toString('latin1').split(/\r?\n/)) {
        const i = line.indexOf(':');
        if (i <= 0) continue;
        const k = line.slice(0, i).trim();
        const v = line.slice(i + 1).trim();
        if (k.toLowerCase() === 'status') status = Number(v.split(' ')[0]) || 200;
        else headers[k] = v;
      }
      res.writeHead(status, headers);
      sent = true;
      res.write(head.subarray(end + sep));
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err += d.toString('utf8'); });
    child.on('close', (code) => {
      if (code !== 0) opts.log?.warn('git http-backend failed', { path, code, stderr: err.trim().slice(-500) });
      if (!sent) return deny(res, 500, `git http-backend exited ${code}`);
      res.end();
    });
    child.on('error', (e) => { if (!sent) deny(res, 500, e.message); });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    url: `http://${addr.address}:${addr.port}`,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
