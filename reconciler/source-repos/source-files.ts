// Source sent by agents, checked before anything is stored: a map of path to content or
// a base64 tar. Paths must stay inside the source root, symlinks must point inside it,
// and the whole is size-bounded. Pure: no I/O. A refusal names the path and what to do.

export type FileMode = '100644' | '100755' | '120000';
export interface SourceFile { path: string; mode: FileMode; content: Buffer }

export const MAX_SOURCE_BYTES = 8 * 1024 * 1024;
export const MAX_SOURCE_FILES = 2000;
export const MAX_TAR_BASE64 = Math.ceil((MAX_SOURCE_BYTES + 1024 * 1024) / 3) * 4;
const SEGMENT = /^[A-Za-z0-9._@+-]+$/;

/** A problem with the source an agent sent; `field` names where (e.g. spec.source.files key "x"). */
export class SourceError extends Error {
  constructor(readonly code: 'invalid_input' | 'too_large', message: string) {
    super(message);
    this.name = 'SourceError';
  }
}

/** Why `path` is not a safe relative path, or null. */
export function pathProblem(path: string): string | null {
  if (!path) return 'the path is empty';
  if (path.length > 256) return 'the path is longer than 256 characters';
  if (path.startsWith('/')) return 'an absolute path would leave the source root';
  if (path.includes('\\')) return 'use / to separate directories';
  for (const seg of path.split('/')) {
    if (seg === '..') return "a '..' segment would leave the source root";
    if (seg === '' || seg === '.') return "empty and '.' segments are not allowed";
    if (seg.toLowerCase() === '.git') return 'a .git directory cannot be part of the source';
    if (!SEGMENT.test(seg)) return `segment ${JSON.stringify(seg)} has characters other than A-Z a-z 0-9 . _ @ + -`;
  }
  return null;
}

/** Where a symlink at `path` pointing to `target` lands, relative to the root; null when it leaves the root. */
export function symlinkTarget(path: string, target: string): string | null {
  if (target.startsWith('/') || target === '') return null;
  const parts = path.split('/').slice(0, -1);
  for (const seg of target.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (parts.length === 0) return null;
      parts.pop();
    } else parts.push(seg);
  }
  return parts.join('/');
}

