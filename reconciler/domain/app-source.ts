// Source as agents send it, turned into what the manifest pins. Files (a map or a base64
// tar) are checked, then committed to the app's internal source repo; a git URL is
// fetched there with isomorphic-git; either way the manifest pins the exact commit, so
// the state repo stays small and a revert brings the exact earlier source back. Bad
// input is refused before anything is written.
import type { AppSource } from '../../schemas/index.js';
import { SOURCE_MAIN, type SourceRepos } from '../source-repos/source-repo.js';
import { SourceError, checkSourceFiles, filesFromMap, filesFromTar, pathProblem, type SourceFile } from '../source-repos/source-files.js';
import { PROPOSALS } from '../state/store.js';
import { DomainError, invalid } from './errors.js';
import { agentIdentity, requireProjects, requireWrite, type Ctx } from './write.js';

/** Source as tools accept it: the manifest forms plus files sent inline. */
export type SourceInput =
  | { image: string }
  | { files: Record<string, string> }
  | { tar: string }
  | { git: { url: string; ref: string; path?: string } }
  | { repo: { app?: string; commit?: string; path?: string } };

export interface ResolvedSource {
  source: AppSource;
  /** A line for the commit body, e.g. where the files went. */
  note?: string;
  /** Moves the source repo's branch to the new commit once the manifest pinning it is committed. */
  finalize(result: { commit: string | null; proposal: string | null }): Promise<void>;
}

const nothing = async (): Promise<void> => undefined;
export const SOURCE_FORMS = 'exactly one of { image }, { files }, { tar }, { git: { url, ref } } or { repo: { commit } }';

function checkPath(file: string, field: string, path: string | undefined): void {
  const problem = path === undefined ? null : pathProblem(path);
  if (problem) throw invalid(`${file}: ${field} ${JSON.stringify(path)} is not valid: ${problem}`);
}

function sourceFiles(file: string, input: SourceInput): SourceFile[] | null {
  try {
    if ('files' in input) return checkSourceFiles(`${file}: spec.source.files`, filesFromMap(input.files));
    if ('tar' in input) return checkSourceFiles(`${file}: spec.source.tar`, filesFromTar(`${file}: spec.source.tar`, input.tar));
    return null;
  } catch (e) {
    if (e instanceof SourceError) throw new DomainError(e.code, e.message);
    throw e;
  }
}

/** Resolves `input` for app project/name. Throws DomainError (nothing stored) when the source is refused. */
export async function resolveSource(ctx: Ctx & { sources: SourceRepos }, file: string, project: string, name: string, input: SourceInput, opts: { tool: string; proposal?: string }): Promise<ResolvedSource> {
  const keys = Object.keys(input);
  if (keys.length !== 1) throw invalid(`${file}: spec.source must NOT have ${keys.length ? 'more than 1 properties' : 'fewer than 1 properties'} (allowed: ${SOURCE_FORMS}; got ${keys.join(', ') || 'none'})`);
  if ('image' in input) return { source: { image: input.image }, finalize: nothing };
  requireWrite(ctx.agent, opts.tool);
  const { sources } = ctx;
  const files = sourceFiles(file, input);
  if (files) {
    requireProjects(ctx.agent, [project]);
    const ref = opts.proposal ? `${PROPOSALS}${opts.proposal}` : SOURCE_MAIN;
    const message = `${opts.tool}: ${files.length} file(s) for app ${project}/${name}\n\nMlink-Tool: ${opts.tool}\nMlink-Agent: ${ctx.agent.name}\n`;
    const prepared = await sources.prepareCommit(project, name, files, agentIdentity(ctx.agent), message, ref);
    return {
      source: { repo: { commit: prepared.commit } },
      note: `source: ${files.length} file(s), commit ${prepared.commit} in ${project}/${name}.git${prepared.unchanged ? ' (unchanged)' : ''}`,
      async finalize(result) {
        if (!result.commit || prepared.unchanged) return;
        const target = result.proposal ? `${PROPOSALS}${result.proposal}` : SOURCE_MAIN;
        await sources.setRef(project, name, prepared.commit, target === ref ? prepared.parent : await sources.head(project, name, target), target);
      },
    };
  }
  if ('git' in input) {
    checkPath(file, 'spec.source.git.path', input.git.path);
    if (!/^https?:\/\//.test(input.git.url)) throw invalid(`${file}: spec.source.git.url ${JSON.stringify(input.git.url)} cannot be fetched: only http:// and https:// URLs are (ssh needs keys on the build host)`);
    if (!/^(?!.*\.\.)[A-Za-z0-9._/-]{1,255}$/.test(input.git.ref)) throw invalid(`${file}: spec.source.git.ref ${JSON.stringify(input.git.ref)} is not a branch, tag or commit`);
    let commit: string;
    try {
      commit = await sources.fetch(project, name, input.git.url, input.git.ref);
    } catch (e) {
      throw invalid(`${file}: could not fetch ${input.git.url} ${input.git.ref}: ${(e as Error).message}; check the URL and that the ref exists`);
    }
    return {
      source: { git: { url: input.git.url, ref: input.git.ref, commit, ...(input.git.path ? { path: input.git.path } : {}) } },
      note: `source: ${input.git.url} ${input.git.ref} at ${commit}, fetched into ${project}/${name}.git`,
      finalize: nothing,
    };
  }
  if (!('repo' in input)) throw invalid(`${file}: spec.source must have exactly one of image, files, tar, git or repo`);
  const [p, n] = input.repo.app ? input.repo.app.split('/') : [project, name];
  if (!p || !n) throw invalid(`${file}: spec.source.repo.app ${JSON.stringify(input.repo.app)} must be <project>/<app>`);
  requireProjects(ctx.agent, [p]);
  checkPath(file, 'spec.source.repo.path', input.repo.path);
  const commit = input.repo.commit ?? (await sources.head(p, n));
  if (!commit) throw invalid(`${file}: the source repo ${p}/${n}.git has no commits; send files first`);
  if (!/^[0-9a-f]{40}$/.test(commit) || !(await sources.hasCommit(p, n, commit))) throw invalid(`${file}: commit ${commit} is not in the source repo ${p}/${n}.git (give all 40 hex digits)`);
  return {
    source: { repo: { commit, ...(input.repo.app ? { app: input.repo.app } : {}), ...(input.repo.path ? { path: input.repo.path } : {}) } },
    finalize: nothing,
  };
}
