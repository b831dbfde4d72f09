#!/bin/sh
# Every mutant still applies to the source as it is: a refactor that moves
# a mutant's lines must update its patch (run.sh would report the mutant as
# an error only when it runs, minutes later). Usage: patches_apply.sh SRC_DIR
set -u
src=${1:?usage: patches_apply.sh SRC_DIR}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/oplog-patches.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
# git apply checks against the files, whether or not SRC_DIR is a repository
GIT_CEILING_DIRECTORIES=$(dirname "$src")
export GIT_CEILING_DIRECTORIES
n=0; bad=0
for m in "$src"/tests/mutation/[0-9]*.patch; do
  n=$((n + 1))
  sed '1{/^#/d;}' "$m" >"$tmp/p.diff"
  if ! (cd "$src" && git apply --check "$tmp/p.diff") >"$tmp/err" 2>&1; then
    echo "does not apply: $(basename "$m"): $(head -1 "$tmp/err")"
    bad=$((bad + 1))
  fi
done
[ "$n" -gt 0 ] || { echo "no mutants found under $src/tests/mutation"; exit 1; }
echo "$n mutants, $bad that do not apply"
[ "$bad" -eq 0 ]
