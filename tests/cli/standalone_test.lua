-- The binary copied alone to another directory works from any cwd: its Lua
-- code is compiled in and needs no LUA_PATH or LUA_CPATH.
package.path = os.getenv("OPLOG_SOURCE_DIR") .. "/tests/cli/?.lua;" .. package.path
local H = require "helper"

H.test("copied alone: keygen, init, run, verify, dump from another cwd", function()
  local bindir, work = H.tmpdir(), H.tmpdir()
  local bin = bindir .. "/oplog"
  H.sh("cp " .. H.quote(H.BIN) .. " " .. H.quote(bin))
  local o = { bin = bin, cwd = work, clean_env = true }
  H.has(H.ok(H.run({ "--version" }, o)), "^oplog %d", "--version")
  H.ok(H.run({ "keygen", "device.key" }, o))
  H.ok(H.run({ "init", "device.oplog", "--key-file", "device.key" }, o))
  H.write_file(work .. "/log.lua", [[
local db <close> = oplog.open("device.oplog", { key_file = "device.key" })
db:define("reading", { columns = { { "seq", "INTEGER PRIMARY KEY" }, { "celsius", "REAL" } } })
for i = 1, 4 do
  db:transaction("reading", function(tx)
    tx:create("reading", { seq = i, celsius = 20 + i / 4 })
  end, { metadata = { device = "probe-7" } })
end
]])
  H.ok(H.run({ "run", "log.lua" }, o))
  local r = H.run({ "verify", "device.oplog", "--key-file", "device.key" }, o)
  H.has(H.ok(r), "ok, 4 entries checked %(hash chain, decryption%)", "verify", r)
  local es = H.decode_lines(H.ok(H.run({ "dump", "device.oplog", "--json", "--meta",
    "device=probe-7" }, { bin = bin, cwd = work, clean_env = true,
    env = { OPLOG_KEY_FILE = "device.key" } })))
  H.eq(#es, 4, "entries")
  H.eq(es[4].ops[1].row.celsius, 21.0, "last reading")
  -- the modules come from the binary, not from files on disk
  r = H.run({ "run", "-" }, { bin = bin, cwd = work, clean_env = true,
    stdin = "print(debug.getinfo(require('oplog.cli').main, 'S').source, "
      .. "debug.getinfo(require('oplog').open, 'S').what)" })
  H.has(H.ok(r), "^=%[oplog%]/oplog%.cli\t", "oplog.cli source", r)
end)

H.done()
