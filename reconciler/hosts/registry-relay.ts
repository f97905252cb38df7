// The control plane's registry on the private network. The embedded default's registry
// listens on loopback (infra/setup); hosts reached over SSH pull built images from the
// address mlink.yaml's spec.registry names, an address of this machine on the private
// network. The control plane serves the registry there by relaying each connection to
// the loopback one: the registry itself stays as set up, and moving the address is a
// commit, never a re-roll (images are named without a registry in desired state).
import { createConnection, createServer, type Server } from 'node:net';
import type { Logger } from '../util/log.js';

export interface RegistryRelay {
  /** Serves the registry at `address` (host:port) from now on; undefined stops serving it anywhere but loopback. */
  serveAt(address: string | undefined): Promise<void>;
  close(): Promise<void>;
}

export function registryRelay(loopback: string, log: Logger): RegistryRelay {
  const [targetHost, targetPort] = splitAddress(loopback);
  let current: { address: string; server: Server } | undefined;
  const stop = async (): Promise<void> => {
    const s = current?.server;
    current = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  return {
    async serveAt(address) {
      if (current?.address === address) return;
      await stop();
      if (!address || address === loopback) return;
      const [host, port] = splitAddress(address);
      const server = createServer((client) => {
        const upstream = createConnection({ host: targetHost, port: targetPort });
        client.pipe(upstream).pipe(client);
        const end = (): void => { client.destroy(); upstream.destroy(); };
        client.on('error', end);
        upstream.on('error', end);
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', (e: NodeJS.ErrnoException) => reject(new Error(
          e.code === 'EADDRNOTAVAIL'
            ? `mlink.yaml spec.registry.address ${address}: ${host} is not an address of this machine; name one the other hosts reach this control plane at`
            : `mlink.yaml spec.registry.address ${address}: cannot listen there (${e.code ?? e.message})`,
        )));
        server.listen(port, host, () => resolve());
      });
      server.on('error', (e) => log.warn('the registry relay failed', { address, error: e }));
      current = { address, server };
      log.info('serving the registry on the private network', { address, registry: loopback });
    },
    close: stop,
  };
}

function splitAddress(address: string): [string, number] {
  const at = address.lastIndexOf(':');
  return [address.slice(0, at), Number(address.slice(at + 1))];
}
