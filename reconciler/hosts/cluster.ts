// The host pool of a cluster as the state repo names it (mlink.yaml's hosts and
// hosts/*.yaml), for every process of the control plane: the worker, `mlink status`,
// `mlink logs`, `mlink db`, `mlink host`. This machine's edge is the embedded default's
// Traefik; other hosts are reached over SSH with the control plane's key (in the data
// dir, never in git) and the host key each host file pins.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { infraConfig, registryAddress } from '../../infra/config.js';
import type { Edge } from '../edge/traefik.js';
import { clusterHostsAt, readClusterConfig } from '../source/desired.js';
import type { TreeView } from '../state/tree.js';
import { dataDir } from '../util/paths.js';
import { healthFile, loadHealth, readHealthFile } from './monitor.js';
import { HostPool, type HostEntry } from './pool.js';
import { SshHost } from './ssh-host.js';

export function localEdge(cfg = infraConfig()): Edge {
  return { routesDir: cfg.traefik.routesDir, api: `http://${cfg.traefik.host}:${cfg.traefik.apiPort}`, address: cfg.traefik.host, httpsPort: cfg.traefik.websecurePort };
}

/** Where a remote runtime host's edge (a Traefik container, edge/edge-host.ts) keeps its routes and answers its API. */
export const REMOTE_EDGE: Edge = { routesDir: '/var/lib/mlink/routes', api: 'http://127.0.0.1:18081' };
/** The port of a remote runtime host's edge on the host's own address: what a front door points at. */
export const REMOTE_EDGE_WEB_PORT = 80;

/** The control plane's SSH key: `<data dir>/keys/ssh/id_ed25519`, made on first use. */
export function controlKeyFile(keysDir = dataDir().keys): string {
  return join(keysDir, 'ssh', 'id_ed25519');
}

/** Connects a pool entry over SSH with the control key in `keyFile` (read when first needed), checking the host key it pins. */
export function sshConnector(keyFile: string): (e: HostEntry) => SshHost {
  let key: string | undefined;
  return (e) => {
    if (!e.ssh?.hostKey) throw new Error(`host ${e.name} (${e.address}) pins no SSH host key; add it with \`mlink host add\`, which shows and pins it`);
    try {
      key ??= readFileSync(keyFile, 'utf8');
    } catch {
      throw new Error(`host ${e.name}: the control plane has no SSH key at ${keyFile}; \`mlink host add\` makes it and shows the public key to authorize`);
    }
    return new SshHost({ name: e.name, address: e.address, port: e.ssh.port ?? 22, user: e.ssh.user ?? 'root', privateKey: key, hostKey: e.ssh.hostKey });
  };
}

export async function clusterHosts(view: TreeView, edge: Edge = localEdge(), opts: { keysDir?: string; healthDir?: string; onRegistry?: (address: string | undefined) => void } = {}): Promise<HostPool> {
  const config = await readClusterConfig(view);
  const pool = new HostPool({
    localEdge: edge, remoteEdge: REMOTE_EDGE, connect: sshConnector(controlKeyFile(opts.keysDir)),
    localRegistry: registryAddress(), ...(opts.onRegistry ? { onRegistry: opts.onRegistry } : {}),
  });
  pool.configure(await clusterHostsAt(view, config), config.spec.registry?.address);
  // What the control plane's health checks last said (a Lost host stays Lost until it answers).
  loadHealth(pool, await readHealthFile(healthFile(opts.healthDir ?? dataDir().health, config.metadata.name)));
  return pool;
}
