// Tool input (snake_case, what agents send) to App spec (camelCase, what the manifest
// says), and a one-line summary of a change. Pure: no I/O.
import type { AppSource, AppSpec, DatabaseBinding } from '../../schemas/index.js';
import type { SourceInput } from './app-source.js';

/** Optional App fields as agents send them. In update_app, null removes a field. */
export interface AppFieldsInput {
  env?: Record<string, string> | null;
  /** Secret values by name; null removes that secret. Values are encrypted and never returned. */
  secret_env?: Record<string, string | null> | null;
  resources?: { cpu?: number; memory_mb?: number; pids?: number } | null;
  replicas?: number | null;
  domains?: string[] | null;
  /** Client networks let in; others get 403. null: back to mlink.yaml's default. */
  allow_cidrs?: string[] | null;
  /** false: plain HTTP serves the app too instead of redirecting to HTTPS. */
  https_redirect?: boolean | null;
  health_check?: { path: string; interval_seconds?: number; timeout_seconds?: number; retries?: number } | null;
  scale_to_zero?: { idle_timeout_seconds: number } | null;
  egress_allow?: string[] | null;
  /** Ephemeral apps: remove the app this many seconds after the write. */
  ttl_seconds?: number | null;
  databases?: Array<{ name: string; project?: string; env_prefix?: string }> | null;
}

export interface CreateAppInput extends AppFieldsInput {
  name: string;
  project?: string;
  source: SourceInput;
  port: number;
  proposal?: string;
}

export interface UpdateAppInput extends AppFieldsInput {
  name: string;
  project?: string;
  source?: SourceInput;
  port?: number;
  expected_revision?: string;
  proposal?: string;
}

type Mapped = Partial<AppSpec>;

function drop<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** The spec fields an input sets (undefined: not given; null: remove). */
function mapFields(input: AppFieldsInput & { source?: SourceInput; port?: number }, now: Date): { [K in keyof AppSpec]?: AppSpec[K] | null } {
  const out: { [K in keyof AppSpec]?: AppSpec[K] | null } = {};
  // Files, tars and git refs are resolved to a pinned commit (app-source.ts) before this runs.
  if (input.source !== undefined) out.source = input.source as AppSource;
  if (input.port !== undefined) out.port = input.port;
  if (input.env !== undefined) out.env = input.env;
  if (input.resources !== undefined) out.resources = input.resources && drop({ cpu: input.resources.cpu, memoryMb: input.resources.memory_mb, pids: input.resources.pids });
  if (input.replicas !== undefined) out.replicas = input.replicas;
  if (input.domains !== undefined) out.domains = input.domains;
  if (input.allow_cidrs !== undefined) out.allowCidrs = input.allow_cidrs;
  if (input.https_redirect !== undefined) out.httpsRedirect = input.https_redirect;
  if (input.health_check !== undefined) {
    const h = input.health_check;
    out.healthCheck = h && drop({ path: h.path, intervalSeconds: h.interval_seconds, timeoutSeconds: h.timeout_seconds, retries: h.retries });
  }
  if (input.scale_to_zero !== undefined) out.scaleToZero = input.scale_to_zero && { idleTimeoutSeconds: input.scale_to_zero.idle_timeout_seconds };
  if (input.egress_allow !== undefined) out.egress = input.egress_allow && { allow: input.egress_allow };
  if (input.ttl_seconds !== undefined) {
    out.expiresAt = input.ttl_seconds === null ? null : new Date(now.getTime() + input.ttl_seconds * 1000).toISOString();
  }
  if (input.databases !== undefined) {
    out.databases = input.databases && input.databases.map((d): DatabaseBinding => drop({ name: d.name, project: d.project, envPrefix: d.env_prefix }));
  }
  return out;
}

/** Names of secrets after applying `secret_env` to the names an app already has. */
export function secretNames(existing: string[], change: AppFieldsInput['secret_env']): string[] | undefined {
  if (change === undefined) return existing.length ? existing : undefined;
  const names = new Set(change === null ? [] : existing);
  for (const [name, value] of Object.entries(change ?? {})) {
    if (value === null) names.delete(name);
    else names.add(name);
  }
  return names.size ? [...names].sort() : undefined;
}

/** The spec of a new app. */
export function newAppSpec(input: CreateAppInput, now: Date): AppSpec {
  const fields = mapFields(input, now);
  const spec = drop({ ...fields, secretEnv: secretNames([], input.secret_env) }) as Mapped;
  for (const [k, v] of Object.entries(spec)) if (v === null) delete (spec as Record<string, unknown>)[k];
  return spec as AppSpec;
}

/** The spec after an update: given fields replace the old ones, null removes, omitted fields stay. */
export function updatedAppSpec(old: AppSpec, input: UpdateAppInput, now: Date): AppSpec {
  const next: Record<string, unknown> = { ...old };
  for (const [k, v] of Object.entries(mapFields(input, now))) {
    if (v === null) delete next[k];
    else if (v !== undefined) next[k] = v;
  }
  const names = secretNames(old.secretEnv ?? [], input.secret_env);
  if (names) next.secretEnv = names;
  else delete next.secretEnv;
  return next as unknown as AppSpec;
}

export function describeSource(s: AppSource | SourceInput): string {
  if ('tar' in s) return 'a tar of files';
  if ('image' in s) return `image ${s.image}`;
  if ('git' in s) return `git ${s.git.url}@${s.git.ref}${'commit' in s.git && s.git.commit ? ` (${s.git.commit.slice(0, 12)})` : ''}`;
  if ('repo' in s) return `source ${s.repo.app ? `${s.repo.app}@` : ''}${(s.repo.commit ?? 'head').slice(0, 12)}${s.repo.path ? `:${s.repo.path}` : ''}`;
  return `${Object.keys(s.files).length} files`;
}

/** Which fields an update touches, for the commit summary: `port, env, secret API_KEY`. */
export function changedFields(input: UpdateAppInput): string {
  const skip = new Set(['name', 'project', 'expected_revision', 'proposal']);
  const parts: string[] = [];
  for (const [k, v] of Object.entries(input)) {
    if (skip.has(k) || v === undefined) continue;
    if (k === 'source') parts.push(describeSource(v as SourceInput));
    else if (k === 'port' || k === 'replicas') parts.push(`${k} ${String(v)}`);
    else if (k === 'secret_env') parts.push(v === null ? 'no secrets' : `secrets ${Object.keys(v as object).sort().join(', ')}`);
    else parts.push(v === null ? `no ${k}` : k);
  }
  return parts.join(', ') || 'nothing';
}
