// A host reached over SSH: the same seam as LocalHost (host.ts), carried by one pooled
// ssh2 connection per host. Docker's API goes over a stream-local forward to the host's
// Docker socket (one channel per request), commands over exec channels, files over SFTP,
// and HTTP "as the host makes it" over direct-tcpip forwards. The host key is pinned:
// a server showing another key is refused before anything is sent to it.
import Docker from 'dockerode';
import { constants } from 'node:os';
import type { Duplex } from 'node:stream';
import ssh2, { type Client, type ClientChannel, type SFTPWrapper } from 'ssh2';
import { log as rootLog, type Logger } from '../util/log.js';
import { requestVia, type Command, type Host, type HostFiles, type HttpAnswer, type HttpOptions, type RunResult } from './host.js';
import { asSocket, ChannelAgent, commandLine } from './ssh-channels.js';
import { sftpFiles, uploadFile } from './ssh-files.js';
import { checkFingerprint, fingerprintOf } from './ssh-keys.js';

export const DOCKER_SOCKET = '/var/run/docker.sock';

export interface SshHostOptions {
  name: string;
  address: string;
  port?: number;
  user?: string;
  /** The control plane's private key (OpenSSH or PEM). */
  privateKey: string;
  /** The pinned host key, `SHA256:…` as `ssh-keygen -lf` prints it. */
  hostKey: string;
  /** How long a connection may take to be ready (default 10 s). */
  readyTimeoutMs?: number;
  /** Keepalive interval; a connection that misses 3 in a row is dropped (default 5 s). */
  keepaliveMs?: number;
  log?: Logger;
}

/** The server showed a host key other than the pinned one: nothing was sent to it. */
export class HostKeyMismatchError extends Error {
  constructor(readonly host: string, readonly address: string, readonly expected: string, readonly got: string) {
    super(`host ${host} (${address}): SSH host key mismatch: pinned ${expected}, the server showed ${got}; refused, nothing was run. If the host was reinstalled, check the new key on its console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and pin it again`);
    this.name = 'HostKeyMismatchError';
  }
}

// OpenSSH's MaxSessions (default 10) caps session channels (exec, sftp) per connection;
// forwards do not count. One is the SFTP session, and sshd frees a closed session a
// moment late: keep well below the cap (a refusal past it is retried, see session()).
const MAX_EXECS = 6;

/** A connection's errors that mean it is gone, so the channel was never opened and may be retried. */
function connectionGone(e: unknown): boolean {
  const m = (e as Error).message ?? '';
  return m === 'Not connected' || m === 'No response from server' || m === 'Keepalive timeout' || /ECONNRESET|EPIPE|socket.*(closed|ended)/i.test(m);
}

/** A channel ssh2 opens, made a socket inside its callback (before a later tick could miss its events). */
function socketOf(open: (cb: (err: Error | undefined, ch: ClientChannel) => void) => void): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    try {
      open((err, ch) => (err ? reject(err) : resolve(asSocket(ch))));
    } catch (e) {
      reject(e);
    }
  });
}

interface Live { client: Client; ready: Promise<Client>; gone: boolean; sftp?: Promise<SFTPWrapper> }

