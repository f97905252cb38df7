// SSH keys for hosts reached over SSH: the fingerprint a host key is pinned by (as
// `ssh-keygen -lf` shows it), reading a server's host key to show and pin it, and the
// control plane's own ed25519 key pair, kept in the data dir and never in git.
import { createHash, randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import ssh2 from 'ssh2';

// ssh2 is CommonJS: its names come off the default export.
const { Client, utils } = ssh2;

/** `SHA256:` and the unpadded base64 of the SHA-256 of a public key blob, as OpenSSH prints it. */
export function fingerprintOf(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;

/** Returns `value` when it is a SHA256 fingerprint; throws naming `field` and the fix otherwise. */
export function checkFingerprint(value: string, field = 'hostKey'): string {
  if (!FINGERPRINT.test(value)) {
    throw new Error(`${field}: ${JSON.stringify(value)} is not an SSH host key fingerprint; give it as \`ssh-keygen -lf\` prints it, SHA256: and 43 base64 characters (\`mlink host add\` shows it)`);
  }
  return value;
}

/**
 * Connects only far enough to read the server's host key (the one ssh2 negotiates, as an
 * SshHost will) and returns its fingerprint. Nothing is authenticated or run.
 */
export function probeHostKey(address: string, port = 22, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let seen: string | undefined;
    const done = (err?: Error): void => {
      client.removeAllListeners();
      client.on('error', () => undefined);
      client.end();
      if (seen) resolve(seen);
      else reject(new Error(`reading the SSH host key of ${address}:${port}: ${err?.message ?? 'the connection closed before the server showed its key'}`));
    };
    client.on('error', done).on('close', () => done()).on('ready', () => done());
    client.connect({
      host: address, port, username: 'mlink-probe', readyTimeout: timeoutMs,
      // Refusing the key ends the handshake before authentication.
      hostVerifier: (key: Buffer) => { seen = fingerprintOf(key); return false; },
    });
  });
}

export interface KeyPair {
  /** OpenSSH private key. */
  privateKey: string;
  /** One `authorized_keys` line: `ssh-ed25519 AAAA… comment`. */
  publicKey: string;
  fingerprint: string;
}

/** A new ed25519 key pair. */
export function generateControlKey(comment = 'mlink-control-plane'): KeyPair {
  const pair = utils.generateKeyPairSync('ed25519', { comment });
  return describeKey(pair.private, comment, 'a new key');
}

/** The public half and fingerprint of an ed25519 private key; throws naming `where` if it is not one. */
export function describeKey(privateKey: string, comment: string, where: string): KeyPair {
  const parsed = utils.parseKey(privateKey);
  if (parsed instanceof Error) throw new Error(`${where}: not an SSH private key (${parsed.message}); remove it and a new one is made`);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key.type !== 'ssh-ed25519' || key.getPrivatePEM() === null) {
    throw new Error(`${where}: expected an ed25519 private key, found ${key?.type ?? 'nothing'}; remove it and a new one is made`);
  }
  const blob = key.getPublicSSH();
  return { privateKey, publicKey: `ssh-ed25519 ${blob.toString('base64')} ${comment}`, fingerprint: fingerprintOf(blob) };
}

/**
 * The control plane's key pair at `path` (private, mode 0600) and `path.pub`, made on
 * first use. Two processes starting at once agree: the key is written aside and linked
 * into place (which fails if the file exists), so the loser reads the winner's whole key.
 */
export async function loadControlKey(path: string, comment = 'mlink-control-plane'): Promise<KeyPair & { created: boolean }> {
  const existing = await readFile(path, 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return undefined;
    throw new Error(`reading the control plane's SSH key ${path}: ${e.message}`);
  });
  if (existing !== undefined) return { ...describeKey(existing, comment, path), created: false };
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const pair = generateControlKey(comment);
  const aside = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(aside, pair.privateKey, { mode: 0o600, flag: 'wx' });
    await link(aside, path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return loadControlKey(path, comment);
    throw new Error(`writing the control plane's SSH key ${path}: ${(e as Error).message}`);
  } finally {
    await rm(aside, { force: true });
  }
  await writeFile(`${path}.pub`, `${pair.publicKey}\n`, { mode: 0o644 });
  return { ...pair, created: true };
}
