// The database engines ml.ink runs, as plain data: which Debian package serves each, the
// versions a host can truthfully run, the port, the user the server runs as and where its
// data lives. Pure: the image builder, the container spec and the dumps read this.

export type EngineName = 'postgres' | 'redis' | 'mysql';

export interface Engine {
  name: EngineName;
  /** What get_database shows. */
  description: string;
  /** The Debian package whose version tags the image. */
  package: string;
  /** The release the package serves (major for postgres/redis, major.minor for MariaDB). */
  release: string;
  /** Versions a manifest may ask for: the release and its prefixes that name it exactly. */
  accepts: string[];
  port: number;
  /** The OS user the server runs as inside the container; its uid/gid are fixed in the image so a volume stays readable across rebuilds. */
  user: string;
  uid: number;
  /** Mount point of the data volume. */
  dataDir: string;
  urlScheme: 'postgres' | 'redis' | 'mysql';
  defaultEnvPrefix: 'DATABASE' | 'REDIS';
}

const UID = 999;

export const ENGINES: Record<EngineName, Engine> = {
  postgres: {
    name: 'postgres', description: 'PostgreSQL 15', package: 'postgresql-15', release: '15', accepts: ['15'],
    port: 5432, user: 'postgres', uid: UID, dataDir: '/var/lib/mlink/data', urlScheme: 'postgres', defaultEnvPrefix: 'DATABASE',
  },
  redis: {
    name: 'redis', description: 'Redis 7', package: 'redis-server', release: '7.0', accepts: ['7', '7.0'],
    port: 6379, user: 'redis', uid: UID, dataDir: '/var/lib/mlink/data', urlScheme: 'redis', defaultEnvPrefix: 'REDIS',
  },
  mysql: {
    name: 'mysql', description: 'MariaDB 10.11, MySQL-compatible', package: 'mariadb-server', release: '10.11', accepts: ['10', '10.11'],
    port: 3306, user: 'mysql', uid: UID, dataDir: '/var/lib/mlink/data', urlScheme: 'mysql', defaultEnvPrefix: 'DATABASE',
  },
};

/** Engine names a manifest may use; `mariadb` is the same engine as `mysql`. */
export const ENGINE_ALIASES: Record<string, EngineName> = { postgres: 'postgres', postgresql: 'postgres', redis: 'redis', mysql: 'mysql', mariadb: 'mysql' };

export function engineNames(): string[] {
  return Object.keys(ENGINE_ALIASES);
}

/** The engine a manifest's `engine` names, or undefined. */
export function resolveEngine(name: string): Engine | undefined {
  const key = ENGINE_ALIASES[name.trim().toLowerCase()];
  return key ? ENGINES[key] : undefined;
}

export function engineOf(name: string): Engine {
  const e = resolveEngine(name);
  if (!e) throw new Error(`spec.engine: "${name}" is not an engine ml.ink runs; use one of ${engineNames().join(', ')}`);
  return e;
}

/**
 * Why `requested` (a manifest's spec.version) cannot run here, or undefined when it can.
 * `installed` is the Debian package version the host's image carries (ensureEngineImage's
 * `version`), when known: a full minor version is then accepted when it is that one.
 */
export function engineVersionProblem(engine: string, requested: string | undefined, installed?: string): string | undefined {
  const e = resolveEngine(engine);
  if (!e) return `spec.engine: "${engine}" is not an engine ml.ink runs; use one of ${engineNames().join(', ')}`;
  if (requested === undefined || requested === '') return undefined;
  const v = requested.trim();
  if (e.accepts.includes(v)) return undefined;
  const upstream = installed ? upstreamVersion(installed) : undefined;
  // A longer version is fine when it is the one the host's package carries (15.20 when 15.20 is installed).
  if (upstream && (upstream === v || upstream.startsWith(`${v}.`)) && v.startsWith(`${e.release}.`)) return undefined;
  const what = e.name === 'mysql' ? `${e.name} (served by ${e.description})` : e.name;
  const have = upstream ? `${e.release} (Debian ${e.package} ${upstream})` : e.release;
  const hint = e.name === 'mysql' && /^[58]\./.test(v)
    ? `; MySQL ${v} itself is not packaged by Debian 12, MariaDB ${e.release} speaks its protocol and SQL`
    : '';
  return `spec.version: ${what} ${v} cannot run on this host: it runs ${have}${hint}; set version to ${e.accepts.map((a) => `"${a}"`).join(' or ')}, or leave it out`;
}

/** "1:10.11.19-0+deb12u1" -> "10.11.19": the upstream part of a Debian version. */
export function upstreamVersion(debian: string): string {
  const noEpoch = debian.includes(':') ? debian.slice(debian.indexOf(':') + 1) : debian;
  return noEpoch.replace(/[-+~].*$/, '');
}

/** A Debian version as a Docker tag part: no epoch, and `+`/`~`/`:` (not allowed in tags) as `_`. */
export function versionTag(debian: string): string {
  const noEpoch = debian.includes(':') ? debian.slice(debian.indexOf(':') + 1) : debian;
  return noEpoch.replace(/[^A-Za-z0-9_.-]/g, '_');
}
