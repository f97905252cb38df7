// Proposals: an agent in review mode writes to `proposals/<id>` instead of main. They are
// plain branches, so a git host's merge requests work on them too; these functions are
// what `mlink review` and the list_proposals tool use.
import { MAIN, PROPOSALS, type Identity, type StateStore } from '../state/store.js';
import { logEntry, mergeBase, transplant, type LogEntry } from '../state/history.js';
import { diffTrees } from '../state/tree.js';
import { parse } from 'yaml';
import { validateManifest } from '../../schemas/index.js';
import { DomainError, conflict, notFound } from './errors.js';
import { projectOfPath } from './manifests.js';
import { isManifestPath } from '../layout.js';
import { PROPOSAL_ID, type Ctx } from './write.js';

export interface Proposal {
  id: string;
  branch: string;
  head: string;
  base: string | null;
  agent: string;
  subject: string;
  updated: string;
  commits: LogEntry[];
  files: Array<{ path: string; change: 'added' | 'modified' | 'deleted' }>;
}

async function commitsSince(store: StateStore, head: string, base: string | null): Promise<LogEntry[]> {
  const out: LogEntry[] = [];
  for (let oid: string | undefined = head; oid && oid !== base && out.length < 200;) {
    const c = await store.readCommit(oid);
    out.push(logEntry(oid, c));
    oid = c.parents[0];
  }
  return out;
}

export async function readProposal(store: StateStore, id: string): Promise<Proposal> {
  if (!PROPOSAL_ID.test(id)) throw new DomainError('invalid_input', `${JSON.stringify(id)} is not a proposal id; \`mlink review list\` shows them`);
  const branch = `${PROPOSALS}${id}`;
  const head = await store.resolve(branch);
  if (!head) throw notFound(`proposal ${id} does not exist; it may have been approved or rejected`);
  const main = await store.resolve(MAIN);
  const base = main ? await mergeBase(store, main, head) : null;
  const commits = await commitsSince(store, head, base);
  const baseTree = base ? (await store.readCommit(base)).tree : null;
  const headCommit = await store.readCommit(head);
  const files = [...(await diffTrees(store.objects, baseTree, headCommit.tree))].map(([path, [a, b]]) => ({
    path,
    change: a === null ? ('added' as const) : b === null ? ('deleted' as const) : ('modified' as const),
  }));
  const last = commits[commits.length - 1];
  return {
    id,
    branch: branch.replace('refs/heads/', ''),
    head,
    base,
    agent: last?.author.name ?? headCommit.author.name,
    subject: last?.subject ?? '',
    updated: new Date(headCommit.committer.timestamp * 1000).toISOString(),
    commits,
    files,
  };
}

export async function allProposals(store: StateStore): Promise<Proposal[]> {
  const refs = await store.listRefs(PROPOSALS);
  return Promise.all(refs.map((r) => readProposal(store, r.slice(PROPOSALS.length))));
}

/** Proposals an agent may see: those touching only projects it may touch. */
export async function listProposals(ctx: Ctx): Promise<{ proposals: Proposal[] }> {
  const all = await allProposals(ctx.store);
  const visible = all.filter((p) => ctx.agent.projects.includes('*') || p.files.every((f) => {
    const project = projectOfPath(f.path);
    return project !== null && ctx.agent.projects.includes(project);
  }));
  return { proposals: visible };
}

/** Merges a proposal into main as a merge commit authored by the reviewer, then deletes its branch. */
export async function approveProposal(store: StateStore, id: string, reviewer: Identity): Promise<{ commit: string; proposal: Proposal }> {
  const proposal = await readProposal(store, id);
  const baseTree = proposal.base ? (await store.readCommit(proposal.base)).tree : null;
  const headTree = (await store.readCommit(proposal.head)).tree;
  const result = await store.commit({
    ref: MAIN,
    author: reviewer,
    committer: reviewer,
    extraParents: [proposal.head],
    message: `Merge proposal ${id}: ${proposal.subject}\n\nApproved by ${reviewer.name}; ${proposal.commits.length} commit(s) by ${proposal.agent}.\n\nMlink-Proposal: ${id}\nMlink-Approved-By: ${reviewer.name} <${reviewer.email}>\n`,
    prepare: async (view) => {
      const { changes, conflicts } = await transplant(store, baseTree, headTree, view);
      if (conflicts.length) throw conflict(`proposal ${id} conflicts with main on ${conflicts.join(', ')}: those files changed on main since the proposal was made; reject it and ask the agent to redo the change`);
      for (const c of changes) {
        if (c.content === null || !isManifestPath(c.path)) continue;
        try { validateManifest(c.path, parse(Buffer.from(c.content).toString('utf8'))); } catch (err) {
          throw conflict(`proposal ${id} writes an invalid ${c.path}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      return changes;
    },
  });
  await store.deleteRef(`${PROPOSALS}${id}`, proposal.head);
  return { commit: result.commit!, proposal };
}

/** Deletes a proposal's branch. Its commits stay in the object store until git gc. */
export async function rejectProposal(store: StateStore, id: string): Promise<Proposal> {
  const proposal = await readProposal(store, id);
  await store.deleteRef(`${PROPOSALS}${id}`, proposal.head);
  return proposal;
}
