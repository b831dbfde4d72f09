-- Runs examples/NAME.lua both as `lua5.4 examples/NAME.lua` (the module
-- from the build tree, via LUA_PATH/LUA_CPATH) and as `oplog run
-- examples/NAME.lua`, from a scratch directory. The examples assert their
-- own outcome; this checks the exit status and what a reader is shown.
package.path = os.getenv("OPLOG_SOURCE_DIR") .. "/tests/cli/?.lua;" .. package.path
local H = require "helper"

local name = assert(arg[1], "usage: example_test.lua NAME")
local script = H.SRC .. "/examples/" .. name .. ".lua"

local EXPECT = {
  quickstart = function(r)
    H.has(r.out, "\n3%. entry 1: alice ordered", "writes", r)
    H.has(r.out, "rolled back whole: still 3 entries", "rollback", r)
    H.has(r.out, "\n5%. replayed 3 entries %(7 operations%)", "replay", r)
    H.has(r.out, "\n6%. verified 3 entries: ok%. Head: entry 3, hash %x+", "verify", r)
    H.has(r.out, "quickstart: all checks passed\n$", "last line", r)
  end,
  edge_device = function(r)
    local acked = tonumber(r.out:match("acknowledged reading (%d+), then the power was cut"))
    H.check(acked and acked >= 20, "acknowledged readings before the cut", r)
    local total = tonumber(r.out:match("\n5%. verified (%d+) entries: ok"))
    H.check(total and total >= acked + 3, "entries after boot 2", r)
    local readings = tonumber(r.out:match("\n3%. boot 2: (%d+) readings, chain intact"))
    H.check(readings == acked or readings == acked + 1, "readings after the cut", r)
    H.has(r.out, "reading %d+ +%d%d:%d%d:%d%d  probe%-7@greenhouse%-2 fw 1%.4%.2 boot 2  temp0 = %d+%.%d C",
      "log after", r)
    H.has(r.out, "edge_device: all checks passed\n$", "last line", r)
  end,
  admin = function(r)
    local lines = {}
    for line in r.out:gmatch("[^\n]+") do
      if line:sub(1, 1) == "{" then lines[#lines + 1] = H.decode(line, r) end
    end
    H.eq(#lines, 3, "JSON lines", r)
    H.eq(lines[1].id, 4, "first match", r)
    H.eq(lines[1].metadata.user[1], "alice", "metadata", r)
    H.eq(lines[2].ops[1].nulls[1], "tier", "nulls", r)
    H.eq(lines[3].ops[1].op, "delete", "carol's change", r)
    H.has(lines[1].time, "^%d%d%d%d%-%d%d%-%d%dT", "time", r)
    H.has(r.out, "admin: all checks passed\n$", "last line", r)
  end,
}

H.test(name .. " with lua5.4", function()
  local r = H.run({ script }, { bin = "lua5.4", cwd = H.tmpdir() })
  H.ok(r)
  EXPECT[name](r)
end)

H.test(name .. " with oplog run", function()
  local r = H.run({ "run", script }, { cwd = H.tmpdir(), clean_env = true })
  H.ok(r)
  EXPECT[name](r)
end)

if name == "quickstart" then
  H.test("quickstart DIR keeps a log the command reads", function()
    local dir = H.tmpdir() .. "/kept"
    local r = H.run({ "run", script, dir })
    H.has(H.ok(r), "Kept in ", "stdout", r)
    local db, key = dir .. "/shop.oplog", dir .. "/shop.key"
    r = H.oplog("verify", db, "--key-file", key, "--replay")
    H.has(H.ok(r), "ok, 3 entries checked %(hash chain, decryption, replay%)", "verify", r)
    local es = H.decode_lines(H.ok(H.oplog("dump", db, "--key-file", key, "--json",
      "--meta", "user=alice")))
    H.eq(#es, 2, "alice's entries")
  end)
end

H.done()
