// App operations: validate, then one write through write.ts. Secret values are
// encrypted inside the write and never leave this module in any result.
import { API_VERSION, type App, type Database } from '../../schemas/index.js';
import { ENGINES, resolveEngine } from '../databases/engines.js';
import { secretDir, secretPath } from '../layout.js';
import { encryptSecret } from '../state/secrets.js';
import type { Change, TreeView } from '../state/tree.js';
import { MAIN } from '../state/store.js';
import { changedFields, describeSource, newAppSpec, updatedAppSpec, type CreateAppInput, type UpdateAppInput } from './app-input.js';
import { clusterConfig } from './cluster.js';
import { DomainError, invalid, notFound } from './errors.js';
import type { LiveStateProvider, LiveStatus } from './live-state.js';
import { checkManifest, checkRevision, deleteManifest, fileLabel, listManifests, manifestPath, readManifest } from './manifests.js';
import { requireProjects, requireWrite, write, type Ctx, type WriteResult } from './write.js';
import { resolveSource, type ResolvedSource } from './app-source.js';
import { SourceRepos } from '../source-repos/source-repo.js';
import { dataDir } from '../util/paths.js';

function withSources(ctx: Ctx): Ctx & { sources: SourceRepos } {
  return { ...ctx, sources: ctx.sources ?? new SourceRepos(dataDir().sources) };
}

async function finish(result: WriteResult, resolved: ResolvedSource | undefined): Promise<WriteResult> {
  await resolved?.finalize(result);
  return result;
}

const MAX_SECRET_BYTES = 64 * 1024;

function checkSecrets(file: string, secrets: Record<string, string | null> | null | undefined): void {
  for (const [name, value] of Object.entries(secrets ?? {})) {
    if (value !== null && Buffer.byteLength(value) > MAX_SECRET_BYTES) throw new DomainError('too_large', `${file}: secret_env.${name} is larger than ${MAX_SECRET_BYTES} bytes; store large files elsewhere`);
    if (value === '') throw invalid(`${file}: secret_env.${name} is empty; pass null to remove a secret`);
  }
}

async function secretChanges(view: TreeView, project: string, name: string, secrets: Record<string, string | null> | null | undefined): Promise<Change[]> {
  if (secrets === undefined) return [];
  if (secrets === null) {
    const existing = await view.list(secretDir(project, name));
    return existing.map((e) => ({ path: `${secretDir(project, name)}/${e.path}`, content: null }));
  }
  const recipients = (await clusterConfig(view)).spec.secrets.recipients;
  const out: Change[] = [];
  for (const [key, value] of Object.entries(secrets)) {
    out.push({ path: secretPath(project, name, key), content: value === null ? null : await encryptSecret(value, recipients) });
  }
  return out;
}

/** Every database an app binds must be in git (at the commit being written), and no two may inject the same variables. */
async function checkBindings(view: TreeView, file: string, project: string, spec: App['spec']): Promise<void> {
  const prefixes = new Map<string, string>();
  for (const [i, b] of (spec.databases ?? []).entries()) {
    const p = b.project ?? project;
    const db = await readManifest<Database>(view, 'Database', p, b.name);
    if (!db) throw invalid(`${file}: databases[${i}] binds database ${p}/${b.name}, which does not exist; create it first with create_database (list_databases shows the databases there are)`);
    const prefix = b.envPrefix ?? ENGINES[resolveEngine(db.manifest.spec.engine)!.name].defaultEnvPrefix;
    const other = prefixes.get(prefix);
    if (other) throw invalid(`${file}: databases[${i}] (${p}/${b.name}) and ${other} would both set ${prefix}_URL; give one of them an env_prefix`);
    prefixes.set(prefix, `${p}/${b.name}`);
  }
}

function appManifest(name: string, project: string, spec: App['spec']): App {
  return { apiVersion: API_VERSION, kind: 'App', metadata: { name, project }, spec };
}

export async function createApp(ctx: Ctx, input: CreateAppInput, now = new Date()): Promise<WriteResult> {
  const project = input.project ?? 'default';
  const file = fileLabel('App', project, input.name);
  // Every other field is checked before any source is stored.
  checkManifest(file, appManifest(input.name, project, newAppSpec({ ...input, source: { image: 'placeholder' } }, now)));
  checkSecrets(file, input.secret_env);
  const path = manifestPath('App', project, input.name);
  if (!('image' in input.source)) {
    requireWrite(ctx.agent, 'create_app');
    requireProjects(ctx.agent, [project]);
    if (await (await ctx.store.view(MAIN)).blobOid(path)) throw new DomainError('already_exists', `app ${project}/${input.name} already exists (${path}); use update_app to change it or pick another name`);
  }
  const resolved = await resolveSource(withSources(ctx), file, project, input.name, input.source, { tool: 'create_app', proposal: input.proposal });
  const manifest = appManifest(input.name, project, newAppSpec({ ...input, source: resolved.source }, now));
  const text = checkManifest(file, manifest);
  return finish(await write(ctx, {
    tool: 'create_app',
    projects: [project],
    path,
    proposal: input.proposal,
    summary: `create app ${project}/${input.name}: ${describeSource(manifest.spec.source)}, port ${manifest.spec.port}`,
    body: resolved.note,
    prepare: async (view) => {
      if (await view.blobOid(path)) throw new DomainError('already_exists', `app ${project}/${input.name} already exists (${path}); use update_app to change it or pick another name`);
      await checkBindings(view, file, project, manifest.spec);
      return [{ path, content: text }, ...(await secretChanges(view, project, input.name, input.secret_env))];
    },
  }), resolved);
}

