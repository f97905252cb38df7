// The pure and local parts of SSH hosts: argv quoted for a remote POSIX shell, host key
// fingerprints as OpenSSH prints them, the control plane's key pair in the data dir, and
// SshHost refusing bad options before it connects anywhere.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { commandLine, shellQuote } from '../../reconciler/hosts/ssh-channels.js';
import { SshHost } from '../../reconciler/hosts/ssh-host.js';
import { checkFingerprint, fingerprintOf, generateControlKey, loadControlKey } from '../../reconciler/hosts/ssh-keys.js';

const dir = mkdtempSync(join(tmpdir(), 'mlink-ssh-keys-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('commandLine', () => {
  it('leaves plain words alone and single-quotes the rest', () => {
    expect(commandLine(['iptables', '-w', '-A', 'DOCKER-USER', '-s', '10.0.0.0/8'])).toBe('iptables -w -A DOCKER-USER -s 10.0.0.0/8');
    expect(commandLine(['echo', 'a b', `it's`, '$(id)', ''])).toBe(`echo 'a b' 'it'\\''s' '$(id)' ''`);
  });

  it('gives a POSIX shell back exactly the argv', () => {
    const argv = ['printf', '[%s]\n', 'a b', `"double" 'single'`, '$(touch /nonexistent)', '`id`', '; rm -rf /', 'tab\there', 'new\nline', '*', '~', '!x', '\\'];
    const r = spawnSync('sh', ['-c', commandLine(argv)], { encoding: 'utf8' });
    expect(r.stdout).toBe(argv.slice(2).map((a) => `[${a}]\n`).join(''));
  });

  it('refuses an empty argv and a NUL byte', () => {
    expect(() => commandLine([])).toThrow(/argv is empty/);
    expect(() => shellQuote('a\0b')).toThrow(/NUL byte/);
  });
});

describe('host key fingerprints', () => {
  it('match ssh-keygen -lf', () => {
    const pair = generateControlKey('fp-test');
    const pub = join(dir, 'fp.pub');
    writeFileSync(pub, `${pair.publicKey}\n`);
    const shown = spawnSync('ssh-keygen', ['-lf', pub], { encoding: 'utf8' }).stdout.split(' ')[1];
    expect(fingerprintOf(Buffer.from(pair.publicKey.split(' ')[1]!, 'base64'))).toBe(shown);
    expect(pair.fingerprint).toBe(shown);
  });

  it('are checked for shape, naming the field', () => {
    expect(checkFingerprint('SHA256:bXubMG/kkT8Oe7xPaolfROuIGz6MRrq57GulMsg1ebw')).toMatch(/^SHA256:/);
    expect(() => checkFingerprint('MD5:aa:bb', 'hosts/web-1.yaml: spec.hostKey')).toThrow(/hosts\/web-1\.yaml: spec\.hostKey: "MD5:aa:bb" is not an SSH host key fingerprint/);
  });
});

describe('the control plane key', () => {
  it('is made once with mode 0600 and read back the same; two at once agree', async () => {
    const path = join(dir, 'keys', 'ssh', 'id_ed25519');
    const [a, b] = await Promise.all([loadControlKey(path), loadControlKey(path)]);
    expect(a.publicKey).toBe(b.publicKey);
    expect([a.created, b.created].filter(Boolean)).toHaveLength(1);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(`${path}.pub`, 'utf8')).toBe(`${a.publicKey}\n`);
    const again = await loadControlKey(path);
    expect(again).toMatchObject({ created: false, publicKey: a.publicKey, fingerprint: a.fingerprint });
    expect(spawnSync('ssh-keygen', ['-y', '-f', path], { encoding: 'utf8' }).stdout.split(' ').slice(0, 2)).toEqual(a.publicKey.split(' ').slice(0, 2));
  });

  it('that is not an ed25519 key is refused, naming the file', async () => {
    const path = join(dir, 'bad');
    writeFileSync(path, 'not a key');
    await expect(loadControlKey(path)).rejects.toThrow(new RegExp(`${path}: not an SSH private key`));
  });
});

describe('SshHost options', () => {
  const ok = { name: 'web-1', address: '192.0.2.10', privateKey: generateControlKey().privateKey, hostKey: 'SHA256:bXubMG/kkT8Oe7xPaolfROuIGz6MRrq57GulMsg1ebw' };
  it('are checked before anything connects', () => {
    expect(new SshHost(ok)).toMatchObject({ name: 'web-1', address: '192.0.2.10', port: 22, user: 'root' });
    expect(() => new SshHost({ ...ok, port: 70000 })).toThrow(/host web-1: port 70000 is not a TCP port/);
    expect(() => new SshHost({ ...ok, hostKey: 'abc' })).toThrow(/host web-1: hostKey: "abc" is not an SSH host key fingerprint/);
    expect(() => new SshHost({ ...ok, privateKey: 'nope' })).toThrow(/host web-1: privateKey is not an SSH private key/);
    expect(() => new SshHost({ ...ok, address: '' })).toThrow(/host web-1: address is required/);
  });
});
