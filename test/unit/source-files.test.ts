// Source sent by agents is checked before anything is stored: paths, symlinks, sizes,
// tar formats; detection picks a build method and says why.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildKey, compileSource } from '../../reconciler/image-builds/build-spec.js';
import { detect } from '../../reconciler/image-builds/detect.js';
import { MAX_SOURCE_BYTES, checkSourceFiles, filesFromMap, filesFromTar, symlinkTarget } from '../../reconciler/source-repos/source-files.js';

function tarOf(build: (dir: string) => void): string {
  const dir = mkdtempSync(join(tmpdir(), 'mlink-unit-tar-'));
  try {
    build(dir);
    return execFileSync('tar', ['-C', dir, '-cf', '-', '.']).toString('base64');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('source files', () => {
  it('refuses traversal, absolute paths, .git and files under files', () => {
    for (const [path, why] of [['../x', "'..'"], ['/etc/passwd', 'absolute'], ['a/.git/config', '.git'], ['a//b', 'empty'], ['a\\b', 'use /']]) {
      expect(() => checkSourceFiles('f', filesFromMap({ [path!]: 'x' }))).toThrow(why);
    }
    expect(() => checkSourceFiles('f', filesFromMap({ a: 'x', 'a/b': 'y' }))).toThrow('"a" is a file');
  });

  it('bounds the total size', () => {
    const big = Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`f${i}`, 'x'.repeat(1024 * 1024)]));
    expect(() => checkSourceFiles('f', filesFromMap(big))).toThrow(`at most ${MAX_SOURCE_BYTES} bytes`);
  });

  it('resolves symlink targets lexically and refuses those that leave the root', () => {
    expect(symlinkTarget('a/b', '../c')).toBe('c');
    expect(symlinkTarget('a/b', '../../c')).toBeNull();
    expect(symlinkTarget('a', '/etc/passwd')).toBeNull();
  });

  it('reads GNU tars: modes, long names, inside symlinks; refuses escaping links and hard links', () => {
    const long = `${'d'.repeat(120)}/file.txt`;
    const files = checkSourceFiles('t', filesFromTar('t', tarOf((d) => {
      writeFileSync(join(d, 'run.sh'), '#!/bin/sh\n', { mode: 0o755 });
      mkdirSync(join(d, 'd'.repeat(120)));
      writeFileSync(join(d, long), 'deep\n');
      symlinkSync('run.sh', join(d, 'start'));
    })));
    expect(files.map((f) => [f.path, f.mode])).toEqual([[long, '100644'], ['run.sh', '100755'], ['start', '120000']]);
    expect(() => checkSourceFiles('t', filesFromTar('t', tarOf((d) => symlinkSync('../outside', join(d, 'x')))))).toThrow('escapes the source root');
    expect(() => filesFromTar('t', tarOf((d) => { writeFileSync(join(d, 'a'), 'a'); execFileSync('ln', [join(d, 'a'), join(d, 'b')]); }))).toThrow('hard link');
    expect(() => filesFromTar('t', Buffer.from('not a tar'.repeat(100)).toString('base64'))).toThrow('not a tar archive');
  });
});

describe('build method and image tag', () => {
  it('prefers a Dockerfile, then detects Node.js, Go, Python and static sites', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mlink-unit-detect-'));
    try {
      const at = (files: Record<string, string>): string => {
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dir);
        for (const [f, c] of Object.entries(files)) { mkdirSync(join(dir, f, '..'), { recursive: true }); writeFileSync(join(dir, f), c); }
        return detect(dir).method;
      };
      expect(at({ Dockerfile: 'FROM x', 'package.json': '{}' })).toBe('dockerfile');
      expect(at({ 'package.json': '{"scripts":{"start":"node a.js"}}' })).toBe('node');
      expect(at({ 'go.mod': 'module x', 'main.go': 'package main' })).toBe('go');
      expect(at({ 'app.py': 'print(1)' })).toBe('python');
      expect(at({ 'public/index.html': '<h1>' })).toBe('static');
      expect(() => at({ 'notes.txt': 'x' })).toThrow('add a Dockerfile');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('tags images by source commit and build inputs: the same source builds once', () => {
    const c = 'a'.repeat(40);
    const one = compileSource('f', 'p', 'web', { repo: { commit: c } })!;
    expect(one.image).toBe(`mlink/p/web:${buildKey(c, '')}`);
    expect(compileSource('f', 'p', 'web', { repo: { commit: c } })!.image).toBe(one.image);
    expect(compileSource('f', 'p', 'web', { repo: { commit: c, path: 'sub' } })!.image).not.toBe(one.image);
    expect(() => compileSource('f', 'p', 'web', { git: { url: 'https://h/r', ref: 'main' } })).toThrow('has no commit');
  });
});
