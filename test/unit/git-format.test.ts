import { describe, expect, it } from 'vitest';
import { parseTrailers } from '../../reconciler/state/history.js';
import { serializeCommit, serializeTree, sortEntries } from '../../reconciler/state/objects.js';

const oid = (c: string): string => c.repeat(40);

describe('git object formats', () => {
  it('sorts tree entries as git does: a directory sorts as if its name ended in "/"', () => {
    const tree = serializeTree(sortEntries([
      { mode: '100644', path: 'a.yaml', oid: oid('a'), type: 'blob' },
      { mode: '040000', path: 'a', oid: oid('b'), type: 'tree' },
      { mode: '100644', path: 'a-b', oid: oid('c'), type: 'blob' },
    ]));
    const names = [...tree.toString('latin1').matchAll(/(\d+) ([^\0]+)\0/g)].map((m) => `${m[1]} ${m[2]}`);
    // '-' (0x2d) < '.' (0x2e) < '/' (0x2f): a-b, a.yaml, then the directory a/
    expect(names).toEqual(['100644 a-b', '100644 a.yaml', '40000 a']);
  });

  it('writes commit headers git accepts, in UTC, with a trailing newline', () => {
    const person = { name: 'claude', email: 'claude@agents.mlink', timestamp: 1700000000, timezoneOffset: 0 };
    const text = serializeCommit({ tree: oid('a'), parents: [oid('b')], author: person, committer: person, message: 'subject\n\nMlink-Tool: create_app' }).toString();
    expect(text).toBe(`tree ${oid('a')}\nparent ${oid('b')}\nauthor claude <claude@agents.mlink> 1700000000 +0000\ncommitter claude <claude@agents.mlink> 1700000000 +0000\n\nsubject\n\nMlink-Tool: create_app\n`);
  });

  it('reads trailers only from the last paragraph', () => {
    expect(parseTrailers('update app x\n\nBody: not a trailer here\nmore text\n\nMlink-Tool: update_app\nMlink-Request-Id: 42\n')).toEqual({ 'Mlink-Tool': 'update_app', 'Mlink-Request-Id': '42' });
    expect(parseTrailers('just a subject')).toEqual({});
  });
});
