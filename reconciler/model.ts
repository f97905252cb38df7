// The reconciler's plain data: desired state compiled from one commit, live state as
// observed on the hosts, and the labels that tie the two together. Identity is
// (kind, project, name) everywhere: desired resources, live objects, changes, actions and
// status records all carry it, and every object on a host also carries the host it is on.
// Pure types and pure helpers only: workflows import this file.
import type { Kind } from '../schemas/index.js';
import type { NamesConfig } from './source/names.js';

export type { Kind } from '../schemas/index.js';

export const LABEL = {
  managedBy: 'ink.ml.managed-by',
  cluster: 'ink.ml.cluster',
  kind: 'ink.ml.kind',
  project: 'ink.ml.project',
  name: 'ink.ml.name',
  specHash: 'ink.ml.spec-hash',
  commit: 'ink.ml.commit',
  replica: 'ink.ml.replica',
  /** Databases: the engine and major version the data on a volume was written by. */
  engine: 'ink.ml.engine',
  engineVersion: 'ink.ml.engine-version',
} as const;
export const MANAGED_BY = 'mlink';

/** Kinds of the helper containers ml.ink runs beside resources (never resources themselves). */
export const HELPER_KIND = { holder: 'AppNet', network: 'Network', build: 'Build', restoreDrill: 'RestoreDrill' } as const;

export type Runtime = 'runsc' | 'runc';
export type Engine = 'postgres' | 'mysql' | 'redis';

export interface ResourceKey { kind: Kind; project: string; name: string }

/** `App default/web`: the identity as one string, for maps and messages alike. */
export function keyOf(k: ResourceKey): string {
  return `${k.kind} ${k.project}/${k.name}`;
}

/** Just the identity of a resource (a desired resource carries its whole spec). */
export function keyFields(k: ResourceKey): ResourceKey {
  return { kind: k.kind, project: k.project, name: k.name };
}

export function sameKey(a: ResourceKey, b: ResourceKey): boolean {
  return a.kind === b.kind && a.project === b.project && a.name === b.name;
}

export interface Resources { cpu: number; memoryMb: number; pids: number }

/** A database an app is bound to: what its env is made from (the password is decrypted only in the activity). */
export interface DesiredBinding {
  project: string;
  name: string;
  engine: Engine;
  /** `<PREFIX>_URL`, `_HOST`, `_PORT`, `_USER`, `_PASSWORD`, `_NAME`. */
  envPrefix: string;
  port: number;
  /**
   * The database server's address on the app's network, as it runs now: filled in from
   * the live state before the diff (diff/bindings.ts). Sandboxed apps cannot use Docker's
   * embedded DNS, so apps are given the address, and a server that comes back at another
   * address is a new spec for the apps bound to it.
   */
  address?: string;
}

/** An App as the reconciler runs it: everything resolved, nothing optional. */
export interface DesiredApp extends ResourceKey {
  kind: 'App';
  /** Hash of everything that changes a container: a new hash means new containers. */
  specHash: string;
  image: string;
  port: number;
  env: Record<string, string>;
  /** Secret env names; values are decrypted from the commit only inside the activity that creates the container. */
  secretEnv: string[];
  resources: Resources;
  replicas: number;
  runtime: Runtime;
  /** Host names routed to the app. */
  domains: string[];
  /** Who its routes let in, and whether plain HTTP redirects to HTTPS. Route settings, not container settings: not in specHash. */
  access: AppAccess;
  health: { path: string; intervalMs: number; timeoutMs: number; retries: number };
  /** Destinations the app may reach beyond the default deny (its own, its project's and the cluster's allow lists). */
  egress?: string[];
  /** Read-only root filesystem with a writable tmpfs at /tmp; false only when the manifest says so. */
  readOnlyRoot?: boolean;
  /** Set when the image is built from source: `image` is then the tag that build produces. */
  build?: BuildSpec;
  /** Databases bound to the app; each must be ready before the app starts. */
  databases: DesiredBinding[];
  /** Where each replica runs: placement[i] is replica i's host. */
  placement: string[];
  /** Sleep after this long without a request; each runtime host's waker wakes it (reconciler/waker/). Not in specHash: turning it on or off moves the route, not the containers. */
  scaleToZero?: { idleTimeoutSeconds: number };
  /** The build host its image builds on (placement.ts buildHostFor), when built from source. */
  buildHost?: string;
}

