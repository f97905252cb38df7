// The state repo's layout, in one place: where each resource's manifest and secrets live,
// how mlink.yaml and manifests are read and validated at a commit, and the names every
// object the reconciler creates gets from its identity. domain/ (what agents write) and
// source/ (what the reconciler runs) both read the repo through this module, each turning
// a LayoutError into its own kind of failure (an agent's error, a stalled commit).
import { parse } from 'yaml';
import { SchemaError, validateClusterConfig, validateHost, validateManifest, type ClusterConfig, type HostManifest, type Kind, type Manifest } from '../schemas/index.js';
import type { TreeView } from './state/tree.js';

export type { Kind } from '../schemas/index.js';

/** A file in the repo that cannot be used as it is: which file, and each problem. */
export class LayoutError extends Error {
  constructor(readonly file: string, readonly problems: string[]) {
    super(`${file}: ${problems.join('; ')}`);
    this.name = 'LayoutError';
  }
}

export const DNS_LABEL = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const CLUSTER_FILE = 'mlink.yaml';
export const KINDS: readonly Kind[] = ['App', 'Database'];
const DIRS: Record<Kind, string> = { App: 'apps', Database: 'databases' };

export function validIdentity(project: string, name: string): boolean {
  return DNS_LABEL.test(project) && DNS_LABEL.test(name);
}

/** `apps/<project>/<name>.yaml`, `databases/<project>/<name>.yaml`. Throws LayoutError for a name that is not a DNS label. */
export function manifestPath(kind: Kind, project: string, name: string): string {
  if (!validIdentity(project, name)) throw new LayoutError(`${kind} ${project}/${name}`, [`project and name must be DNS labels, got ${JSON.stringify(`${project}/${name}`)}`]);
  return `${DIRS[kind]}/${project}/${name}.yaml`;
}

/** A label for messages: the file path when the identity is valid, else a description. */
export function fileLabel(kind: Kind, project: string, name: string): string {
  return validIdentity(project, name) ? manifestPath(kind, project, name) : `the ${kind} manifest`;
}

/** Secrets are age-encrypted files: an app's under secrets/<project>/<app>/<NAME>.age. */
export function secretDir(project: string, app: string): string {
  return `secrets/${project}/${app}`;
}

export function secretPath(project: string, app: string, name: string): string {
  return `${secretDir(project, app)}/${name}.age`;
}

/**
 * A database's credentials (user, password, database name as age-encrypted JSON), made
 * by create_database. `db.` cannot start an app name (a DNS label), so an app and a
 * database of the same name never share a secrets directory.
 */
export function databaseSecretDir(project: string, name: string): string {
  return `secrets/${project}/db.${name}`;
}

export function credentialsPath(project: string, name: string): string {
  return `${databaseSecretDir(project, name)}/credentials.age`;
}

/** A host other than the control plane's own: hosts/<name>.yaml. */
export function hostPath(name: string): string {
  if (!DNS_LABEL.test(name)) throw new LayoutError(`Host ${name}`, [`a host name must be a DNS label, got ${JSON.stringify(name)}`]);
  return `hosts/${name}.yaml`;
}

/** The project a repo path belongs to, or null for cluster-wide files (mlink.yaml, README.md, hosts/, ...). */
export function projectOfPath(path: string): string | null {
  const m = /^(apps|databases|secrets)\/([^/]+)\//.exec(path);
  return m?.[2] ?? null;
}

/** The resource a repo path belongs to: a manifest, or a secret (an app's, or a database's credentials); null for anything else. */
export function resourceOfPath(path: string): { kind: Kind; project: string; name: string } | null {
  const m = /^(apps|databases)\/([^/]+)\/([^/]+)\.yaml$/.exec(path);
  if (m) return { kind: m[1] === 'apps' ? 'App' : 'Database', project: m[2]!, name: m[3]! };
  const s = /^secrets\/([^/]+)\/([^/]+)\//.exec(path);
  if (!s) return null;
  return s[2]!.startsWith('db.') ? { kind: 'Database', project: s[1]!, name: s[2]!.slice(3) } : { kind: 'App', project: s[1]!, name: s[2]! };
}

