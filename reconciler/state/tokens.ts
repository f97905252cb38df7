// Agent tokens for the HTTP transport. The tokens file (mode 0600, in the data dir)
// keeps one record per agent identity: a SHA-256 of its bearer token (never the token),
// the projects it may touch, whether its changes commit to main or become proposals,
// and whether it may write at all.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { dataDir } from '../util/paths.js';

export type ReviewMode = 'commit' | 'propose';
export type Access = 'read' | 'write';

export interface AgentPolicy {
  /** The agent identity: a DNS label; commits are authored by `<name> <<name>@agents.mlink>`. */
  name: string;
  /** Projects it may touch; ["*"] means all. */
  projects: string[];
  mode: ReviewMode;
  access: Access;
}

interface TokenRecord extends AgentPolicy { tokenSha256: string; createdAt: string }
interface TokensFile { version: 1; agents: TokenRecord[] }

export const DEFAULT_POLICY: Omit<AgentPolicy, 'name'> = { projects: ['*'], mode: 'commit', access: 'write' };
const NAME = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;
const PROJECT = /^(\*|[a-z]([a-z0-9-]{0,61}[a-z0-9])?)$/;

export function defaultTokensFile(): string {
  return join(dataDir().home, 'tokens.json');
}

function hash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function checkPolicy(p: AgentPolicy): AgentPolicy {
  if (!NAME.test(p.name)) throw new Error(`agent name ${JSON.stringify(p.name)} must be a DNS label (a-z, 0-9, '-', starting with a letter)`);
  if (p.projects.length === 0 || !p.projects.every((x) => PROJECT.test(x))) throw new Error(`projects must be "*" or DNS labels, got ${JSON.stringify(p.projects)}`);
  if (p.mode !== 'commit' && p.mode !== 'propose') throw new Error(`mode must be "commit" or "propose", got ${JSON.stringify(p.mode)}`);
  if (p.access !== 'read' && p.access !== 'write') throw new Error(`access must be "read" or "write", got ${JSON.stringify(p.access)}`);
  return p;
}

async function load(file: string): Promise<TokensFile> {
  try {
    const parsed = JSON.parse(await readFile(file, 'utf8')) as TokensFile;
    if (parsed.version !== 1 || !Array.isArray(parsed.agents)) throw new Error(`${file} is not an ml.ink tokens file (version 1)`);
    return parsed;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, agents: [] };
    throw err;
  }
}

async function save(file: string, data: TokensFile): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(data, null, 2) + '\n', { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
}

/** Creates the agent's token, or replaces it (the old token stops working). Returns the new token. */
export async function issueToken(file: string, policy: AgentPolicy): Promise<string> {
  checkPolicy(policy);
  const data = await load(file);
  const token = `mlk_${randomBytes(32).toString('base64url')}`;
  const record: TokenRecord = { ...policy, tokenSha256: hash(token), createdAt: new Date().toISOString() };
  data.agents = [...data.agents.filter((a) => a.name !== policy.name), record];
  await save(file, data);
  return token;
}

/** Issues a token only if the agent has none; `token` is null when one already exists (only its hash is kept). */
export async function ensureAgentToken(file: string, policy: AgentPolicy): Promise<{ token: string | null; created: boolean }> {
  const data = await load(file);
  if (data.agents.some((a) => a.name === policy.name)) return { token: null, created: false };
  return { token: await issueToken(file, policy), created: true };
}

export async function revokeToken(file: string, name: string): Promise<boolean> {
  const data = await load(file);
  const kept = data.agents.filter((a) => a.name !== name);
  if (kept.length === data.agents.length) return false;
  await save(file, { ...data, agents: kept });
  return true;
}

export async function listAgents(file: string): Promise<Array<AgentPolicy & { createdAt: string }>> {
  return (await load(file)).agents.map(({ tokenSha256: _h, ...rest }) => rest);
}

export async function findAgent(file: string, name: string): Promise<AgentPolicy | null> {
  return (await listAgents(file)).find((a) => a.name === name) ?? null;
}

/** The policy of the agent holding `token`, or null. */
export async function verifyToken(file: string, token: string): Promise<AgentPolicy | null> {
  const want = Buffer.from(hash(token), 'hex');
  for (const a of (await load(file)).agents) {
    const have = Buffer.from(a.tokenSha256, 'hex');
    if (have.length === want.length && timingSafeEqual(have, want)) {
      const { tokenSha256: _h, createdAt: _c, ...policy } = a;
      return policy;
    }
  }
  return null;
}

export function mayTouch(policy: AgentPolicy, project: string): boolean {
  return policy.projects.includes('*') || policy.projects.includes(project);
}
