// Logical dumps, restores and inventories per engine, as commands run inside the
// database container (pure data: what to exec, as whom). Dumps are compressed inside
// the container with zstd (-3): it is several times faster than gzip at a similar ratio,
// it spends the database's own CPU limit rather than the control host's, and fewer bytes
// cross the Docker API (which may be an SSH connection). pg_dump writes its custom
// format uncompressed (-Z0) so the archive is compressed once, by zstd.
//
// Administrative access needs no password from outside: Postgres's superuser by peer on
// the container's socket, MariaDB's `mysql` account by unix_socket, and Redis's
// `mlink-admin`, whose password the entrypoint made for this container start. The app's
// database name and user come from the container's own environment (MLINK_DB_NAME/USER).
import type { EngineName } from './engines.js';

export interface Command { cmd: string[]; user: string }

const bash = (script: string): string[] => ['bash', '-o', 'pipefail', '-c', script];
const ZSTD = 'zstd -q -3 -T0 -c';

export const DUMP_FORMAT: Record<EngineName, string> = {
  postgres: 'pg_dump custom format (-Fc -Z0), zstd',
  mysql: 'mariadb-dump SQL (--single-transaction), zstd',
  redis: 'Redis RDB (replication snapshot), zstd',
};

/** Writes the compressed dump of the app's database to stdout. */
export function dumpCommand(engine: EngineName): Command {
  if (engine === 'postgres') {
    return { user: 'postgres', cmd: bash(`pg_dump -h /run/postgresql -Fc -Z0 -d "$MLINK_DB_NAME" | ${ZSTD}`) };
  }
  if (engine === 'mysql') {
    return {
      user: 'mysql',
      cmd: bash(`mariadb-dump --no-defaults -S /run/mysqld/mysqld.sock --single-transaction --routines --triggers --events --hex-blob --default-character-set=utf8mb4 "$MLINK_DB_NAME" | ${ZSTD}`),
    };
  }
  // redis-cli --rdb to stdout leaves the 40-byte EOF mark of a diskless transfer at the end;
  // to a file it trims it. The file sits on the data volume only while it is compressed.
  return {
    user: 'redis',
    cmd: bash(`f=/var/lib/mlink/data/.mlink-dump-$$.rdb; trap 'rm -f "$f"' EXIT
REDISCLI_AUTH=$(cat /run/redis/admin.pass) redis-cli --no-auth-warning --user mlink-admin -h 127.0.0.1 --rdb "$f" >/dev/null
${ZSTD} "$f"`),
  };
}

/**
 * Reads a compressed dump on stdin and loads it, ready to be put in place by
 * `finishRestoreCommand` (once the stream's checksum is known to be right).
 * Postgres loads into a scratch database beside the app's; MariaDB loads into the app's
 * database, dropped and made again first; Redis writes restore.rdb on the volume.
 */
export function loadCommand(engine: EngineName): Command {
  if (engine === 'postgres') {
    return {
      user: 'postgres',
      cmd: bash(`r="\${MLINK_DB_NAME}__mlink_restore"
psql -X -q -v ON_ERROR_STOP=1 -h /run/postgresql -d postgres -c "DROP DATABASE IF EXISTS \\"$r\\" WITH (FORCE)" -c "CREATE DATABASE \\"$r\\" OWNER \\"$MLINK_DB_USER\\""
zstd -q -dc | pg_restore -h /run/postgresql --exit-on-error --no-owner --no-acl --role="$MLINK_DB_USER" -d "$r"`),
    };
  }
  if (engine === 'mysql') {
    return {
      user: 'mysql',
      cmd: bash(`{ printf 'DROP DATABASE IF EXISTS \`%s\`; CREATE DATABASE \`%s\`; USE \`%s\`;\\n' "$MLINK_DB_NAME" "$MLINK_DB_NAME" "$MLINK_DB_NAME"; zstd -q -dc; } | mariadb --no-defaults -S /run/mysqld/mysqld.sock --default-character-set=utf8mb4 --binary-mode`),
    };
  }
  return { user: 'redis', cmd: bash('zstd -q -dc > /var/lib/mlink/data/.restore.rdb.partial && mv /var/lib/mlink/data/.restore.rdb.partial /var/lib/mlink/data/restore.rdb') };
}

/**
 * Puts a loaded restore in place. Postgres: the app's database stops taking connections,
 * its sessions are ended, and in one transaction it is renamed aside and the scratch
 * one renamed to it (apps reconnect to the restored data); the old one is dropped
 * afterwards by `afterRestoreCommand`, off the restore's path. Redis: the container
 * must be restarted (`restartAfterLoad`), its entrypoint loads restore.rdb. MariaDB:
 * nothing left to do.
 */
