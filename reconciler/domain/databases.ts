// Database operations: validate, then one write through write.ts. create_database makes
// the credentials (user, password, database name) and commits them age-encrypted with
// the manifest, so restoring the repo restores access; no result ever carries them.
import cron from 'node-cron';
import { API_VERSION, type App, type Database, type DatabaseSpec } from '../../schemas/index.js';
import { ENGINES, engineVersionProblem, resolveEngine } from '../databases/engines.js';
import { newCredentials } from '../databases/credentials.js';
import { credentialsPath, databaseHostname, databaseSecretDir } from '../layout.js';
import { encryptSecret } from '../state/secrets.js';
import { MAIN } from '../state/store.js';
import type { TreeView } from '../state/tree.js';
import { clusterConfig } from './cluster.js';
import { DomainError, conflict, invalid, notFound } from './errors.js';
import type { LiveStateProvider, LiveStatus, RetainedDatabase } from './live-state.js';
import { checkManifest, checkRevision, deleteManifest, fileLabel, listManifests, manifestPath, readManifest } from './manifests.js';
import { requireProjects, write, type Ctx, type WriteResult } from './write.js';

type Resources = { cpu?: number; memory_mb?: number; pids?: number };
type Backups = { schedule?: string; keep?: number };

export interface CreateDatabaseInput {
  name: string;
  project?: string;
  engine: string;
  version?: string;
  resources?: Resources;
  backups?: Backups;
  proposal?: string;
}

export interface UpdateDatabaseInput {
  name: string;
  project?: string;
  /** Only the release it already has: engines and releases do not change in place. */
  version?: string;
  resources?: Resources | null;
  backups?: Backups | null;
  expected_revision?: string;
  proposal?: string;
}

function resourcesOf(r: Resources): DatabaseSpec['resources'] {
  return Object.fromEntries(Object.entries({ cpu: r.cpu, memoryMb: r.memory_mb, pids: r.pids }).filter(([, v]) => v !== undefined));
}

function checkBackups(file: string, b: Backups | null | undefined): void {
  if (b?.schedule !== undefined && !cron.validate(b.schedule)) throw invalid(`${file}: backups.schedule ${JSON.stringify(b.schedule)} is not a cron expression; give five fields such as "0 3 * * *" (03:00 every day)`);
}

function manifest(name: string, project: string, spec: DatabaseSpec): Database {
  return { apiVersion: API_VERSION, kind: 'Database', metadata: { name, project }, spec };
}

/** Apps (at `view`) bound to database project/name, as `project/app`. */
export async function boundApps(view: TreeView, project: string, name: string): Promise<string[]> {
  const { items } = await listManifests<App>(view, 'App');
  return items
    .filter((i) => (i.manifest.spec.databases ?? []).some((b) => (b.project ?? i.manifest.metadata.project) === project && b.name === name))
    .map((i) => `${i.manifest.metadata.project}/${i.manifest.metadata.name}`);
}

export async function createDatabase(ctx: Ctx, input: CreateDatabaseInput): Promise<WriteResult> {
  const project = input.project ?? 'default';
  const file = fileLabel('Database', project, input.name);
  const problem = engineVersionProblem(input.engine, input.version);
  if (problem) throw invalid(`${file}: ${problem.replace(/^spec\./, '')}`);
  const engine = resolveEngine(input.engine)!;
  checkBackups(file, input.backups);
  const spec: DatabaseSpec = {
    engine: input.engine as DatabaseSpec['engine'],
    ...(input.version !== undefined ? { version: input.version } : {}),
    ...(input.resources ? { resources: resourcesOf(input.resources) } : {}),
    ...(input.backups ? { backups: input.backups } : {}),
  };
  const text = checkManifest(file, manifest(input.name, project, spec));
  const path = manifestPath('Database', project, input.name);
  return write(ctx, {
    tool: 'create_database',
    projects: [project],
    path,
    proposal: input.proposal,
    summary: `create database ${project}/${input.name}: ${engine.description}`,
    body: `Credentials made by ml.ink, encrypted to the cluster key: ${credentialsPath(project, input.name)}`,
    prepare: async (view) => {
      if (await view.blobOid(path)) throw new DomainError('already_exists', `database ${project}/${input.name} already exists (${path}); pick another name or delete it first`);
      const recipients = (await clusterConfig(view)).spec.secrets.recipients;
      const credentials = await encryptSecret(JSON.stringify(newCredentials(engine.name)), recipients);
      return [{ path, content: text }, { path: credentialsPath(project, input.name), content: credentials }];
    },
  });
}

