// The MCP conformance suite (@modelcontextprotocol/conformance) and the Node 22 it needs,
// installed once into their own folder under the infrastructure's data dir: never into
// the project's node_modules, whose .bin/node would shadow the system Node 20 for every
// npm script. Idempotent, and safe when two test runs install at once (each installs
// into a fresh folder and renames it into place).
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { must } from '../../infra/proc.js';
import { cfg } from './infra.js';

export const CONFORMANCE_VERSION = '0.1.16';
const NODE = 'node@22';

export interface Conformance { node: string; cli: string }

export async function ensureConformance(): Promise<Conformance> {
  const dir = join(cfg.dirs.home, 'tools', `mcp-conformance-${CONFORMANCE_VERSION}`);
  const found = (d: string): Conformance => ({ node: join(d, 'node_modules', '.bin', 'node'), cli: join(d, 'node_modules', '@modelcontextprotocol', 'conformance', 'dist', 'index.js') });
  const want = found(dir);
  if (existsSync(want.node) && existsSync(want.cli)) return want;
  mkdirSync(join(cfg.dirs.home, 'tools'), { recursive: true });
  const fresh = `${dir}.${process.pid}.tmp`;
  rmSync(fresh, { recursive: true, force: true });
  mkdirSync(fresh, { recursive: true });
  try {
    await must('npm', ['install', '--prefix', fresh, '--no-audit', '--no-fund', '--no-save', '--loglevel', 'error', NODE, `@modelcontextprotocol/conformance@${CONFORMANCE_VERSION}`]);
    const got = found(fresh);
    if (!existsSync(got.node) || !existsSync(got.cli)) throw new Error(`npm installed ${NODE} and the conformance suite into ${fresh}, but ${got.node} or ${got.cli} is missing`);
    if (!existsSync(want.cli)) renameSync(fresh, dir);
  } finally {
    rmSync(fresh, { recursive: true, force: true });
  }
  const version = (await must(want.node, ['--version'])).trim();
  if (!version.startsWith('v22.')) throw new Error(`${want.node} is ${version}, not Node 22`);
  return want;
}
