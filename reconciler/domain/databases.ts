// Database operations: the same shape as apps, without secrets or source.
import { API_VERSION, type Database, type DatabaseSpec } from '../../schemas/index.js';
import { MAIN } from '../state/store.js';
import { DomainError, notFound } from './errors.js';
import type { LiveStateProvider, LiveStatus } from './live-state.js';
import { checkManifest, deleteManifest, fileLabel, listManifests, manifestPath, readManifest } from './manifests.js';
import { requireProjects, write, type Ctx, type WriteResult } from './write.js';

export interface CreateDatabaseInput {
  name: string;
  project?: string;
  engine: DatabaseSpec['engine'];
  version?: string;
  storage_gb?: number;
  resources?: { cpu?: number; memory_mb?: number; pids?: number };
  backups?: { schedule?: string; keep?: number };
  proposal?: string;
}

function spec(input: CreateDatabaseInput): DatabaseSpec {
  const out: DatabaseSpec = { engine: input.engine };
  if (input.version !== undefined) out.version = input.version;
  if (input.storage_gb !== undefined) out.storageGb = input.storage_gb;
  if (input.resources !== undefined) {
    const r = input.resources;
    out.resources = Object.fromEntries(Object.entries({ cpu: r.cpu, memoryMb: r.memory_mb, pids: r.pids }).filter(([, v]) => v !== undefined));
  }
  if (input.backups !== undefined) out.backups = input.backups;
  return out;
}

export async function createDatabase(ctx: Ctx, input: CreateDatabaseInput): Promise<WriteResult> {
  const project = input.project ?? 'default';
  const manifest: Database = { apiVersion: API_VERSION, kind: 'Database', metadata: { name: input.name, project }, spec: spec(input) };
  const text = checkManifest(fileLabel('Database', project, input.name), manifest);
  const path = manifestPath('Database', project, input.name);
  return write(ctx, {
    tool: 'create_database',
    projects: [project],
    path,
    proposal: input.proposal,
    summary: `create database ${project}/${input.name}: ${input.engine}${input.version ? ` ${input.version}` : ''}`,
    prepare: async (view) => {
      if (await view.blobOid(path)) throw new DomainError('already_exists', `database ${project}/${input.name} already exists (${path}); pick another name or delete it first`);
      return [{ path, content: text }];
    },
  });
}

export async function deleteDatabase(ctx: Ctx, input: { name: string; project?: string; expected_revision?: string; proposal?: string }): Promise<WriteResult> {
  return deleteManifest(ctx, 'Database', input);
}

export async function getDatabase(ctx: Ctx, live: LiveStateProvider, input: { name: string; project?: string }): Promise<{ database: Database; revision: string; path: string; commit: string | null; live: LiveStatus }> {
  const project = input.project ?? 'default';
  requireProjects(ctx.agent, [project]);
  const view = await ctx.store.view(MAIN);
  const found = await readManifest<Database>(view, 'Database', project, input.name);
  if (!found) throw notFound(`database ${project}/${input.name} does not exist; list_databases shows the databases there are`);
  return { database: found.manifest, revision: found.revision, path: found.path, commit: view.commit, live: await live.status({ kind: 'Database', project, name: input.name }) };
}

export async function listDatabases(ctx: Ctx, input: { project?: string }): Promise<{ databases: Array<{ name: string; project: string; engine: string; revision: string; path: string }>; invalid: string[]; commit: string | null }> {
  if (input.project) requireProjects(ctx.agent, [input.project]);
  const view = await ctx.store.view(MAIN);
  const { items, invalid } = await listManifests<Database>(view, 'Database', input.project);
  const databases = items
    .filter((i) => input.project || ctx.agent.projects.includes('*') || ctx.agent.projects.includes(i.manifest.metadata.project))
    .map((i) => ({ name: i.manifest.metadata.name, project: i.manifest.metadata.project, engine: i.manifest.spec.engine, revision: i.revision, path: i.path }));
  return { databases, invalid, commit: view.commit };
}
