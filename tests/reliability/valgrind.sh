#!/bin/sh
# valgrind.sh — runs the C test executables of a build under valgrind
# memcheck, with reduced sizes so that the whole run stays in minutes.
#
#   tests/reliability/valgrind.sh [BUILD_DIR]      (default: build-rel)
#
# Runs every ctest whose command is an ELF executable of the build (the core
# tests tests/c/... and the reliability tests rel_*), each under
#   valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite
# and fails if any of them reports an error, a definite leak or fails by
# itself. Use a normal build (not -DOPLOG_SANITIZE=ON: ASan and valgrind do
# not mix). Lua-driven tests are skipped (their interpreter is not ours).
# Extra valgrind options can be given in VALGRIND_OPTS; VALGRIND_TESTS is an
# extended regex selecting test names (default: the C tests of the core and
# of tests/reliability, '^(core|chain|crypto|rel)\.'; the benchmark is left out).
set -u
BUILD=${1:-build-rel}
cd "$BUILD" || exit 2
command -v valgrind >/dev/null || { echo "valgrind not installed" >&2; exit 2; }

# Reduced sizes for the reliability tests (see README.md for each knob).
export REL_KILLS=${REL_KILLS:-12} REL_CREATE_KILLS=${REL_CREATE_KILLS:-3}
export REL_MAX_DELAY_US=${REL_MAX_DELAY_US:-400000}
export REL_STRIDE=${REL_STRIDE:-40} REL_OOM_PERSISTENT_STRIDE=${REL_OOM_PERSISTENT_STRIDE:-0}
# crashsim: every 40th point, sync=full only (each cut forks two processes,
# both under valgrind; a cut child's open handles show as "possibly lost")
export REL_CRASH_SYNC=${REL_CRASH_SYNC:-full}
export REL_FULL_BELOW=${REL_FULL_BELOW:-0}
export REL_FULL_STEP=${REL_FULL_STEP:-16384}
export REL_WORKERS=${REL_WORKERS:-2} REL_TX=${REL_TX:-60}
export REL_FUZZ_RUNS=${REL_FUZZ_RUNS:-150}
mkdir -p tests/reliability/tmp
export TMPDIR=$PWD/tests/reliability/tmp

# "name<TAB>command..." for every test, from ctest's own listing.
list=$(ctest -N -V 2>/dev/null | awk '
  /^[0-9]+: Test command: / { sub(/^[0-9]+: Test command: /, ""); cmd = $0; next }
  /^ *Test +#[0-9]+: / { sub(/^ *Test +#[0-9]+: /, ""); print $0 "\t" cmd }')

tab=$(printf '\t')
echo "$list" | while IFS="$tab" read -r name cmd; do
  [ -n "$name" ] || continue
  echo "$name" | grep -Eq "${VALGRIND_TESTS:-^(core|chain|crypto|rel)\.}" || continue
  exe=$(eval "set -- $cmd"; echo "$1")
  # only our own C executables
  case $(head -c 4 "$exe" 2>/dev/null | od -An -c | tr -d ' ') in
    177ELF) ;; *) continue ;;
  esac
  case $exe in */lua5.4|*/lua|*/busted|*/oplog) continue ;; esac
  printf '%-40s ' "$name"
  log=tests/reliability/tmp/valgrind-$name.log
  # shellcheck disable=SC2086
  if eval "valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
       ${VALGRIND_OPTS:-} $cmd" > "$log" 2>&1; then
    echo ok
  else
    echo "FAILED (see $log)"
    echo 1 > tests/reliability/tmp/valgrind.failed
  fi
done
if [ -f tests/reliability/tmp/valgrind.failed ]; then
  rm -f tests/reliability/tmp/valgrind.failed
  exit 1
fi
exit 0
