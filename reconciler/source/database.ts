// source, Database part: one Database manifest compiled against the cluster defaults.
// Which engines and versions there are is what Debian's packages on the base image give
// (databases/engines.ts): PostgreSQL 15, Redis 7 and MariaDB 10.11, which serves `mysql`
// (and answers to `mariadb`). Only the release is chosen; the minor version is the one
// Debian ships, with its security fixes.
import type { ClusterConfig, Database } from '../../schemas/index.js';
import { StalledError } from '../errors.js';
import { manifestPath } from '../layout.js';
import { engineVersionProblem, resolveEngine } from '../databases/engines.js';
import type { DesiredDatabase, Engine } from '../model.js';
import { hash } from './app.js';

/** Resources a database gets unless its manifest says otherwise (the engines' own minimum under gVisor is higher for MariaDB). */
const DEFAULT_RESOURCES: Record<Engine, { cpu: number; memoryMb: number; pids: number }> = {
  postgres: { cpu: 0.5, memoryMb: 256, pids: 256 },
  mysql: { cpu: 0.5, memoryMb: 384, pids: 256 },
  redis: { cpu: 0.25, memoryMb: 128, pids: 128 },
};

/** Whether data written by `written` (the server's version, e.g. "15.14") can be served by `release` ("15"). */
export function sameRelease(written: string, release: string): boolean {
  return written === release || written.startsWith(`${release}.`);
}

export interface DatabaseInputs {
  cluster: ClusterConfig;
  /** Blob id of the database's credentials (secrets/<project>/db.<name>/credentials.age). */
  credentialsOid: string | null;
}

/**
 * Compiles one Database. Its host, the networks it joins and its clients are filled in
 * once the apps are compiled and placed (source/desired.ts, placement.ts); the spec hash
 * is made then (`withSpecHash`).
 */
export function compileDatabase(m: Database, inputs: DatabaseInputs): DesiredDatabase {
  const { metadata, spec } = m;
  const file = manifestPath('Database', metadata.project, metadata.name);
  const problem = engineVersionProblem(spec.engine, spec.version);
  if (problem) throw new StalledError('ValidationFailed', file, problem);
  const e = resolveEngine(spec.engine)!;
  if (!inputs.credentialsOid) throw new StalledError('ValidationFailed', file, `its credentials (secrets/${metadata.project}/db.${metadata.name}/credentials.age) are missing; they are made by create_database: restore them with git revert, or delete and create the database again`);
  const defaults = inputs.cluster.spec.defaults ?? {};
  return {
    kind: 'Database',
    project: metadata.project,
    name: metadata.name,
    specHash: '',
    engine: e.name,
    version: e.release,
    resources: { ...DEFAULT_RESOURCES[e.name], ...spec.resources },
    runtime: inputs.cluster.spec.projects?.[metadata.project]?.runtime ?? defaults.runtime ?? 'runsc',
    host: '',
    port: e.port,
    networks: [metadata.project],
    clients: [],
    ...(spec.backups ? { backups: { ...(spec.backups.schedule ? { schedule: spec.backups.schedule } : {}), keep: spec.backups.keep ?? 7 } } : {}),
  };
}

/** The spec hash: everything that changes the server container (not its backups: those change no container). */
export function withSpecHash(db: DesiredDatabase, credentialsOid: string): DesiredDatabase {
  const container = { engine: db.engine, version: db.version, resources: db.resources, runtime: db.runtime, networks: db.networks, credentials: credentialsOid };
  return { ...db, specHash: hash(container) };
}
