// Where a tool call turns into a commit. Every write tool ends here: check the agent may
// write to the project, pick the target (main, or a proposal branch in review mode), and
// hand the store one `prepare` that validates against the current head under the write
// lock. The commit's author is the agent; its message is the summary plus trailers
// naming the tool and request id. Nothing reaches git unless `prepare` returns.
import { randomBytes, randomUUID } from 'node:crypto';
import type { SourceRepos } from '../source-repos/source-repo.js';
import type { AgentPolicy } from '../state/tokens.js';
import { mayTouch } from '../state/tokens.js';
import { MAIN, PROPOSALS, type StateStore } from '../state/store.js';
import type { Change, TreeView } from '../state/tree.js';
import { ApplyConflictError } from '../state/history.js';
import { log } from '../util/log.js';
import { DomainError, conflict, forbidden, invalid, notFound } from './errors.js';

export interface Ctx { store: StateStore; agent: AgentPolicy; /** Internal source repos, where files sent with create_app/update_app are committed. */ sources?: SourceRepos }

export interface WriteResult {
  /** The new commit; null when the change left the state as it was. */
  commit: string | null;
  /** The proposal the commit went to, or null when it went to main. */
  proposal: string | null;
  branch: string;
  path: string;
  summary: string;
  request_id: string;
}

export interface WriteRequest {
  tool: string;
  /** Projects the change touches; the agent must be allowed all of them. */
  projects: string[];
  path: string;
  summary: string;
  /** Paragraph between the summary and the trailers. */
  body?: string;
  /** An existing proposal to add the commit to, instead of main or a new proposal. */
  proposal?: string;
  prepare(view: TreeView): Promise<Change[]>;
}

export const PROPOSAL_ID = /^[a-z0-9][a-z0-9-]{0,80}$/;

export function agentIdentity(agent: AgentPolicy): { name: string; email: string } {
  return { name: agent.name, email: `${agent.name}@agents.mlink` };
}

export function requireProjects(agent: AgentPolicy, projects: string[]): void {
  for (const p of projects) {
    if (!mayTouch(agent, p)) throw forbidden(`agent "${agent.name}" may not touch project "${p}" (allowed: ${agent.projects.join(', ')}); ask the operator for a token that includes it`);
  }
}

export function requireWrite(agent: AgentPolicy, tool: string): void {
  if (agent.access !== 'write') throw forbidden(`agent "${agent.name}" has a read-only token, so ${tool} is not allowed; ask the operator for a write token`);
}

function newProposalId(agent: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15).toLowerCase();
  return `${agent}-${stamp}-${randomBytes(2).toString('hex')}`;
}

async function target(ctx: Ctx, req: WriteRequest): Promise<{ ref: string; from?: string; proposal: string | null }> {
  if (req.proposal !== undefined) {
    if (!PROPOSAL_ID.test(req.proposal)) throw invalid(`proposal ${JSON.stringify(req.proposal)} is not a proposal id (see list_proposals)`);
    if (!req.proposal.startsWith(`${ctx.agent.name}-`)) throw forbidden(`proposal ${req.proposal} belongs to another agent; add to your own proposals or omit proposal`);
    const ref = `${PROPOSALS}${req.proposal}`;
    if (!(await ctx.store.resolve(ref))) throw notFound(`proposal ${req.proposal} does not exist (it may have been approved or rejected); omit proposal to start a new one`);
    return { ref, proposal: req.proposal };
  }
  if (ctx.agent.mode === 'propose') {
    const id = newProposalId(ctx.agent.name);
    return { ref: `${PROPOSALS}${id}`, from: MAIN, proposal: id };
  }
  return { ref: MAIN, proposal: null };
}

export async function write(ctx: Ctx, req: WriteRequest): Promise<WriteResult> {
  requireWrite(ctx.agent, req.tool);
  requireProjects(ctx.agent, req.projects);
  const requestId = randomUUID();
  const to = await target(ctx, req);
  const trailers = [`Mlink-Tool: ${req.tool}`, `Mlink-Request-Id: ${requestId}`, `Mlink-Agent: ${ctx.agent.name}`];
  if (to.proposal) trailers.push(`Mlink-Proposal: ${to.proposal}`);
  try {
    const result = await ctx.store.commit({
      ref: to.ref,
      from: to.from,
      author: agentIdentity(ctx.agent),
      message: `${req.summary}\n\n${req.body ? `${req.body}\n\n` : ''}${trailers.join('\n')}\n`,
      prepare: req.prepare,
    });
    log.info(result.commit ? 'committed' : 'no change', { tool: req.tool, agent: ctx.agent.name, request_id: requestId, path: req.path, commit: result.commit, branch: to.ref });
    return {
      commit: result.commit,
      proposal: result.commit ? to.proposal : null,
      branch: to.ref.replace('refs/heads/', ''),
      path: req.path,
      summary: result.commit ? req.summary : `${req.summary} (no change: the state already says this)`,
      request_id: requestId,
    };
  } catch (err) {
    if (err instanceof ApplyConflictError) throw conflict(err.message);
    if (!(err instanceof DomainError)) log.error('write failed', { tool: req.tool, agent: ctx.agent.name, request_id: requestId, err });
    throw err;
  }
}
