// source: the desired state at one commit, validated and compiled into plain data the
// rest of the reconciler can trust. An invalid file stalls the whole commit (the
// reconciler keeps the last good state) and says which file and field are wrong.
import { createHash } from 'node:crypto';
import { parse } from 'yaml';
import { SchemaError, validateClusterConfig, type App, type ClusterConfig } from '../../schemas/index.js';
import { listManifests } from '../domain/manifests.js';
import { secretPath } from '../state/secrets.js';
import type { StateStore } from '../state/store.js';
import type { TreeView } from '../state/tree.js';
import { StalledError } from '../errors.js';
import type { DesiredApp, DesiredState } from '../model.js';
import { appEgress, loadClusterEgress } from './egress.js';
import { compileSource } from '../image-builds/build-spec.js';
import { registryAddress } from '../../infra/config.js';

export const CLUSTER_FILE = 'mlink.yaml';

const FALLBACK = { cpu: 0.5, memoryMb: 256, pids: 256 };
/** Start-up health checks poll every 200 ms for the manifest's whole window (interval x retries), at least 30 s. */
const POLL_MS = 200;
const MIN_WINDOW_MS = 30_000;

export async function readClusterConfig(view: TreeView): Promise<ClusterConfig> {
  const text = await view.readText(CLUSTER_FILE);
  if (text === null) throw new StalledError('ValidationFailed', CLUSTER_FILE, 'the file is missing; restore it (git revert the commit that removed it)');
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (e) {
    throw new StalledError('ValidationFailed', CLUSTER_FILE, `not valid YAML: ${(e as Error).message}`);
  }
  try {
    return validateClusterConfig(CLUSTER_FILE, doc);
  } catch (e) {
    if (e instanceof SchemaError) throw new StalledError('ValidationFailed', CLUSTER_FILE, e.problems.join('; '));
    throw e;
  }
}

function hash(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex');
}

/** Compiles one App against the cluster defaults. Pure but for the secret blob ids it is given. */
export function compileApp(app: App, cluster: ClusterConfig, secretOids: Record<string, string>): DesiredApp {
  const { spec, metadata } = app;
  const file = `apps/${metadata.project}/${metadata.name}.yaml`;
  const built = compileSource(file, metadata.project, metadata.name, spec.source, registryAddress());
  const image = built?.image ?? ('image' in spec.source ? spec.source.image : '');
  const defaults = cluster.spec.defaults ?? {};
  const resources = { ...FALLBACK, ...defaults.resources, ...spec.resources };
  const runtime = cluster.spec.projects?.[metadata.project]?.runtime ?? defaults.runtime ?? 'runsc';
  const env = spec.env ?? {};
  const secretEnv = [...(spec.secretEnv ?? [])].sort();
  const readOnlyRoot = spec.readOnlyRoot !== false;
  const container = { image, port: spec.port, env, secrets: secretEnv.map((n) => [n, secretOids[n]]), resources, runtime, readOnlyRoot };
  return {
    project: metadata.project,
    name: metadata.name,
    specHash: hash(container),
    image,
    port: spec.port,
    env,
    secretEnv,
    resources,
    replicas: spec.replicas ?? defaults.replicas ?? 1,
    runtime,
    hosts: spec.domains?.length ? [...spec.domains] : [`${metadata.name}.${metadata.project}.${cluster.spec.baseDomain}`],
    health: healthOf(spec.healthCheck),
    egress: appEgress(app, cluster),
    readOnlyRoot,
    ...(built ? { build: built.build } : {}),
  };
}

function healthOf(hc: App['spec']['healthCheck']): DesiredApp['health'] {
  const windowMs = Math.max(MIN_WINDOW_MS, (hc?.intervalSeconds ?? 0) * 1000 * (hc?.retries ?? 0));
  return { path: hc?.path ?? '/', intervalMs: POLL_MS, timeoutMs: (hc?.timeoutSeconds ?? 2) * 1000, retries: Math.ceil(windowMs / POLL_MS) };
}

/** Whether an ephemeral app's time-to-live (spec.expiresAt) has passed. */
export function expired(app: App, at: Date): boolean {
  return !!app.spec.expiresAt && Date.parse(app.spec.expiresAt) <= at.getTime();
}

export interface LoadedState {
  desired: DesiredState;
  /** Apps that are valid but cannot run yet (for example, source builds), with the reason. */
  skipped: Array<{ project: string; name: string; phase: string; reason: string }>;
}

/** The desired state at `commit`. Throws StalledError naming the file and field when anything is invalid. */
export async function loadDesired(store: StateStore, commit: string, clusterName?: string, now: () => Date = () => new Date()): Promise<LoadedState> {
  const view = await store.view(commit);
  const cluster = await readClusterConfig(view);
  const { items, invalid } = await listManifests<App>(view, 'App');
  if (invalid.length) throw new StalledError('ValidationFailed', 'apps/', invalid.join('; '));
  const apps: DesiredApp[] = [];
  const skipped: LoadedState['skipped'] = [];
  for (const { manifest } of items) {
    const { project, name } = manifest.metadata;
    if (expired(manifest, now())) {
      // an ephemeral app past its time-to-live is not run: the pass prunes it like a deleted one
      skipped.push({ project, name, phase: 'Expired', reason: `expired at ${manifest.spec.expiresAt}; its containers and route are removed (delete_app removes the manifest too)` });
      continue;
    }
    const secretOids: Record<string, string> = {};
    for (const n of manifest.spec.secretEnv ?? []) {
      const oid = await view.blobOid(secretPath(project, name, n));
      if (!oid) throw new StalledError('ValidationFailed', `apps/${project}/${name}.yaml`, `spec.secretEnv names ${n} but ${secretPath(project, name, n)} is missing; set it with update_app secret_env`);
      secretOids[n] = oid;
    }
    try {
      apps.push(compileApp(manifest, cluster, secretOids));
    } catch (e) {
      if (e instanceof StalledError && e.phase === 'BuildFailed') skipped.push({ project, name, phase: e.phase, reason: e.message });
      else throw e;
    }
  }
  return {
    desired: { cluster: clusterName ?? cluster.metadata.name, commit, baseDomain: cluster.spec.baseDomain, apps, egress: await loadClusterEgress(view, cluster) },
    skipped,
  };
}
