// Reading certificates for status output and renewal decisions. Pure: node's X509Certificate
// parses, nothing is read from disk or the network.
import { X509Certificate } from 'node:crypto';

export interface CertInfo {
  subject: string;
  issuer: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  dnsNames: string[];
  isCa: boolean;
  fingerprint256: string;
}

/** The first certificate of a PEM (a leaf, or a chain whose first block is the leaf). */
export function parseCertificate(pemText: string): CertInfo {
  let c: X509Certificate;
  try {
    c = new X509Certificate(pemText);
  } catch (err) {
    throw new Error(`certificate: not a PEM X.509 certificate (${(err as Error).message})`);
  }
  const dnsNames = (c.subjectAltName ?? '').split(/,\s*/).filter((s) => s.startsWith('DNS:')).map((s) => s.slice(4));
  return {
    subject: (c.subject ?? '').replace(/\n/g, ', '),
    issuer: (c.issuer ?? '').replace(/\n/g, ', '),
    serial: c.serialNumber.toLowerCase(),
    notBefore: new Date(c.validFrom),
    notAfter: new Date(c.validTo),
    dnsNames,
    isCa: c.ca,
    fingerprint256: c.fingerprint256,
  };
}

export interface RenewalDecision {
  renew: boolean;
  /** When the certificate falls due (2/3 of its lifetime), for scheduling the next look. */
  renewAt: Date;
  reason: string;
}

/** Renewal is due at this fraction of a certificate's lifetime (Let's Encrypt's advice: 2/3). */
export const RENEW_AT_FRACTION = 2 / 3;

/**
 * Whether a certificate should be replaced now: at 2/3 of its lifetime or later, when it
 * is not yet valid or expired, or when it does not cover every wanted host name.
 */
export function needsRenewal(cert: Pick<CertInfo, 'notBefore' | 'notAfter' | 'dnsNames'>, now: Date, wantNames: string[] = []): RenewalDecision {
  const from = cert.notBefore.getTime();
  const to = cert.notAfter.getTime();
  const renewAt = new Date(from + (to - from) * RENEW_AT_FRACTION);
  const have = new Set(cert.dnsNames.map((n) => n.toLowerCase()));
  const missing = wantNames.map((n) => n.toLowerCase().replace(/\.$/, '')).filter((n) => !have.has(n));
  if (missing.length > 0) return { renew: true, renewAt, reason: `does not cover ${missing.join(', ')}` };
  if (now.getTime() >= to) return { renew: true, renewAt, reason: `expired at ${cert.notAfter.toISOString()}` };
  if (now.getTime() < from) return { renew: true, renewAt, reason: `not valid before ${cert.notBefore.toISOString()} (clock skew or a bad certificate)` };
  if (now.getTime() >= renewAt.getTime()) return { renew: true, renewAt, reason: `past 2/3 of its lifetime (due ${renewAt.toISOString()}, expires ${cert.notAfter.toISOString()})` };
  return { renew: false, renewAt, reason: `valid until ${cert.notAfter.toISOString()}; renewal due ${renewAt.toISOString()}` };
}