export interface AppAccess { allowCidrs: string[]; redirectToHttps: boolean }

/** A Database as the reconciler runs it. */
export interface DesiredDatabase extends ResourceKey {
  kind: 'Database';
  specHash: string;
  engine: Engine;
  /** The major version, e.g. "15". */
  version: string;
  resources: Resources;
  runtime: Runtime;
  host: string;
  port: number;
  /** Projects whose networks it joins: its own first, then every other project with an app bound to it. */
  networks: string[];
  /** Apps bound to it: the only ones the egress rules let reach it. */
  clients: Array<{ project: string; name: string }>;
  backups?: { schedule?: string; keep: number };
}

export type DesiredResource = DesiredApp | DesiredDatabase;

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
  resources: DesiredResource[];
  /** Resources git describes that cannot be applied at this commit (each has a skipped reason): what runs of them is left as it is. */
  held: ResourceKey[];
  /** How apps' host names are served: certificate issuer and DNS server (source/names.ts). */
  names?: NamesConfig;
  /** Cluster-wide egress facts: deny-list entries (from files named in mlink.yaml) and control-plane addresses. */
  egress?: { deny: string[]; control: string[] };
}

export function appsOf(resources: DesiredResource[]): DesiredApp[] {
  return resources.filter((r): r is DesiredApp => r.kind === 'App');
}

export function databasesOf(resources: DesiredResource[]): DesiredDatabase[] {
  return resources.filter((r): r is DesiredDatabase => r.kind === 'Database');
}

export interface LiveContainer {
  id: string;
  /** The Docker name. */
  name: string;
  host: string;
  key: ResourceKey;
  specHash: string;
  replica: number;
  commit: string;
  running: boolean;
  /** Docker's health check says healthy (databases carry their engine's probe); undefined without one. */
  healthy?: boolean;
  ip?: string;
  /** Its address on each Docker network it is on (a replica's are its holder's). */
  addresses?: Record<string, string>;
  /** A stopped replica its host's supervisor is bringing back (waker/supervisor.ts): not drift, left to it. */
  restarting?: { restarts: number; exitCode: number; nextAt: string };
}

export interface LiveRoute {
  file: string;
  /** The host whose edge serves it. */
  host: string;
  key: ResourceKey;
  specHash: string;
  domains: string[];
  servers: string[];
  /** The route leads to its host's waker (a scale-to-zero app). */
  wake?: { idleTimeoutSeconds: number };
  /** What that waker says of the app: asleep, waking, awake, since when, its last request. Sleeping is desired, not drift. */
  sleep?: { state: 'awake' | 'waking' | 'sleeping'; since: string; lastRequest?: string; error?: string };
  /** The route's access settings as written (edge/route.ts accessDigest); absent in files older than them. */
  access?: string;
}

/** An app's certificate file on an edge (edge/app-tls.ts). */
export interface LiveCertificate {
  file: string;
  host: string;
  key: ResourceKey;
  dnsNames: string[];
  issuer: string;
  /** Which of mlink.yaml's issuers made it (internal, acme). */
  issuedBy?: string;
  serial: string;
  notBefore: string;
  notAfter: string;
}

export interface LiveNetwork {
  id: string;
  name: string;
  project: string;
  host: string;
}

/** A database's data. Never pruned: a volume whose database left git is retained until a human purges it. */
export interface LiveVolume {
  name: string;
  host: string;
  key: ResourceKey;
  engine: string;
  version: string;
  createdAt: string;
}

export interface LiveState {
  containers: LiveContainer[];
  routes: LiveRoute[];
  networks: LiveNetwork[];
  volumes: LiveVolume[];
  /** Apps' certificates on the edges; read where status needs them, not by every pass. */
  certificates?: LiveCertificate[];
}
