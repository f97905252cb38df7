// Where each resource lives in the state repo and how its file is read and written.
// Identity is (kind, project, name); the path follows from it and nothing else.
import { parse, stringify } from 'yaml';
import { MAX_MANIFEST_BYTES, SchemaError, validateManifest, type Kind, type Manifest } from '../../schemas/index.js';
import type { TreeView } from '../state/tree.js';
import { DomainError, invalid, notFound } from './errors.js';
import type { Change } from '../state/tree.js';
import { write, type Ctx, type WriteResult } from './write.js';

export const DNS_LABEL = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;
const DIRS: Record<Kind, string> = { App: 'apps', Database: 'databases' };

export function manifestPath(kind: Kind, project: string, name: string): string {
  if (!DNS_LABEL.test(project) || !DNS_LABEL.test(name)) throw invalid(`project and name must be DNS labels, got ${JSON.stringify(`${project}/${name}`)}`);
  return `${DIRS[kind]}/${project}/${name}.yaml`;
}

/** A stale expected_revision is a conflict, never an overwrite; the message says how to retry. */
export function checkRevision(path: string, expected: string | undefined, actual: string, getTool: string): void {
  if (expected !== undefined && expected !== actual) {
    throw new DomainError('conflict', `${path} changed since revision ${expected} (it is now ${actual}); call ${getTool} for the current manifest, re-apply your change and pass the new revision as expected_revision`);
  }
}

/** A label for error messages: the file path when the identity is valid, else a description. */
export function fileLabel(kind: Kind, project: string, name: string): string {
  return DNS_LABEL.test(project) && DNS_LABEL.test(name) ? manifestPath(kind, project, name) : `the ${kind} manifest`;
}

/** The project a state-repo path belongs to, or null for cluster-wide files (mlink.yaml, README.md, ...). */
export function projectOfPath(path: string): string | null {
  const m = /^(apps|databases|secrets)\/([^/]+)\//.exec(path);
  return m?.[2] ?? null;
}

export function toYaml(m: Manifest): string {
  return stringify(m, { lineWidth: 0 });
}

/** Validates a manifest built from tool input; throws an invalid_input DomainError naming the field. */
export function checkManifest(file: string, m: Manifest): string {
  try {
    validateManifest(file, m);
  } catch (err) {
    if (err instanceof SchemaError) throw invalid(err.message);
    throw err;
  }
  const text = toYaml(m);
  const size = Buffer.byteLength(text);
  if (size > MAX_MANIFEST_BYTES) {
    const hint = m.kind === 'App' && 'files' in m.spec.source ? ' spec.source.files is the likely cause: send fewer or smaller files, or use source.git' : '';
    throw new DomainError('too_large', `${file}: the manifest is ${size} bytes; at most ${MAX_MANIFEST_BYTES} bytes are allowed.${hint}`);
  }
  return text;
}

export interface StoredManifest<M extends Manifest = Manifest> { manifest: M; revision: string; path: string }

/**
 * Validated manifests by path and blob id. A blob never changes, so a manifest parsed
 * and validated once need not be again: a reconcile pass over 200 unchanged apps reads
 * trees, not YAML. Callers get a copy they may change.
 */
const validated = new Map<string, Manifest>();
const CACHE_LIMIT = 20_000;

async function manifestAt<M extends Manifest>(view: TreeView, path: string, revision: string): Promise<M> {
  const key = `${path}\0${revision}`;
  let m = validated.get(key);
  if (!m) {
    const text = (await view.readText(path)) ?? '';
    try {
      m = validateManifest(path, parse(text));
    } catch (err) {
      throw new DomainError('conflict', `${err instanceof Error ? err.message : String(err)} (the file in git is invalid; fix or revert the commit that wrote it)`);
    }
    if (validated.size >= CACHE_LIMIT) validated.clear();
    validated.set(key, m);
  }
  return structuredClone(m) as M;
}

/** Reads and validates one manifest; null when absent. A file that fails validation is reported, never returned. */
export async function readManifest<M extends Manifest>(view: TreeView, kind: M['kind'], project: string, name: string): Promise<StoredManifest<M> | null> {
  const path = manifestPath(kind, project, name);
  const revision = await view.blobOid(path);
  if (!revision) return null;
  return { manifest: await manifestAt<M>(view, path, revision), revision, path };
}

/** Every manifest of a kind, optionally in one project, sorted by project then name. Invalid files are reported in `invalid`. */
export async function listManifests<M extends Manifest>(view: TreeView, kind: M['kind'], project?: string): Promise<{ items: StoredManifest<M>[]; invalid: string[] }> {
  const dir = DIRS[kind];
  const projects = project ? [project] : (await view.list(dir)).filter((e) => e.type === 'tree').map((e) => e.path).sort();
  const items: StoredManifest<M>[] = [];
  const bad: string[] = [];
  for (const p of projects) {
    for (const e of await view.list(`${dir}/${p}`)) {
      if (e.type !== 'blob' || !e.path.endsWith('.yaml')) continue;
      const path = `${dir}/${p}/${e.path}`;
      try {
        manifestPath(kind, p, e.path.slice(0, -'.yaml'.length)); // the file's name must be a valid identity too
        items.push({ manifest: await manifestAt<M>(view, path, e.oid), revision: e.oid, path });
      } catch (err) {
        bad.push(err instanceof Error ? err.message : String(err));
      }
    }
  }
  return { items, invalid: bad };
}

/**
 * delete_app / delete_database: removes the manifest (and whatever `alsoRemove` names,
 * e.g. an app's secrets) in one commit, after the expected_revision check.
 */
export async function deleteManifest(ctx: Ctx, kind: Kind, input: { name: string; project?: string; expected_revision?: string; proposal?: string }, alsoRemove: (view: TreeView, project: string) => Promise<Change[]> = async () => []): Promise<WriteResult> {
  const project = input.project ?? 'default';
  const path = manifestPath(kind, project, input.name);
  const noun = kind.toLowerCase();
  return write(ctx, {
    tool: `delete_${noun}`,
    projects: [project],
    path,
    proposal: input.proposal,
    summary: `delete ${noun} ${project}/${input.name}`,
    prepare: async (view) => {
      const revision = await view.blobOid(path);
      if (!revision) throw notFound(`${noun} ${project}/${input.name} does not exist (${path}); list_${noun}s shows the ${noun}s there are`);
      checkRevision(path, input.expected_revision, revision, `get_${noun}`);
      return [{ path, content: null }, ...(await alsoRemove(view, project))];
    },
  });
}
