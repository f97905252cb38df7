// source, App part: one App manifest compiled against the cluster defaults and the
// databases it binds. Pure but for the blob ids it is given (secrets, credentials).
import { createHash } from 'node:crypto';
import type { App, ClusterConfig } from '../../schemas/index.js';
import { StalledError } from '../errors.js';
import { compileSource } from '../image-builds/build-spec.js';
import { manifestPath } from '../layout.js';
import type { DesiredApp, DesiredBinding, DesiredDatabase, Engine } from '../model.js';
import { appEgress } from './egress.js';
import { appAccess } from './names.js';

const FALLBACK = { cpu: 0.5, memoryMb: 256, pids: 256 };
/** Start-up health checks poll every 200 ms for the manifest's whole window (interval x retries), at least 30 s. */
const POLL_MS = 200;
const MIN_WINDOW_MS = 30_000;

export function hash(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex');
}

/** The env prefix a binding gets unless it names one. */
export function defaultEnvPrefix(engine: Engine): string {
  return engine === 'redis' ? 'REDIS' : 'DATABASE';
}

function healthOf(hc: App['spec']['healthCheck']): DesiredApp['health'] {
  const windowMs = Math.max(MIN_WINDOW_MS, (hc?.intervalSeconds ?? 0) * 1000 * (hc?.retries ?? 0));
  return { path: hc?.path ?? '/', intervalMs: POLL_MS, timeoutMs: (hc?.timeoutSeconds ?? 2) * 1000, retries: Math.ceil(windowMs / POLL_MS) };
}

export interface AppInputs {
  cluster: ClusterConfig;
  /** Blob ids of the app's secrets, by name. */
  secretOids: Record<string, string>;
  /** The databases git describes, by `project/name`. */
  databases: Map<string, DesiredDatabase>;
  /** Blob ids of each database's credentials, by `project/name`. */
  credentialOids: Map<string, string>;
}

/** The app's bindings, resolved. Throws StalledError (ValidationFailed) for a database git does not describe. */
function bindingsOf(app: App, inputs: AppInputs): DesiredBinding[] {
  const file = manifestPath('App', app.metadata.project, app.metadata.name);
  const out: DesiredBinding[] = [];
  for (const [i, b] of (app.spec.databases ?? []).entries()) {
    const project = b.project ?? app.metadata.project;
    const db = inputs.databases.get(`${project}/${b.name}`);
    if (!db) throw new StalledError('ValidationFailed', file, `spec.databases[${i}] binds database ${project}/${b.name}, which is not in git (databases/${project}/${b.name}.yaml); create it with create_database or remove the binding`);
    const envPrefix = b.envPrefix ?? defaultEnvPrefix(db.engine);
    const clash = out.find((o) => o.envPrefix === envPrefix);
    if (clash) throw new StalledError('ValidationFailed', file, `spec.databases[${i}] (${project}/${b.name}) and ${clash.project}/${clash.name} both inject ${envPrefix}_URL; give one of them an envPrefix`);
    out.push({ project, name: b.name, engine: db.engine, envPrefix, port: db.port });
  }
  return out;
}

/** Compiles one App. Its replicas are placed later (placement.ts), so `placement` is empty here. */
export function compileApp(app: App, inputs: AppInputs): DesiredApp {
  const { spec, metadata } = app;
  const { cluster } = inputs;
  const file = manifestPath('App', metadata.project, metadata.name);
  const built = compileSource(file, metadata.project, metadata.name, spec.source);
  const image = built?.image ?? ('image' in spec.source ? spec.source.image : '');
  const defaults = cluster.spec.defaults ?? {};
  const resources = { ...FALLBACK, ...defaults.resources, ...spec.resources };
  const runtime = cluster.spec.projects?.[metadata.project]?.runtime ?? defaults.runtime ?? 'runsc';
  const env = spec.env ?? {};
  const secretEnv = [...(spec.secretEnv ?? [])].sort();
  const readOnlyRoot = spec.readOnlyRoot !== false;
  const databases = bindingsOf(app, inputs);
  const container = {
    image, port: spec.port, env, secrets: secretEnv.map((n) => [n, inputs.secretOids[n]]), resources, runtime, readOnlyRoot,
    // A rotated password, a moved database or a new prefix is a new env: new containers.
    ...(databases.length ? { databases: databases.map((d) => ({ ...d, credentials: inputs.credentialOids.get(`${d.project}/${d.name}`) })) } : {}),
  };
  return {
    kind: 'App',
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
    domains: spec.domains?.length ? [...spec.domains] : [`${metadata.name}.${metadata.project}.${cluster.spec.baseDomain}`],
    access: appAccess(app, cluster),
    health: healthOf(spec.healthCheck),
    egress: appEgress(app, cluster),
    readOnlyRoot,
    ...(built ? { build: built.build } : {}),
    databases,
    placement: [],
    ...(spec.scaleToZero ?? defaults.scaleToZero ? { scaleToZero: { idleTimeoutSeconds: (spec.scaleToZero ?? defaults.scaleToZero)!.idleTimeoutSeconds } } : {}),
  };
}