/** Manifests that git should validate: apps/**.yaml and databases/**.yaml. */
export function isManifestPath(path: string): boolean {
  return /^(apps|databases)\/.*\.yaml$/.test(path);
}

// ---- reading at a commit

const clusterCache = new Map<string, ClusterConfig>();

/** mlink.yaml at `view`, validated; parsed once per blob. */
export async function readClusterConfig(view: TreeView): Promise<ClusterConfig> {
  const oid = await view.blobOid(CLUSTER_FILE);
  if (!oid) throw new LayoutError(CLUSTER_FILE, ['the file is missing; restore it (git revert the commit that removed it) or run `mlink init`']);
  const hit = clusterCache.get(oid);
  if (hit) return hit;
  let doc: unknown;
  try {
    doc = parse((await view.readText(CLUSTER_FILE)) ?? '');
  } catch (e) {
    throw new LayoutError(CLUSTER_FILE, [`not valid YAML: ${(e as Error).message}`]);
  }
  try {
    const config = validateClusterConfig(CLUSTER_FILE, doc);
    if (clusterCache.size > 64) clusterCache.clear();
    clusterCache.set(oid, config);
    return config;
  } catch (e) {
    if (e instanceof SchemaError) throw new LayoutError(CLUSTER_FILE, e.problems);
    throw e;
  }
}

export interface StoredManifest<M extends Manifest = Manifest> { manifest: M; revision: string; path: string }

/**
 * Validated manifests by path and blob id. A blob never changes, so a manifest parsed and
 * validated once need not be again: a pass over 200 unchanged apps reads trees, not YAML.
 * Callers get a copy they may change.
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
      if (err instanceof SchemaError) throw new LayoutError(path, err.problems);
      throw new LayoutError(path, [err instanceof Error ? err.message : String(err)]);
    }
    if (validated.size >= CACHE_LIMIT) validated.clear();
    validated.set(key, m);
  }
  return structuredClone(m) as M;
}

/** One manifest, validated; null when absent. Throws LayoutError when the file is invalid. */
export async function readManifest<M extends Manifest>(view: TreeView, kind: M['kind'], project: string, name: string): Promise<StoredManifest<M> | null> {
  const path = manifestPath(kind, project, name);
  const revision = await view.blobOid(path);
  if (!revision) return null;
  const manifest = await manifestAt<M>(view, path, revision);
  if (manifest.kind !== kind || manifest.metadata.project !== project || manifest.metadata.name !== name) {
    throw new LayoutError(path, [`the file says ${manifest.kind} ${manifest.metadata.project}/${manifest.metadata.name}; its path says ${kind} ${project}/${name}`]);
  }
  return { manifest, revision, path };
}

/** Every manifest of a kind, optionally in one project, sorted by project then name. Invalid files are in `invalid`, one line each. */
export async function listManifests<M extends Manifest>(view: TreeView, kind: M['kind'], project?: string): Promise<{ items: StoredManifest<M>[]; invalid: string[] }> {
  const dir = DIRS[kind];
  const projects = project ? [project] : (await view.list(dir)).filter((e) => e.type === 'tree').map((e) => e.path).sort();
  const items: StoredManifest<M>[] = [];
  const bad: string[] = [];
  for (const p of projects) {
    for (const e of await view.list(`${dir}/${p}`)) {
      if (e.type !== 'blob' || !e.path.endsWith('.yaml')) continue;
      const name = e.path.slice(0, -'.yaml'.length);
      const path = `${dir}/${p}/${e.path}`;
      try {
        const found = await readManifest<M>(view, kind, p, name);
        if (found) items.push(found);
      } catch (err) {
        bad.push(err instanceof LayoutError && err.file !== path ? `${path}: ${err.message}` : (err as Error).message);
      }
    }
  }
  return { items, invalid: bad };
}

