#!/bin/sh
# oplog as a CMake subproject (add_subdirectory) of another project
# (tests/install/consumer): only the C library is built, oplog's tests are
# not registered, and it installs nothing unless asked (OPLOG_INSTALL).
set -eu
src=$1
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d /tmp/oplog-subproject.XXXXXX)
trap 'rm -rf "$dir"' EXIT
fail() { echo "subproject test: $*" >&2; exit 1; }
cmake -S "$here/consumer" -B "$dir/b" -DOPLOG_SUBPROJECT="$src" -DCMAKE_BUILD_TYPE=Release \
  >"$dir/log" 2>&1 || { cat "$dir/log" >&2; fail "configure"; }
cmake --build "$dir/b" -j 2 >>"$dir/log" 2>&1 || { cat "$dir/log" >&2; fail "build"; }
"$dir/b/demo_shared" "$dir/a.db" | grep -q "^ok " || fail "oplog::oplog"
"$dir/b/demo_static" "$dir/b.db" | grep -q "^ok " || fail "oplog::oplog_static"
grep -q "^OPLOG_TESTS:BOOL=OFF" "$dir/b/CMakeCache.txt" || fail "OPLOG_TESTS is not OFF in a subproject"
grep -q "^OPLOG_WERROR:BOOL=OFF" "$dir/b/CMakeCache.txt" || fail "OPLOG_WERROR is not OFF in a subproject"
[ ! -e "$dir/b/oplog/CTestTestfile.cmake" ] || fail "oplog registered tests in the parent project"
if grep -q "liboplog" "$dir/b/oplog/cmake_install.cmake" 2>/dev/null; then
  fail "oplog installs its files from a subproject by default"
fi
echo "subproject test: ok"
