// A small signed DNS client: queries and RFC 2136 updates, each TSIG-signed and each
// answer's signature checked before it is believed.
import { randomInt } from 'node:crypto';
import { CLASS, OPCODE, TYPE, decodeMessage, encodeMessage, rcodeName, type Message, type ResourceRecord } from './message.js';
import { exchange, type DnsServer } from './transport.js';
import { signRequest, verifyResponse, type TsigKey } from './tsig.js';

export interface Answer { rcode: number; rcodeName: string; message: Message; transport: 'udp' | 'tcp' }

async function send(server: DnsServer, tsig: TsigKey, m: Message): Promise<Answer> {
  const { wire, mac } = signRequest(encodeMessage(m), tsig);
  const { answer, transport } = await exchange(server, wire);
  const message = decodeMessage(answer);
  if (message.id !== m.id || !message.qr) throw new Error(`DNS server ${server.host}:${server.port ?? 53}: answer does not match the request`);
  const check = verifyResponse(answer, message, tsig, mac);
  if (!check.ok) throw new Error(`DNS server ${server.host}:${server.port ?? 53} (${rcodeName(message.rcode)}): ${check.reason}`);
  return { rcode: message.rcode, rcodeName: rcodeName(message.rcode), message, transport };
}

/** The records of `type` at `name` (answer section only, so a CNAME elsewhere is not mistaken for them). */
export async function queryRecords(server: DnsServer, tsig: TsigKey, name: string, type: number): Promise<{ records: ResourceRecord[]; rcode: string; transport: 'udp' | 'tcp' }> {
  const a = await send(server, tsig, {
    id: randomInt(0, 65536), qr: false, opcode: OPCODE.QUERY, rcode: 0,
    questions: [{ name, type, class: CLASS.IN }], answers: [], authorities: [], additionals: [],
  });
  if (a.rcode !== 0 && a.rcode !== 3) throw new Error(`DNS query ${name} type ${type}: server answered ${a.rcodeName}`);
  const want = name.toLowerCase().replace(/\.$/, '');
  return { records: a.message.answers.filter((r) => r.type === type && r.name === want), rcode: a.rcodeName, transport: a.transport };
}

/**
 * One RFC 2136 update of `zone`: the server applies every update only when every
 * prerequisite holds, atomically. Returns the server's rcode (NOERROR, or why it refused).
 */
export async function sendUpdate(server: DnsServer, tsig: TsigKey, zone: string, prerequisites: ResourceRecord[], updates: ResourceRecord[]): Promise<Answer> {
  return send(server, tsig, {
    id: randomInt(0, 65536), qr: false, opcode: OPCODE.UPDATE, rcode: 0,
    questions: [{ name: zone, type: TYPE.SOA, class: CLASS.IN }], answers: prerequisites, authorities: updates, additionals: [],
  });
}

// RFC 2136 2.4 prerequisites and 2.5 updates, as records.
const empty = Buffer.alloc(0);
export const pre = {
  /** Name is not in use: no record of any type at `name`. */
  nameFree: (name: string): ResourceRecord => ({ name, type: TYPE.ANY, class: CLASS.NONE, ttl: 0, data: empty }),
  /** RRset exists (value dependent): the RRset of this type at the name is exactly these records. */
  rrsetIs: (records: ResourceRecord[]): ResourceRecord[] => records.map((r) => ({ ...r, class: CLASS.IN, ttl: 0 })),
};
export const upd = {
  add: (name: string, type: number, ttl: number, data: Buffer): ResourceRecord => ({ name, type, class: CLASS.IN, ttl, data }),
  deleteRrset: (name: string, type: number): ResourceRecord => ({ name, type, class: CLASS.ANY, ttl: 0, data: empty }),
};
