#!/bin/sh
# run_long.sh — the long variants of the reliability tests (see README.md).
#
#   tests/reliability/run_long.sh [BUILD_DIR]        (default: build-rel)
#
# Same programs as the suite, with every fault point (stride 1), more kills,
# more concurrent work and longer deterministic fuzz campaigns. Sizes can be
# overridden through the same REL_* variables. Takes tens of minutes.
set -u
BUILD=${1:-build-rel}
cd "$BUILD" || exit 2
B=tests/reliability
mkdir -p $B/tmp
export TMPDIR=$PWD/$B/tmp
export LUA_PATH="$PWD/lua/?.lua;$PWD/lua/?/init.lua;;"
export LUA_CPATH="$PWD/lua/?.so;;"
SRC=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' CMakeCache.txt)

status=0
run() {
  echo "== $*"
  if ! env "$@"; then status=1; echo "FAILED: $*"; fi
}
run REL_KILLS=${REL_KILLS:-1000} REL_CREATE_KILLS=${REL_CREATE_KILLS:-100} $B/rel_powercut
run REL_STRIDE=1 $B/rel_crashsim
run REL_STRIDE=1 $B/rel_iofault
run REL_FULL_STEP=${REL_FULL_STEP:-256} $B/rel_diskfull
run REL_STRIDE=1 REL_OOM_PERSISTENT_STRIDE=1 REL_OOM_MIGRATE_FACTOR=1 $B/rel_oom
run REL_WORKERS=${REL_WORKERS:-8} REL_TX=${REL_TX:-2000} $B/rel_concurrency
for t in entry rows keys lua; do
  run REL_FUZZ_RUNS=${REL_FUZZ_RUNS:-200000} $B/rel_fuzz_$t
done
run REL_FUZZ_RUNS=${REL_FUZZ_RUNS:-200000} lua5.4 "$SRC/tests/reliability/lua_api_fuzz.lua"
exit $status
