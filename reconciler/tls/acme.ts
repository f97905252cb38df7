// Certificates from an ACME directory (an enterprise's step-ca or AD CS, Let's Encrypt)
// by ml.ink's own client (acme-client), answering HTTP-01 from a responder that every
// edge routes `/.well-known/acme-challenge/` to (edge/tls-config.ts acmeChallengeConfig).
// The control plane holds the key and the certificate and hands them to the edges through
// the file provider, exactly as it does internal-CA leaves; edges keep serving without it.
import * as acme from 'acme-client';
import { Agent } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { log } from '../util/log.js';
import { validateDnsNames } from './ca.js';
import { parseCertificate } from './cert-info.js';

export interface AcmeIssueRequest {
  directoryUrl: string;
  /** PEM; make one with createAccountKey() and keep it in the keys dir. */
  accountKeyPem: string;
  /** The account's URL from an earlier issuance (AcmeCertificate.accountUrl); keep it beside the key. */
  accountUrl?: string;
  dnsNames: string[];
  responder: ChallengeResponder;
  email?: string;
  /** PEM roots that sign the directory's own HTTPS certificate (a private ACME server). */
  directoryCaPem?: string;
  /** Poll interval bounds while the server validates; defaults 250 ms to 5 s. */
  pollMinMs?: number;
  pollMaxMs?: number;
}

export interface AcmeCertificate {
  /** The leaf alone (for status), and leaf plus intermediates (what the edge must serve). */
  certPem: string;
  chainPem: string;
  keyPem: string;
  notAfter: Date;
  issuer: string;
  accountUrl: string;
}

export async function createAccountKey(): Promise<string> {
  return (await acme.crypto.createPrivateEcdsaKey('P-256')).toString();
}

/** HTTP-01 key authorizations by token, served at /.well-known/acme-challenge/<token>. */
export interface ChallengeResponder {
  set(token: string, keyAuthorization: string): void;
  remove(token: string): void;
  /** A node http handler; answers 404 for any token it does not hold. */
  handle(req: IncomingMessage, res: ServerResponse): void;
}

export function createChallengeResponder(): ChallengeResponder {
  const tokens = new Map<string, string>();
  const prefix = '/.well-known/acme-challenge/';
  return {
    set: (t, k) => { tokens.set(t, k); },
    remove: (t) => { tokens.delete(t); },
    handle(req, res) {
      const path = (req.url ?? '').split('?')[0]!;
      const value = path.startsWith(prefix) ? tokens.get(path.slice(prefix.length)) : undefined;
      res.writeHead(value === undefined ? 404 : 200, { 'content-type': 'text/plain' });
      res.end(value ?? 'not found\n');
    },
  };
}

function trustDirectory(caPem: string | undefined): void {
  // acme-client keeps one axios instance per process: the directory's roots apply to every client here.
  acme.axios.defaults.httpsAgent = caPem ? new Agent({ ca: caPem }) : undefined;
}

/**
 * The account URL for `accountKeyPem`, registering the key if the server does not know it
 * (RFC 8555 7.3: newAccount answers 201 for a new key, 200 with the same URL for a known one).
 */
export async function registerAcmeAccount(r: Pick<AcmeIssueRequest, 'directoryUrl' | 'accountKeyPem' | 'email' | 'directoryCaPem'>): Promise<string> {
  trustDirectory(r.directoryCaPem);
  const client = new acme.Client({ directoryUrl: r.directoryUrl, accountKey: r.accountKeyPem });
  // client.createAccount turns the 200 for a known key into an empty account update, which
  // strict servers (Pebble) refuse; its lower layer sends newAccount alone and keeps the URL.
  const api = (client as unknown as { api: { createAccount(d: object): Promise<unknown>; getAccountUrl(): string } }).api;
  await api.createAccount({ termsOfServiceAgreed: true, ...(r.email ? { contact: [`mailto:${r.email}`] } : {}) });
  return api.getAccountUrl();
}

/** Orders, proves (HTTP-01) and downloads a certificate for `dnsNames`, with a new EC P-256 key. */
export async function issueAcmeCertificate(r: AcmeIssueRequest): Promise<AcmeCertificate> {
  const names = validateDnsNames(r.dnsNames);
  if (!/^https:\/\//.test(r.directoryUrl)) throw new Error(`acme.directoryUrl: "${r.directoryUrl}" must be an https:// ACME directory URL`);
  const l = log.child({ component: 'acme', directory: r.directoryUrl, names });
  let chainPem: string;
  let accountUrl = r.accountUrl;
  const key = await acme.crypto.createPrivateEcdsaKey('P-256');
  try {
    accountUrl ??= await registerAcmeAccount(r);
    trustDirectory(r.directoryCaPem);
    const client = new acme.Client({ directoryUrl: r.directoryUrl, accountKey: r.accountKeyPem, accountUrl, backoffMin: r.pollMinMs ?? 250, backoffMax: r.pollMaxMs ?? 5000, backoffAttempts: 12 });
    const [, csr] = await acme.crypto.createCsr({ commonName: names[0]!, altNames: names }, key);
    chainPem = await client.auto({
      csr, termsOfServiceAgreed: true, challengePriority: ['http-01'],
      // The client's own pre-check fetches the challenge through this host's resolver, which
      // need not see the name as the ACME server does; the server's validation is what counts.
      skipChallengeVerification: true,
      challengeCreateFn: async (_authz, challenge, keyAuthorization) => { r.responder.set(challenge.token, keyAuthorization); },
      challengeRemoveFn: async (_authz, challenge) => { r.responder.remove(challenge.token); },
    });
  } catch (err) {
    l.error('acme issuance failed', { phase: 'ApplyFailed', cause: err });
    throw new Error(`ACME ${r.directoryUrl}: certificate for ${names.join(', ')} not issued: ${(err as Error).message}`, { cause: err });
  }
  const certPem = chainPem.slice(0, chainPem.indexOf('-----END CERTIFICATE-----') + '-----END CERTIFICATE-----'.length) + '\n';
  const info = parseCertificate(certPem);
  l.info('acme certificate issued', { notAfter: info.notAfter.toISOString(), issuer: info.issuer });
  return { certPem, chainPem, keyPem: key.toString(), notAfter: info.notAfter, issuer: info.issuer, accountUrl };
}
