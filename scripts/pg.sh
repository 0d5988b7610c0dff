#!/usr/bin/env bash
# A throwaway PostgreSQL server for tests: superuser "postgres", trust auth, 127.0.0.1 on a free port.
#
#   scripts/pg.sh start    start it (fresh data directory) and print its SQLAlchemy URL;
#                          when it is already running, just print the URL
#   scripts/pg.sh url      print the URL of the running server (exit 1 when it is not running)
#   scripts/pg.sh stop     stop it and delete its data directory (no-op when it is not running)
#   scripts/pg.sh status   exit 0 when running, 1 when not
#
# State lives in $QUEUEHALL_PG_DIR (default /tmp/queuehall-pg): data/, sock/, server.log, url.
# As root the server runs as the "postgres" user (runuser); otherwise as the calling user.
# Durability is switched off (fsync etc.): the data is thrown away anyway and tests run faster
# (QUEUEHALL_PG_DURABLE=1 keeps it on, for benchmarks of durable commits).
set -euo pipefail

STATE_DIR=$(realpath -m -- "${QUEUEHALL_PG_DIR:-/tmp/queuehall-pg}")
DATA_DIR=$STATE_DIR/data
SOCK_DIR=$STATE_DIR/sock
LOG_FILE=$STATE_DIR/server.log
URL_FILE=$STATE_DIR/url

die() { echo "pg.sh: $*" >&2; exit 1; }

SELF=$(realpath -- "$0")
usage() { sed -n '2,13p' "$SELF" >&2; exit 2; }

# Directory with initdb/pg_ctl: PostgreSQL 15 when present, else the newest installed version.
find_bindir() {
  if [ -x /usr/lib/postgresql/15/bin/pg_ctl ]; then
    echo /usr/lib/postgresql/15/bin
    return
  fi
  local dir
  dir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$dir" ] || [ ! -x "$dir/pg_ctl" ]; then
    die "no PostgreSQL server under /usr/lib/postgresql/*/bin; run scripts/setup-system.sh as root"
  fi
  echo "pg.sh: PostgreSQL 15 not found, using $dir" >&2
  echo "$dir"
}

# Run a command as the server's owner: "postgres" when we are root (initdb refuses to run as root).
# fd 9 (the lock) is closed for the child: a postmaster that inherited it would hold the lock forever.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@" 9>&-
  else
    "$@" 9>&-
  fi
}

is_running() {
  [ -f "$DATA_DIR/PG_VERSION" ] && [ -f "$URL_FILE" ] \
    && as_owner "$BINDIR/pg_ctl" -D "$DATA_DIR" status >/dev/null 2>&1
}

# A port the kernel says is free right now; a random high port when python3 is missing (start() retries).
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
    2>/dev/null || echo $((20000 + RANDOM % 40000))
}

start() {
  if is_running; then
    cat "$URL_FILE"
    return
  fi
  # Leftovers of a crashed or killed server: start from scratch.
  rm -rf "$DATA_DIR" "$SOCK_DIR" "$URL_FILE" "$LOG_FILE"
  mkdir -p "$SOCK_DIR"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres:postgres "$STATE_DIR" "$SOCK_DIR"
  fi
  chmod 700 "$STATE_DIR"
  as_owner "$BINDIR/initdb" -D "$DATA_DIR" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
    >"$STATE_DIR/initdb.log" 2>&1 || { cat "$STATE_DIR/initdb.log" >&2; die "initdb failed"; }

  local port attempt durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  # QUEUEHALL_PG_DURABLE=1 (benchmarks of durable commits, bench/city_bench.py): PostgreSQL's own defaults.
  if [ "${QUEUEHALL_PG_DURABLE:-}" = 1 ]; then durability=""; fi
  # The port is free when we pick it but another process may grab it first, so retry a few times.
  for attempt in 1 2 3; do
    port=$(free_port)
    if as_owner "$BINDIR/pg_ctl" -D "$DATA_DIR" -l "$LOG_FILE" -w -t 30 \
        -o "-p $port -k $SOCK_DIR -c listen_addresses=127.0.0.1 $durability" \
        start >/dev/null; then
      echo "postgresql+psycopg://postgres@127.0.0.1:$port/postgres" >"$URL_FILE"
      cat "$URL_FILE"
      return
    fi
    echo "pg.sh: start on port $port failed (attempt $attempt), see $LOG_FILE" >&2
  done
  tail -n 20 "$LOG_FILE" >&2 || true
  die "could not start PostgreSQL"
}

stop() {
  if [ -f "$DATA_DIR/PG_VERSION" ] && as_owner "$BINDIR/pg_ctl" -D "$DATA_DIR" status >/dev/null 2>&1; then
    # Immediate mode skips the shutdown checkpoint: the data is deleted right after.
    as_owner "$BINDIR/pg_ctl" -D "$DATA_DIR" -m immediate -w -t 30 stop >/dev/null
  fi
  rm -rf "$DATA_DIR" "$SOCK_DIR" "$URL_FILE"
}

[ $# -eq 1 ] || usage
BINDIR=$(find_bindir)
# The server user may not be allowed into the caller's working directory.
cd /
mkdir -p "$STATE_DIR"
[ -w "$STATE_DIR" ] || die "$STATE_DIR belongs to another user; point QUEUEHALL_PG_DIR elsewhere"
# Serialise concurrent start/stop/url calls on one state directory (e.g. from two shells).
exec 9>"$STATE_DIR/.lock"
flock 9

case "$1" in
  start) start ;;
  stop) stop ;;
  url) is_running || die "not running (start it with scripts/pg.sh start)"; cat "$URL_FILE" ;;
  status) is_running ;;
  *) usage ;;
esac
