// source: the desired state at one commit, validated and compiled into plain data the
// rest of the reconciler can trust. An invalid file stalls the whole commit (the
// reconciler keeps the last good state) and says which file and field are wrong; a
// resource that is valid but cannot be applied as it is (an app bound to a database
// git does not describe) stalls only itself, and what runs of it is left alone.
import type { App, ClusterConfig, Database } from '../../schemas/index.js';
import type { HostEntry } from '../hosts/pool.js';
import { StalledError } from '../errors.js';
import { LayoutError, credentialsPath, listHosts, listManifests, readClusterConfig as readLayoutConfig, secretPath } from '../layout.js';
import type { StateStore } from '../state/store.js';
import type { TreeView } from '../state/tree.js';
import { keyFields, type DesiredApp, type DesiredDatabase, type DesiredState, type ResourceKey } from '../model.js';
import { compileApp } from './app.js';
import { compileDatabase, withSpecHash } from './database.js';
import { loadClusterEgress } from './egress.js';
import { compileNames } from './names.js';

export { CLUSTER_FILE } from '../layout.js';

/** mlink.yaml at `view`; an invalid one stalls the commit. */
export async function readClusterConfig(view: TreeView): Promise<ClusterConfig> {
  try {
    return await readLayoutConfig(view);
  } catch (e) {
    if (e instanceof LayoutError) throw new StalledError('ValidationFailed', e.file, e.problems.join('; '));
    throw e;
  }
}

/** Whether an ephemeral app's time-to-live (spec.expiresAt) has passed. */
export function expired(app: App, at: Date): boolean {
  return !!app.spec.expiresAt && Date.parse(app.spec.expiresAt) <= at.getTime();
}

export interface Skipped extends ResourceKey { phase: string; reason: string }

export interface LoadedState {
  desired: DesiredState;
  /** Resources that are valid but not applied at this commit, with the phase and reason. */
  skipped: Skipped[];
  /** The hosts this commit names: mlink.yaml's (the control plane's own) and hosts/*.yaml. */
  hosts: HostEntry[];
  /** mlink.yaml spec.registry.address: where hosts other than this one reach the control plane's registry. */
  registry?: string;
}

/** mlink.yaml's hosts and hosts/*.yaml, as one list; a host named twice stalls the commit. */
export async function clusterHostsAt(view: TreeView, cluster: ClusterConfig): Promise<HostEntry[]> {
  const { items, invalid } = await listHosts(view);
  if (invalid.length) throw new StalledError('ValidationFailed', 'hosts/', invalid.join('; '));
  const out: HostEntry[] = cluster.spec.hosts.map((h) => ({ ...h, schedulable: true }));
  for (const { host, path } of items) {
    if (out.some((h) => h.name === host.metadata.name)) throw new StalledError('ValidationFailed', path, `host ${host.metadata.name} is also named in mlink.yaml spec.hosts; remove one of the two`);
    out.push({ name: host.metadata.name, address: host.spec.address, roles: host.spec.roles, ssh: host.spec.ssh, schedulable: host.spec.schedulable !== false, ...(host.spec.capacity ? { capacity: host.spec.capacity } : {}), ...(host.spec.labels ? { labels: host.spec.labels } : {}) });
  }
  return out;
}

/** A resource's own problem: it stalls (or waits), the rest of the commit applies. */
function ownProblem(e: unknown): e is StalledError {
  return e instanceof StalledError && (e.phase === 'BuildFailed' || e.phase === 'ValidationFailed');
}

/** The desired state at `commit`. Throws StalledError naming the file and field when the commit as a whole is invalid. */
export async function loadDesired(store: StateStore, commit: string, clusterName?: string, now: () => Date = () => new Date()): Promise<LoadedState> {
  const view = await store.view(commit);
  const cluster = await readClusterConfig(view);
  const [apps, dbs] = await Promise.all([listManifests<App>(view, 'App'), listManifests<Database>(view, 'Database')]);
  const invalid = [...apps.invalid, ...dbs.invalid];
  if (invalid.length) throw new StalledError('ValidationFailed', invalid.length === 1 ? 'a manifest' : `${invalid.length} manifests`, invalid.join('; '));
  const skipped: Skipped[] = [];
  const held: ResourceKey[] = [];
  const hold = (key: ResourceKey, e: StalledError): void => {
    skipped.push({ ...keyFields(key), phase: e.phase, reason: e.message });
    held.push(keyFields(key));
  };

  const databases = new Map<string, DesiredDatabase>();
  const credentialOids = new Map<string, string>();
  for (const { manifest } of dbs.items) {
    const { project, name } = manifest.metadata;
    const oid = await view.blobOid(credentialsPath(project, name));
    try {
      databases.set(`${project}/${name}`, compileDatabase(manifest, { cluster, credentialsOid: oid }));
      credentialOids.set(`${project}/${name}`, oid!);
    } catch (e) {
      if (!ownProblem(e)) throw e;
      hold({ kind: 'Database', project, name }, e);
    }
  }

  const compiled: DesiredApp[] = [];
  for (const { manifest } of apps.items) {
    const { project, name } = manifest.metadata;
    if (expired(manifest, now())) {
      // an ephemeral app past its time-to-live is not run: the pass prunes it like a deleted one
      skipped.push({ kind: 'App', project, name, phase: 'Expired', reason: `expired at ${manifest.spec.expiresAt}; its containers and route are removed (delete_app removes the manifest too)` });
      continue;
    }
    const secretOids: Record<string, string> = {};
    for (const n of manifest.spec.secretEnv ?? []) {
      const oid = await view.blobOid(secretPath(project, name, n));
      if (!oid) throw new StalledError('ValidationFailed', `apps/${project}/${name}.yaml`, `spec.secretEnv names ${n} but ${secretPath(project, name, n)} is missing; set it with update_app secret_env`);
      secretOids[n] = oid;
    }
    try {
      compiled.push(compileApp(manifest, { cluster, secretOids, databases, credentialOids }));
    } catch (e) {
      if (!ownProblem(e)) throw e;
      hold({ kind: 'App', project, name }, e);
    }
  }

  // Each database joins the networks of the projects whose apps bind it, and only those apps may reach it.
  for (const [id, db] of databases) {
    const clients = compiled.filter((a) => a.databases.some((b) => `${b.project}/${b.name}` === id)).map((a) => ({ project: a.project, name: a.name }));
    const networks = [db.project, ...[...new Set(clients.map((c) => c.project))].filter((p) => p !== db.project).sort()];
    databases.set(id, withSpecHash({ ...db, clients, networks }, credentialOids.get(id)!));
  }
  return {
    desired: {
      cluster: clusterName ?? cluster.metadata.name,
      commit,
      baseDomain: cluster.spec.baseDomain,
      resources: [...databases.values(), ...compiled],
      held,
      egress: await loadClusterEgress(view, cluster),
      names: await compileNames(view, cluster),
    },
    skipped,
    hosts: await clusterHostsAt(view, cluster),
    ...(cluster.spec.registry ? { registry: cluster.spec.registry.address } : {}),
  };
}
