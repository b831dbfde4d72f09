#!/bin/sh
# Mutation testing: plants each bug of tests/mutation/NN-*.patch in a copy
# of the repository, rebuilds, runs the suite, and says whether a test
# noticed. See tests/mutation/README.md.
#
#   sh tests/mutation/run.sh [--all | --ci] [--head] [--keep] [--jobs N] [MUTANT...]
#
#   --all     every mutant (the default)
#   --ci      the mutants listed in tests/mutation/ci.list (CI's time budget)
#   --head    copy the committed tree (git archive HEAD) instead of the
#             working tree's tracked files
#   --keep    keep the scratch directory (build, logs) at the end
#   --jobs N  parallel build and test jobs (default 2, or $MUTATION_JOBS)
#   --exclude REGEX
#             also leave out the tests matching REGEX (ctest -E), e.g. a
#             test that fails without any mutant
#   MUTANT    a mutant's file name, its name without .patch, or its number
#             (e.g. 07); given mutants override --all/--ci
#
# A mutant is KILLED when a test fails (or a test program no longer
# builds); SURVIVED when every test passes; an ERROR when it does not apply
# or the library itself does not compile with it (the mutant must then be
# updated). Exit status: 0 only if every mutant was killed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(git -C "$here" rev-parse --show-toplevel) || { echo "run.sh: not in a git checkout" >&2; exit 2; }
jobs=${MUTATION_JOBS:-2}
set_name=all
from=worktree
keep=0
picked=""
exclude=""
while [ $# -gt 0 ]; do
  case "$1" in
  --all) set_name=all ;;
  --ci) set_name=ci ;;
  --head) from=head ;;
  --keep) keep=1 ;;
  --jobs) shift; jobs=$1 ;;
  --jobs=*) jobs=${1#--jobs=} ;;
  --exclude) shift; exclude="$1" ;;
  --exclude=*) exclude=${1#--exclude=} ;;
  -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  *) picked="$picked $1" ;;
  esac
  shift
done

# ------------------------------------------------------------------ mutants
resolve() { # name, number or file -> path of the patch
  for f in "$here"/"$1" "$here"/"$1".patch "$here"/"$1"-*.patch; do
    [ -f "$f" ] && { echo "$f"; return 0; }
  done
  [ -f "$1" ] && { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; return 0; }
  echo "run.sh: no mutant '$1' in tests/mutation" >&2
  return 1
}
mutants=""
if [ -n "$picked" ]; then
  for m in $picked; do p=$(resolve "$m") || exit 2; mutants="$mutants $p"; done
elif [ "$set_name" = ci ]; then
  for m in $(sed 's/#.*//' "$here/ci.list"); do p=$(resolve "$m") || exit 2; mutants="$mutants $p"; done
else
  mutants=$(ls "$here"/[0-9]*.patch)
fi
[ -n "$mutants" ] || { echo "run.sh: no mutants" >&2; exit 2; }

