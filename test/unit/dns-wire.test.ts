// DNS encoding and TSIG against bytes BIND's own tools sent and answered (captured once
// from dig, nsupdate and named 9.18 on this machine; key "mlink-test", hmac-sha256).
import { describe, expect, it } from 'vitest';
import { pre, upd } from '../../reconciler/dns/client.js';
import { CLASS, OPCODE, TYPE, aData, decodeMessage, encodeMessage, encodeName, readA, readTxt, txtData } from '../../reconciler/dns/message.js';
import { readTsigRdata, signRequest, validateTsigKey, verifyResponse, type TsigKey } from '../../reconciler/dns/tsig.js';
import { ownerRecordName, ownerRecordText, parseOwnerRecord } from '../../reconciler/dns/registry.js';

const key: TsigKey = { name: 'mlink-test', algorithm: 'hmac-sha256', secret: Buffer.alloc(32, 7).toString('base64') };

// `dig -y hmac-sha256:mlink-test:<key> +noedns +norecurse +noadflag web.internal.test A`
const digQuery = Buffer.from(
  '839f000000010000000000010377656208696e7465726e616c047465737400000100010a6d6c696e6b2d746573740000fa00ff00000000003d0b686d61632d7368613235360000006b1131f1012c0020a8b49e78e096187aeed1abcb2c2e7b3f98d9ad36e8b45b1ddde48aabf5fc5015839f00000000', 'hex');
// nsupdate: zone internal.test; prereq nxdomain web.internal.test; update add web.internal.test 300 A 127.0.0.1
const nsupdate = Buffer.from(
  '8b8c2800000100010001000108696e7465726e616c0474657374000006000103776562c00c00ff00fe000000000000c01f000100010000012c00047f0000010a6d6c696e6b2d746573740000fa00ff00000000003d0b686d61632d7368613235360000006b1131f4012c0020eb4aa36313d55c9f6f55e1cd6db7a7df84facde7f5694fbe738a4d71eb7cddc38b8c00000000', 'hex');
// named's signed answer to a query for web.internal.test A (id 0x1234), with its key and the request's MAC.
const named = {
  key: { name: 'mlink-test', algorithm: 'hmac-sha256', secret: '3UpZdFtTAejVYcwyPWfnoTnQWbDwv3SLaBTYKTyB7eI=' } as TsigKey,
  signedAt: 1796289028,
  requestMac: Buffer.from('5ebdba37b652a9ebb05654af39f625b571c5c59f0098ce371db392cfb5a3e380', 'hex'),
  answer: Buffer.from('1234840000010001000100020377656208696e7465726e616c04746573740000010001c00c000100010000012c00040a010203c010000200010000012c0005026e73c010c03f000100010000012c00047f0000010a6d6c696e6b2d746573740000fa00ff00000000003d0b686d61632d7368613235360000006b113204012c0020f181207b692fa647918f8666c3de77bac9eeaf997310f9bd31060c879268ae9c123400000000', 'hex'),
};

function unsignedPart(wire: Buffer): Buffer {
  const m = decodeMessage(wire);
  const out = Buffer.from(wire.subarray(0, m.tsigOffset));
  out.writeUInt16BE(m.additionals.length - 1, 10);
  return out;
}

describe('DNS wire format', () => {
  it('encodes names as length-prefixed labels and refuses bad ones', () => {
    expect(encodeName('web.internal.test').toString('hex')).toBe('0377656208696e7465726e616c047465737400');
    expect(encodeName('web.internal.test.')).toEqual(encodeName('web.internal.test'));
    expect(encodeName('')).toEqual(Buffer.from([0]));
    expect(() => encodeName('a..b')).toThrow(/label "" must be 1 to 63/);
    expect(() => encodeName(`${'x'.repeat(64)}.test`)).toThrow(/must be 1 to 63/);
  });

  it('encodes a query byte for byte as dig does', () => {
    const ours = encodeMessage({ id: 0x839f, qr: false, opcode: OPCODE.QUERY, rcode: 0, questions: [{ name: 'web.internal.test', type: TYPE.A, class: CLASS.IN }], answers: [], authorities: [], additionals: [] });
    expect(ours.toString('hex')).toBe(unsignedPart(digQuery).toString('hex'));
  });

  it('decodes nsupdate\'s compressed UPDATE into zone, prerequisite and update, as our builders make them', () => {
    const m = decodeMessage(nsupdate);
    expect(m.opcode).toBe(OPCODE.UPDATE);
    expect(m.questions).toEqual([{ name: 'internal.test', type: TYPE.SOA, class: CLASS.IN }]);
    expect(m.answers).toEqual([pre.nameFree('web.internal.test')]);
    expect(m.authorities).toEqual([upd.add('web.internal.test', TYPE.A, 300, aData('127.0.0.1'))]);
    // Ours, uncompressed, decodes to the same message.
    const ours = decodeMessage(encodeMessage({ ...m, additionals: [] }));
    expect({ ...ours, id: 0 }).toEqual({ ...m, id: 0, additionals: [], tsigOffset: undefined, aa: false, tc: false, rd: false });
  });

  it('reads and writes A and TXT data', () => {
    expect(aData('10.9.9.9')).toEqual(Buffer.from([10, 9, 9, 9]));
    expect(readA(Buffer.from([127, 0, 0, 1]))).toBe('127.0.0.1');
    expect(() => aData('10.9.9')).toThrow(/not an IPv4 address/);
    expect(() => aData('10.9.9.256')).toThrow(/not an IPv4 address/);
    const long = 'x'.repeat(300);
    expect(txtData(long)[0]).toBe(255);
    expect(readTxt(txtData(long))).toBe(long);
    expect(txtData('heritage=mlink')).toEqual(Buffer.concat([Buffer.from([14]), Buffer.from('heritage=mlink')]));
  });

  it('refuses a message with bytes past its last record', () => {
    expect(() => decodeMessage(Buffer.concat([digQuery, Buffer.from([0])]))).toThrow(/bytes after the last record/);
  });
});

