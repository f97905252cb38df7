// SSH channels as the sockets Node's HTTP client and docker-modem expect, and the shell
// quoting of a command's argv. Pure or thin: SshHost (ssh-host.ts) owns the connection.
import { inspect } from 'node:util';
import { Agent, type ClientRequestArgs } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ClientChannel } from 'ssh2';

/**
 * One shell word for a POSIX shell (sshd runs every command through the user's login
 * shell): single quotes, each inner quote closed, escaped and reopened.
 */
export function shellQuote(arg: string): string {
  if (arg.includes('\0')) throw new Error(`a command argument cannot hold a NUL byte: ${JSON.stringify(arg)}`);
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** The command line sshd hands the remote shell, so that it runs exactly `argv`. */
export function commandLine(argv: string[]): string {
  if (argv.length === 0 || !argv[0]) throw new Error('a command needs a program to run: argv is empty');
  return argv.map(shellQuote).join(' ');
}

const noop = (): void => undefined;

/**
 * Gives an SSH channel what Node's HTTP client calls on a socket. `setTimeout` is real
 * (an idle timer re-armed by incoming data), so request timeouts still fire.
 */
export function asSocket(channel: ClientChannel): Duplex {
  const sock = channel as ClientChannel & Record<string, unknown>;
  let idleMs = 0;
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    if (timer) clearTimeout(timer);
    timer = idleMs > 0 ? setTimeout(() => channel.emit('timeout'), idleMs) : undefined;
  };
  const push = channel.push.bind(channel);
  sock.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
    if (idleMs > 0) arm();
    return push(chunk, encoding);
  };
  sock.setTimeout = (ms: number, cb?: () => void): Duplex => {
    idleMs = ms;
    if (cb) channel.once('timeout', cb);
    arm();
    return channel;
  };
  channel.once('close', () => { if (timer) clearTimeout(timer); });
  // As a net.Socket does by default (allowHalfOpen false): when the far side ends, end
  // ours, or a finished hijacked exec would keep its channel (and sshd its socket) open.
  channel.once('end', () => { if (!channel.writableEnded) channel.end(); });
  sock.setKeepAlive = noop;
  sock.setNoDelay = noop;
  sock.ref = noop;
  sock.unref = noop;
  sock.destroySoon = () => channel.destroy();
  return channel;
}

/**
 * An HTTP agent whose every connection is a new channel on one SSH connection: `open`
 * gets the request's options (host, port) and returns the channel, made a socket (asSocket). No keep-alive: a
 * channel opens in one round trip on the connection that is already up.
 */
export class ChannelAgent extends Agent {
  constructor(private readonly open: (opts: ClientRequestArgs) => Promise<Duplex>) {
    super({ keepAlive: false });
  }

  override createConnection(opts: ClientRequestArgs, cb?: (err: Error | null, stream: Duplex) => void): undefined {
    this.open(opts).then((sock) => cb?.(null, sock), (err: Error) => cb?.(err, undefined as unknown as Duplex));
    return undefined;
  }

  /**
   * docker-modem formats every request's options, agent included, with
   * util.inspect(depth: null, showHidden) whether its debug log is on or not. Through this
   * agent that graph is the whole SSH connection (every channel and buffer): a second and
   * more of CPU per Docker call once a few streams are open. One line instead.
   */
  [inspect.custom](): string {
    return 'ChannelAgent(ssh)';
  }
}
