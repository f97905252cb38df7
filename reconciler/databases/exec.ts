// Commands inside a database container through the Docker API (exec), so the same code
// works on a local Docker and on one reached over SSH: nothing touches the Docker host's
// files. Output is streamed with backpressure (a dump can be far larger than memory);
// secrets go in the exec's environment, never in its command line, which Docker keeps
// and shows (`docker exec` inspect, `ps` inside the container).
import type Docker from 'dockerode';
import { PassThrough, Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface ExecOptions {
  user?: string;
  env?: Record<string, string>;
  /** Fed to the command's stdin, which is then closed. */
  stdin?: Readable | Buffer | string;
  /** Give up after this long (the stream is cut; the result says so). */
  timeoutMs?: number;
}

export interface ExecResult { code: number; stdout: Buffer; stderr: string }

export interface ExecStream {
  /** The command's stdout, as it comes. */
  stdout: Readable;
  /** Settles once the command has exited: its exit code and the last 64 KiB of stderr. */
  done: Promise<{ code: number; stderr: string }>;
}

const STDERR_KEEP = 64 * 1024;

/** Docker's multiplexed exec stream (8-byte frame headers) to stdout bytes; stderr to a callback. Respects backpressure, unlike modem.demuxStream. */
class Demux extends Transform {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly onStderr: (b: Buffer) => void) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 8) {
      const type = this.buf[0];
      const size = this.buf.readUInt32BE(4);
      if (this.buf.length < 8 + size) break;
      const payload = this.buf.subarray(8, 8 + size);
      this.buf = this.buf.subarray(8 + size);
      if (type === 2) this.onStderr(payload);
      else this.push(payload);
    }
    cb();
  }
}

/** Starts `cmd` in `container` and streams its stdout. */
export async function execStream(docker: Docker, container: string, cmd: string[], opts: ExecOptions = {}): Promise<ExecStream> {
  const exec = await docker.getContainer(container).exec({
    Cmd: cmd,
    AttachStdout: true,
    AttachStderr: true,
    AttachStdin: opts.stdin !== undefined,
    Tty: false,
    ...(opts.user ? { User: opts.user } : {}),
    ...(opts.env ? { Env: Object.entries(opts.env).map(([k, v]) => `${k}=${v}`) } : {}),
  });
  const socket = (await exec.start({ hijack: true, stdin: opts.stdin !== undefined })) as unknown as NodeJS.ReadWriteStream & { destroy(e?: Error): void };
  let stderr = Buffer.alloc(0);
  const demux = new Demux((b) => {
    stderr = Buffer.concat([stderr, b]);
    if (stderr.length > STDERR_KEEP) stderr = stderr.subarray(stderr.length - STDERR_KEEP);
  });
  const stdout = new PassThrough();
  let timedOut = false;
  const timer = opts.timeoutMs ? setTimeout(() => { timedOut = true; socket.destroy(); }, opts.timeoutMs) : undefined;
  const reading = pipeline(socket as unknown as Readable, demux, stdout).catch((e: unknown) => {
    if (!timedOut) stdout.destroy(e as Error);
  });
  let feeding: Promise<void> = Promise.resolve();
  if (opts.stdin !== undefined) {
    const input = typeof opts.stdin === 'string' || Buffer.isBuffer(opts.stdin) ? Readable.from([Buffer.from(opts.stdin)]) : opts.stdin;
    // Ending the socket's write side closes the command's stdin (a half-close, as `docker exec -i` does).
    feeding = new Promise<void>((resolve, reject) => {
      const fail = (e: Error): void => { socket.destroy(e); reject(e); };
      // The input may have failed or ended while the exec was being made.
      if (input.errored) return fail(input.errored);
      input.on('error', fail);
      input.on('end', () => resolve());
      input.pipe(socket as unknown as NodeJS.WritableStream, { end: true });
    });
  }
  const done = (async () => {
    try {
      await feeding;
      await reading;
    } finally {
      if (timer) clearTimeout(timer);
    }
    if (timedOut) return { code: -1, stderr: `${stderr.toString('utf8')}\n(timed out after ${opts.timeoutMs} ms)`.trim() };
    // Docker records the exit code a moment after the stream ends.
    for (let i = 0; i < 200; i++) {
      const info = await exec.inspect();
      if (!info.Running && info.ExitCode !== null) return { code: info.ExitCode, stderr: stderr.toString('utf8') };
      await new Promise((r) => setTimeout(r, 10));
    }
    return { code: -1, stderr: `${stderr.toString('utf8')}\n(the command did not report an exit code)`.trim() };
  })();
  return { stdout, done };
}

/** Starts `cmd` and returns at once; it runs on in the container (a clean-up nobody waits for). */
export async function execDetached(docker: Docker, container: string, cmd: string[], opts: Pick<ExecOptions, 'user' | 'env'> = {}): Promise<void> {
  const exec = await docker.getContainer(container).exec({
    Cmd: cmd, AttachStdout: false, AttachStderr: false, Tty: false,
    ...(opts.user ? { User: opts.user } : {}),
    ...(opts.env ? { Env: Object.entries(opts.env).map(([k, v]) => `${k}=${v}`) } : {}),
  });
  await exec.start({ Detach: true });
}

/** Runs `cmd` to its end and returns what it printed (for small outputs: probes, inventories). */
export async function execIn(docker: Docker, container: string, cmd: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const s = await execStream(docker, container, cmd, opts);
  const chunks: Buffer[] = [];
  s.stdout.on('data', (d: Buffer) => chunks.push(d));
  const { code, stderr } = await s.done;
  return { code, stdout: Buffer.concat(chunks), stderr };
}

/** Like execIn, but throws naming `what`, the exit code and the last lines of stderr when the command fails. */
export async function execMust(docker: Docker, container: string, what: string, cmd: string[], opts: ExecOptions = {}): Promise<string> {
  const r = await execIn(docker, container, cmd, opts);
  if (r.code !== 0) throw new Error(`${what} in ${container} failed (exit ${r.code}): ${tail(r.stderr || r.stdout.toString('utf8'))}`);
  return r.stdout.toString('utf8');
}

export function tail(text: string, lines = 8): string {
  return text.trim().split('\n').slice(-lines).join(' | ');
}
