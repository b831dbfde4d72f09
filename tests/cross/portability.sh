#!/bin/sh
# Logs across architectures, both ways (ctest cross.portability in a cross
# build; tests/cross/README.md).
#   sh portability.sh ARCH EMULATOR TARGET_OPLOG NATIVE_OPLOG WORKDIR
# 1. The target's static oplog, copied alone to an empty directory, runs
#    --version, keygen, init, run, verify (under EMULATOR, e.g.
#    qemu-arm-static, with no LUA_PATH/LUA_CPATH).
# 2. It writes two logs there (a key file, a passphrase) with
#    tests/cross/portable.lua; the native oplog verifies them (--replay),
#    checks every value, replays them into a replica whose rows must equal
#    the live tables, and dumps them as the target does, byte for byte.
# 3. The reverse: the native oplog writes both kinds, the target verifies,
#    checks every value and dumps them the same.
set -eu
arch=$1 emu=$2 target=$3 native=$4 work=$5
src=$(cd "$(dirname "$0")/../.." && pwd)
sqlite=$(command -v sqlite3)
rm -rf "$work"
mkdir -p "$work/alone" "$work/native"
A=$work/alone
N=$work/native
cp "$target" "$A/oplog"
cp "$src/tests/cross/portable.lua" "$A/"
cp "$src/tests/cross/portable.lua" "$N/"
export OPLOG_PASS="correct horse battery staple"

# T: the target's binary, alone, from its directory; H: the native one.
# shellcheck disable=SC2086
T() { (cd "$A" && env -u LUA_PATH -u LUA_CPATH -u OPLOG_KEY_FILE $emu ./oplog "$@"); }
H() { (cd "$N" && env -u OPLOG_KEY_FILE "$native" "$@"); }
step() { echo "-- $*"; }
fail() { echo "portability ($arch): $*" >&2; exit 1; }

step "the static binary alone: $(file -b "$A/oplog" | cut -d, -f1-2)"
file -b "$A/oplog" | grep -q "statically linked" || fail "$target is not statically linked"
T --version
T keygen dev.key
T init key.oplog --key-file dev.key
T init pass.oplog --passphrase-env OPLOG_PASS --kdf-mem 8
T run portable.lua write key.oplog key_file=dev.key "$arch"
T run portable.lua write pass.oplog passphrase_env=OPLOG_PASS "$arch"
T verify key.oplog --key-file dev.key --replay
T verify pass.oplog --passphrase-env OPLOG_PASS --replay

step "what the static build leaves out and what it keeps (tests/cross/static.lua)"
cp "$src/tests/cross/static.lua" "$A/"
cp "$src/tests/cross/static.lua" "$N/"
relro=$(readelf -lW "$A/oplog" | awk '$1 == "GNU_RELRO" { print $3, $6 }')
[ -n "$relro" ] || fail "$target has no GNU_RELRO segment"
T init static.oplog --key-file dev.key
# shellcheck disable=SC2086
TZ='<+0530>-5:30' T run static.lua checks static.oplog dev.key $relro
# SQLite's CURRENT_TIMESTAMP, datetime() under that TZ, json_valid()
stamp=$("$sqlite" "$A/static.oplog" "SELECT at GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]',
  round((julianday(here) - julianday(at)) * 1440), json_extract(doc, '\$.a[1]') FROM stamp")
[ "$stamp" = "1|330.0|2" ] || fail "SQL date, time or JSON functions: got '$stamp', want '1|330.0|2'"
T verify static.oplog --key-file dev.key --replay
# Local times: glibc's tzset reading POSIX TZ rules (with static_libc.c's
# sscanf; valid, odd and broken ones) and time zone files (whose last line
# is such a rule), against the native command's.
zones() {
  printf '%s\n' "CET-1CEST,M3.5.0,M10.5.0/3" "EST5EDT,M3.2.0/2:00:00,M11.1.0/2:00:00" \
    "<+0530>-5:30" "NZST-12NZDT,M9.5.0,M4.1.0/3" "AAA+3:15:30BBB+2:15:30,J60/1:30,J300/-1" \
    "XXX-14" "<-03>3<-02>,M3.5.0/-2,M10.5.0/-1" "ABC+25:99:99" "ABC-1DEF,M13.1.1,M0.0.0" \
    "M" "UTC0" "" ":Europe/Berlin" "America/New_York" "Australia/Lord_Howe" "Asia/Kolkata"
}
local_times() { # T or H
  zones | while IFS= read -r tz; do
    echo "TZ=$tz"
    TZ=$tz "$1" run static.lua times </dev/null || echo "FAILED: TZ=$tz"
  done
}
local_times T >"$work/times.target"
local_times H >"$work/times.native"
! grep FAILED "$work/times.target" "$work/times.native" || fail "static.lua times failed"
cmp "$work/times.target" "$work/times.native" ||
  fail "local times differ from the native command's (diff $work/times.target $work/times.native)"

# rows of the live tables (or of a replica), every value quoted exactly
rows() { # db
  for t in sample item; do
    "$sqlite" -bail "$1" "SELECT '$t', * FROM (SELECT * FROM $t ORDER BY 1, 2)" -cmd ".mode quote"
  done
}
dump_cmp() { # db (absolute), key option...
  db=$1
  name=$(basename "$1")
  shift
  T dump "$db" --json "$@" >"$work/$name.target.json"
  H dump "$db" --json "$@" >"$work/$name.native.json"
  [ -s "$work/$name.native.json" ] || fail "$name: empty dump"
  cmp "$work/$name.target.json" "$work/$name.native.json" || fail "$name: dumps differ"
}

step "written on $arch, read on $(uname -m)"
for f in key pass; do
  if [ $f = key ]; then k="--key-file $A/dev.key" kp="key_file=$A/dev.key"; else
    k="--passphrase-env OPLOG_PASS" kp="passphrase_env=OPLOG_PASS"; fi
  # shellcheck disable=SC2086
  H verify "$A/$f.oplog" $k --replay
  H run portable.lua check "$A/$f.oplog" "$kp"
  # shellcheck disable=SC2086
  H replay "$A/$f.oplog" --into "$N/$f-replica.db" $k
  rows "$A/$f.oplog" >"$work/$f.live"
  rows "$N/$f-replica.db" >"$work/$f.replica"
  [ -s "$work/$f.live" ] || fail "$f: no rows"
  cmp "$work/$f.live" "$work/$f.replica" || fail "$f: the native replay differs from the live tables"
done
dump_cmp "$A/key.oplog" --key-file "$A/dev.key"
dump_cmp "$A/pass.oplog" --passphrase-env OPLOG_PASS

step "written on $(uname -m), read on $arch"
H keygen host.key
H init hkey.oplog --key-file host.key
H init hpass.oplog --passphrase-env OPLOG_PASS --kdf-mem 8
H run portable.lua write hkey.oplog key_file=host.key "$(uname -m)"
H run portable.lua write hpass.oplog passphrase_env=OPLOG_PASS "$(uname -m)"
T verify "$N/hkey.oplog" --key-file "$N/host.key" --replay
T verify "$N/hpass.oplog" --passphrase-env OPLOG_PASS --replay
T run portable.lua check "$N/hkey.oplog" "key_file=$N/host.key"
T run portable.lua check "$N/hpass.oplog" passphrase_env=OPLOG_PASS
dump_cmp "$N/hkey.oplog" --key-file "$N/host.key"
dump_cmp "$N/hpass.oplog" --passphrase-env OPLOG_PASS
echo "portability ($arch): ok, logs cross both ways"