const hostCache = new Map<string, HostManifest>();

/** Every hosts/*.yaml, validated; invalid files are in `invalid`, one line each. */
export async function listHosts(view: TreeView): Promise<{ items: Array<{ host: HostManifest; revision: string; path: string }>; invalid: string[] }> {
  const items: Array<{ host: HostManifest; revision: string; path: string }> = [];
  const invalid: string[] = [];
  for (const e of await view.list('hosts')) {
    if (e.type !== 'blob' || !e.path.endsWith('.yaml')) continue;
    const path = `hosts/${e.path}`;
    try {
      let host = hostCache.get(e.oid);
      if (!host) {
        host = validateHost(path, parse((await view.readText(path)) ?? ''));
        if (hostCache.size > 1024) hostCache.clear();
        hostCache.set(e.oid, host);
      }
      if (`${host.metadata.name}.yaml` !== e.path) throw new LayoutError(path, [`metadata.name is ${JSON.stringify(host.metadata.name)}; the file must be named ${host.metadata.name}.yaml`]);
      items.push({ host: structuredClone(host), revision: e.oid, path });
    } catch (err) {
      invalid.push(err instanceof SchemaError ? err.message : (err as Error).message);
    }
  }
  return { items, invalid };
}

// ---- names of what the reconciler creates, derived from identity so a retried activity finds its own work

export function networkName(cluster: string, project: string): string {
  return `mlink-${cluster}-${project}`;
}

/** An app replica: identity, spec hash and replica number. */
export function containerName(cluster: string, app: { project: string; name: string; specHash: string }, replica: number): string {
  return `mlink-${cluster}-${app.project}-${app.name}-${app.specHash.slice(0, 10)}-${replica}`;
}

/** The container that holds a replica's network namespace (hosts/containers.ts). */
export const HOLDER_SUFFIX = '-net';
export function holderName(container: string): string {
  return `${container}${HOLDER_SUFFIX}`;
}

/** A database's server: identity and spec hash (a changed spec is a new container on the same volume). */
export function databaseContainerName(cluster: string, db: { project: string; name: string; specHash: string }): string {
  return `mlink-${cluster}-db-${db.project}-${db.name}-${db.specHash.slice(0, 10)}`;
}

/** A database's data: identity only, never the spec, so a new container, a revert of a delete or a recreate finds the same data. */
export function volumeName(cluster: string, db: { project: string; name: string }): string {
  return `mlink-${cluster}-db-${db.project}-${db.name}-data`;
}

/** The name apps reach a database at on their network: `<name>.<project>.db.internal`. */
export function databaseHostname(db: { project: string; name: string }): string {
  return `${db.name}.${db.project}.db.internal`;
}

export function routeFileName(cluster: string, app: { project: string; name: string }): string {
  return `mlink-${cluster}--${app.project}--${app.name}.yaml`;
}

/** An app's certificate on an edge, beside its route file (edge/app-tls.ts); `.tls.yaml` cannot end a route file, whose last part is a DNS label. */
export const CERT_FILE_SUFFIX = '.tls.yaml';
export function certFileName(cluster: string, app: { project: string; name: string }): string {
  return `mlink-${cluster}--${app.project}--${app.name}${CERT_FILE_SUFFIX}`;
}

/** The edge's route for ACME HTTP-01 challenges (names/acme.ts); no app's route file has this shape (`--` follows the cluster in theirs). */
export function acmeChallengeFileName(cluster: string): string {
  return `mlink-${cluster}-acme-challenge.yaml`;
}

export function routerName(cluster: string, app: { project: string; name: string }): string {
  return `mlink-${cluster}-${app.project}-${app.name}`;
}

export function routerOfFile(file: string): string {
  return file.replace(/\.yaml$/, '').replace(/--/g, '-');
}