# ------------------------------------------------------------------ scratch copy
work=$(mktemp -d "${TMPDIR:-/tmp}/oplog-mutation.XXXXXX") || exit 2
cleanup() { [ "$keep" = 1 ] && echo "scratch directory kept: $work" || rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
src=$work/src
build=$work/build
logs=$work/logs
mkdir -p "$src" "$logs"
# git apply must treat the copy as a plain directory, not a part of a repository
GIT_CEILING_DIRECTORIES=$work
export GIT_CEILING_DIRECTORIES

start=$(date +%s)
if [ "$from" = head ]; then
  git -C "$root" archive HEAD | tar -x -C "$src" || exit 2
else
  # the tracked files as they are in the working tree (deleted ones skipped)
  (cd "$root" && git ls-files -z | xargs -0 sh -c 'for f; do [ -f "$f" ] && printf "%s\0" "$f"; done' _ |
    tar --null -T - -cf -) | tar -x -C "$src" || exit 2
fi
# untracked fixtures (test data not committed yet)
(cd "$root" && git ls-files -z --others --exclude-standard -- tests/fixtures | tar --null -T - -cf -) |
  tar -x -C "$src" || exit 2

# Fast test areas: no benchmark, no install test.
generator=""
command -v ninja >/dev/null 2>&1 && generator="-G Ninja"
echo "mutation: copy of $root ($from) in $work; configuring"
# shellcheck disable=SC2086
if ! cmake -S "$src" -B "$build" $generator -DCMAKE_BUILD_TYPE=Release -DOPLOG_WERROR=ON \
     -DOPLOG_TEST_AREAS="c;spec;cli;reliability;format;fleet" >"$logs/configure.log" 2>&1; then
  cat "$logs/configure.log" >&2
  echo "run.sh: configure failed (a tracked file naming an untracked one? try --head)" >&2
  exit 2
fi

# The suite, in phases from fast to slow; a mutant stops at the first
# phase that fails: the C tests (sync and converge included); the Lua specs, the command, the examples
# and the independent format reader; the reliability tests that check
# promises (power cut and its simulator, I/O faults, disk full,
# concurrency, the rows oracle).
# Left out: the benchmark and install tests, rel.oom (80 s, allocation
# failures) and the crash-only fuzz campaigns (rel.fuzz_entry, fuzz_keys,
# fuzz_lua, fuzz_lua_c: hostile input must not crash; they kill no mutant
# here that another test does not, and take a minute). Last, the fleet
# test against a PostgreSQL server of its own (where the build has libpq
# and the machine the server: else it is skipped, and a fleet mutant
# survives).
phases="c lua rel fleet"
phase_regex() {
  case "$1" in
  c) echo '^(core|crypto|chain|security|sync|converge)\.' ;;
  lua) echo '^(lua|cli|example|format)\.' ;;
  rel) echo '^rel\.(powercut|crashsim|iofault|diskfull|concurrency|fuzz_rows)$' ;;
  fleet) echo '^fleet\.' ;;
  esac
}
phase_exclude='^$'
[ -n "$exclude" ] && phase_exclude="$exclude"

lib_targets="oplog_static oplog_shared oplog_lua oplog_cli"
build_lib() { cmake --build "$build" -j "$jobs" --target $lib_targets >"$1" 2>&1; }
build_all() { cmake --build "$build" -j "$jobs" >>"$1" 2>&1; }

# ctest over a regex ($1), its output appended to the log ($2); sets
# `names` to the tests that failed (empty: all passed; "?" if ctest failed
# without naming one, e.g. a timeout). Extra ctest options follow.
run_ctest() {
  re=$1 lg=$2
  shift 2
  out=$work/ctest.out
  timeout 900 ctest --test-dir "$build" -j "$jobs" --output-on-failure -R "$re" -E "$phase_exclude" "$@" >"$out" 2>&1
  st=$?
  cat "$out" >>"$lg"
  names=""
  [ "$st" -eq 0 ] && return 0
  names=$(sed -n '/The following tests FAILED:/,$p' "$out" | sed -n 's/^[[:space:]]*[0-9]* - \([^ ]*\) .*/\1/p' | tr '\n' ' ')
  [ -n "$names" ] || names="?"
}

# Runs the phases, stopping at the first failure; sets `failed` to the
# failing tests (empty: all passed) and `flaky` to tests that failed once
# and passed when run again: a kill must be reproducible, so a test that
# fails is run once more and counts only if it fails again (else the phase
# is run again, at most three times). $1 log, $2 the phases (default all,
# in order)
run_tests() {
  failed=""
  flaky=""
  for ph in ${2:-$phases}; do
    for attempt in 1 2 3; do
      run_ctest "$(phase_regex "$ph")" "$1" --stop-on-failure
      [ -z "$names" ] && break
      if [ "$names" = "?" ]; then
        failed="(ctest failed or timed out in phase $ph)"
        return 0
      fi
      again=$names
      run_ctest "^($(echo $again | sed 's/\./\\./g; s/ /|/g'))\$" "$1"
      if [ -n "$names" ]; then
        failed=$names
        return 0
      fi
      flaky="$flaky $again"
      [ "$attempt" = 3 ] && failed="(a test failing once each time, not reproducibly, in phase $ph:$flaky)"
    done
    [ -n "$failed" ] && return 0
  done
}

