// The MCP endpoint's address flags, shared by `mlink up` and `mlink serve`: where to
// listen, the certificate for HTTPS, extra Host names, and the refusal to send bearer
// tokens over plain HTTP beyond this machine. A new certificate source (the internal CA)
// is picked here, beside the file pair.
import { fileCertificate, internalCaCertificate, isLoopback, parseListen, type CertificateSource } from '../../mcp/tls.js';
import { dataDir } from '../util/paths.js';

export const ENDPOINT_OPTIONS = {
  listen: { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'allow-host': { type: 'string', multiple: true },
  'insecure-http': { type: 'boolean' },
} as const;

export const ENDPOINT_HELP = `  --listen HOST[:PORT]   where MCP listens (default 127.0.0.1:PORT); any address other than
                         loopback needs TLS
  --tls-cert FILE        PEM certificate (chain) for HTTPS; --tls-key FILE its private key
                         (beyond loopback without them: a certificate from the cluster's
                         internal CA, renewed while it runs; clients trust mlink ca export)
  --allow-host NAME      another Host name agents may use (repeatable); loopback, the listen
                         address and the certificate's names are allowed already
  --insecure-http        listen beyond loopback without TLS (only when something else
                         encrypts the traffic: bearer tokens would cross the network in clear)`;

export interface EndpointValues {
  listen?: string;
  'tls-cert'?: string;
  'tls-key'?: string;
  'allow-host'?: string[];
  'insecure-http'?: boolean;
}

export interface Endpoint { host: string; port: number; tls?: CertificateSource; extraHosts: string[] }

/**
 * The endpoint the flags describe, or an error saying which flag is wrong and what to pass
 * instead. `given` says whether the fallback's host and port came from flags of their own
 * (--host, --port), which --listen must not contradict.
 */
export function endpointFrom(values: EndpointValues, fallback: { host: string; port: number }, given: { host?: boolean; port?: boolean } = {}, keysDir = dataDir().keys): Endpoint | { error: string } {
  if (values.listen && given.host) return { error: '--listen and --host both say where to listen: give one of them' };
  if (values.listen && given.port && /:\d+$/.test(values.listen)) return { error: '--listen HOST:PORT and --port both give the port: give one of them' };
  let at: { host: string; port: number };
  try {
    at = values.listen ? parseListen(values.listen, fallback.port) : fallback;
  } catch (e) {
    return { error: (e as Error).message };
  }
  const cert = values['tls-cert'];
  const key = values['tls-key'];
  if (!!cert !== !!key) return { error: `${cert ? '--tls-cert' : '--tls-key'} needs ${cert ? '--tls-key FILE' : '--tls-cert FILE'} too: HTTPS takes a certificate and its private key` };
  const where = `${at.host.includes(':') ? `[${at.host}]` : at.host}:${at.port}`;
  if (values['insecure-http'] && cert) return { error: '--insecure-http and --tls-cert contradict each other: drop --insecure-http to serve HTTPS' };
  if (values['insecure-http'] && isLoopback(at.host)) return { error: `--insecure-http is only for a --listen address beyond loopback; ${where} is reachable from this machine only and needs no flag` };
  const bad = (values['allow-host'] ?? []).find((h) => !/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+|[0-9a-fA-F:]+)$/.test(h));
  if (bad !== undefined) return { error: `--allow-host ${JSON.stringify(bad)} is not a host name or address (give it without scheme or port, e.g. mlink.internal)` };
  const extraHosts = values['allow-host'] ?? [];
  // Beyond loopback a bearer token must not cross the network in clear text: the given certificate, else one from the cluster's CA.
  const tls = cert && key ? fileCertificate(cert, key)
    : !values['insecure-http'] && !isLoopback(at.host) ? internalCaCertificate(keysDir, at.host, extraHosts) : undefined;
  return { host: at.host, port: at.port, ...(tls ? { tls } : {}), extraHosts };
}
