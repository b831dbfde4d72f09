#!/bin/sh
# Installs the build into a temporary prefix, then uses what was installed
# the way a user would: the exported symbols of liboplog.so and the Lua
# module, the header and pkg-config file to build a C program (static and
# shared), the CMake package (find_package(oplog CONFIG)) for another, the
# Lua module from the prefix's standard Lua dirs, and the oplog binary.
set -eu
build=$1
here=$(cd "$(dirname "$0")" && pwd)
prefix=$(mktemp -d /tmp/oplog-install.XXXXXX)
trap 'rm -rf "$prefix"' EXIT
fail() { echo "install test: $*" >&2; exit 1; }
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(find "$prefix" -name liboplog.a -printf '%h\n' | head -n 1)
for f in "$prefix/include/oplog.h" "$prefix/include/oplog_version.h" "$libdir/liboplog.so" \
  "$libdir/pkgconfig/oplog.pc" "$libdir/cmake/oplog/oplogConfig.cmake" \
  "$libdir/cmake/oplog/oplogConfigVersion.cmake" "$libdir/cmake/oplog/oplogTargets.cmake" \
  "$prefix/bin/oplog" "$prefix/share/lua/5.4/oplog.lua" "$prefix/share/lua/5.4/oplog/testing.lua" \
  "$libdir/lua/5.4/oplog/core.so"; do
  [ -e "$f" ] || fail "missing after install: $f"
done

# The ABI: liboplog.so exports exactly the functions oplog.h declares
# OPLOG_API, and the Lua module only its entry point.
sed -n 's/^OPLOG_API [^(]*[ *]\(oplog_[a-z_]*\)(.*/\1/p' "$prefix/include/oplog.h" | sort >"$prefix/declared"
nm -D --defined-only "$libdir/liboplog.so" | awk '{ print $3 }' | sort >"$prefix/exported"
[ -s "$prefix/declared" ] || fail "no OPLOG_API declarations found in oplog.h"
if ! cmp -s "$prefix/declared" "$prefix/exported"; then
  echo "liboplog.so exports differ from oplog.h's OPLOG_API functions (< header, > library):" >&2
  diff "$prefix/declared" "$prefix/exported" >&2 || true
  exit 1
fi
grep -v '^oplog_' "$prefix/exported" && fail "liboplog.so exports symbols outside oplog_*"
# The static archive cannot hide its internals; they are named opl_* so a
# static link never collides with another library (crypto_* is libsodium's).
nm -g --defined-only "$libdir/liboplog.a" | awk 'NF == 3 { print $3 }' | grep -v '^oplog_\|^opl_' \
  && fail "liboplog.a defines global symbols outside oplog_* and opl_*"
core=$(nm -D --defined-only "$libdir/lua/5.4/oplog/core.so" | awk '{ print $3 }')
[ "$core" = luaopen_oplog_core ] || fail "core.so exports more than luaopen_oplog_core: $core"

cat > "$prefix/demo.c" <<'C'
#include <oplog.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
  oplog_open_opts o = {0};
  o.key.no_encryption = 1;
  oplog_db *db;
  int rc = oplog_open(argv[1], &o, &db);
  printf("%s %s %s\n", oplog_code_name(rc), OPLOG_VERSION, oplog_libversion());
  oplog_close(db);
  if (oplog_libversion_number() != OPLOG_VERSION_NUMBER) return 1;
  return rc;
}
C
version=$(sed -n 's/^#define OPLOG_VERSION "\(.*\)"$/\1/p' "$prefix/include/oplog_version.h")
# 0.x: the soname carries major.minor (a new minor version may change the ABI)
soname=$(readelf -d "$libdir/liboplog.so" | sed -n 's/.*Library soname: \[\(.*\)\]$/\1/p')
[ "$soname" = "liboplog.so.${version%.*}" ] || fail "soname $soname, not liboplog.so.${version%.*}"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
[ "$(pkg-config --modversion oplog)" = "$version" ] || fail "oplog.pc version is not $version"
cc -o "$prefix/demo" "$prefix/demo.c" $(pkg-config --cflags --libs oplog)
LD_LIBRARY_PATH="$libdir" "$prefix/demo" "$prefix/a.db" | grep -qx "ok $version $version" \
  || fail "shared demo (pkg-config)"