export async function updateApp(ctx: Ctx, input: UpdateAppInput, now = new Date()): Promise<WriteResult> {
  const project = input.project ?? 'default';
  const file = fileLabel('App', project, input.name);
  const path = manifestPath('App', project, input.name);
  checkSecrets(file, input.secret_env);
  let resolved: ResolvedSource | undefined;
  if (input.source !== undefined && !('image' in input.source)) {
    requireWrite(ctx.agent, 'update_app');
    requireProjects(ctx.agent, [project]);
    const found = await readManifest<App>(await ctx.store.view(MAIN), 'App', project, input.name);
    if (!found) throw notFound(`app ${project}/${input.name} does not exist; create it with create_app`);
    checkRevision(path, input.expected_revision, found.revision, 'get_app');
    resolved = await resolveSource(withSources(ctx), file, project, input.name, input.source, { tool: 'update_app', proposal: input.proposal });
  }
  const change = resolved ? { ...input, source: resolved.source } : input;
  return finish(await write(ctx, {
    tool: 'update_app',
    projects: [project],
    path,
    proposal: input.proposal,
    summary: `update app ${project}/${input.name}: ${changedFields(input)}`,
    body: resolved?.note,
    prepare: async (view) => {
      const current = await readManifest<App>(view, 'App', project, input.name);
      if (!current) throw notFound(`app ${project}/${input.name} does not exist; create it with create_app`);
      checkRevision(path, input.expected_revision, current.revision, 'get_app');
      const next = appManifest(input.name, project, updatedAppSpec(current.manifest.spec, change, now));
      const text = checkManifest(file, next);
      if (input.databases !== undefined) await checkBindings(view, file, project, next.spec);
      return [{ path, content: text }, ...(await secretChanges(view, project, input.name, input.secret_env))];
    },
  }), resolved);
}

export async function deleteApp(ctx: Ctx, input: { name: string; project?: string; expected_revision?: string; proposal?: string }): Promise<WriteResult> {
  // The app's secrets go with it.
  return deleteManifest(ctx, 'App', input, async (view, project) => {
    const dir = secretDir(project, input.name);
    return (await view.list(dir)).map((e) => ({ path: `${dir}/${e.path}`, content: null }));
  });
}

export interface AppView { app: App; revision: string; path: string; commit: string | null; live: LiveStatus }

export async function getApp(ctx: Ctx, live: LiveStateProvider, input: { name: string; project?: string }): Promise<AppView> {
  const project = input.project ?? 'default';
  requireProjects(ctx.agent, [project]);
  const view = await ctx.store.view(MAIN);
  const found = await readManifest<App>(view, 'App', project, input.name);
  if (!found) throw notFound(`app ${project}/${input.name} does not exist; list_apps shows the apps there are`);
  return { app: found.manifest, revision: found.revision, path: found.path, commit: view.commit, live: await live.status({ kind: 'App', project, name: input.name }) };
}

export interface AppSummary { name: string; project: string; source: string; port: number; revision: string; path: string; live: LiveStatus }

export async function listApps(ctx: Ctx, live: LiveStateProvider, input: { project?: string }): Promise<{ apps: AppSummary[]; invalid: string[]; commit: string | null }> {
  if (input.project) requireProjects(ctx.agent, [input.project]);
  const view = await ctx.store.view(MAIN);
  const { items, invalid: bad } = await listManifests<App>(view, 'App', input.project);
  const apps = items
    .filter((i) => input.project || ctx.agent.projects.includes('*') || ctx.agent.projects.includes(i.manifest.metadata.project))
    .map((i) => ({ name: i.manifest.metadata.name, project: i.manifest.metadata.project, source: describeSource(i.manifest.spec.source), port: i.manifest.spec.port, revision: i.revision, path: i.path }));
  const ids = apps.map((a) => ({ kind: 'App' as const, project: a.project, name: a.name }));
  const states = live.statusMany ? await live.statusMany(ids) : await Promise.all(ids.map((id) => live.status(id)));
  return { apps: apps.map((a, i) => ({ ...a, live: states[i]! })), invalid: bad, commit: view.commit };
}
