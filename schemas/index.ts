// Validators for every file in the state repo, compiled once from the JSON Schemas beside
// this file. Errors name the file, the field path and what is allowed, so an agent (or a
// human who pushed a bad commit) can fix the input without reading the schema.
import { readFileSync } from 'node:fs';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

export const API_VERSION = 'mlink.ink/v1';
/** Largest manifest accepted, serialised as YAML (source.files counts toward it). */
export const MAX_MANIFEST_BYTES = 1024 * 1024;

export type Resources = { cpu?: number; memoryMb?: number; pids?: number };
export type Egress = { allow?: string[] };
export type AppSource =
  | { image: string }
  | { files: Record<string, string> }
  | { git: { url: string; ref: string; commit?: string; path?: string } }
  | { repo: { commit: string; app?: string; path?: string } };
export type DatabaseBinding = { name: string; project?: string; envPrefix?: string };

export interface AppSpec {
  source: AppSource;
  port: number;
  env?: Record<string, string>;
  secretEnv?: string[];
  resources?: Resources;
  replicas?: number;
  domains?: string[];
  /** Client networks allowed in (default: mlink.yaml's access.allowCidrs); others get 403. */
  allowCidrs?: string[];
  /** Plain HTTP redirects to HTTPS unless false. */
  httpsRedirect?: boolean;
  healthCheck?: { path: string; intervalSeconds?: number; timeoutSeconds?: number; retries?: number };
  scaleToZero?: { idleTimeoutSeconds: number };
  egress?: Egress;
  readOnlyRoot?: boolean;
  expiresAt?: string;
  databases?: DatabaseBinding[];
}

export interface DatabaseSpec {
  engine: 'postgres' | 'mysql' | 'mariadb' | 'redis';
  version?: string;
  resources?: Resources;
  backups?: { schedule?: string; keep?: number };
}

export interface Metadata { name: string; project: string }
export interface App { apiVersion: typeof API_VERSION; kind: 'App'; metadata: Metadata; spec: AppSpec }
export interface Database { apiVersion: typeof API_VERSION; kind: 'Database'; metadata: Metadata; spec: DatabaseSpec }
export type Manifest = App | Database;
export type Kind = Manifest['kind'];

export interface HostSpec {
  address: string;
  ssh: { user?: string; port?: number; hostKey: string };
  roles: Array<'build' | 'runtime'>;
  capacity?: { cpu: number; memoryMb: number };
  labels?: Record<string, string>;
  schedulable?: boolean;
}
export interface HostManifest { apiVersion: typeof API_VERSION; kind: 'Host'; metadata: { name: string }; spec: HostSpec }

export interface ClusterHost {
  name: string;
  address: string;
  roles: Array<'control' | 'build' | 'runtime'>;
  ssh?: { user?: string; port?: number };
}
export interface ClusterConfig {
  apiVersion: typeof API_VERSION;
  kind: 'Cluster';
  metadata: { name: string };
  spec: {
    baseDomain: string;
    hosts: ClusterHost[];
    registry?: { address: string };
    hostHealth?: { checkIntervalSeconds?: number; lostAfterSeconds?: number };
    defaults?: { runtime?: 'runsc' | 'runc'; resources?: Resources; replicas?: number; scaleToZero?: { idleTimeoutSeconds: number } };
    egress?: Egress & { denyFiles?: string[] };
    projects?: Record<string, { runtime?: 'runsc' | 'runc'; egress?: Egress }>;
    tls?: ClusterTls;
    access?: { allowCidrs?: string[] };
    dns?: ClusterDns;
    secrets: { recipients: string[] };
  };
}

export interface ClusterTls {
  issuer?: 'internal' | 'acme';
  /** `30d`, `12h`, `90s`: an internal-CA leaf's lifetime. */
  leafLifetime?: string;
  acme?: { directoryUrl: string; email?: string; caFile?: string };
}

export interface ClusterDns {
  server: string;
  port?: number;
  zone: string;
  ttl?: number;
  tsigKey: { name: string; algorithm?: 'hmac-sha256' };
}

/** One problem in one file: `file: field.path problem (allowed: ...)`. */
export class SchemaError extends Error {
  constructor(readonly file: string, readonly problems: string[]) {
    super(`${file}: ${problems.join('; ')}`);
    this.name = 'SchemaError';
  }
}

function loadSchema(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(new URL(`./${name}`, import.meta.url), 'utf8')) as Record<string, unknown>;
}

