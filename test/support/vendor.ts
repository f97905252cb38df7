// Client libraries vendored into an app's source, as a developer would commit them: the
// package and everything it depends on, copied out of this project's node_modules (the
// test's own devDependencies), so an app built from source uses a real client and its
// build fetches nothing.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../node_modules/', import.meta.url));
const KEEP = /\.(c|m)?js$|\.json$/;
const SKIP_DIR = /^(test|tests|docs|\.github|example|examples|benchmark)$/;

function closure(names: string[]): string[] {
  const seen = new Set<string>();
  const visit = (name: string): void => {
    if (seen.has(name)) return;
    seen.add(name);
    const pkg = JSON.parse(readFileSync(join(ROOT, name, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    for (const dep of Object.keys(pkg.dependencies ?? {})) visit(dep);
  };
  names.forEach(visit);
  return [...seen].sort();
}

function walk(dir: string, rel: string, out: Record<string, string>): void {
  for (const e of readdirSync(dir)) {
    const path = join(dir, e);
    const s = statSync(path);
    if (s.isDirectory()) { if (!SKIP_DIR.test(e) && e !== 'node_modules') walk(path, `${rel}/${e}`, out); continue; }
    if (KEEP.test(e) && !e.endsWith('.d.ts')) out[`${rel}/${e}`] = readFileSync(path, 'utf8');
  }
}

/** node_modules/<pkg>/... for `names` and their dependencies, as a files map for create_app's source. */
export function vendored(names: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of closure(names)) walk(join(ROOT, name), `node_modules/${name}`, out);
  return out;
}

/** A base64 tar of `files` (the source.tar form of create_app: more and larger files than source.files takes). */
export async function tarOf(files: Record<string, string>): Promise<string> {
  const { mkdtempSync, mkdirSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { dirname } = await import('node:path');
  const { execFileSync } = await import('node:child_process');
  const dir = mkdtempSync(join(tmpdir(), 'mlink-vendor-'));
  try {
    for (const [p, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, p)), { recursive: true });
      writeFileSync(join(dir, p), text);
    }
    return execFileSync('tar', ['-C', dir, '-c', '.'], { maxBuffer: 64 * 1024 * 1024 }).toString('base64');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