describe('TSIG hmac-sha256', () => {
  it('signs dig\'s query to the same MAC, byte for byte', () => {
    const t = readTsigRdata(decodeMessage(digQuery).additionals[0]!.data);
    const { wire } = signRequest(unsignedPart(digQuery), key, t.timeSigned, t.fudge);
    expect(wire.toString('hex')).toBe(digQuery.toString('hex'));
  });

  it('signs nsupdate\'s UPDATE to the same MAC (over its compressed bytes)', () => {
    const t = readTsigRdata(decodeMessage(nsupdate).additionals[0]!.data);
    expect(signRequest(unsignedPart(nsupdate), key, t.timeSigned, t.fudge).wire).toEqual(nsupdate);
    const wrongKey = { ...key, secret: Buffer.alloc(32, 8).toString('base64') };
    expect(signRequest(unsignedPart(nsupdate), wrongKey, t.timeSigned, t.fudge).wire).not.toEqual(nsupdate);
  });

  it('verifies named\'s signed answer, and rejects it altered, under another key or out of time', () => {
    const m = decodeMessage(named.answer);
    expect(readA(m.answers[0]!.data)).toBe('10.1.2.3');
    expect(verifyResponse(named.answer, m, named.key, named.requestMac, named.signedAt)).toEqual({ ok: true });

    const altered = Buffer.from(named.answer);
    altered[altered.indexOf(Buffer.from([10, 1, 2, 3]))] = 11;
    expect(verifyResponse(altered, decodeMessage(altered), named.key, named.requestMac, named.signedAt)).toEqual({ ok: false, reason: expect.stringMatching(/MAC does not verify/) });
    expect(verifyResponse(named.answer, m, key, named.requestMac, named.signedAt).ok).toBe(false);
    expect(verifyResponse(named.answer, m, named.key, Buffer.alloc(32), named.signedAt).ok).toBe(false);
    expect(verifyResponse(named.answer, m, named.key, named.requestMac, named.signedAt + 301)).toEqual({ ok: false, reason: expect.stringMatching(/fix the clocks/) });
    const unsigned = unsignedPart(named.answer);
    expect(verifyResponse(unsigned, decodeMessage(unsigned), named.key, named.requestMac, named.signedAt)).toEqual({ ok: false, reason: expect.stringMatching(/not signed/) });
  });

  it('refuses a key that is not hmac-sha256 base64 of 16 bytes or more, naming the field', () => {
    expect(() => validateTsigKey({ ...key, secret: 'c2hvcnQ=' })).toThrow(/tsig.secret: .*tsig-keygen/);
    expect(() => validateTsigKey({ ...key, algorithm: 'hmac-md5' as 'hmac-sha256' })).toThrow(/tsig.algorithm: "hmac-md5" is not supported/);
    expect(validateTsigKey(key)).toBe(key);
  });
});

describe('ownership records', () => {
  it('are named and written in external-dns\'s new format, with ml.ink as heritage', () => {
    expect(ownerRecordName('web.internal.test')).toBe('a-web.internal.test');
    expect(ownerRecordText('c1', 'App/shop/web')).toBe('heritage=mlink,mlink/owner=c1,mlink/resource=App/shop/web');
    expect(parseOwnerRecord('heritage=mlink,mlink/owner=c1,mlink/resource=App/shop/web')).toEqual({ heritage: 'mlink', owner: 'c1', resource: 'App/shop/web' });
    expect(parseOwnerRecord('"heritage=external-dns,external-dns/owner=k8s"')).toEqual({ heritage: 'external-dns', owner: 'k8s', resource: undefined });
  });
});
