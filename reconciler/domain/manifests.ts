// Manifests as agents write them: validated before a commit, a stale revision refused,
// deletes in one commit. Where files live and how git's are read is layout.ts's; this
// turns its errors into ones an agent can act on.
import { stringify } from 'yaml';
import { MAX_MANIFEST_BYTES, SchemaError, validateManifest, type Kind, type Manifest } from '../../schemas/index.js';
import * as layout from '../layout.js';
import { LayoutError, validIdentity, type StoredManifest } from '../layout.js';
import type { TreeView } from '../state/tree.js';
import { DomainError, invalid, notFound } from './errors.js';
import type { Change } from '../state/tree.js';
import { write, type Ctx, type WriteResult } from './write.js';
import { validateAllowCidrs } from '../edge/tls-config.js';

/** manifestPath, but an identity that is not a pair of DNS labels is the agent's input error. */
export function manifestPath(kind: Kind, project: string, name: string): string {
  if (!validIdentity(project, name)) throw invalid(`project and name must be DNS labels, got ${JSON.stringify(`${project}/${name}`)}`);
  return layout.manifestPath(kind, project, name);
}

/** A stale expected_revision is a conflict, never an overwrite; the message says how to retry. */
export function checkRevision(path: string, expected: string | undefined, actual: string, getTool: string): void {
  if (expected !== undefined && expected !== actual) {
    throw new DomainError('conflict', `${path} changed since revision ${expected} (it is now ${actual}); call ${getTool} for the current manifest, re-apply your change and pass the new revision as expected_revision`);
  }
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
  // What the schema cannot say: each entry is a real network (edge/tls-config.ts).
  if (m.kind === 'App' && m.spec.allowCidrs) {
    try { validateAllowCidrs(m.spec.allowCidrs, 'spec.allowCidrs'); } catch (err) { throw invalid(`${file}: ${(err as Error).message}`); }
  }
  const text = toYaml(m);
  const size = Buffer.byteLength(text);
  if (size > MAX_MANIFEST_BYTES) {
    const hint = m.kind === 'App' && 'files' in m.spec.source ? ' spec.source.files is the likely cause: send fewer or smaller files, or use source.git' : '';
    throw new DomainError('too_large', `${file}: the manifest is ${size} bytes; at most ${MAX_MANIFEST_BYTES} bytes are allowed.${hint}`);
  }
  return text;
}

/** A file in git that fails validation: agents cannot write over it until a human fixes or reverts it. */
function broken(e: unknown): never {
  if (e instanceof LayoutError) throw new DomainError('conflict', `${e.message} (the file in git is invalid; fix or revert the commit that wrote it)`);
  throw e;
}

/** Reads and validates one manifest; null when absent. A file that fails validation is reported, never returned. */
export async function readManifest<M extends Manifest>(view: TreeView, kind: M['kind'], project: string, name: string): Promise<StoredManifest<M> | null> {
  manifestPath(kind, project, name);
  return layout.readManifest<M>(view, kind, project, name).catch(broken);
}

export const listManifests = layout.listManifests;

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

export { fileLabel, projectOfPath, type StoredManifest } from '../layout.js';
