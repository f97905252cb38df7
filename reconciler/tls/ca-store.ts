// Where the cluster's CA lives: the root key in the data dir's keys folder (0600, never in
// git), the root certificate beside it and committed to the state repo at tls/ca.pem so
// clients and auditors can trust it. `mlink init` calls ensureClusterCa and commits `change`.
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createRootCa, type CaMaterial, type RootOptions } from './ca.js';
import { parseCertificate } from './cert-info.js';

export const CA_KEY_FILE = 'ca.key.pem';
export const CA_CERT_FILE = 'ca.pem';
/** The root certificate's path in the state repo. */
export const CA_REPO_PATH = 'tls/ca.pem';

export interface EnsuredCa {
  ca: CaMaterial;
  created: boolean;
  keyFile: string;
  certFile: string;
  /** The file for the state repo: the lead's commit path takes it as a Change. */
  change: { path: string; content: string };
}

/** Loads the cluster CA from `keysDir`, or makes one there when none exists. Idempotent. */
export async function ensureClusterCa(keysDir: string, opts: RootOptions = {}): Promise<EnsuredCa> {
  const keyFile = join(keysDir, CA_KEY_FILE);
  const certFile = join(keysDir, CA_CERT_FILE);
  let created = false;
  let ca: CaMaterial;
  if (existsSync(keyFile) !== existsSync(certFile)) {
    throw new Error(`cluster CA: ${existsSync(keyFile) ? certFile : keyFile} is missing beside ${existsSync(keyFile) ? keyFile : certFile}; restore it from a backup (or move both away to make a new CA, which every client must trust again)`);
  }
  if (existsSync(keyFile)) {
    ca = await loadClusterCa(keysDir);
  } else {
    ca = await createRootCa(opts);
    await mkdir(keysDir, { recursive: true, mode: 0o700 });
    // wx: two inits racing must not leave a key and a certificate that do not match.
    await writeFile(keyFile, ca.keyPem, { mode: 0o600, flag: 'wx' });
    await chmod(keyFile, 0o600);
    await writeFile(certFile, ca.certPem, { mode: 0o644, flag: 'wx' });
    created = true;
  }
  return { ca, created, keyFile, certFile, change: { path: CA_REPO_PATH, content: ca.certPem } };
}

export async function loadClusterCa(keysDir: string): Promise<CaMaterial> {
  const [keyPem, certPem] = await Promise.all([readFile(join(keysDir, CA_KEY_FILE), 'utf8'), readFile(join(keysDir, CA_CERT_FILE), 'utf8')]);
  const info = parseCertificate(certPem);
  if (!info.isCa) throw new Error(`cluster CA: ${join(keysDir, CA_CERT_FILE)} is not a CA certificate (${info.subject})`);
  const spki = (k: ReturnType<typeof createPublicKey>): string => k.export({ type: 'spki', format: 'der' }).toString('base64');
  if (spki(createPublicKey(createPrivateKey(keyPem))) !== spki(new X509Certificate(certPem).publicKey)) {
    throw new Error(`cluster CA: ${join(keysDir, CA_KEY_FILE)} does not belong to ${join(keysDir, CA_CERT_FILE)}; restore the matching pair from a backup`);
  }
  return { certPem, keyPem };
}