const ajv = new Ajv2020({ allErrors: true, verbose: true, strict: true, allowUnionTypes: true });
const addFormats = addFormatsModule as unknown as (a: Ajv2020) => void;
addFormats(ajv);
ajv.addSchema(loadSchema('defs.schema.json'));
const validators = {
  App: ajv.compile(loadSchema('app.schema.json')),
  Database: ajv.compile(loadSchema('database.schema.json')),
  Cluster: ajv.compile(loadSchema('cluster.schema.json')),
  Host: ajv.compile(loadSchema('host.schema.json')),
};

function fieldPath(instancePath: string): string {
  if (!instancePath) return '(document)';
  return instancePath
    .slice(1)
    .split('/')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`))
    .join('')
    .replace(/^\./, '');
}

function describe(e: ErrorObject): string {
  const at = fieldPath(e.instancePath);
  const schema = (e.parentSchema ?? {}) as { description?: string; properties?: Record<string, unknown> };
  const allowed = schema.description ? ` (allowed: ${schema.description})` : '';
  switch (e.keyword) {
    case 'additionalProperties': {
      const field = (e.params as { additionalProperty: string }).additionalProperty;
      const known = Object.keys(schema.properties ?? {});
      const where = at === '(document)' ? '' : ` in ${at}`;
      return `unknown field "${field}"${where} (allowed fields: ${known.join(', ') || 'none'})`;
    }
    case 'required':
      return `${at} is missing required field "${(e.params as { missingProperty: string }).missingProperty}"`;
    case 'enum':
      return `${at} must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'const':
      return `${at} must be ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}`;
    case 'pattern':
    case 'format':
      return `${at} ${JSON.stringify(shorten(e.data))} is not valid${allowed || ` (${e.message})`}`;
    case 'propertyNames':
      return `${at} has an invalid key ${JSON.stringify(shorten((e.params as { propertyName: string }).propertyName))}`;
    default:
      return `${at} ${e.message ?? 'is invalid'}${allowed}`;
  }
}

function shorten(v: unknown): unknown {
  return typeof v === 'string' && v.length > 80 ? `${v.slice(0, 77)}...` : v;
}

function problemsOf(v: ValidateFunction): string[] {
  const errors = v.errors ?? [];
  // A propertyNames failure also reports the inner pattern error on the same key; the
  // inner one says what is allowed, so keep it and drop the outer summary.
  const inner = errors.filter((e) => e.propertyName !== undefined);
  const kept = errors.filter((e) => !(e.keyword === 'propertyNames' && inner.length > 0));
  const lines = kept.map((e) =>
    e.propertyName !== undefined
      ? `${fieldPath(e.instancePath)} key ${JSON.stringify(shorten(e.propertyName))} is not valid (allowed: ${(e.parentSchema as { description?: string }).description ?? e.message})`
      : describe(e),
  );
  return [...new Set(lines)];
}

function check<T>(kind: keyof typeof validators, file: string, doc: unknown): T {
  const v = validators[kind];
  if (!v(doc)) throw new SchemaError(file, problemsOf(v));
  return doc as T;
}

export function validateApp(file: string, doc: unknown): App {
  return check<App>('App', file, doc);
}

export function validateDatabase(file: string, doc: unknown): Database {
  return check<Database>('Database', file, doc);
}

export function validateHost(file: string, doc: unknown): HostManifest {
  return check<HostManifest>('Host', file, doc);
}

export function validateClusterConfig(file: string, doc: unknown): ClusterConfig {
  const config = check<ClusterConfig>('Cluster', file, doc);
  const health = config.spec.hostHealth;
  const interval = health?.checkIntervalSeconds ?? 3;
  const lostAfter = health?.lostAfterSeconds ?? 20;
  // A host is Lost only after two checks in a row have failed: one dropped answer moves nothing.
  if (lostAfter < 2 * interval) {
    throw new SchemaError(file, [`spec.hostHealth.lostAfterSeconds ${lostAfter} is less than twice spec.hostHealth.checkIntervalSeconds (${interval}): give lostAfterSeconds of at least ${2 * interval}, or check more often`]);
  }
  return config;
}

/** Validates any manifest by its `kind` field. */
export function validateManifest(file: string, doc: unknown): Manifest {
  const kind = (doc as { kind?: unknown } | null)?.kind;
  if (kind === 'App') return validateApp(file, doc);
  if (kind === 'Database') return validateDatabase(file, doc);
  throw new SchemaError(file, [`kind must be "App" or "Database" (got ${JSON.stringify(kind)})`]);
}
