// Secrets: values are encrypted with age to the cluster's recipients and stored as
// secrets/<project>/<app>/<NAME>.age (ASCII-armored). Only names are ever shown; the
// private key stays in the data dir and is used only on the way into a container.
import { Decrypter, Encrypter, armor, generateX25519Identity, identityToRecipient } from 'age-encryption';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const CLUSTER_KEY_FILE = 'cluster.agekey';

export interface ClusterKey { identity: string; recipient: string }

export async function generateClusterKey(): Promise<ClusterKey> {
  const identity = await generateX25519Identity();
  return { identity, recipient: await identityToRecipient(identity) };
}

/** Writes the private key to `<keysDir>/cluster.agekey` (mode 0600) in age-keygen's format. */
export async function saveClusterKey(keysDir: string, key: ClusterKey): Promise<string> {
  await mkdir(keysDir, { recursive: true, mode: 0o700 });
  const file = join(keysDir, CLUSTER_KEY_FILE);
  const text = `# created: ${new Date().toISOString()}\n# public key: ${key.recipient}\n${key.identity}\n`;
  await writeFile(file, text, { mode: 0o600, flag: 'wx' });
  await chmod(file, 0o600);
  return file;
}

export async function loadClusterKey(keysDir: string): Promise<ClusterKey> {
  const text = await readFile(join(keysDir, CLUSTER_KEY_FILE), 'utf8');
  const identity = text.split('\n').find((l) => l.startsWith('AGE-SECRET-KEY-'));
  if (!identity) throw new Error(`${join(keysDir, CLUSTER_KEY_FILE)} holds no AGE-SECRET-KEY line`);
  return { identity: identity.trim(), recipient: await identityToRecipient(identity.trim()) };
}

export async function encryptSecret(value: string, recipients: string[]): Promise<string> {
  if (recipients.length === 0) throw new Error('no age recipients: mlink.yaml spec.secrets.recipients is empty');
  const e = new Encrypter();
  for (const r of recipients) e.addRecipient(r);
  return armor.encode(await e.encrypt(value));
}

export async function decryptSecret(armored: string, identity: string): Promise<string> {
  const d = new Decrypter();
  d.addIdentity(identity);
  return d.decrypt(armor.decode(armored), 'text');
}
