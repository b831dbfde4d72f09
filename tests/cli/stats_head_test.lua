-- oplog stats and oplog head.
package.path = os.getenv("OPLOG_SOURCE_DIR") .. "/tests/cli/?.lua;" .. package.path
local H = require "helper"

local dir = H.tmpdir()
local db, key = H.fixture(dir)

local APPEND = [[
local db <close> = oplog.open(arg[1], { key_file = arg[2] })
db:transaction("users", function(tx)
  tx:create("user", { id = 100 + db:head().id, name = "dave" })
end)
]]

H.test("stats --json: entries, bytes, keys, aggregates with tickets", function()
  local r = H.oplog("stats", db, "--json")
  local s = H.decode(H.ok(r), r)
  H.eq(s.entries, 5, "entries", r)
  H.eq(s.keys, 1, "keys", r)
  local f = io.open(db, "rb")
  local size = f:seek("end")
  f:close()
  H.eq(s.bytes, size, "bytes = file size", r)
  H.eq(s.aggregates.users.entries, 4, "users entries", r)
  H.eq(s.aggregates.devices.entries, 1, "devices entries", r)
  H.eq(math.type(s.aggregates.users.ticket), "integer", "ticket", r)
  -- one more entry moves the ticket and the counts by one
  H.write_file(dir .. "/append.lua", APPEND)
  H.ok(H.oplog("run", dir .. "/append.lua", db, key))
  local s2 = H.decode(H.ok(H.oplog("stats", db, "--json")))
  H.eq(s2.entries, 6, "entries after append")
  H.eq(s2.aggregates.users.entries, 5, "users entries after append")
  H.eq(s2.aggregates.users.ticket, s.aggregates.users.ticket + 1, "users ticket after append")
  H.eq(s2.aggregates.devices.ticket, s.aggregates.devices.ticket, "devices ticket")
end)

H.test("stats human output matches the JSON", function()
  local s = H.decode(H.ok(H.oplog("stats", db, "--json")))
  local r = H.oplog("stats", db, "--key-file", key)
  local out = H.ok(r)
  H.has(out, "^entries +" .. s.entries .. "\nbytes +" .. s.bytes .. "\nkeys +1\naggregates +2\n",
    "totals", r)
  H.has(out, "\n  devices +entries 1 +ticket " .. s.aggregates.devices.ticket .. "\n", "devices", r)
  H.has(out, "\n  users +entries " .. s.aggregates.users.entries .. " +ticket "
    .. s.aggregates.users.ticket .. "\n", "users", r)
end)

H.test("head prints '<id> <hex>' and needs no key", function()
  local r = H.oplog("head", db)
  local id, hash = H.ok(r):match("^(%d+) (%x+)\n$")
  H.check(id, "head format", r)
  H.eq(#hash, 64, "hash length", r)
  H.eq(tonumber(id), H.decode(H.ok(H.oplog("stats", db, "--json"))).entries, "head id")
  H.eq(H.ok(H.oplog("head", db, "--key-file", key)), r.out, "same with the key")
  -- the head moves with a new entry
  H.ok(H.oplog("run", dir .. "/append.lua", db, key))
  local r2 = H.oplog("head", db)
  H.eq(H.ok(r2):match("^%d+"), tostring(tonumber(id) + 1), "head id after append", r2)
  H.check(r2.out:match(" (%x+)") ~= hash, "head hash after append", r2)
end)

H.test("an empty log: head is 0 and zeros, stats count nothing", function()
  local edb = dir .. "/empty.oplog"
  H.ok(H.oplog("init", edb, "--no-encryption"))
  H.eq(H.ok(H.oplog("head", edb)), "0 " .. string.rep("0", 64) .. "\n", "empty head")
  local s = H.decode(H.ok(H.oplog("stats", edb, "--json")))
  H.eq(s.entries, 0, "entries")
  H.eq(s.keys, 0, "keys of a plaintext log")
  H.eq(next(s.aggregates), nil, "aggregates")
  H.has(H.ok(H.oplog("verify", edb)), "ok, 0 entries checked", "verify empty")
end)

H.done()
