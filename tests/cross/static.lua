-- What the static command leaves out, and what it keeps (README, "Edge
-- targets"; src/static_libc.c, src/static_sqlite.c), run by
-- tests/cross/portability.sh with the target's static oplog:
--   oplog run static.lua checks DB KEY_FILE RELRO_ADDR RELRO_SIZE
--     RELRO read-only, the refusal of shared libraries, SQL date, time
--     and JSON functions in a type's declarations (DB gets table stamp)
--   oplog run static.lua times
--     local times under $TZ (glibc's tzset, which reads a POSIX TZ rule
--     with src/static_libc.c's sscanf): the output must equal the native
--     command's
local oplog = require "oplog"
local mode = ...

local function check(cond, what, ...)
  if not cond then error(string.format("static.lua: " .. what, ...), 0) end
end

if mode == "times" then
  -- within 32 bits (armhf's time_t), DST changes included
  local t = {
    -1000000000, -1, 0, 1e9, 1111111111, 1300000000, 1700000000, 1711846799, 1711846800,
    1729990799, 1729990800, 1743296400, 2000000000, 2130000000, 2140000000, 2147483647,
  }
  for _, s in ipairs(t) do
    io.write(os.date("%Y-%m-%d %H:%M:%S %Z %z", s), "\n")
  end
  -- mktime: a time that does not exist (a spring gap) and one that exists twice
  for _, d in ipairs({ { 2024, 3, 31, 2, 30 }, { 2024, 10, 27, 2, 30 }, { 2024, 3, 10, 2, 30 },
    { 2037, 7, 1, 12, 0 } }) do
    io.write(tostring(os.time({ year = d[1], month = d[2], day = d[3], hour = d[4], min = d[5] })), "\n")
  end
  return
end

check(mode == "checks", "usage: static.lua checks DB KEY_FILE RELRO_ADDR RELRO_SIZE | times")
local _, path, key_file, relro_addr, relro_size = ...

-- Every standard library is there.
check(table.concat({ "a", "b" }, ",") == "a,b" and string.format("%5.2f|%q", 0.5, 1 / 4) == " 0.50|0x1p-2"
  and utf8.char(228) == "\xc3\xa4" and coroutine.wrap(function() coroutine.yield(7) end)() == 7
  and math.abs(math.asin(1) * 2 - math.pi) < 1e-15 and debug.getinfo(1, "l").currentline > 0
  and os.time() > 0 and io.type(io.stdout) == "file" and type(package.searchers) == "table",
  "a standard library")

-- RELRO: every mapping of the segment (its pages, 4 KiB at least) is
-- read-only once the program runs.
local first = math.tointeger(tonumber(relro_addr)) // 4096 * 4096
local last = (math.tointeger(tonumber(relro_addr)) + math.tointeger(tonumber(relro_size))) // 4096 * 4096
local covered = 0
for line in io.lines("/proc/self/maps") do
  local lo, hi, perms = line:match("^(%x+)%-(%x+) (%S+)")
  lo, hi = tonumber(lo, 16), tonumber(hi, 16)
  if lo and lo < last and hi > first then
    check(not perms:find("w"), "RELRO %x-%x is writable: %s", first, last, line)
    covered = covered + (math.min(hi, last) - math.max(lo, first))
  end
end
check(covered == last - first, "RELRO %x-%x: mapped %d bytes of it", first, last, covered)

-- Shared libraries: a clear refusal, from package.loadlib and require.
local refusal = "shared libraries cannot be loaded by the static oplog command"
local f, err, where = package.loadlib("./cmod.so", "luaopen_cmod")
check(f == nil and where == "open" and err:find(refusal, 1, true), "loadlib: %s", tostring(err))
local out = assert(io.open("cmod.so", "wb"))
out:write("\127ELF")
out:close()
package.cpath = "./?.so"
local ok, msg = pcall(require, "cmod")
check(not ok and msg:find(refusal, 1, true), "require of a C module: %s", tostring(msg))
os.remove("cmod.so")

-- SQL date, time and JSON functions in a type's declarations: the
-- defaults and the check run in SQLite (portability.sh reads the row).
local db <close> = oplog.open(path, { key_file = key_file })
db:define("stamp", { columns = {
  { "seq", "INTEGER PRIMARY KEY" },
  { "at", "TEXT DEFAULT CURRENT_TIMESTAMP" },
  { "here", "TEXT DEFAULT (datetime('now', 'localtime'))" },
  { "doc", "TEXT CHECK (json_valid(doc))" },
} })
db:transaction("stamp", function(tx) tx:create("stamp", { seq = 1, doc = '{"a":[1,2]}' }) end)
ok = pcall(db.transaction, db, "stamp", function(tx) tx:create("stamp", { seq = 2, doc = "{" }) end)
check(not ok, "json_valid accepted '{'")
print("static checks: ok")
