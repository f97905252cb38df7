// DNS messages on the wire (RFC 1035, and RFC 2136's UPDATE sections, which reuse the
// same four sections: zone, prerequisites, updates, additional). Pure encoding and
// decoding; names are written uncompressed, so every message is canonical and TSIG
// signs exactly the bytes that go out.

export const TYPE = { A: 1, NS: 2, CNAME: 5, SOA: 6, TXT: 16, AAAA: 28, OPT: 41, TSIG: 250, ANY: 255 } as const;
export const CLASS = { IN: 1, NONE: 254, ANY: 255 } as const;
export const OPCODE = { QUERY: 0, UPDATE: 5 } as const;
export const RCODE_NAMES: Record<number, string> = {
  0: 'NOERROR', 1: 'FORMERR', 2: 'SERVFAIL', 3: 'NXDOMAIN', 4: 'NOTIMP', 5: 'REFUSED', 6: 'YXDOMAIN', 7: 'YXRRSET',
  8: 'NXRRSET', 9: 'NOTAUTH', 10: 'NOTZONE', 16: 'BADSIG', 17: 'BADKEY', 18: 'BADTIME',
};

export interface Question { name: string; type: number; class: number }
export interface ResourceRecord { name: string; type: number; class: number; ttl: number; data: Buffer }

export interface Message {
  id: number;
  /** QR, opcode, AA, TC, RD, RA and rcode of the header's second 16 bits. */
  qr: boolean;
  opcode: number;
  aa?: boolean;
  tc?: boolean;
  rd?: boolean;
  rcode: number;
  /** QUERY: question; UPDATE: zone. */
  questions: Question[];
  /** QUERY: answer; UPDATE: prerequisites. */
  answers: ResourceRecord[];
  /** QUERY: authority; UPDATE: updates. */
  authorities: ResourceRecord[];
  additionals: ResourceRecord[];
  /** Decoded messages only: where the last additional record starts when it is a TSIG (what TSIG verification strips). */
  tsigOffset?: number;
}

export function encodeName(name: string): Buffer {
  const trimmed = name.replace(/\.$/, '');
  const parts: Buffer[] = [];
  if (trimmed !== '') {
    for (const label of trimmed.split('.')) {
      const b = Buffer.from(label, 'ascii');
      if (b.length === 0 || b.length > 63) throw new Error(`DNS name "${name}": label "${label}" must be 1 to 63 characters`);
      parts.push(Buffer.from([b.length]), b);
    }
  }
  parts.push(Buffer.from([0]));
  const out = Buffer.concat(parts);
  if (out.length > 255) throw new Error(`DNS name "${name}" is longer than 255 bytes`);
  return out;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function encodeRecord(r: ResourceRecord): Buffer {
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(r.type, 0);
  fixed.writeUInt16BE(r.class, 2);
  fixed.writeUInt32BE(r.ttl >>> 0, 4);
  fixed.writeUInt16BE(r.data.length, 8);
  return Buffer.concat([encodeName(r.name), fixed, r.data]);
}

export function encodeHeader(m: Pick<Message, 'id' | 'qr' | 'opcode' | 'aa' | 'tc' | 'rd' | 'rcode'>, counts: [number, number, number, number]): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(m.id, 0);
  const flags = (m.qr ? 0x8000 : 0) | ((m.opcode & 0xf) << 11) | (m.aa ? 0x0400 : 0) | (m.tc ? 0x0200 : 0) | (m.rd ? 0x0100 : 0) | (m.rcode & 0xf);
  h.writeUInt16BE(flags, 2);
  counts.forEach((c, i) => h.writeUInt16BE(c, 4 + i * 2));
  return h;
}

export function encodeMessage(m: Message): Buffer {
  return Buffer.concat([
    encodeHeader(m, [m.questions.length, m.answers.length, m.authorities.length, m.additionals.length]),
    ...m.questions.map((q) => Buffer.concat([encodeName(q.name), u16(q.type), u16(q.class)])),
    ...m.answers.map(encodeRecord),
    ...m.authorities.map(encodeRecord),
    ...m.additionals.map(encodeRecord),
  ]);
}