cc -o "$prefix/demo-static" "$prefix/demo.c" $(pkg-config --cflags oplog) "$libdir/liboplog.a" \
  $(pkg-config --libs --static sqlite3 libsodium libprotobuf-c)
"$prefix/demo-static" "$prefix/b.db" | grep -qx "ok $version $version" || fail "static demo (pkg-config)"
# liboplog.a's own needs beyond its Requires.private: libm (floor, which
# armhf's compiler does not inline) when the build found it. Read from the
# file: pkg-config --static would also list sqlite3's -lm.
if grep -qx 'OPLOG_HAVE_LIBM:INTERNAL=1' "$build/CMakeCache.txt"; then
  grep -q '^Libs.private:.* -lm\b' "$libdir/pkgconfig/oplog.pc" || fail "oplog.pc: no -lm in Libs.private"
fi

# docs/c.md's complete program, as printed there
awk '/^## A complete program/ { f = 1 } f && /^```c/ { p = 1; next } p && /^```/ { exit } p' \
  "$here/../../docs/c.md" >"$prefix/doc_example.c"
[ -s "$prefix/doc_example.c" ] || fail "no program found in docs/c.md"
cc -std=c11 -Wall -Wextra -Werror -o "$prefix/doc_example" "$prefix/doc_example.c" \
  $(pkg-config --cflags --libs oplog) || fail "docs/c.md's program does not build"
(cd "$prefix" && "$prefix/bin/oplog" keygen app.key >/dev/null &&
  LD_LIBRARY_PATH="$libdir" ./doc_example | grep -qx "entry 1, oplog $version") || fail "docs/c.md's program"

# find_package(oplog CONFIG) against the prefix: oplog::oplog and
# oplog::oplog_static (tests/install/consumer).
cmake -S "$here/consumer" -B "$prefix/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_BUILD_TYPE=Release >"$prefix/consumer.log" 2>&1 || { cat "$prefix/consumer.log" >&2; fail "consumer configure"; }
cmake --build "$prefix/consumer" >>"$prefix/consumer.log" 2>&1 || { cat "$prefix/consumer.log" >&2; fail "consumer build"; }
# the build tree's RPATH points at the prefix: no LD_LIBRARY_PATH needed
"$prefix/consumer/demo_shared" "$prefix/d.db" | grep -qx "ok $version" || fail "find_package: oplog::oplog"
"$prefix/consumer/demo_static" "$prefix/e.db" | grep -qx "ok $version" || fail "find_package: oplog::oplog_static"
# versions the package is not compatible with are refused: the next minor
# version, and the previous one (0.3.0 changed the ABI of 0.2)
for want in 0.2 0.4; do
  mkdir -p "$prefix/other_$want"
  cat > "$prefix/other_$want/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.18)
project(other_version LANGUAGES C)
find_package(oplog $want CONFIG QUIET)
if(oplog_FOUND)
  message(FATAL_ERROR "oplog \${oplog_VERSION} accepted for $want")
endif()
CM
  cmake -S "$prefix/other_$want" -B "$prefix/other_$want/b" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null 2>&1 \
    || fail "find_package(oplog $want) found $version"
done

# the stock interpreter with the prefix's standard Lua paths
DB="$prefix/c.db" LUA_PATH="$prefix/share/lua/5.4/?.lua;$prefix/share/lua/5.4/?/init.lua" \
LUA_CPATH="$libdir/lua/5.4/?.so" \
  lua5.4 -e 'local o = require "oplog"; local db = o.open(os.getenv("DB"), {encryption = false}); assert(db:head().id == 0); assert(o._VERSION == "oplog " .. o.VERSION); print("lua ok " .. o.VERSION)' \
  | grep -qx "lua ok $version" || fail "Lua module"
"$prefix/bin/oplog" --version | grep -qx "oplog $version" || fail "oplog --version"
echo "install test: ok ($prefix)"
