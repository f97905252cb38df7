// Host commands as data (Kamal's commands/*): pure functions that render argv, run by
// whichever host they are for (hosts/host.ts), local or over SSH. Nothing here runs.
import type { Command } from './host.js';

/** Gives the interface of the network namespace of process `pid` a MAC address (a holder takes its replica's). */
export function setInterfaceMac(pid: number, mac: string, dev = 'eth0'): Command {
  return { argv: ['nsenter', '-t', String(pid), '-n', 'ip', 'link', 'set', 'dev', dev, 'address', mac] };
}

/** Drops the host's neighbour (ARP) entry for an address a new container took over. */
export function flushNeighbour(ip: string): Command {
  return { argv: ['ip', 'neigh', 'flush', 'to', ip] };
}

/** `iptables -w ARGS`, waiting for the xtables lock. */
export function iptables(args: string[]): Command {
  return { argv: ['iptables', '-w', ...args] };
}

/** `iptables-restore -w ARGS` with `rules` on stdin. */
export function iptablesRestore(args: string[], rules: string): Command {
  return { argv: ['iptables-restore', '-w', ...args], input: rules };
}

/** The host's resolver configuration: Docker's embedded DNS forwards to these. */
export function readResolvConf(): Command {
  return { argv: ['cat', '/etc/resolv.conf'] };
}

/** Resolves a name to IPv4 addresses as the host sees it (getent, in every Debian). */
export function resolveName(name: string): Command {
  return { argv: ['getent', 'ahostsv4', name] };
}
