#!/bin/sh
# Peak memory (VmHWM, from /usr/bin/time -v) of the `oplog` command writing
# a log of N entries, then `verify --replay` and `replay --into`, for each
# N given: the README's "Footprint" numbers. Not part of the suite (a
# 100,000-entry log takes a few minutes).
#   sh tests/cross/footprint.sh [OPLOG] [N...]     default: build/oplog 10000 100000
set -eu
cd "$(dirname "$0")/../.."
bin=$(realpath "${1:-build/oplog}")
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- 10000 100000
work=$(mktemp -d /tmp/oplog-footprint.XXXXXX)
trap 'rm -rf "$work"' EXIT
cat >"$work/write.lua" <<'EOF'
-- N entries, one sensor reading each with metadata, 1000 entries a commit
-- (tx:entry), as a device logging in bursts would
local oplog = require "oplog"
local path, n = ...
n = math.tointeger(tonumber(n))
local db <close> = oplog.open(path, { key_file = "dev.key" })
db:define("reading", { aggregate = "readings", columns = { { "seq", "INTEGER PRIMARY KEY" },
  { "sensor", "TEXT NOT NULL" }, { "celsius", "REAL" }, { "raw", "BLOB" } } })
local i = 0
while i < n do
  db:transaction("readings", function(tx)
    for _ = 1, math.min(1000, n - i) do
      i = i + 1
      tx:create("reading", { seq = i, sensor = "probe-" .. (i % 16), celsius = 20 + (i % 100) / 8,
        raw = string.pack("<i8d", i, i / 3) })
      tx:entry({ device = "edge-" .. (i % 4), batch = tostring(i // 1000) })
    end
  end)
end
EOF
hwm() { # label, command...
  label=$1
  shift
  /usr/bin/time -v "$@" >"$work/out" 2>"$work/time" || { cat "$work/out" "$work/time" >&2; exit 1; }
  kb=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$work/time")
  secs=$(sed -n 's/^[[:space:]]*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$work/time")
  printf '%-8s %-28s peak RSS %6.1f MiB  wall %s\n' "$n" "$label" "$(awk -v k="$kb" 'BEGIN { print k / 1024 }')" "$secs"
}
cd "$work"
"$bin" keygen dev.key >/dev/null
for n in "$@"; do
  rm -f log.oplog* replica.db
  "$bin" init log.oplog --key-file dev.key >/dev/null
  hwm "write ($n entries)" "$bin" run write.lua log.oplog "$n"
  hwm "verify --replay" "$bin" verify log.oplog --key-file dev.key --replay
  hwm "verify" "$bin" verify log.oplog --key-file dev.key
  hwm "replay --into" "$bin" replay log.oplog --into replica.db --key-file dev.key
  printf '%-8s file %s MiB\n' "$n" "$(($(stat -c %s log.oplog) / 1048576))"
done
