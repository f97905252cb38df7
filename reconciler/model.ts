// The reconciler's plain data: desired state compiled from one commit, live state as
// observed on the hosts, and the labels that tie the two together. Pure types and pure
// helpers only: workflows import this file.

export const LABEL = {
  managedBy: 'ink.ml.managed-by',
  cluster: 'ink.ml.cluster',
  kind: 'ink.ml.kind',
  project: 'ink.ml.project',
  name: 'ink.ml.name',
  specHash: 'ink.ml.spec-hash',
  commit: 'ink.ml.commit',
  replica: 'ink.ml.replica',
} as const;
export const MANAGED_BY = 'mlink';

export type Runtime = 'runsc' | 'runc';

/** An App as the reconciler runs it: everything resolved, nothing optional. */
export interface DesiredApp {
  project: string;
  name: string;
  /** Hash of everything that changes a container: a new hash means new containers. */
  specHash: string;
  image: string;
  port: number;
  env: Record<string, string>;
  /** Secret env names; values are decrypted from the commit only inside the activity that creates the container. */
  secretEnv: string[];
  resources: { cpu: number; memoryMb: number; pids: number };
  replicas: number;
  runtime: Runtime;
  hosts: string[];
  health: { path: string; intervalMs: number; timeoutMs: number; retries: number };
  /** Destinations the app may reach beyond the default deny (its own, its project's and the cluster's allow lists). */
  egress?: string[];
  /** Read-only root filesystem with a writable tmpfs at /tmp; false only when the manifest says so. */
  readOnlyRoot?: boolean;
  /** Set when the image is built from source: `image` is then the tag that build produces. */
  build?: BuildSpec;
}

/** What to build: a commit of an internal source repo. The image tag (`key`) is derived from it and the build inputs, so the same source is built once. */
export interface BuildSpec {
  key: string;
  /** The internal source repo (<sources>/<project>/<name>.git). */
  repo: { project: string; name: string };
  commit: string;
  /** Directory inside the source to build ('' for the root). */
  path: string;
  /** For git sources: where to fetch the commit from when the source repo does not have it. */
  origin?: { url: string; ref: string };
}

export interface DesiredState {
  cluster: string;
  commit: string;
  baseDomain: string;
  apps: DesiredApp[];
  /** Cluster-wide egress facts: deny-list entries (from files named in mlink.yaml) and control-plane addresses. */
  egress?: { deny: string[]; control: string[] };
}

export interface LiveContainer {
  id: string;
  name: string;
  project: string;
  app: string;
  specHash: string;
  replica: number;
  commit: string;
  running: boolean;
  ip?: string;
}

export interface LiveRoute {
  file: string;
  project: string;
  app: string;
  specHash: string;
  hosts: string[];
  servers: string[];
}

export interface LiveNetwork {
  id: string;
  name: string;
  project: string;
}

export interface LiveState {
  containers: LiveContainer[];
  routes: LiveRoute[];
  networks: LiveNetwork[];
}

/** The identity key of an app: `project/name`. */
export function appKey(project: string, name: string): string {
  return `${project}/${name}`;
}

/** The key of the app a live object (container or route) belongs to. */
export function liveKey(o: { project: string; app: string }): string {
  return appKey(o.project, o.app);
}

/** Docker names: deterministic from identity and spec hash, so a retried activity finds its own work. */
export function networkName(cluster: string, project: string): string {
  return `mlink-${cluster}-${project}`;
}

export function containerName(cluster: string, app: { project: string; name: string; specHash: string }, replica: number): string {
  return `mlink-${cluster}-${app.project}-${app.name}-${app.specHash.slice(0, 10)}-${replica}`;
}

export function routeFileName(cluster: string, app: { project: string; name: string }): string {
  return `mlink-${cluster}--${app.project}--${app.name}.yaml`;
}

export function routerName(cluster: string, app: { project: string; name: string }): string {
  return `mlink-${cluster}-${app.project}-${app.name}`;
}

export function routerOfFile(file: string): string {
  return file.replace(/\.yaml$/, '').replace(/--/g, '-');
}
