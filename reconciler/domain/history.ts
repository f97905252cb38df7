// History, revert and plan: reading the log, undoing a commit as a new commit, and the
// desired state the reconciler would act on.
import git from 'isomorphic-git';
import * as fs from 'node:fs';
import { parse } from 'yaml';
import type { Kind } from '../../schemas/index.js';
import { validateManifest } from '../../schemas/index.js';
import { fileHistory, isAncestor, logEntry, revertChanges, type LogEntry } from '../state/history.js';
import { secretDir } from '../layout.js';
import { MAIN } from '../state/store.js';
import { diffTrees } from '../state/tree.js';
import { conflict, forbidden, invalid, notFound } from './errors.js';
import type { DesiredResource, LivePlan, LiveStateProvider } from './live-state.js';
import { listManifests, manifestPath, projectOfPath } from './manifests.js';
import { isManifestPath } from '../layout.js';
import { requireProjects, write, type Ctx, type WriteResult } from './write.js';

export interface HistoryInput { kind?: 'app' | 'database'; name?: string; project?: string; limit?: number }

async function repoLog(ctx: Ctx, head: string, limit: number): Promise<LogEntry[]> {
  const commits = await git.log({ fs, gitdir: ctx.store.gitdir, ref: head, depth: limit });
  return commits.map((c) => logEntry(c.oid, { ...c.commit, parents: c.commit.parent }));
}

export async function history(ctx: Ctx, input: HistoryInput): Promise<{ commits: LogEntry[]; paths: string[] }> {
  const limit = input.limit ?? 20;
  const head = await ctx.store.resolve(MAIN);
  if (!head) return { commits: [], paths: [] };
  if (!input.name) {
    if (!ctx.agent.projects.includes('*')) throw forbidden(`agent "${ctx.agent.name}" is limited to projects ${ctx.agent.projects.join(', ')}; pass kind, name and project to read one resource's history`);
    return { commits: await repoLog(ctx, head, limit), paths: [] };
  }
  const project = input.project ?? 'default';
  requireProjects(ctx.agent, [project]);
  const kind: Kind = input.kind === 'database' ? 'Database' : 'App';
  const paths = [manifestPath(kind, project, input.name), ...(kind === 'App' ? [secretDir(project, input.name)] : [])];
  return { commits: await fileHistory(ctx.store, head, paths, limit), paths };
}

export async function revert(ctx: Ctx, input: { commit: string; proposal?: string }): Promise<WriteResult> {
  if (!/^[0-9a-f]{7,40}$/.test(input.commit)) throw invalid(`commit ${JSON.stringify(input.commit)} must be a commit id (7 to 40 hex digits), as history shows`);
  let oid: string;
  try {
    oid = await git.expandOid({ fs, gitdir: ctx.store.gitdir, oid: input.commit });
  } catch {
    throw notFound(`commit ${input.commit} does not exist in the state repo; history lists the commits`);
  }
  const head = await ctx.store.resolve(MAIN);
  if (!head || !(await isAncestor(ctx.store, oid, head))) throw invalid(`commit ${input.commit} is not on main; only changes on main can be reverted`);
  const target = await ctx.store.readCommit(oid);
  if (target.parents.length === 0) throw invalid(`commit ${input.commit} is the repository's first commit; it cannot be reverted`);
  const parentTree = (await ctx.store.readCommit(target.parents[0]!)).tree;
  const touched = [...(await diffTrees(ctx.store.objects, parentTree, target.tree)).keys()];
  const projects = new Set<string>();
  for (const path of touched) {
    const p = projectOfPath(path);
    if (!p) throw forbidden(`commit ${input.commit} changes ${path}, which is cluster-wide; only a human can revert it (git revert ${oid.slice(0, 12)})`);
    projects.add(p);
  }
  const subject = target.message.split('\n')[0] ?? '';
  return write(ctx, {
    tool: 'revert',
    projects: [...projects],
    path: touched.join(', '),
    proposal: input.proposal,
    summary: `Revert "${subject}"`,
    body: `This reverts commit ${oid}.`,
    prepare: async (view) => {
      const changes = await revertChanges(ctx.store, oid, view);
      for (const c of changes) {
        if (c.content === null || !isManifestPath(c.path)) continue;
        try {
          validateManifest(c.path, parse(Buffer.from(c.content).toString('utf8')));
        } catch (err) {
          throw conflict(`reverting ${input.commit} would restore an invalid ${c.path}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      return changes;
    },
  });
}

export async function plan(ctx: Ctx, live: LiveStateProvider, input: { project?: string }): Promise<{ commit: string | null; desired: DesiredResource[]; invalid: string[]; live: LivePlan }> {
  if (input.project) requireProjects(ctx.agent, [input.project]);
  const view = await ctx.store.view(MAIN);
  const desired: DesiredResource[] = [];
  const bad: string[] = [];
  for (const kind of ['App', 'Database'] as const) {
    const { items, invalid: broken } = await listManifests(view, kind, input.project);
    bad.push(...broken);
    for (const i of items) {
      const { project, name } = i.manifest.metadata;
      if (!input.project && !ctx.agent.projects.includes('*') && !ctx.agent.projects.includes(project)) continue;
      desired.push({ kind, project, name, revision: i.revision });
    }
  }
  return { commit: view.commit, desired, invalid: bad, live: await live.plan({ commit: view.commit, resources: desired }) };
}
