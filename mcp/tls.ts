// Where the MCP endpoint's certificate comes from, and which addresses need one. A
// certificate source hands over a PEM certificate chain and key; files given on the
// command line are one source, the internal CA (once it exists) plugs in as another
// without the HTTP server knowing the difference.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { loadClusterCa } from '../reconciler/tls/ca-store.js';
import { issueLeaf } from '../reconciler/tls/ca.js';
import { needsRenewal, parseCertificate } from '../reconciler/tls/cert-info.js';

export interface Certificate {
  cert: string;
  key: string;
  /** Host names and IP addresses the certificate is valid for (its subjectAltName). */
  names: string[];
  /** For messages: where it came from and until when it is valid. */
  describe: string;
}

export interface CertificateSource {
  load(): Promise<Certificate>;
}

/** The names a PEM certificate is valid for, from its subjectAltName (DNS and IP entries). */
export function certificateNames(pem: string): string[] {
  const x = new X509Certificate(pem);
  return (x.subjectAltName ?? '').split(/,\s*/).flatMap((entry) => {
    const m = /^(DNS|IP Address):(.+)$/.exec(entry.trim());
    return m?.[2] ? [m[2].toLowerCase()] : [];
  });
}

/** A certificate and key read from files (`--tls-cert FILE --tls-key FILE`), checked to belong together. */
export function fileCertificate(certFile: string, keyFile: string): CertificateSource {
  return {
    async load(): Promise<Certificate> {
      const read = async (file: string, flag: string): Promise<string> => {
        try { return await readFile(file, 'utf8'); } catch (e) {
          throw new Error(`${flag} ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
        }
      };
      const [cert, key] = await Promise.all([read(certFile, '--tls-cert'), read(keyFile, '--tls-key')]);
      let x: X509Certificate;
      try { x = new X509Certificate(cert); } catch (e) { throw new Error(`--tls-cert ${certFile}: not a PEM certificate (${(e as Error).message})`); }
      let privateKey;
      try { privateKey = createPrivateKey(key); } catch (e) { throw new Error(`--tls-key ${keyFile}: not a PEM private key (${(e as Error).message})`); }
      if (!x.checkPrivateKey(privateKey)) throw new Error(`--tls-key ${keyFile} does not belong to the certificate in --tls-cert ${certFile}`);
      if (Date.parse(x.validTo) < Date.now()) throw new Error(`--tls-cert ${certFile} expired on ${x.validTo}; give a current certificate`);
      return { cert, key, names: certificateNames(cert), describe: `${certFile} (valid until ${x.validTo})` };
    },
  };
}

/**
 * A certificate from the cluster's internal CA (made by `mlink init`, its root in the state
 * repo for clients to trust: `mlink ca export`) for the address the endpoint listens on
 * (every address of this machine for 0.0.0.0 or ::), this machine's name and the extra
 * Host names. Short-lived like the apps' leaves; a new one is issued when the one held is
 * past 2/3 of its lifetime, and the server takes it without a restart (mcp/http.ts).
 */
export function internalCaCertificate(keysDir: string, listenHost: string, extraHosts: string[]): CertificateSource {
  const wildcard = listenHost === '0.0.0.0' || listenHost === '::';
  const bare = listenHost.replace(/^\[|\]$/g, '');
  const ips = wildcard
    ? Object.values(networkInterfaces()).flat().flatMap((i) => (i && !i.internal ? [i.address.replace(/%.*$/, '')] : []))
    : isIP(bare) ? [bare] : [];
  // This machine's own name when it is a DNS name (a one-label host name is not).
  const own = hostname().includes('.') ? [hostname()] : [];
  const dns = [...new Set([...(isIP(bare) || wildcard ? [] : [bare]), ...extraHosts.filter((h) => isIP(h) === 0), ...own].map((h) => h.toLowerCase()))];
  let held: Certificate | undefined;
  return {
    async load(): Promise<Certificate> {
      if (held && !needsRenewal(parseCertificate(held.cert), new Date(), dns).renew) return held;
      const ca = await loadClusterCa(keysDir).catch((e: Error) => {
        throw new Error(`no certificate for --listen ${listenHost}: the cluster's internal CA in ${keysDir} cannot be read (${e.message}); \`mlink init\` makes it, or give --tls-cert FILE --tls-key FILE`);
      });
      const leaf = await issueLeaf(ca, dns, { ipAddresses: [...new Set([...ips, ...extraHosts.filter((h) => isIP(h) !== 0)])] });
      held = { cert: `${leaf.certPem}${ca.certPem}`, key: leaf.keyPem, names: certificateNames(leaf.certPem), describe: `the cluster's internal CA (valid until ${leaf.notAfter.toISOString()}; trust its root: mlink ca export)` };
      return held;
    },
  };
}

/** Whether a listen address only takes connections from this machine. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

/** HOST[:PORT] (IPv6 in brackets) as host and port; the port defaults to `defaultPort`. */
export function parseListen(value: string, defaultPort: number): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*))(?::(\d+))?$/.exec(value.trim());
  const host = m?.[1] ?? m?.[2];
  const port = m?.[3] !== undefined ? Number(m[3]) : defaultPort;
  if (!m || !host || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`--listen ${JSON.stringify(value)} is not HOST[:PORT] (for example 10.0.0.5:7331, 0.0.0.0:7331 or [fd00::5]:7331)`);
  }
  return { host, port };
}
