// ACME for apps' certificates, run by the control plane's worker: one account key in the
// data dir's keys (0600, never in git), an HTTP-01 responder on loopback, and a challenge
// route on the edge that sends `/.well-known/acme-challenge/` to it ahead of every app's
// redirect and allow-list (edge/tls-config.ts acmeChallengeConfig). The ACME server
// resolves the app's name (through the records ml.ink keeps) and fetches the token
// through the edge, as it would any site's.
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import type { IssuedCertificate } from '../edge/app-tls.js';
import { acmeChallengeConfig, renderDynamicYaml } from '../edge/tls-config.js';
import type { IssuerConfig } from '../source/names.js';
import { createAccountKey, createChallengeResponder, issueAcmeCertificate } from '../tls/acme.js';
import type { Logger } from '../util/log.js';

export const ACME_ACCOUNT_KEY = 'acme-account.key.pem';
const ACCOUNTS_FILE = 'acme-accounts.json';

export interface AcmeService {
  /** Where the edge on this machine reaches the responder. */
  responderUrl: string;
  issue(config: Extract<IssuerConfig, { kind: 'acme' }>, names: string[]): Promise<IssuedCertificate>;
  close(): Promise<void>;
}

async function accountKey(keysDir: string): Promise<string> {
  const file = join(keysDir, ACME_ACCOUNT_KEY);
  if (existsSync(file)) return readFile(file, 'utf8');
  await mkdir(keysDir, { recursive: true, mode: 0o700 });
  const pem = await createAccountKey();
  // wx: two workers racing keep one key.
  await writeFile(file, pem, { mode: 0o600, flag: 'wx' }).catch(() => undefined);
  return readFile(file, 'utf8');
}

export async function startAcme(opts: { keysDir: string; log: Logger }): Promise<AcmeService> {
  const responder = createChallengeResponder();
  const server: Server = createServer((req, res) => responder.handle(req, res));
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', () => resolve()); });
  const responderUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const accountsFile = join(opts.keysDir, ACCOUNTS_FILE);
  return {
    responderUrl,
    async issue(config, names) {
      const accounts = JSON.parse(await readFile(accountsFile, 'utf8').catch(() => '{}')) as Record<string, string>;
      const cert = await issueAcmeCertificate({
        directoryUrl: config.directoryUrl, accountKeyPem: await accountKey(opts.keysDir), accountUrl: accounts[config.directoryUrl],
        dnsNames: names, responder, ...(config.email ? { email: config.email } : {}), ...(config.caPem ? { directoryCaPem: config.caPem } : {}),
      });
      if (accounts[config.directoryUrl] !== cert.accountUrl) await writeFile(accountsFile, JSON.stringify({ ...accounts, [config.directoryUrl]: cert.accountUrl }, null, 2) + '\n', { mode: 0o600 });
      return { chainPem: cert.chainPem, keyPem: cert.keyPem };
    },
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

/** The challenge route file for an edge: the responder, ahead of every app. */
export function renderChallengeRoute(cluster: string, responderUrl: string): string {
  return [
    '# Written by ml.ink; edits are overwritten by the next reconcile. ACME HTTP-01 challenges to the control plane.',
    '# ink.ml.managed-by: mlink',
    `# ink.ml.cluster: ${cluster}`,
    renderDynamicYaml(acmeChallengeConfig({ router: challengeRouter(cluster), responderUrl })),
  ].join('\n');
}

export function challengeRouter(cluster: string): string {
  return `mlink-${cluster}-acme-challenge`;
}
