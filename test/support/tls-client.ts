// Requests the way a client on the network makes them: a real TLS handshake against a
// CA the test names, SNI and Host set to the app's name, from a chosen loopback address.
import { request as httpRequest, createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';

export interface Reply { status: number; body: string; headers: Record<string, string | string[] | undefined>; serial?: string; issuer?: string }

export interface RequestOpts { host: string; port: number; ca?: string; from?: string; path?: string; timeoutMs?: number }

export function httpsGet(o: RequestOpts): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({
      host: '127.0.0.1', port: o.port, path: o.path ?? '/', servername: o.host, headers: { host: `${o.host}:${o.port}` },
      ca: o.ca, localAddress: o.from, agent: false, timeout: o.timeoutMs ?? 5000,
    }, (res) => {
      const cert = (res.socket as TLSSocket).getPeerCertificate();
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => resolve({
        status: res.statusCode ?? 0, body, headers: res.headers, serial: cert.serialNumber?.toLowerCase(), issuer: [cert.issuer?.CN].flat()[0],
      }));
    });
    req.on('timeout', () => req.destroy(new Error(`https://${o.host}:${o.port}: no answer in ${o.timeoutMs ?? 5000} ms`)));
    req.on('error', reject);
    req.end();
  });
}

export function httpGet(o: RequestOpts): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: o.port, path: o.path ?? '/', headers: { host: `${o.host}:${o.port}` }, localAddress: o.from, agent: false, timeout: o.timeoutMs ?? 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('timeout', () => req.destroy(new Error(`http://${o.host}:${o.port}: no answer in ${o.timeoutMs ?? 5000} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** A plain HTTP backend on a free loopback port that answers with its name and the Host it saw. */
export async function startBackend(name: string): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => { res.end(`${name} ${req.headers.host ?? ''}\n`); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}
