// What both transports do with a message before the SDK sees it: a size limit, JSON
// parsing, refusing batches, checking the JSON-RPC shape. Each problem becomes a JSON-RPC
// error answer carrying the request's id when one can be read, so the client's pending
// call ends at once instead of timing out, and the session goes on.
import { JSONRPCMessageSchema, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

/** Largest message read, on stdio (one line) and over HTTP (one body). Tool inputs are bounded far below it by their schemas. */
export const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

export const PARSE_ERROR = -32700;
export const INVALID_REQUEST = -32600;

export type RequestId = string | number;

export interface JsonRpcError {
  jsonrpc: '2.0';
  /** Left out when the message's id cannot be read, as MCP's schema has it (JSON-RPC 2.0 itself would say null). */
  id?: RequestId;
  error: { code: number; message: string };
}

export function errorAnswer(id: RequestId | null, code: number, message: string): JsonRpcError {
  return { jsonrpc: '2.0', ...(id !== null ? { id } : {}), error: { code, message } };
}

const isId = (v: unknown): v is RequestId => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));

/**
 * Finds the top-level "id" of a JSON object fed to it in pieces, without keeping the
 * text: an oversized or malformed message still yields its id. Nested "id" keys (say,
 * inside a tool's arguments) are skipped by tracking depth and strings.
 */
export class IdScanner {
  private depth = 0;
  private inString = false;
  private escaped = false;
  private expectKey = false;
  private key: string | null = null;
  private keyText = '';
  private afterColon = false;
  private capture: string | null = null;
  private captureIsString = false;
  private started = false;
  private topLevelObject = false;
  private found: RequestId | null = null;
  private done = false;

  get id(): RequestId | null { return this.found; }

  feed(chunk: Buffer | string): void {
    const text = typeof chunk === 'string' ? chunk : chunk.toString('latin1');
    for (let i = 0; i < text.length && !this.done; i++) this.step(text[i]!);
  }

  private finishCapture(): void {
    const raw = this.capture ?? '';
    this.capture = null;
    if (this.captureIsString) this.found = raw;
    else if (/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(raw)) this.found = Number(raw);
    this.done = this.found !== null;
  }

  private step(c: string): void {
    if (this.capture !== null) {
      if (this.captureIsString) {
        if (this.escaped) { this.escaped = false; this.capture += c; return; }
        if (c === '\\') { this.escaped = true; return; }
        if (c === '"') { this.inString = false; this.finishCapture(); return; }
        if (this.capture.length < 256) this.capture += c;
        return;
      }
      if (/[-+0-9.eE]/.test(c) && this.capture.length < 32) { this.capture += c; return; }
      this.finishCapture();
      if (this.done) return;
    }
    if (this.inString) {
      if (this.escaped) { this.escaped = false; if (this.key !== null && this.keyText.length < 8) this.keyText += c; return; }
      if (c === '\\') { this.escaped = true; return; }
      if (c === '"') {
        this.inString = false;
        if (this.key !== null) { this.key = this.keyText; this.expectKey = false; }
        return;
      }
      if (this.key !== null && this.keyText.length < 8) this.keyText += c;
      return;
    }
    if (c === ' ' || c === '\n' || c === '\r' || c === '\t') return;
    if (!this.started) {
      this.started = true;
      this.topLevelObject = c === '{';
      if (!this.topLevelObject) { this.done = true; return; }
    }
    if (this.depth === 1 && this.afterColon) {
      this.afterColon = false;
      if (this.key === 'id') {
        if (c === '"') { this.inString = true; this.capture = ''; this.captureIsString = true; return; }
        if (/[-0-9]/.test(c)) { this.capture = c; this.captureIsString = false; return; }
      }
      this.key = null;
    }
    switch (c) {
      case '{': case '[':
        this.depth++;
        if (this.depth === 1) this.expectKey = true;
        return;
      case '}': case ']':
        this.depth--;
        if (this.depth <= 0) this.done = true;
        return;
      case '"':
        this.inString = true;
        if (this.depth === 1 && this.expectKey) { this.key = ''; this.keyText = ''; } else if (this.depth === 1) this.key = null;
        return;
      case ':':
        if (this.depth === 1 && this.key !== null) this.afterColon = true;
        return;
      case ',':
        if (this.depth === 1) { this.expectKey = true; this.key = null; }
        return;
      default:
        return;
    }
  }
}

/** The top-level id of a message's text, if one can be read. */
export function readId(text: string): RequestId | null {
  const s = new IdScanner();
  s.feed(text);
  return s.id;
}

export type Checked = { message: JSONRPCMessage } | { errors: JsonRpcError[]; batch?: true };

/**
 * A parsed message, or the answers it gets instead. A batch (an array) is refused with
 * one error per request in it: MCP from 2025-06-18 has no batches.
 */
export function checkMessage(raw: unknown): Checked {
  if (Array.isArray(raw)) {
    const ids = raw.map((m) => (m && typeof m === 'object' && 'id' in m ? (m as { id: unknown }).id : undefined)).filter(isId);
    const message = 'JSON-RPC batches are not supported (MCP has none since 2025-06-18): send each request as its own message';
    return { batch: true, errors: ids.length ? ids.map((id) => errorAnswer(id, INVALID_REQUEST, message)) : [errorAnswer(null, INVALID_REQUEST, message)] };
  }
  const parsed = JSONRPCMessageSchema.safeParse(raw);
  if (parsed.success) return { message: parsed.data };
  // A malformed response (no method; a result or an error) is dropped: answering answers
  // could set two peers answering each other forever.
  if (raw && typeof raw === 'object' && !('method' in raw) && ('result' in raw || 'error' in raw)) return { errors: [] };
  const id = raw && typeof raw === 'object' && 'id' in raw && isId((raw as { id: unknown }).id) ? (raw as { id: RequestId }).id : null;
  const what = !raw || typeof raw !== 'object' ? `a JSON ${raw === null ? 'null' : typeof raw}` : (raw as { jsonrpc?: unknown }).jsonrpc !== '2.0' ? 'an object without "jsonrpc": "2.0"' : 'an object that is not a JSON-RPC request, notification or response';
  return { errors: [errorAnswer(id, INVALID_REQUEST, `Invalid Request: got ${what}; send {"jsonrpc": "2.0", "id": ..., "method": ..., "params": {...}}`)] };
}

/** A whole message's text: parsed and checked, or the answers it gets. */
export function checkText(text: string): Checked {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return { errors: [errorAnswer(readId(text), PARSE_ERROR, `Parse error: the message is not JSON (${(e as Error).message})`)] };
  }
  return checkMessage(raw);
}

export function tooLarge(id: RequestId | null, bytes: number): JsonRpcError {
  return errorAnswer(id, INVALID_REQUEST, `Invalid Request: the message is ${bytes} bytes, larger than the limit of ${MAX_MESSAGE_BYTES} bytes; send large sources as source.git or in smaller parts`);
}