/** Reads a possibly compressed name at `offset`; returns it (lower-cased, no trailing dot) and the offset after it. */
export function decodeName(buf: Buffer, offset: number): [string, number] {
  const labels: string[] = [];
  let pos = offset;
  let end = -1;
  for (let jumps = 0; ; ) {
    if (pos >= buf.length) throw new Error('DNS message: name runs past the end');
    const len = buf[pos]!;
    if (len === 0) { pos += 1; break; }
    if ((len & 0xc0) === 0xc0) {
      if (++jumps > 32) throw new Error('DNS message: compression loop');
      if (end < 0) end = pos + 2;
      pos = ((len & 0x3f) << 8) | buf[pos + 1]!;
      continue;
    }
    if (len > 63) throw new Error(`DNS message: bad label length ${len}`);
    labels.push(buf.subarray(pos + 1, pos + 1 + len).toString('ascii').toLowerCase());
    pos += 1 + len;
  }
  return [labels.join('.'), end >= 0 ? end : pos];
}

export function decodeMessage(buf: Buffer): Message {
  if (buf.length < 12) throw new Error(`DNS message: ${buf.length} bytes is shorter than a header`);
  const flags = buf.readUInt16BE(2);
  const counts = [4, 6, 8, 10].map((o) => buf.readUInt16BE(o));
  let pos = 12;
  const questions: Question[] = [];
  for (let i = 0; i < counts[0]!; i++) {
    const [name, next] = decodeName(buf, pos);
    questions.push({ name, type: buf.readUInt16BE(next), class: buf.readUInt16BE(next + 2) });
    pos = next + 4;
  }
  let lastStart = -1;
  const records = (n: number): ResourceRecord[] => {
    const out: ResourceRecord[] = [];
    for (let i = 0; i < n; i++) {
      lastStart = pos;
      const [name, next] = decodeName(buf, pos);
      if (next + 10 > buf.length) throw new Error('DNS message: record runs past the end');
      const len = buf.readUInt16BE(next + 8);
      const type = buf.readUInt16BE(next);
      const start = next + 10;
      if (start + len > buf.length) throw new Error('DNS message: record data runs past the end');
      out.push({ name, type, class: buf.readUInt16BE(next + 2), ttl: buf.readUInt32BE(next + 4), data: rdataCopy(buf, type, start, len) });
      pos = start + len;
    }
    return out;
  };
  const answers = records(counts[1]!);
  const authorities = records(counts[2]!);
  const additionals = records(counts[3]!);
  if (pos !== buf.length) throw new Error(`DNS message: ${buf.length - pos} bytes after the last record`);
  const last = additionals[additionals.length - 1];
  const tsigOffset = last?.type === TYPE.TSIG ? lastStart : undefined;
  return {
    id: buf.readUInt16BE(0), qr: (flags & 0x8000) !== 0, opcode: (flags >> 11) & 0xf, aa: (flags & 0x0400) !== 0,
    tc: (flags & 0x0200) !== 0, rd: (flags & 0x0100) !== 0, rcode: flags & 0xf, questions, answers, authorities, additionals,
    ...(tsigOffset !== undefined ? { tsigOffset } : {}),
  };
}

/** Record data, with any compressed names inside it (CNAME, NS) expanded so it stands alone. */
function rdataCopy(buf: Buffer, type: number, start: number, len: number): Buffer {
  if (type === TYPE.CNAME || type === TYPE.NS) return encodeName(decodeName(buf, start)[0]);
  return Buffer.from(buf.subarray(start, start + len));
}

export function aData(address: string): Buffer {
  const parts = address.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) throw new Error(`"${address}" is not an IPv4 address`);
  return Buffer.from(parts.map(Number));
}

export function readA(data: Buffer): string {
  if (data.length !== 4) throw new Error(`A record data is ${data.length} bytes, not 4`);
  return [...data].join('.');
}

/** TXT data: one or more character-strings of at most 255 bytes each. */
export function txtData(text: string): Buffer {
  const b = Buffer.from(text, 'utf8');
  const chunks: Buffer[] = [];
  for (let i = 0; i < b.length || i === 0; i += 255) {
    const part = b.subarray(i, i + 255);
    chunks.push(Buffer.from([part.length]), part);
  }
  return Buffer.concat(chunks);
}

export function readTxt(data: Buffer): string {
  const parts: string[] = [];
  for (let pos = 0; pos < data.length; ) {
    const len = data[pos]!;
    parts.push(data.subarray(pos + 1, pos + 1 + len).toString('utf8'));
    pos += 1 + len;
  }
  return parts.join('');
}

export function rcodeName(rcode: number): string {
  return RCODE_NAMES[rcode] ?? `RCODE${rcode}`;
}
