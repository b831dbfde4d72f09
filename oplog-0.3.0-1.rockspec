-- LuaRocks: `luarocks --lua-version 5.4 make` from a checkout builds the Lua
-- module oplog (oplog.core in C, and lua/) with CMake and installs it. Only
-- the module is built (-DOPLOG_LIBRARY=OFF -DOPLOG_CLI=OFF -DOPLOG_TESTS=OFF):
-- no Lua interpreter and no busted are needed to build. protoc-c generates
-- the protobuf-c code at build time (Debian: protobuf-c-compiler).
rockspec_format = "3.0"
package = "oplog"
version = "0.3.0-1"
source = {
   -- where a release of this checkout is published; `luarocks make` uses the checkout itself
   url = "git+https://example.invalid/oplog.git",
   tag = "v0.3.0",
}
description = {
   summary = "Embedded, encrypted, hash-chained operation log in one SQLite file",
   detailed = [[
One SQLite file holds an application's tables and an append-only,
encrypted, tamper-evident log of every change made to them: transactions
with optimistic-locking tickets, metadata, replay into fresh tables or
another file, and verification of the BLAKE2b hash chain without the key.
]],
   labels = { "database", "sqlite", "log", "audit", "encryption" },
}
dependencies = {
   "lua >= 5.4, < 5.5",
}
external_dependencies = {
   SQLITE3 = { header = "sqlite3.h", library = "sqlite3" },
   SODIUM = { header = "sodium.h", library = "sodium" },
   PROTOBUFC = { header = "protobuf-c/protobuf-c.h", library = "protobuf-c" },
   PROTOC_C = { program = "protoc-c" },
}
build = {
   type = "cmake",
   variables = {
      CMAKE_BUILD_TYPE = "Release",
      CMAKE_INSTALL_PREFIX = "$(PREFIX)",
      OPLOG_LIBRARY = "OFF",
      OPLOG_CLI = "OFF",
      OPLOG_TESTS = "OFF",
      OPLOG_INSTALL = "ON",
      LUA_INCLUDE_DIR = "$(LUA_INCDIR)",
      LUA_LMOD = "$(LUADIR)",
      LUA_CMOD = "$(LIBDIR)",
      SQLITE3_INCDIR = "$(SQLITE3_INCDIR)",
      SQLITE3_LIBDIR = "$(SQLITE3_LIBDIR)",
      SODIUM_INCDIR = "$(SODIUM_INCDIR)",
      SODIUM_LIBDIR = "$(SODIUM_LIBDIR)",
      PROTOBUFC_INCDIR = "$(PROTOBUFC_INCDIR)",
      PROTOBUFC_LIBDIR = "$(PROTOBUFC_LIBDIR)",
      PROTOC_C = "$(PROTOC_C_BINDIR)/protoc-c",
   },
}
