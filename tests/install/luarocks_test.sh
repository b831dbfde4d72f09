#!/bin/sh
# `luarocks make` from a copy of the checkout into a temporary tree, for
# Lua 5.4: the rockspec builds only the Lua module (CMake, no Lua
# interpreter or busted at build time); then a small script uses the rock.
set -eu
src=$1
dir=$(mktemp -d /tmp/oplog-luarocks.XXXXXX)
trap 'rm -rf "$dir"' EXIT
fail() { echo "luarocks test: $*" >&2; exit 1; }
mkdir "$dir/src"
# what a source release holds (no build directories)
cp -R "$src/CMakeLists.txt" "$src/cmake" "$src/src" "$src/proto" "$src/schema" "$src/lua" \
  "$src"/oplog-*.rockspec "$dir/src/"
rockspec=$(cd "$dir/src" && ls oplog-*.rockspec)
(cd "$dir/src" && luarocks --lua-version 5.4 --tree "$dir/tree" make "$rockspec") >"$dir/log" 2>&1 \
  || { cat "$dir/log" >&2; fail "luarocks make"; }
! grep -q "^LUA_INTERP:" "$dir/src/build.luarocks/CMakeCache.txt" || fail "the rock's build looked for a Lua interpreter"
[ ! -e "$dir/src/build.luarocks/oplog" ] || fail "the rock built the oplog command"
luarocks --lua-version 5.4 --tree "$dir/tree" list --porcelain | grep -q "^oplog	" \
  || fail "the rock is not listed in the tree"
cmod=$(find "$dir/tree" -path '*/lib/lua/5.4/oplog/core.so')
lmod=$(find "$dir/tree" -path '*/share/lua/5.4/oplog.lua')
[ -n "$cmod" ] && [ -n "$lmod" ] || fail "core.so or oplog.lua missing from the tree"
# only the tree: no build directory, no system-wide oplog
cat > "$dir/use.lua" <<'LUA'
local oplog = require "oplog"
local dir = assert(arg[1])
local core = package.searchpath("oplog.core", package.cpath)
assert(core and core:sub(1, #dir) == dir, "oplog.core from " .. tostring(core))
oplog.keygen(dir .. "/k.key")
local db <close> = oplog.open(dir .. "/a.oplog", { key_file = dir .. "/k.key" })
db:define("reading", { columns = { { "id", "INTEGER PRIMARY KEY" }, { "celsius", "REAL" } } })
local id = db:transaction("reading", function(tx) tx:create("reading", { celsius = 19.5 }) end,
  { metadata = { device = "probe-1" } })
assert(id == 1)
assert(db:entry(1).ops[1].row.celsius == 19.5)
local r = db:verify({ replay = true })
assert(r.ok and r.entries == 1, "verify")
print("rock ok " .. oplog._VERSION)
LUA
env -u LUA_PATH_5_4 -u LUA_CPATH_5_4 \
  LUA_PATH="$dir/tree/share/lua/5.4/?.lua;$dir/tree/share/lua/5.4/?/init.lua" \
  LUA_CPATH="$dir/tree/lib/lua/5.4/?.so" \
  lua5.4 "$dir/use.lua" "$dir" | grep -q "^rock ok oplog " || fail "using the rock"
echo "luarocks test: ok"
