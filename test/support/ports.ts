// Free loopback ports for the servers a test starts itself.
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';

function tcpFree(port = 0): Promise<number | undefined> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(undefined));
    s.listen(port, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

function udpFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.once('error', () => { s.close(); resolve(false); });
    s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A loopback TCP port nobody listens on (the kernel's pick). */
export async function freePort(): Promise<number> {
  const p = await tcpFree();
  if (p === undefined) throw new Error('no free loopback TCP port');
  return p;
}

/** A port free for both TCP and UDP (a DNS server needs both). */
export async function freeTcpUdpPort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const p = await tcpFree();
    if (p !== undefined && (await udpFree(p))) return p;
  }
  throw new Error('no loopback port free for both TCP and UDP after 20 tries');
}
