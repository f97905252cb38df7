// Sending one DNS message and reading its answer: UDP first (retried on silence), TCP
// when the answer comes back truncated or the caller asks for it (RFC 1035 4.2, RFC 7766).
import { createSocket } from 'node:dgram';
import { isIP, Socket } from 'node:net';

export interface DnsServer {
  host: string;
  port?: number;
  /** Per attempt; default 2000 ms. */
  timeoutMs?: number;
  /** UDP attempts before giving up; default 3. */
  attempts?: number;
  /** Always use TCP. */
  tcp?: boolean;
}

function label(s: DnsServer): string {
  return `${s.host}:${s.port ?? 53}`;
}

function udpOnce(s: DnsServer, wire: Buffer, id: number, timeoutMs: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const sock = createSocket(isIP(s.host) === 6 ? 'udp6' : 'udp4');
    const done = (v: Buffer | undefined, err?: Error): void => {
      clearTimeout(timer);
      sock.close();
      if (err) reject(err); else resolve(v);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    sock.on('error', (err) => done(undefined, new Error(`DNS server ${label(s)}: ${err.message}`)));
    sock.on('message', (msg, rinfo) => {
      // Only the server's answer to this id counts; anything else is ignored, not trusted.
      if (rinfo.port !== (s.port ?? 53) || msg.length < 2 || msg.readUInt16BE(0) !== id) return;
      done(msg);
    });
    sock.send(wire, s.port ?? 53, s.host);
  });
}

function tcpOnce(s: DnsServer, wire: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = new Socket();
    let buf = Buffer.alloc(0);
    const fail = (why: string): void => { sock.destroy(); reject(new Error(`DNS server ${label(s)} over TCP: ${why}`)); };
    sock.setTimeout(timeoutMs, () => fail(`no answer in ${timeoutMs} ms`));
    sock.on('error', (err) => fail(err.message));
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        sock.end();
        resolve(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      }
    });
    sock.on('end', () => { if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) fail('connection closed before the whole answer'); });
    sock.connect(s.port ?? 53, s.host, () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(wire.length);
      sock.write(Buffer.concat([len, wire]));
    });
  });
}

/**
 * Sends `wire` and returns the raw answer. The same signed bytes go again on a UDP retry
 * and over TCP after truncation: the request MAC the answer is checked against is unchanged.
 */
export async function exchange(s: DnsServer, wire: Buffer): Promise<{ answer: Buffer; transport: 'udp' | 'tcp' }> {
  const timeoutMs = s.timeoutMs ?? 2000;
  if (s.tcp || wire.length > 512) return { answer: await tcpOnce(s, wire, timeoutMs), transport: 'tcp' };
  const id = wire.readUInt16BE(0);
  for (let i = 0; i < (s.attempts ?? 3); i++) {
    const answer = await udpOnce(s, wire, id, timeoutMs);
    if (!answer) continue;
    const truncated = answer.length >= 4 && (answer.readUInt16BE(2) & 0x0200) !== 0;
    if (!truncated) return { answer, transport: 'udp' };
    return { answer: await tcpOnce(s, wire, timeoutMs), transport: 'tcp' };
  }
  throw new Error(`DNS server ${label(s)}: no answer over UDP after ${s.attempts ?? 3} tries of ${timeoutMs} ms`);
}
