// TSIG (RFC 8945) with HMAC-SHA256: signs a request and verifies the server's signed
// answer. Pure apart from the clock, which callers may pass in.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { CLASS, TYPE, decodeName, encodeName, type Message } from './message.js';

export interface TsigKey {
  /** The key's name as the server knows it (BIND: `key "NAME" { ... }`). */
  name: string;
  algorithm: 'hmac-sha256';
  /** The shared secret, base64 (as in BIND's `secret "..."` or tsig-keygen's output). */
  secret: string;
}

const ALGORITHM_NAME = 'hmac-sha256';
export const DEFAULT_FUDGE = 300;

export interface TsigRecord {
  algorithm: string;
  timeSigned: number;
  fudge: number;
  mac: Buffer;
  originalId: number;
  error: number;
  other: Buffer;
}

export function validateTsigKey(key: TsigKey, field = 'tsig'): TsigKey {
  if (key.algorithm !== 'hmac-sha256') throw new Error(`${field}.algorithm: "${String(key.algorithm)}" is not supported; use hmac-sha256`);
  if (!key.name) throw new Error(`${field}.name: give the key's name as the DNS server knows it`);
  const raw = Buffer.from(key.secret ?? '', 'base64');
  if (raw.length < 16 || raw.toString('base64').replace(/=+$/, '') !== key.secret.replace(/=+$/, '')) {
    throw new Error(`${field}.secret: not a base64 key of at least 16 bytes; generate one with \`tsig-keygen -a hmac-sha256 NAME\``);
  }
  encodeName(key.name);
  return key;
}

function u16(n: number): Buffer { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; }
function u48(n: number): Buffer { const b = Buffer.alloc(6); b.writeUIntBE(n, 0, 6); return b; }

/** The TSIG variables that follow the message in the MAC's input (RFC 8945 4.3.3). */
function variables(keyName: string, t: Omit<TsigRecord, 'mac' | 'originalId'>): Buffer {
  const fixed = Buffer.alloc(6);
  fixed.writeUInt16BE(CLASS.ANY, 0);
  fixed.writeUInt32BE(0, 2);
  return Buffer.concat([encodeName(keyName.toLowerCase()), fixed, encodeName(t.algorithm.toLowerCase()), u48(t.timeSigned), u16(t.fudge), u16(t.error), u16(t.other.length), t.other]);
}

export function tsigRdata(t: TsigRecord): Buffer {
  return Buffer.concat([encodeName(t.algorithm), u48(t.timeSigned), u16(t.fudge), u16(t.mac.length), t.mac, u16(t.originalId), u16(t.error), u16(t.other.length), t.other]);
}

export function readTsigRdata(data: Buffer): TsigRecord {
  const [algorithm, p] = decodeName(data, 0);
  const macLen = data.readUInt16BE(p + 8);
  const m = p + 10;
  const after = m + macLen;
  const otherLen = data.readUInt16BE(after + 4);
  return {
    algorithm, timeSigned: data.readUIntBE(p, 6), fudge: data.readUInt16BE(p + 6), mac: Buffer.from(data.subarray(m, after)),
    originalId: data.readUInt16BE(after), error: data.readUInt16BE(after + 2), other: Buffer.from(data.subarray(after + 6, after + 6 + otherLen)),
  };
}

export function computeMac(key: TsigKey, input: Buffer[]): Buffer {
  const h = createHmac('sha256', Buffer.from(key.secret, 'base64'));
  for (const b of input) h.update(b);
  return h.digest();
}

/** Appends a TSIG record to an encoded request. Returns the signed bytes and the MAC (needed to check the answer). */
export function signRequest(unsigned: Buffer, key: TsigKey, timeSigned = Math.floor(Date.now() / 1000), fudge = DEFAULT_FUDGE): { wire: Buffer; mac: Buffer } {
  const t = { algorithm: ALGORITHM_NAME, timeSigned, fudge, error: 0, other: Buffer.alloc(0) };
  const mac = computeMac(key, [unsigned, variables(key.name, t)]);
  const rdata = tsigRdata({ ...t, mac, originalId: unsigned.readUInt16BE(0) });
  const rr = Buffer.concat([encodeName(key.name.toLowerCase()), u16(TYPE.TSIG), u16(CLASS.ANY), Buffer.alloc(4), u16(rdata.length), rdata]);
  const wire = Buffer.concat([unsigned, rr]);
  wire.writeUInt16BE(unsigned.readUInt16BE(10) + 1, 10);
  return { wire, mac };
}

export type TsigCheck = { ok: true } | { ok: false; reason: string };

/** Checks a signed response to a request whose MAC was `requestMac` (RFC 8945 5.3). */
export function verifyResponse(wire: Buffer, message: Message, key: TsigKey, requestMac: Buffer, now = Math.floor(Date.now() / 1000)): TsigCheck {
  if (message.tsigOffset === undefined) return { ok: false, reason: 'the answer is not signed (the server did not accept the key: check the key name and secret)' };
  const rr = message.additionals[message.additionals.length - 1]!;
  if (rr.name !== key.name.toLowerCase().replace(/\.$/, '')) return { ok: false, reason: `the answer is signed with key "${rr.name}", not "${key.name}"` };
  const t = readTsigRdata(rr.data);
  if (t.error !== 0) {
    const why: Record<number, string> = {
      16: `the server rejects the signature (BADSIG): the secret of key "${key.name}" differs from the server's`,
      17: `the server does not know key "${key.name}" (BADKEY): check the key name`,
      18: 'the server finds the request\'s time out of range (BADTIME): fix the clocks',
    };
    return { ok: false, reason: why[t.error] ?? `the server reports TSIG error ${t.error}` };
  }
  if (t.algorithm !== ALGORITHM_NAME) return { ok: false, reason: `the answer uses TSIG algorithm ${t.algorithm}` };
  const stripped = Buffer.from(wire.subarray(0, message.tsigOffset));
  stripped.writeUInt16BE(t.originalId, 0);
  stripped.writeUInt16BE(message.additionals.length - 1, 10);
  const want = computeMac(key, [u16(requestMac.length), requestMac, stripped, variables(key.name, t)]);
  if (t.mac.length !== want.length || !timingSafeEqual(t.mac, want)) return { ok: false, reason: 'the answer\'s TSIG MAC does not verify (a different secret, or the answer was altered)' };
  if (Math.abs(now - t.timeSigned) > t.fudge) return { ok: false, reason: `the answer was signed at ${t.timeSigned}, more than ${t.fudge} s from this host's clock (${now}); fix the clocks` };
  return { ok: true };
}