export function finishRestoreCommand(engine: EngineName): Command | undefined {
  if (engine === 'postgres') {
    return {
      user: 'postgres',
      cmd: bash(`d="$MLINK_DB_NAME"; r="\${d}__mlink_restore"; old="\${d}__mlink_old"
q() { psql -X -q -v ON_ERROR_STOP=1 -h /run/postgresql -d postgres -tA "$@"; }
q -c "DROP DATABASE IF EXISTS \"$old\" WITH (FORCE)"
if [ "$(q -c "SELECT count(*) FROM pg_database WHERE datname = '$d'")" = 0 ]; then
  exec psql -X -q -v ON_ERROR_STOP=1 -h /run/postgresql -d postgres -c "ALTER DATABASE \"$r\" RENAME TO \"$d\""
fi
q -c "ALTER DATABASE \"$d\" WITH ALLOW_CONNECTIONS false" >/dev/null
for i in $(seq 1 200); do
  q -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$d' AND pid <> pg_backend_pid()" >/dev/null
  [ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE datname = '$d'")" = 0 ] && break
  sleep 0.05
done
if ! q -c "ALTER DATABASE \"$d\" RENAME TO \"$old\"; ALTER DATABASE \"$r\" RENAME TO \"$d\"; ALTER DATABASE \"$d\" WITH ALLOW_CONNECTIONS true"; then
  q -c "ALTER DATABASE \"$d\" WITH ALLOW_CONNECTIONS true"
  exit 1
fi`),
    };
  }
  return undefined;
}

/** What a finished restore leaves to clean up, run detached: the replaced Postgres database. */
export function afterRestoreCommand(engine: EngineName): Command | undefined {
  if (engine === 'postgres') return { user: 'postgres', cmd: bash('psql -X -q -h /run/postgresql -d postgres -c "DROP DATABASE IF EXISTS \"${MLINK_DB_NAME}__mlink_old\" WITH (FORCE)"') };
  return undefined;
}

/** Whether loading overwrites the app's data before the stream's checksums are known (then the file is checked first, in a pass of its own). */
export const loadIsDestructive = (engine: EngineName): boolean => engine === 'mysql';

/** Drops a load that will not be put in place (its checksum was wrong, or it failed). */
export function abandonLoadCommand(engine: EngineName): Command | undefined {
  if (engine === 'postgres') return { user: 'postgres', cmd: bash('psql -X -q -h /run/postgresql -d postgres -c "DROP DATABASE IF EXISTS \\"${MLINK_DB_NAME}__mlink_restore\\" WITH (FORCE)"') };
  if (engine === 'redis') return { user: 'redis', cmd: bash('rm -f /var/lib/mlink/data/restore.rdb /var/lib/mlink/data/.restore.rdb.partial') };
  return undefined;
}

export const restartAfterLoad = (engine: EngineName): boolean => engine === 'redis';

/** What a database holds: tables with exact row counts, or Redis's key count. */
export interface Inventory { tables?: Array<{ name: string; rows: number }>; keys?: number }

/** Prints the inventory as lines: "<table>\t<rows>", or Redis's INFO keyspace. */
export function inventoryCommand(engine: EngineName): Command {
  if (engine === 'postgres') {
    const sql = `SELECT format('%s.%s', n.nspname, c.relname),
  (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1`;
    return { user: 'postgres', cmd: ['bash', '-c', `psql -X -q -v ON_ERROR_STOP=1 -h /run/postgresql -d "$MLINK_DB_NAME" -tA -F $'\\t' -c "$1"`, 'inventory', sql] };
  }
  if (engine === 'mysql') {
    const sql = `SET SESSION group_concat_max_len = 16777216;
SELECT GROUP_CONCAT(CONCAT('SELECT ', QUOTE(table_name), ', COUNT(*) FROM \`', REPLACE(table_name, '\`', '\`\`'), '\`') ORDER BY table_name SEPARATOR ' UNION ALL ') INTO @q
  FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE';
SET @q = COALESCE(@q, 'SELECT 1, 1 FROM DUAL WHERE 0');
PREPARE s FROM @q; EXECUTE s; DEALLOCATE PREPARE s;`;
    return { user: 'mysql', cmd: ['bash', '-c', 'mariadb --no-defaults -S /run/mysqld/mysqld.sock -N -B -D "$MLINK_DB_NAME" -e "$1"', 'inventory', sql] };
  }
  return { user: 'redis', cmd: bash('REDISCLI_AUTH=$(cat /run/redis/admin.pass) redis-cli --no-auth-warning --user mlink-admin -h 127.0.0.1 INFO keyspace') };
}

/** Pure: the inventory command's output as data. */
export function parseInventory(engine: EngineName, out: string): Inventory {
  if (engine === 'redis') {
    let keys = 0;
    for (const m of out.matchAll(/^db\d+:keys=(\d+)/gm)) keys += Number(m[1]);
    return { keys };
  }
  const tables = out.split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l.includes('\t')).map((l) => {
    const [name, rows] = l.split('\t');
    return { name: name!, rows: Number(rows) };
  });
  return { tables };
}

/** Pure: why a restored copy does not hold what its source held, or undefined. Tables must all be there; Redis must not come back empty from a non-empty source. */
export function inventoryProblem(source: Inventory | undefined, restored: Inventory): string | undefined {
  if (!source) return undefined;
  if (source.tables) {
    const have = new Set((restored.tables ?? []).map((t) => t.name));
    const missing = source.tables.filter((t) => !have.has(t.name)).map((t) => t.name);
    if (missing.length) return `the restored copy lacks ${missing.length} of the source's ${source.tables.length} tables: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''}`;
  }
  if (source.keys !== undefined && source.keys > 0 && (restored.keys ?? 0) === 0) return `the restored copy holds no keys; the source held ${source.keys}`;
  return undefined;
}