export class SshHost implements Host {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly user: string;
  readonly hostKey: string;
  readonly docker: Docker;
  readonly files: HostFiles;
  private readonly privateKey: string;
  private readonly log: Logger;
  private readonly httpAgent: ChannelAgent;
  private live: Live | undefined;
  private closed = false;
  private execs = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly opts: SshHostOptions) {
    if (!opts.name) throw new Error('host: name is required');
    if (!opts.address) throw new Error(`host ${opts.name}: address is required (a DNS name or IP address reachable over SSH)`);
    const port = opts.port ?? 22;
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`host ${opts.name}: port ${String(opts.port)} is not a TCP port (1 to 65535)`);
    const parsed = ssh2.utils.parseKey(opts.privateKey);
    if (parsed instanceof Error) throw new Error(`host ${opts.name}: privateKey is not an SSH private key: ${parsed.message}`);
    this.name = opts.name;
    this.address = opts.address;
    this.port = port;
    this.user = opts.user ?? 'root';
    this.hostKey = checkFingerprint(opts.hostKey, `host ${opts.name}: hostKey`);
    this.privateKey = opts.privateKey;
    this.log = (opts.log ?? rootLog).child({ host: this.name });
    const dockerAgent = new ChannelAgent(() => this.channel('docker', (c) => socketOf((cb) => c.openssh_forwardOutStreamLocal(DOCKER_SOCKET, cb))).catch((e: Error) => {
      // sshd says only "open failed" when nothing listens on the socket.
      const refused = /Channel open failure: (.*)$/.exec(e.message);
      throw refused ? new Error(`host ${this.name}: no Docker answering on ${DOCKER_SOCKET} (sshd: ${refused[1]}); is Docker installed and running there, and does its sshd allow stream-local forwarding (AllowStreamLocalForwarding)?`) : e;
    }));
    // host: undefined keeps DOCKER_HOST in this process's environment out of it.
    this.docker = new Docker({ socketPath: DOCKER_SOCKET, host: undefined, protocol: 'http', agent: dockerAgent } as Docker.DockerOptions);
    this.httpAgent = new ChannelAgent((o) => this.forward(String(o.host ?? o.hostname ?? 'localhost'), Number(o.port ?? 80), o.timeout ?? 5000));
    this.files = sftpFiles(this.name, () => this.sftp());
  }

  /** Runs argv on the host (quoted for its shell, so no argument is ever shell syntax). */
  async run(cmd: Command): Promise<RunResult> {
    const line = commandLine(cmd.argv);
    const lost = (): string => `host ${this.name}: the SSH connection closed while running ${cmd.argv.join(' ')}; it may or may not have finished`;
    await this.acquireExec();
    try {
      // Output and exit status are gathered from inside ssh2's callback: they can arrive
      // in the same packet batch as the exec's reply, before any later tick would listen.
      const { done } = await this.session(`run ${cmd.argv[0]}`, (c) => new Promise<{ done: Promise<RunResult> }>((resolve, reject) => {
        c.exec(line, (err, ch) => (err ? reject(err) : resolve({ done: collect(ch, cmd.input, lost) })));
      }));
      return await done;
    } finally {
      this.releaseExec();
    }
  }

  request(url: string, opts?: HttpOptions): Promise<HttpAnswer> {
    return requestVia(this.httpAgent, url, opts);
  }

  /** Copies a local file to the host (atomically, with `mode`): how a binary such as runsc gets there. */
  async upload(localPath: string, remotePath: string, mode = 0o755): Promise<void> {
    await uploadFile(await this.sftp(), localPath, remotePath, mode).catch((e: Error) => {
      throw new Error(`host ${this.name}: uploading ${localPath} to ${remotePath} over SFTP: ${e.message}`);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const live = this.live;
    this.live = undefined;
    if (!live) return;
    await new Promise<void>((resolve) => {
      live.client.once('close', () => resolve());
      live.client.end();
      setTimeout(resolve, 2000).unref();
    });
  }

  /** The pooled connection, opened on first use and again after it dropped. */
  private connection(): Promise<Client> {
    if (this.closed) return Promise.reject(new Error(`host ${this.name}: closed; make a new SshHost to reach it again`));
    if (this.live && !this.live.gone) return this.live.ready;
    const client = new ssh2.Client(); // ssh2 is CommonJS: its classes come off the default export
    const live: Live = { client, gone: false, ready: undefined as unknown as Promise<Client> };
    const drop = (): void => {
      live.gone = true;
      if (this.live === live) this.live = undefined;
    };
    live.ready = new Promise<Client>((resolve, reject) => {
      let shown: string | undefined;
      let ready = false;
      const started = Date.now();
      client.on('ready', () => {
        ready = true;
        this.log.debug('ssh connected', { address: this.address, ms: Date.now() - started });
        resolve(client);
      });
      client.on('error', (e: Error) => {
        drop();
        if (ready) {
          this.log.warn('ssh connection lost', { address: this.address, cause: e.message });
          return;
        }
        reject(shown && shown !== this.hostKey
          ? new HostKeyMismatchError(this.name, `${this.address}:${this.port}`, this.hostKey, shown)
          : new Error(`host ${this.name}: SSH to ${this.user}@${this.address}:${this.port} failed: ${e.message}`));
      });
      client.on('close', () => {
        drop();
        if (!ready) reject(new Error(`host ${this.name}: SSH to ${this.address}:${this.port} closed before it was ready`));
      });
      client.connect({
        host: this.address, port: this.port, username: this.user, privateKey: this.privateKey,
        readyTimeout: this.opts.readyTimeoutMs ?? 10_000,
        keepaliveInterval: this.opts.keepaliveMs ?? 5000, keepaliveCountMax: 3,
        hostVerifier: (key: Buffer) => {
          shown = fingerprintOf(key);
          return shown === this.hostKey;
        },
      });
      // Many small messages (a channel open, a request) each wait on the last one's ACK
      // under Nagle: 40 ms stalls. OpenSSH sets TCP_NODELAY too.
      client.setNoDelay(true);
    });
    live.ready.catch(() => undefined);
    this.live = live;
    return live.ready;
  }

  /**
   * Opens a channel on the pooled connection. If the connection turns out to be gone
   * (nothing was sent on the channel yet), it is reconnected once and tried again.
   */
  private async channel<T>(what: string, open: (c: Client) => Promise<T>): Promise<T> {
    const first = this.live;
    const c = await this.connection();
    try {
      return await open(c);
    } catch (e) {
      if (!connectionGone(e)) throw new Error(`host ${this.name}: ${what}: ${(e as Error).message}`);
      if (this.live?.client === c) this.live.gone = true;
      this.log.info('ssh connection dropped; reconnecting', { what, cause: (e as Error).message, reused: first !== undefined });
      c.destroy();
      return open(await this.connection()).catch((e2: Error) => {
        throw new Error(`host ${this.name}: ${what} after reconnecting: ${e2.message}`);
      });
    }
  }

  /**
   * Opens a session channel (exec, sftp). sshd refuses one past MaxSessions ("open
   * failed"), and frees a closed one a moment after it says so: nothing ran, so retry.
   */
  private async session<T>(what: string, open: (c: Client) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.channel(what, open);
      } catch (e) {
        if (attempt >= 6 || !/Channel open failure: open failed/.test((e as Error).message)) throw e;
        await new Promise((r) => setTimeout(r, 20 * 2 ** attempt));
      }
    }
  }

  private forward(host: string, port: number, timeoutMs: number): Promise<Duplex> {
    const opened = this.channel(`connect to ${host}:${port}`, (c) => socketOf((cb) => c.forwardOut('127.0.0.1', 0, host, port, cb)));
    // sshd connects before it answers; an address that drops packets would hold us for minutes.
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`host ${this.name}: no connection to ${host}:${port} from there within ${timeoutMs} ms`));
        void opened.then((ch) => ch.destroy(), () => undefined);
      }, timeoutMs);
      opened.then((ch) => { clearTimeout(timer); resolve(ch); }, (e: Error) => { clearTimeout(timer); reject(e); });
    });
  }

  private sftp(): Promise<SFTPWrapper> {
    return this.connection().then((c) => {
      const live = this.live;
      if (!live || live.client !== c) return this.sftp();
      live.sftp ??= this.session('sftp', (cl) => new Promise<SFTPWrapper>((resolve, reject) => {
        cl.sftp((err, s) => (err ? reject(err) : resolve(s)));
      })).then((s) => {
        s.on('close', () => { if (live.sftp) live.sftp = undefined; });
        return s;
      });
      live.sftp.catch(() => { live.sftp = undefined; });
      return live.sftp;
    });
  }

  private acquireExec(): Promise<void> {
    if (this.execs < MAX_EXECS) {
      this.execs++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(() => { this.execs++; resolve(); }));
  }

  private releaseExec(): void {
    this.execs--;
    this.waiting.shift()?.();
  }
}

/** Feeds `input` to an exec channel and gathers its output and exit status. */
function collect(ch: ClientChannel, input: string | undefined, lost: () => string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    let status: number | undefined;
    ch.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    ch.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    ch.on('exit', (code: number | null, signal?: string) => {
      // A signal is reported as a shell reports it: 128 + its number.
      status = code ?? 128 + (signal ? (constants.signals as Record<string, number>)[`SIG${signal}`] ?? 0 : 0);
    });
    ch.on('error', () => undefined);
    ch.on('close', () => (status === undefined ? reject(new Error(lost())) : resolve({ code: status, stdout, stderr })));
    ch.end(input ?? '');
  });
}