/** Checks a whole file list: safe paths, no duplicates, no file under a file, symlinks inside, size bounds. */
export function checkSourceFiles(field: string, files: SourceFile[]): SourceFile[] {
  if (files.length === 0) throw new SourceError('invalid_input', `${field} is empty; send at least one file`);
  if (files.length > MAX_SOURCE_FILES) throw new SourceError('too_large', `${field} has ${files.length} files; at most ${MAX_SOURCE_FILES}: leave out build output and dependencies (node_modules) or use source.git`);
  let total = 0;
  const seen = new Set<string>();
  for (const f of files) {
    const problem = pathProblem(f.path);
    if (problem) throw new SourceError('invalid_input', `${field} key ${JSON.stringify(f.path)} is not valid: ${problem}; use a relative path such as src/index.js`);
    if (seen.has(f.path)) throw new SourceError('invalid_input', `${field} has ${JSON.stringify(f.path)} twice`);
    seen.add(f.path);
    total += f.content.length;
    if (f.mode === '120000' && symlinkTarget(f.path, f.content.toString('utf8')) === null) {
      throw new SourceError('invalid_input', `${field}: symlink ${JSON.stringify(f.path)} -> ${JSON.stringify(f.content.toString('utf8'))} escapes the source root; only relative links to files inside the source are allowed`);
    }
  }
  if (total > MAX_SOURCE_BYTES) throw new SourceError('too_large', `${field} holds ${total} bytes in ${files.length} files; at most ${MAX_SOURCE_BYTES} bytes: leave out build output and dependencies or use source.git`);
  for (const p of seen) {
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (seen.has(dir)) throw new SourceError('invalid_input', `${field}: ${JSON.stringify(dir)} is a file (or symlink), so ${JSON.stringify(p)} cannot be under it`);
    }
  }
  return [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

export function filesFromMap(map: Record<string, string>): SourceFile[] {
  return Object.entries(map).map(([path, content]) => ({ path, mode: '100644' as const, content: Buffer.from(content, 'utf8') }));
}

function cString(buf: Buffer, start: number, len: number): string {
  const slice = buf.subarray(start, start + len);
  const nul = slice.indexOf(0);
  return slice.subarray(0, nul === -1 ? len : nul).toString('utf8');
}

function octal(buf: Buffer, start: number, len: number): number {
  const s = cString(buf, start, len).trim();
  return s ? parseInt(s, 8) : 0;
}

function paxRecords(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let at = 0;
  while (at < body.length) {
    const space = body.indexOf(0x20, at);
    if (space === -1) break;
    const len = Number(body.subarray(at, space).toString('ascii'));
    if (!Number.isInteger(len) || len <= 0) break;
    const rec = body.subarray(space + 1, at + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    at += len;
  }
  return out;
}

/** Reads a (ustar, GNU or pax) tar. Regular files and symlinks become SourceFiles; directories are implied; anything else is refused. */
export function filesFromTar(field: string, base64: string): SourceFile[] {
  if (base64.length > MAX_TAR_BASE64) throw new SourceError('too_large', `${field} is ${base64.length} base64 characters; at most ${MAX_TAR_BASE64} (${MAX_SOURCE_BYTES} bytes of files)`);
  const tar = Buffer.from(base64, 'base64');
  if (tar.length < 512) throw new SourceError('invalid_input', `${field} is not a tar archive (${tar.length} bytes); send base64 of an uncompressed tar`);
  const files: SourceFile[] = [];
  let at = 0;
  let longName: string | undefined;
  let longLink: string | undefined;
  let pax: Record<string, string> = {};
  while (at + 512 <= tar.length) {
    const h = tar.subarray(at, at + 512);
    if (h.every((b) => b === 0)) break;
    const sum = octal(h, 148, 8);
    let check = 0;
    for (let i = 0; i < 512; i++) check += i >= 148 && i < 156 ? 32 : h[i]!;
    if (sum !== check) throw new SourceError('invalid_input', `${field} is not a tar archive (bad header checksum at byte ${at}); send base64 of an uncompressed tar`);
    const type = String.fromCharCode(h[156] || 48);
    const size = octal(h, 124, 12);
    const body = tar.subarray(at + 512, at + 512 + size);
    at += 512 + Math.ceil(size / 512) * 512;
    if (type === 'L') { longName = cString(body, 0, body.length); continue; }
    if (type === 'K') { longLink = cString(body, 0, body.length); continue; }
    if (type === 'x') { pax = paxRecords(body); continue; }
    if (type === 'g') continue;
    const prefix = h.subarray(257, 262).toString('ascii') === 'ustar' ? cString(h, 345, 155) : '';
    let name = pax.path ?? longName ?? (prefix ? `${prefix}/${cString(h, 0, 100)}` : cString(h, 0, 100));
    const link = pax.linkpath ?? longLink ?? cString(h, 157, 100);
    longName = longLink = undefined;
    pax = {};
    name = name.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
    if (type === '5' || name === '' || name === '.') continue;
    if (type === '0' || type === '7') {
      files.push({ path: name, mode: octal(h, 100, 8) & 0o111 ? '100755' : '100644', content: Buffer.from(body) });
    } else if (type === '2') {
      files.push({ path: name, mode: '120000', content: Buffer.from(link, 'utf8') });
    } else if (type === '1') {
      throw new SourceError('invalid_input', `${field}: ${JSON.stringify(name)} is a hard link (to ${JSON.stringify(link)}); send regular files and relative symlinks only`);
    } else {
      throw new SourceError('invalid_input', `${field}: ${JSON.stringify(name)} is a device, fifo or other special file (tar type ${JSON.stringify(type)}); send regular files and relative symlinks only`);
    }
    if (files.length > MAX_SOURCE_FILES) break;
  }
  return files;
}
