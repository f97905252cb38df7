#!/bin/sh
# ml.ink's PostgreSQL entrypoint. The container runs as `postgres` with no capabilities,
# so this does only what that user may: initialise an empty data volume, make sure the
# app's role and database exist with the credentials from the environment (a SCRAM
# verifier, never the password), then exec the server as PID 1. Every start does the
# role step again, so a recreated container on an old volume keeps its data and access.
set -eu
: "${MLINK_DB_USER:?MLINK_DB_USER is not set}"
: "${MLINK_DB_NAME:?MLINK_DB_NAME is not set}"
: "${MLINK_DB_VERIFIER:?MLINK_DB_VERIFIER is not set}"
PGDATA=/var/lib/mlink/data/pgdata
export PGDATA
umask 077
say() { printf 'mlink-entrypoint: %s\n' "$*" >&2; }

fresh=0
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -d "$PGDATA" ] && [ -n "$(ls -A "$PGDATA")" ]; then
    say "$PGDATA holds files but no PG_VERSION: refusing to initialise over them"
    exit 1
  fi
  say "initialising a new cluster in $PGDATA"
  # initdb writes PG_VERSION first and the databases after: a start killed during it would
  # leave a cluster that looks made and is not. It runs beside PGDATA and is renamed into
  # place when complete (the same volume, so the rename is atomic).
  rm -rf "$PGDATA.init"
  initdb --pgdata="$PGDATA.init" --username=postgres --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=peer --auth-host=scram-sha-256 >/dev/null
  rmdir "$PGDATA" 2>/dev/null || true
  mv "$PGDATA.init" "$PGDATA"
  fresh=1
fi

# The superuser only over the container's own socket, by peer; everyone else by SCRAM.
printf '%s\n' \
  'local all postgres peer' \
  'local all all scram-sha-256' \
  'host all all 0.0.0.0/0 scram-sha-256' \
  'host all all ::/0 scram-sha-256' > "$PGDATA/pg_hba.conf"

# Nothing else runs in this container and PID 1 is this script: a postmaster.pid here
# is a killed server's, whose PID (1) would otherwise look alive. (One container per
# volume is the caller's rule: Postgres cannot see a server in another container.)
rm -f "$PGDATA/postmaster.pid"

# Single-user mode runs SQL without a server, and exits 0 whatever a statement does:
# the last statement reads back what the others did. It must not echo a failing
# statement (log_min_error_statement): the statements carry the verifier, and lines
# naming a password are dropped from its error output.
single() {
  if ! postgres --single -j -D "$PGDATA" -c log_min_error_statement=panic -c log_min_messages=warning postgres 2>/run/postgresql/single.err; then
    say "single-user mode failed:"
    grep -v -i password /run/postgresql/single.err >&2 || true
    exit 1
  fi
}
U=$MLINK_DB_USER
D=$MLINK_DB_NAME
check="SELECT (SELECT count(*) FROM pg_authid WHERE rolname = '$U' AND rolcanlogin AND rolpassword = '$MLINK_DB_VERIFIER') AS role_ok, (SELECT count(*) FROM pg_database WHERE datname = '$D') AS db_ok;"
if [ ! -e "$PGDATA/recovery.signal" ] && [ ! -e "$PGDATA/standby.signal" ]; then
  create=''
  [ $fresh = 1 ] && create="CREATE DATABASE \"$D\" OWNER \"$U\";"
  out=$(printf '%s\n\n' \
    "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$U') THEN CREATE ROLE \"$U\" LOGIN; END IF; END\$\$;" \
    "ALTER ROLE \"$U\" WITH LOGIN NOSUPERUSER PASSWORD '$MLINK_DB_VERIFIER';" \
    ${create:+"$create"} "$check" | single)
  if ! printf '%s' "$out" | grep -q 'db_ok = "1"'; then
    say "creating database $D"
    out=$(printf '%s\n\n' "CREATE DATABASE \"$D\" OWNER \"$U\";" "$check" | single)
  fi
  printf '%s' "$out" | grep -q 'role_ok = "1"' || { say "the role $U could not be set up"; exit 1; }
  printf '%s' "$out" | grep -q 'db_ok = "1"' || { say "the database $D could not be created"; exit 1; }
fi

set -- postgres -D "$PGDATA" \
  -c listen_addresses='*' \
  -c unix_socket_directories=/run/postgresql \
  -c shared_buffers="${MLINK_PG_SHARED_BUFFERS:-128MB}" \
  -c max_connections="${MLINK_PG_MAX_CONNECTIONS:-100}" \
  -c password_encryption=scram-sha-256 \
  -c log_line_prefix='%m [%p] %q%u@%d '
if [ "${MLINK_PITR:-0}" = 1 ]; then
  # The stanza is made by the first push that finds none (the server answers by then):
  # WAL written before the first backup is archived too, instead of piling up in pg_wal.
  set -- "$@" -c wal_level=replica -c archive_mode=on \
    -c 'archive_command=pgbackrest --stanza=main archive-push %p || { pgbackrest --stanza=main stanza-create && pgbackrest --stanza=main archive-push %p; }' \
    -c archive_timeout="${MLINK_ARCHIVE_TIMEOUT:-60}"
fi
exec "$@"
