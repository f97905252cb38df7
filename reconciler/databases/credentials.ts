// Credentials for one database: made by ml.ink at create time, stored encrypted by the
// caller, handed to bound apps as a URL and its parts. The server container never sees
// the password: it gets the engine's own verifier (a SCRAM-SHA-256 secret for Postgres,
// the mysql_native_password hash for MariaDB, the SHA-256 Redis ACLs take), so neither
// its environment nor `docker inspect` can log anyone in. Pure, apart from randomness.
import { createHash, createHmac, pbkdf2Sync, randomInt } from 'node:crypto';
import { ENGINES, engineOf, type EngineName } from './engines.js';

export interface Credentials {
  engine: EngineName;
  /** The app's login (a Postgres role, a MariaDB user, a Redis ACL user). */
  user: string;
  password: string;
  /** The database name; for Redis the logical database number, "0". */
  database: string;
}

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const LOWER = 'abcdefghijklmnopqrstuvwxyz0123456789';

function pick(alphabet: string, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[randomInt(alphabet.length)];
  return s;
}

/**
 * New credentials: a random user name, a 32-character password (190 bits; letters and
 * digits, so no client library's URL parser can get it wrong) and the database name
 * (`database`, default "app"; "0" for Redis).
 */
export function newCredentials(engine: string, database = 'app'): Credentials {
  const e = engineOf(engine);
  const c: Credentials = {
    engine: e.name,
    user: `u_${pick(LOWER, 12)}`,
    password: pick(ALNUM, 32),
    database: e.name === 'redis' ? '0' : database,
  };
  checkCredentials(c);
  return c;
}

/** Throws naming the field when credentials could not be used safely (they are put into SQL and config files as names). */
export function checkCredentials(c: Credentials): void {
  const e = ENGINES[c.engine];
  if (!e) throw new Error(`credentials.engine: "${String(c.engine)}" is not an engine; use postgres, mysql or redis`);
  if (!/^[a-z][a-z0-9_]{0,30}$/.test(c.user)) {
    throw new Error(`credentials.user: "${c.user}" must be 1-31 characters of a-z, 0-9 and _, starting with a letter`);
  }
  if (c.user === 'postgres' || c.user === 'root' || c.user === 'mysql' || c.user === 'default' || c.user.startsWith('mlink')) {
    throw new Error(`credentials.user: "${c.user}" is reserved for the engine's own administration; pick another name`);
  }
  if (c.engine === 'redis') {
    if (!/^([0-9]|1[0-5])$/.test(c.database)) throw new Error(`credentials.database: Redis databases are numbers 0-15, not "${c.database}"`);
  } else if (!/^[a-z][a-z0-9_]{0,62}$/.test(c.database) || c.database === 'postgres' || c.database === 'mysql' || c.database.startsWith('template')) {
    throw new Error(`credentials.database: "${c.database}" must be 1-63 characters of a-z, 0-9 and _, starting with a letter, and not a system database`);
  }
  if (c.password.length < 16 || c.password.length > 128 || !/^[\x21-\x7e]+$/.test(c.password)) {
    throw new Error('credentials.password: must be 16-128 printable ASCII characters without spaces');
  }
}

/** "app_db-1" -> "app_db_1": a resource name as a database name. */
export function databaseNameFor(resource: string): string {
  const s = resource.toLowerCase().replace(/[^a-z0-9_]/g, '_').replace(/^[^a-z]+/, '');
  return (s || 'app').slice(0, 63);
}

/**
 * Postgres's SCRAM-SHA-256 secret (RFC 5802/7677, as `CREATE ROLE ... PASSWORD` stores it).
 * The salt is derived from the password and user so the same credentials give the same
 * container spec (a random salt would change the spec hash on every reconcile).
 */
export function scramSha256Verifier(user: string, password: string, iterations = 4096, salt: Buffer = createHmac('sha256', password).update(`ml.ink scram salt ${user}`).digest().subarray(0, 16)): string {
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** MariaDB's mysql_native_password hash: "*" and SHA1(SHA1(password)) in upper-case hex. */
export function mysqlNativeHash(password: string): string {
  const inner = createHash('sha1').update(password, 'utf8').digest();
  return `*${createHash('sha1').update(inner).digest('hex').toUpperCase()}`;
}

/** What the server container's environment carries: names and a verifier, never the password. */
export function serverEnv(c: Credentials): Record<string, string> {
  checkCredentials(c);
  const verifier = c.engine === 'postgres' ? scramSha256Verifier(c.user, c.password)
    : c.engine === 'mysql' ? mysqlNativeHash(c.password)
      : createHash('sha256').update(c.password, 'utf8').digest('hex');
  return { MLINK_DB_USER: c.user, MLINK_DB_NAME: c.database, MLINK_DB_VERIFIER: verifier };
}

/** The engine's standard URL: postgres://u:p@h:5432/db, mysql://u:p@h:3306/db, redis://u:p@h:6379/0. User and password are percent-encoded. */
export function connectionUrl(c: Credentials, host: string, port: number = ENGINES[c.engine].port): string {
  const e = ENGINES[c.engine];
  const h = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `${e.urlScheme}://${encodeURIComponent(c.user)}:${encodeURIComponent(c.password)}@${h}:${port}/${encodeURIComponent(c.database)}`;
}

/** Env names a binding prefix may use: letters, digits, _; not starting with a digit. */
export function checkEnvPrefix(prefix: string): void {
  if (!/^[A-Z][A-Z0-9_]{0,40}$/.test(prefix)) {
    throw new Error(`env_prefix: "${prefix}" must be upper-case letters, digits and _, starting with a letter (for example DATABASE or CACHE)`);
  }
}

/** The env a bound app gets: <PREFIX>_URL, _HOST, _PORT, _USER, _PASSWORD, _NAME (prefix DATABASE for postgres/mysql, REDIS for redis). */
export function bindingEnv(c: Credentials, at: { host: string; port?: number; prefix?: string }): Record<string, string> {
  const e = ENGINES[c.engine];
  const prefix = at.prefix ?? e.defaultEnvPrefix;
  checkEnvPrefix(prefix);
  const port = at.port ?? e.port;
  return {
    [`${prefix}_URL`]: connectionUrl(c, at.host, port),
    [`${prefix}_HOST`]: at.host,
    [`${prefix}_PORT`]: String(port),
    [`${prefix}_USER`]: c.user,
    [`${prefix}_PASSWORD`]: c.password,
    [`${prefix}_NAME`]: c.database,
  };
}
