// ml.ink's internal CA: a root (EC P-256, 10 years) and short-lived leaf certificates for
// an app's host names. Built on WebCrypto with @peculiar/x509, so the control plane needs
// no openssl binary and the same code runs wherever Node 20 does. No file I/O here:
// ca-store.ts keeps the root on disk.
import * as x509 from '@peculiar/x509';
import { randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

export const DEFAULT_LEAF_DAYS = 30;
export const DEFAULT_ROOT_DAYS = 3650;
/** Backdating absorbs clock skew between the control plane and the clients; a tenth of a short leaf's life at most, so renewal at 2/3 of it stays ahead. */
const BACKDATE_MS = 5 * 60_000;
const backdate = (lifetimeMs: number): number => Math.min(BACKDATE_MS, lifetimeMs / 10);

export interface CaMaterial { certPem: string; keyPem: string }
export interface LeafCertificate { certPem: string; keyPem: string; notAfter: Date }

export interface RootOptions { commonName?: string; days?: number; now?: Date }
export interface LeafOptions { days?: number; now?: Date; /** IP SANs besides the names (an endpoint reached by address). */ ipAddresses?: string[] }

function serial(): string {
  // 16 random bytes, top bit cleared so the DER integer stays positive (RFC 5280 4.1.2.2).
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return b.toString('hex');
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

async function newKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

async function keyPem(key: CryptoKey): Promise<string> {
  return pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', key));
}

async function importKey(keyPemText: string): Promise<CryptoKey> {
  const b64 = keyPemText.replace(/-----(BEGIN|END) PRIVATE KEY-----/g, '').replace(/\s+/g, '');
  if (!b64) throw new Error('CA key: no PKCS#8 "PRIVATE KEY" PEM block found');
  return webcrypto.subtle.importKey('pkcs8', Buffer.from(b64, 'base64'), EC, false, ['sign']) as Promise<CryptoKey>;
}

export function validateDnsNames(names: string[], field = 'dnsNames'): string[] {
  if (names.length === 0) throw new Error(`${field}: give at least one host name for the certificate`);
  const label = /^(\*|[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)$/;
  return names.map((raw, i) => {
    const n = raw.toLowerCase().replace(/\.$/, '');
    const labels = n.split('.');
    const ok = n.length <= 253 && labels.length >= 2 && labels.every((l, j) => label.test(l) && (l !== '*' || j === 0));
    if (!ok) throw new Error(`${field}[${i}]: "${raw}" is not a DNS host name (labels of a-z, 0-9 and -, at least two labels; a wildcard only as the first label)`);
    return n;
  });
}

/** A new self-signed root: CA, path length 0 (it signs leaves only). */
export async function createRootCa(opts: RootOptions = {}): Promise<CaMaterial> {
  const now = opts.now ?? new Date();
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: [{ CN: [opts.commonName ?? 'ml.ink internal CA'] }, { O: ['ml.ink'] }],
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + (opts.days ?? DEFAULT_ROOT_DAYS) * DAY_MS),
    keys,
    signingAlgorithm: EC,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await keyPem(keys.privateKey) };
}

/** A leaf for `dnsNames` (the first is the subject CN), signed by the root, `days` long (default 30). */
export async function issueLeaf(ca: CaMaterial, dnsNames: string[], opts: LeafOptions = {}): Promise<LeafCertificate> {
  // An endpoint reached by address alone needs no host name.
  const names = dnsNames.length === 0 && opts.ipAddresses?.length ? [] : validateDnsNames(dnsNames);
  const days = opts.days ?? DEFAULT_LEAF_DAYS;
  if (!(days > 0 && days <= 398)) throw new Error(`days: ${days} is out of range; give 1 to 398 days (browsers refuse longer leaves)`);
  const ips = opts.ipAddresses ?? [];
  ips.forEach((ip, i) => { if (isIP(ip) === 0) throw new Error(`ipAddresses[${i}]: "${ip}" is not an IP address`); });
  const now = opts.now ?? new Date();
  const root = new x509.X509Certificate(ca.certPem);
  const signingKey = await importKey(ca.keyPem);
  const keys = await newKeys();
  const notAfter = new Date(now.getTime() + days * DAY_MS);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: [{ CN: [names[0] ?? opts.ipAddresses![0]!] }],
    issuer: root.subject,
    notBefore: new Date(now.getTime() - backdate(days * DAY_MS)),
    notAfter,
    publicKey: keys.publicKey,
    signingKey,
    signingAlgorithm: EC,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([...names.map((value) => ({ type: 'dns' as const, value })), ...ips.map((value) => ({ type: 'ip' as const, value }))]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(root.publicKey),
    ],
  });
  return { certPem: cert.toString('pem') + '\n', keyPem: await keyPem(keys.privateKey), notAfter };
}
