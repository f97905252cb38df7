#!/bin/sh
# ml.ink's Redis entrypoint. The container runs as `redis` with no capabilities. It writes
# the server's config to the tmpfs /run/redis (the root filesystem is read-only): the
# app's ACL user with the SHA-256 of its password from the environment (never the
# password), the default user off, and `mlink-admin`, whose password is made anew at each
# start and kept in /run/redis/admin.pass (mode 0600) for backups and probes run inside.
set -eu
: "${MLINK_DB_USER:?MLINK_DB_USER is not set}"
: "${MLINK_DB_VERIFIER:?MLINK_DB_VERIFIER is not set}"
DATA=/var/lib/mlink/data
RUN=/run/redis
umask 077
say() { printf 'mlink-entrypoint: %s\n' "$*" >&2; }

head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$RUN/admin.pass"
admin_hash=$(tr -d '\n' < "$RUN/admin.pass" | sha256sum | cut -d' ' -f1)
{
  echo 'bind * -::*'
  echo 'port 6379'
  echo 'protected-mode no'
  echo "dir $DATA"
  echo 'dbfilename dump.rdb'
  echo 'appendonly yes'
  echo 'appendfsync everysec'
  echo 'repl-diskless-sync-delay 0'
  echo 'logfile ""'
  echo "maxmemory ${MLINK_REDIS_MAXMEMORY:-0}"
  echo 'user default off'
  echo "user $MLINK_DB_USER on #$MLINK_DB_VERIFIER ~* &* +@all"
  echo "user mlink-admin on #$admin_hash ~* &* +@all"
} > "$RUN/redis.conf"

# A restore writes restore.rdb on the volume and restarts the container. Redis 7 with
# appendonly on and no AOF starts empty, ignoring dump.rdb (tried), so: load the RDB with
# AOF off on a socket only, turn AOF on (which writes the AOF from the loaded data), wait
# for that, stop, and start as usual.
if [ -f "$DATA/restore.rdb" ]; then
  say "loading restore.rdb"
  rm -rf "$DATA/appendonlydir"
  mv "$DATA/restore.rdb" "$DATA/dump.rdb"
  redis-server "$RUN/redis.conf" --appendonly no --port 0 --unixsocket "$RUN/restore.sock" --daemonize no &
  pid=$!
  cli() { REDISCLI_AUTH=$(cat "$RUN/admin.pass") redis-cli --no-auth-warning --user mlink-admin -s "$RUN/restore.sock" "$@"; }
  i=0
  until [ "$(cli PING 2>/dev/null)" = PONG ]; do
    i=$((i + 1)); [ $i -lt 600 ] || { say "the restored RDB did not load"; kill $pid; exit 1; }
    kill -0 $pid 2>/dev/null || { say "redis-server exited loading restore.rdb"; exit 1; }
    sleep 0.1
  done
  cli CONFIG SET appendonly yes >/dev/null
  until cli INFO persistence | grep -q '^aof_rewrite_in_progress:0' && cli INFO persistence | grep -q '^aof_rewrite_scheduled:0' && [ -d "$DATA/appendonlydir" ]; do
    sleep 0.1
  done
  say "restored $(cli DBSIZE) keys in db 0"
  cli SHUTDOWN SAVE >/dev/null 2>&1 || true
  wait $pid || true
fi

exec redis-server "$RUN/redis.conf"