secs() { echo $(( $(date +%s) - $1 )); }

echo "mutation: baseline build and test (no mutant)"
t0=$(date +%s)
if ! build_lib "$logs/baseline.log" || ! build_all "$logs/baseline.log"; then
  tail -40 "$logs/baseline.log" >&2
  echo "run.sh: the unmutated tree does not build" >&2
  exit 2
fi
run_tests "$logs/baseline.log"
if [ -n "$failed" ]; then
  echo "run.sh: the unmutated tree fails tests: $failed (log: $logs/baseline.log)" >&2
  echo "run.sh: fix them, or leave them out with --exclude (a mutant cannot be judged by a failing test)" >&2
  keep=1
  exit 2
fi
ntests=0
for ph in $phases; do
  n=$(ctest --test-dir "$build" -N -R "$(phase_regex "$ph")" -E "$phase_exclude" | sed -n 's/^Total Tests: //p')
  ntests=$((ntests + ${n:-0}))
done
echo "mutation: baseline ok, $ntests tests in $(secs "$t0") s${flaky:+ [flaky, passed when run again:$flaky]}"

# ------------------------------------------------------------------ mutants
killed=0; survived=0; errors=0
survivors=""; broken=""
for m in $mutants; do
  name=$(basename "$m" .patch)
  log=$logs/$name.log
  diff=$work/$name.diff
  sed '1{/^#/d;}' "$m" >"$diff"
  t0=$(date +%s)
  if ! git -C "$src" apply --check "$diff" >"$log" 2>&1; then
    printf '%-8s %-36s does not apply: %s\n' ERROR "$name" "$(head -1 "$log")"
    errors=$((errors + 1)); broken="$broken $name"
    continue
  fi
  git -C "$src" apply "$diff"
  if ! build_lib "$log"; then
    printf '%-8s %-36s the library does not compile with it (%s)\n' ERROR "$name" \
      "$(grep -m1 'error:' "$log" | sed 's|.*/src/||' | cut -c1-140)"
    errors=$((errors + 1)); broken="$broken $name"
  elif ! build_all "$log"; then
    printf '%-8s %-36s a test program no longer builds (%s s)\n' KILLED "$name" "$(secs "$t0")"
    killed=$((killed + 1))
  else
    # a mutant of the fleet part meets its own tests first: the others
    # cannot see it, and would cost minutes before them
    order=$phases
    grep -q '^+++ b/src/fleet' "$diff" && order="fleet $(echo "$phases" | sed 's/ *fleet//')"
    run_tests "$log" "$order"
    if [ -n "$failed" ]; then
      printf '%-8s %-36s by %s(%s s)%s\n' KILLED "$name" "$failed" "$(secs "$t0")" "${flaky:+ [flaky, passed when run again:$flaky]}"
      killed=$((killed + 1))
    else
      printf '%-8s %-36s all %s tests pass (%s s)%s\n' SURVIVED "$name" "$ntests" "$(secs "$t0")" "${flaky:+ [flaky, passed when run again:$flaky]}"
      survived=$((survived + 1)); survivors="$survivors $name"
    fi
  fi
  if ! git -C "$src" apply -R "$diff" >>"$log" 2>&1; then
    echo "run.sh: cannot revert $name; stopping" >&2
    keep=1
    exit 2
  fi
done

echo "mutants: killed=$killed survived=$survived${survivors:+ (survivors:$survivors)}"
[ "$errors" -gt 0 ] && echo "mutants that do not apply or compile: $errors ($broken )"
if [ "$keep" = 1 ]; then echo "mutation: $(secs "$start") s in all; logs in $logs"
else echo "mutation: $(secs "$start") s in all (--keep keeps the logs)"; fi
[ "$survived" -eq 0 ] && [ "$errors" -eq 0 ]
