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
import type { BackupInfo, LiveStateProvider, LiveStatus, OperationRun, RetainedDatabase } from './live-state.js';
import { checkManifest, checkRevision, deleteManifest, fileLabel, listManifests, manifestPath, readManifest } from './manifests.js';
import { requireProjects, requireWrite, write, type Ctx, type WriteResult } from './write.js';

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
  /**
   * Where bound apps reach it: `host` is its address on its own project's network while
   * it runs (an app of another project gets its address on that project's network, see
   * live.database.addresses); `name` is its name for clients that use Docker's DNS. The
   * password is never shown.
   */
  connect: { host: string; port: number; name: string };
  bound_apps: string[];
  /** The newest backup and whether its restore drill passed; null when there is none (or the reconciler is not running here). */
  last_backup: BackupInfo | null;
  live: LiveStatus;
}

export async function getDatabase(ctx: Ctx, live: LiveStateProvider, input: { name: string; project?: string }): Promise<DatabaseView> {
  const project = input.project ?? 'default';
  requireProjects(ctx.agent, [project]);
  const view = await ctx.store.view(MAIN);
  const found = await readManifest<Database>(view, 'Database', project, input.name);
  if (!found) throw notFound(`database ${project}/${input.name} does not exist; list_databases shows the databases there are (and any retained data)`);
  const engine = ENGINES[resolveEngine(found.manifest.spec.engine)!.name];
  const status = await live.status({ kind: 'Database', project, name: input.name });
  const own = status.known ? status.database?.address ?? '' : '';
  return {
    database: found.manifest, revision: found.revision, path: found.path, commit: view.commit,
    engine: engine.description,
    connect: { host: own, port: engine.port, name: databaseHostname({ project, name: input.name }) },
    bound_apps: await boundApps(view, project, input.name),
    last_backup: (await live.backups?.list({ project, name: input.name }).catch(() => []))?.[0] ?? null,
    live: status,
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

/** Backups and restores need the reconciler (its workers run them); without it they are refused, not queued. */
function backupsOf(live: LiveStateProvider): NonNullable<LiveStateProvider['backups']> {
  if (!live.backups) throw new DomainError('not_found', 'backups are run by the reconciler, which is not running in this server; use `mlink up` (or `mlink db` beside it)');
  return live.backups;
}

async function existing(ctx: Ctx, project: string, name: string): Promise<Database> {
  const found = await readManifest<Database>(await ctx.store.view(MAIN), 'Database', project, name);
  if (!found) throw notFound(`database ${project}/${name} does not exist; list_databases shows the databases there are`);
  return found.manifest;
}

const DEFAULT_WAIT_S = 600;

export async function backupDatabase(ctx: Ctx, live: LiveStateProvider, input: { name: string; project?: string; wait?: number }): Promise<OperationRun> {
  const project = input.project ?? 'default';
  requireWrite(ctx.agent, 'backup_database');
  requireProjects(ctx.agent, [project]);
  const db = await existing(ctx, project, input.name);
  return backupsOf(live).backup({ project, name: input.name, keep: db.spec.backups?.keep ?? 7 }, (input.wait ?? DEFAULT_WAIT_S) * 1000);
}

export async function listBackups(ctx: Ctx, live: LiveStateProvider, input: { name: string; project?: string }): Promise<{ backups: BackupInfo[]; restore_default: string | null }> {
  const project = input.project ?? 'default';
  requireProjects(ctx.agent, [project]);
  const backups = await backupsOf(live).list({ project, name: input.name });
  return { backups, restore_default: backups.find((b) => b.verified === true)?.id ?? null };
}

export interface RestoreDatabaseInput { name: string; project?: string; backup?: string; at?: string; into?: string; wait?: number }

/**
 * restore_database: a backup (by id, or the newest verified one) or, for Postgres, a
 * point in time, into the same database (after an automatic safety backup) or into a new
 * one of the same engine (created by this call, with its own credentials).
 */
export async function restoreDatabase(ctx: Ctx, live: LiveStateProvider, input: RestoreDatabaseInput): Promise<OperationRun & { created?: WriteResult }> {
  const project = input.project ?? 'default';
  requireWrite(ctx.agent, 'restore_database');
  requireProjects(ctx.agent, [project]);
  const service = backupsOf(live);
  const source = await existing(ctx, project, input.name);
  const engine = resolveEngine(source.spec.engine)!;
  if (input.backup !== undefined && input.at !== undefined) throw invalid('give backup or at, not both: a backup restores a dump; at replays Postgres\'s WAL to a time');
  let at: string | undefined;
  if (input.at !== undefined) {
    const t = Date.parse(input.at);
    if (Number.isNaN(t)) throw invalid(`at ${JSON.stringify(input.at)} is not a time; give an RFC 3339 time such as 2026-12-03T10:15:00Z`);
    if (engine.name !== 'postgres') throw invalid(`at: point-in-time recovery is for postgres; ${project}/${input.name} is ${engine.description}: restore a backup (list_backups)`);
    at = new Date(t).toISOString();
  }
  const into = input.into ?? input.name;
  if (at && into !== input.name) throw invalid(`at with into: a point-in-time restore goes into the same database (after a safety backup); restore a backup into ${into} instead, or restore ${input.name} to the time`);
  let created: WriteResult | undefined;
  if (into !== input.name) {
    const target = await readManifest<Database>(await ctx.store.view(MAIN), 'Database', project, into);
    if (target) {
      if (resolveEngine(target.manifest.spec.engine)!.name !== engine.name) throw invalid(`into: ${project}/${into} is ${resolveEngine(target.manifest.spec.engine)!.description}, not ${engine.description}; restore into a database of the same engine`);
    } else {
      created = await createDatabase(ctx, { name: into, project, engine: source.spec.engine, ...(source.spec.version ? { version: source.spec.version } : {}) });
      if (created.proposal) throw invalid(`into: ${project}/${into} would be created on proposal ${created.proposal}; in review mode, create it first and have it approved, then restore into it`);
    }
  }
  const run = await service.restore({ project, name: input.name, into, ...(input.backup ? { backup: input.backup } : {}), ...(at ? { at } : {}), fresh: !!created }, (input.wait ?? DEFAULT_WAIT_S) * 1000);
  return { ...run, ...(created ? { created } : {}) };
}
