// MCP over stdio: one JSON-RPC message a line. The SDK's StdioServerTransport closes
// itself when a line outgrows its buffer (and its ReadBuffer then feeds the rest of that
// line back as garbage), and drops a line that is not a message without a word, so one
// bad line leaves the client waiting forever. This one answers every line it cannot take
// (too big, not JSON, a batch, not JSON-RPC) with an error carrying the request's id
// when it can be read, skips the rest of an oversized line, and goes on.
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { Readable, Writable } from 'node:stream';
import { IdScanner, MAX_MESSAGE_BYTES, checkText, tooLarge, type JsonRpcError } from './jsonrpc.js';

export interface LineTransportOptions {
  maxMessageBytes?: number;
  /** Told of every line refused, for the server's log. */
  onRefused?: (error: JsonRpcError) => void;
}

export class LineTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;

  private readonly max: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Set while the rest of an oversized line is skipped: its id, as far as read, and its size. */
  private skipping: { scanner: IdScanner; bytes: number } | null = null;
  private closed = false;

  constructor(private readonly input: Readable, private readonly output: Writable, private readonly opts: LineTransportOptions = {}) {
    this.max = opts.maxMessageBytes ?? MAX_MESSAGE_BYTES;
  }

  private readonly onData = (chunk: Buffer): void => {
    let at = 0;
    while (at < chunk.length) {
      const nl = chunk.indexOf(0x0a, at);
      const end = nl === -1 ? chunk.length : nl;
      if (end > at) this.take(chunk.subarray(at, end));
      if (nl === -1) return;
      this.endOfLine();
      at = nl + 1;
    }
  };

  private readonly onEnd = (): void => { void this.close(); };
  private readonly onError = (e: Error): void => { this.onerror?.(e); };

  private take(piece: Buffer): void {
    if (this.skipping) {
      this.skipping.scanner.feed(piece);
      this.skipping.bytes += piece.length;
      return;
    }
    if (this.pendingBytes + piece.length <= this.max) {
      this.pending.push(piece);
      this.pendingBytes += piece.length;
      return;
    }
    // Too big: keep only what is needed to find its id, drop the text.
    const scanner = new IdScanner();
    for (const p of this.pending) scanner.feed(p);
    scanner.feed(piece);
    this.skipping = { scanner, bytes: this.pendingBytes + piece.length };
    this.pending = [];
    this.pendingBytes = 0;
  }

  private endOfLine(): void {
    if (this.skipping) {
      const { scanner, bytes } = this.skipping;
      this.skipping = null;
      this.refuse([tooLarge(scanner.id, bytes)]);
      return;
    }
    const text = Buffer.concat(this.pending).toString('utf8').replace(/\r$/, '');
    this.pending = [];
    this.pendingBytes = 0;
    if (text.trim() === '') return;
    const checked = checkText(text);
    if ('errors' in checked) return this.refuse(checked.errors);
    this.onmessage?.(checked.message);
  }

  private refuse(errors: JsonRpcError[]): void {
    for (const e of errors) {
      this.opts.onRefused?.(e);
      void this.send(e as unknown as JSONRPCMessage).catch((err: unknown) => this.onerror?.(err as Error));
    }
  }

  async start(): Promise<void> {
    this.input.on('data', this.onData);
    this.input.on('end', this.onEnd);
    this.input.on('error', this.onError);
  }

  send(message: JSONRPCMessage): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      if (this.output.write(`${JSON.stringify(message)}\n`)) resolve();
      else this.output.once('drain', resolve);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.input.off('data', this.onData);
    this.input.off('end', this.onEnd);
    this.input.off('error', this.onError);
    this.pending = [];
    this.skipping = null;
    this.onclose?.();
  }
}
