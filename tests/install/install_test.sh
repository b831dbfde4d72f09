#!/bin/sh
# Installs the build into a temporary prefix, then uses what was installed
# the way a user would: the header and pkg-config file to build a C program
# (static and shared), the Lua module from the prefix's standard Lua dirs,
# and the oplog binary.
set -eu
build=$1
prefix=$(mktemp -d /tmp/oplog-install.XXXXXX)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(find "$prefix" -name liboplog.a -printf '%h\n' | head -n 1)
for f in "$prefix/include/oplog.h" "$libdir/liboplog.so" "$libdir/pkgconfig/oplog.pc" \
  "$prefix/bin/oplog" "$prefix/share/lua/5.4/oplog.lua" "$prefix/share/lua/5.4/oplog/testing.lua" \
  "$libdir/lua/5.4/oplog/core.so"; do
  [ -e "$f" ] || { echo "missing after install: $f" >&2; exit 1; }
done
cat > "$prefix/demo.c" <<'C'
#include <oplog.h>
#include <stdio.h>
int main(int argc, char **argv) {
  oplog_open_opts o = {0};
  o.key.no_encryption = 1;
  oplog_db *db;
  int rc = oplog_open(argv[1], &o, &db);
  printf("%s %s\n", oplog_code_name(rc), OPLOG_VERSION);
  oplog_close(db);
  return rc;
}
C
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc -o "$prefix/demo" "$prefix/demo.c" $(pkg-config --cflags --libs oplog)
LD_LIBRARY_PATH="$libdir" "$prefix/demo" "$prefix/a.db" | grep -q "^ok "
cc -o "$prefix/demo-static" "$prefix/demo.c" $(pkg-config --cflags oplog) "$libdir/liboplog.a" \
  $(pkg-config --libs --static sqlite3 libsodium libprotobuf-c)
"$prefix/demo-static" "$prefix/b.db" | grep -q "^ok "
# the stock interpreter with the prefix's standard Lua paths
DB="$prefix/c.db" LUA_PATH="$prefix/share/lua/5.4/?.lua;$prefix/share/lua/5.4/?/init.lua" \
LUA_CPATH="$libdir/lua/5.4/?.so" \
  lua5.4 -e 'local o = require "oplog"; local db = o.open(os.getenv("DB"), {encryption = false}); assert(db:head().id == 0); print("lua ok " .. o.VERSION)' \
  | grep -q "^lua ok "
"$prefix/bin/oplog" --version | grep -q "^oplog "
echo "install test: ok ($prefix)"
