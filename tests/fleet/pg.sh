#!/bin/sh
# Runs COMMAND... with a PostgreSQL server of its own: initdb into a fresh
# temporary directory, pg_ctl start on a private Unix socket (no TCP), and
# the server stopped at the end, also when COMMAND fails or is killed by a
# signal. Debian's `postgresql` package provides the binaries
# (/usr/lib/postgresql/*/bin). As root the server runs as the unprivileged
# user `postgres` (the package's) or `nobody`.
#
# COMMAND sees:
#   OPLOG_PG        a libpq connection string for the server's `postgres` database
#   OPLOG_PG_DIR    the temporary directory (data/, sock/, log)
#   OPLOG_PG_CTL    a command that runs pg_ctl on it, e.g. "$OPLOG_PG_CTL restart -m immediate"
#                   (run psql and pg_ctl without LD_PRELOAD, as this does)
#   PATH            with the server's bin directory (psql) first
# Exit status: COMMAND's; 77 (skipped) when no PostgreSQL binaries are found.
set -eu
# A sanitizer runtime preloaded for the test's Lua (ASan builds) is not for
# the server's programs, which hang under it: COMMAND gets it back.
preload=${LD_PRELOAD-}
unset LD_PRELOAD
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ] || [ ! -x "$bindir/pg_ctl" ]; then
  echo "pg.sh: no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (Debian: postgresql)" >&2
  exit 77
fi
dir=$(mktemp -d /tmp/oplog-pg.XXXXXX)
chmod 755 "$dir"
mkdir "$dir/data" "$dir/sock"
as=""
if [ "$(id -u)" -eq 0 ]; then
  user=nobody
  id postgres >/dev/null 2>&1 && user=postgres
  chown "$user" "$dir/data" "$dir/sock"
  touch "$dir/log"
  chown "$user" "$dir/log"
  as="runuser -u $user --"
fi
ctl="$as $bindir/pg_ctl -D $dir/data -l $dir/log -w -t 60"
stop() {
  st=$?
  $ctl stop -m immediate >/dev/null 2>&1 || true
  if [ "$st" -ne 0 ] && [ -s "$dir/log" ]; then
    echo "pg.sh: the server's log (last lines):" >&2
    tail -n 20 "$dir/log" >&2 || true
  fi
  rm -rf "$dir"
  exit "$st"
}
trap stop EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
$as "$bindir/initdb" -D "$dir/data" -A trust -U oplog -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 ||
  { cat "$dir/initdb.log" >&2; exit 2; }
# fsync off: a test server, thrown away at the end (a restart keeps what
# was committed: the operating system still holds it)
$ctl start -o "-c listen_addresses='' -k $dir/sock -c fsync=off -c max_connections=40" >/dev/null
OPLOG_PG="host=$dir/sock user=oplog dbname=postgres"
OPLOG_PG_DIR=$dir
OPLOG_PG_CTL="env -u LD_PRELOAD $ctl"
PATH="$bindir:$PATH"
export OPLOG_PG OPLOG_PG_DIR OPLOG_PG_CTL PATH
if [ -n "$preload" ]; then
  LD_PRELOAD=$preload "$@"
else
  "$@"
fi