export async function updateDatabase(ctx: Ctx, input: UpdateDatabaseInput): Promise<WriteResult> {
  const project = input.project ?? 'default';
  const file = fileLabel('Database', project, input.name);
  const path = manifestPath('Database', project, input.name);
  checkBackups(file, input.backups);
  const changed = [input.version !== undefined && `version ${input.version}`, input.resources !== undefined && (input.resources ? 'resources' : 'no resources'), input.backups !== undefined && (input.backups ? 'backups' : 'no backups')].filter(Boolean);
  return write(ctx, {
    tool: 'update_database',
    projects: [project],
    path,
    proposal: input.proposal,
    summary: `update database ${project}/${input.name}: ${changed.join(', ') || 'nothing'}`,
    prepare: async (view) => {
      const current = await readManifest<Database>(view, 'Database', project, input.name);
      if (!current) throw notFound(`database ${project}/${input.name} does not exist; create it with create_database`);
      checkRevision(path, input.expected_revision, current.revision, 'get_database');
      const engine = resolveEngine(current.manifest.spec.engine)!;
      if (input.version !== undefined) {
        const problem = engineVersionProblem(engine.name, input.version);
        if (problem) throw invalid(`${file}: ${problem.replace(/^spec\./, '')}`);
      }
      const spec: Record<string, unknown> = { ...current.manifest.spec };
      if (input.version !== undefined) spec.version = input.version;
      if (input.resources === null) delete spec.resources;
      else if (input.resources !== undefined) spec.resources = { ...current.manifest.spec.resources, ...resourcesOf(input.resources) };
      if (input.backups === null) delete spec.backups;
      else if (input.backups !== undefined) spec.backups = { ...current.manifest.spec.backups, ...input.backups };
      return [{ path, content: checkManifest(file, manifest(input.name, project, spec as unknown as DatabaseSpec)) }];
    },
  });
}

export async function deleteDatabase(ctx: Ctx, input: { name: string; project?: string; expected_revision?: string; proposal?: string }): Promise<WriteResult> {
  // Its credentials go with the manifest (a revert of this commit brings both back); its data stays on the host until a human purges it.
  return deleteManifest(ctx, 'Database', input, async (view, project) => {
    const bound = await boundApps(view, project, input.name);
    if (bound.length) throw conflict(`database ${project}/${input.name} is bound to ${bound.join(', ')}; remove the binding first (update_app with databases) so no app loses its data source`);
    const dir = databaseSecretDir(project, input.name);
    return (await view.list(dir)).map((e) => ({ path: `${dir}/${e.path}`, content: null }));
  });
}

export interface DatabaseView {
  database: Database;
  revision: string;
  path: string;
  commit: string | null;
  /** The engine as it runs: "MariaDB 10.11, MySQL-compatible". */
  engine: string;
  /** Where bound apps reach it (their `<PREFIX>_HOST` and `_PORT`); the password is never shown. */
  connect: { host: string; port: number };
  bound_apps: string[];
  live: LiveStatus;
}

export async function getDatabase(ctx: Ctx, live: LiveStateProvider, input: { name: string; project?: string }): Promise<DatabaseView> {
  const project = input.project ?? 'default';
  requireProjects(ctx.agent, [project]);
  const view = await ctx.store.view(MAIN);
  const found = await readManifest<Database>(view, 'Database', project, input.name);
  if (!found) throw notFound(`database ${project}/${input.name} does not exist; list_databases shows the databases there are (and any retained data)`);
  const engine = ENGINES[resolveEngine(found.manifest.spec.engine)!.name];
  return {
    database: found.manifest, revision: found.revision, path: found.path, commit: view.commit,
    engine: engine.description,
    connect: { host: databaseHostname({ project, name: input.name }), port: engine.port },
    bound_apps: await boundApps(view, project, input.name),
    live: await live.status({ kind: 'Database', project, name: input.name }),
  };
}

export interface DatabaseSummary { name: string; project: string; engine: string; revision: string; path: string; live: LiveStatus }

export async function listDatabases(ctx: Ctx, live: LiveStateProvider, input: { project?: string }): Promise<{ databases: DatabaseSummary[]; retained: RetainedDatabase[]; invalid: string[]; commit: string | null }> {
  if (input.project) requireProjects(ctx.agent, [input.project]);
  const view = await ctx.store.view(MAIN);
  const { items, invalid: bad } = await listManifests<Database>(view, 'Database', input.project);
  const visible = (p: string): boolean => (input.project ? p === input.project : ctx.agent.projects.includes('*') || ctx.agent.projects.includes(p));
  const mine = items.filter((i) => visible(i.manifest.metadata.project));
  const ids = mine.map((i) => ({ kind: 'Database' as const, project: i.manifest.metadata.project, name: i.manifest.metadata.name }));
  const states = live.statusMany ? await live.statusMany(ids) : await Promise.all(ids.map((id) => live.status(id)));
  const databases = mine.map((i, n) => ({
    name: i.manifest.metadata.name, project: i.manifest.metadata.project, engine: ENGINES[resolveEngine(i.manifest.spec.engine)!.name].description,
    revision: i.revision, path: i.path, live: states[n]!,
  }));
  const retained = ((await live.retained?.()) ?? []).filter((r) => visible(r.project));
  return { databases, retained, invalid: bad, commit: view.commit };
}
