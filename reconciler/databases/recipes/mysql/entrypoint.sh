#!/bin/sh
# ml.ink's MariaDB entrypoint. The container runs as `mysql` with no capabilities. An
# empty data volume gets a new datadir whose administrators (root and mysql) log in
# only by unix_socket from inside the container; then the server starts with an init
# file (on the tmpfs /run/mysqld) that makes sure the app's database and user exist with
# the password hash from the environment (never the password), at every start.
set -eu
: "${MLINK_DB_USER:?MLINK_DB_USER is not set}"
: "${MLINK_DB_NAME:?MLINK_DB_NAME is not set}"
: "${MLINK_DB_VERIFIER:?MLINK_DB_VERIFIER is not set}"
DATA=/var/lib/mlink/data
RUN=/run/mysqld
umask 077
say() { printf 'mlink-entrypoint: %s\n' "$*" >&2; }

# An initialisation cut short (a crash, a full disk) leaves .mlink-initialising behind:
# only then are the files it left removed and the initialisation run again.
if [ -e "$DATA/.mlink-initialising" ]; then
  say "an earlier initialisation did not finish: starting it again"
  find "$DATA" -mindepth 1 -delete
fi
if [ ! -d "$DATA/mysql" ]; then
  if [ -n "$(ls -A "$DATA")" ]; then
    say "$DATA holds files but no mysql/ directory: refusing to initialise over them"
    exit 1
  fi
  say "initialising a new datadir in $DATA"
  touch "$DATA/.mlink-initialising"
  # No --user: the server already runs as mysql, and --user would chown files it may not.
  mariadb-install-db --no-defaults --datadir="$DATA" --auth-root-authentication-method=socket \
    --auth-root-socket-user=mysql --skip-test-db --skip-name-resolve >/dev/null
  rm "$DATA/.mlink-initialising"
fi

printf '%s\n' \
  "CREATE DATABASE IF NOT EXISTS \`$MLINK_DB_NAME\`;" \
  "CREATE USER IF NOT EXISTS '$MLINK_DB_USER'@'%' IDENTIFIED BY PASSWORD '$MLINK_DB_VERIFIER';" \
  "ALTER USER '$MLINK_DB_USER'@'%' IDENTIFIED BY PASSWORD '$MLINK_DB_VERIFIER';" \
  "GRANT ALL PRIVILEGES ON \`$MLINK_DB_NAME\`.* TO '$MLINK_DB_USER'@'%';" > "$RUN/init.sql"

exec mariadbd --no-defaults --datadir="$DATA" \
  --socket="$RUN/mysqld.sock" --pid-file="$RUN/mysqld.pid" --tmpdir=/tmp \
  --bind-address=0.0.0.0 --port=3306 --skip-name-resolve \
  --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
  --innodb-buffer-pool-size="${MLINK_MYSQL_BUFFER_POOL:-128M}" \
  --init-file="$RUN/init.sql"
