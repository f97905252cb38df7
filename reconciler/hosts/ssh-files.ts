// A host's files over SFTP (ssh2's client against OpenSSH's sftp-server): writes go to a
// temp file beside the target, get their mode, are flushed, and are renamed over it with
// OpenSSH's posix-rename, so a reader (Traefik watching its routes) never sees half a file.
import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import type { SFTPWrapper } from 'ssh2';
import type { HostFiles } from './host.js';

const NO_SUCH_FILE = 2; // SSH_FX_NO_SUCH_FILE

function code(e: unknown): number | undefined {
  return (e as { code?: number }).code;
}

function call<T>(fn: (cb: (err: Error | null | undefined, v?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    try {
      fn((err, v) => (err ? reject(err) : resolve(v as T)));
    } catch (e) {
      reject(e);
    }
  });
}

async function mkdirs(sftp: SFTPWrapper, dir: string): Promise<void> {
  if (dir === '/' || dir === '.' || dir === '') return;
  const there = await call<unknown>((cb) => sftp.stat(dir, cb)).then(() => true, (e) => {
    if (code(e) === NO_SUCH_FILE) return false;
    throw e;
  });
  if (there) return;
  await mkdirs(sftp, posix.dirname(dir));
  await call<void>((cb) => sftp.mkdir(dir, { mode: 0o755 }, cb)).catch(async (e) => {
    // Made meanwhile by another writer: fine.
    const made = await call<unknown>((cb) => sftp.stat(dir, cb)).then(() => true, () => false);
    if (!made) throw e;
  });
}

async function writeAtomically(sftp: SFTPWrapper, path: string, content: string, mode: number): Promise<void> {
  await mkdirs(sftp, posix.dirname(path));
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const data = Buffer.from(content, 'utf8');
  try {
    const handle = await call<Buffer>((cb) => sftp.open(tmp, 'wx', { mode }, cb));
    try {
      for (let at = 0; at < data.length;) {
        const n = Math.min(32 * 1024, data.length - at);
        await call<void>((cb) => sftp.write(handle, data, at, n, at, cb));
        at += n;
      }
      // sftp-server's open applies its umask; set the mode asked for.
      await call<void>((cb) => sftp.fchmod(handle, mode, cb));
      await call<void>((cb) => sftp.ext_openssh_fsync(handle, cb));
    } finally {
      await call<void>((cb) => sftp.close(handle, cb)).catch(() => undefined);
    }
    await call<void>((cb) => sftp.ext_openssh_rename(tmp, path, cb));
  } catch (e) {
    await call<void>((cb) => sftp.unlink(tmp, cb)).catch(() => undefined);
    throw e;
  }
}

/** Copies a local file (a binary, say) to the host: pipelined SFTP writes to a temp file, its mode, renamed into place. */
export async function uploadFile(sftp: SFTPWrapper, localPath: string, remotePath: string, mode: number): Promise<void> {
  await mkdirs(sftp, posix.dirname(remotePath));
  const tmp = `${remotePath}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await call<void>((cb) => sftp.fastPut(localPath, tmp, { mode, concurrency: 32, chunkSize: 32 * 1024 }, cb));
    await call<void>((cb) => sftp.chmod(tmp, mode, cb));
    await call<void>((cb) => sftp.ext_openssh_rename(tmp, remotePath, cb));
  } catch (e) {
    await call<void>((cb) => sftp.unlink(tmp, cb)).catch(() => undefined);
    throw e;
  }
}

/** HostFiles over the SFTP session `session()` gives (opened once per connection by SshHost). */
export function sftpFiles(host: string, session: () => Promise<SFTPWrapper>): HostFiles {
  const fail = (what: string, path: string) => (e: unknown): never => {
    throw new Error(`host ${host}: ${what} ${path} over SFTP: ${(e as Error).message}`);
  };
  return {
    write: async (path, content, opts = {}) => {
      await writeAtomically(await session(), path, content, opts.mode ?? 0o644).catch(fail('writing', path));
    },
    read: async (path) => {
      const sftp = await session();
      return call<Buffer>((cb) => sftp.readFile(path, cb)).then((b) => b.toString('utf8'), (e) => {
        if (code(e) === NO_SUCH_FILE) return null;
        return fail('reading', path)(e);
      });
    },
    remove: async (path) => {
      const sftp = await session();
      await call<void>((cb) => sftp.unlink(path, cb)).catch((e) => {
        if (code(e) !== NO_SUCH_FILE) fail('removing', path)(e);
      });
    },
    list: async (dir) => {
      const sftp = await session();
      return call<Array<{ filename: string }>>((cb) => sftp.readdir(dir, cb)).then((l) => l.map((f) => f.filename).sort(), (e) => {
        if (code(e) === NO_SUCH_FILE) return [];
        return fail('listing', dir)(e);
      });
    },
  };
}
