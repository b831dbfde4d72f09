-- oplog: an embedded, single-file, encrypted, hash-chained operation log.
--
--   local oplog = require "oplog"
--   local db <close> = oplog.open("app.db", { key_file = "app.key" })
--
-- The whole API (docs/lua.md) is implemented in C by the module
-- oplog.core (src/lua_oplog.c); this file is the name users require, so
-- that pure-Lua additions have a place to live without touching the C side.
local core = require "oplog.core"

-- oplog.VERSION is "0.3.0" (the library's version); oplog._VERSION follows
-- the Lua convention of a name and a version ("oplog 0.3.0").
core._VERSION = "oplog " .. core.VERSION

return core
