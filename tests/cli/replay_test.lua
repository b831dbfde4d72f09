-- oplog replay: --suffix, --into, filters, --fresh, errors.
package.path = os.getenv("OPLOG_SOURCE_DIR") .. "/tests/cli/?.lua;" .. package.path
local H = require "helper"

local function query(db, sql)
  local p = io.popen("sqlite3 " .. H.quote(db) .. " " .. H.quote(sql))
  local s = p:read("a")
  p:close()
  return s
end

H.test("--suffix rebuilds every table next to the live one", function()
  local dir = H.tmpdir()
  local db, key = H.fixture(dir)
  local r = H.oplog("replay", db, "--key-file", key, "--suffix", "_r")
  H.eq(H.ok(r), "replayed 5 entries (7 operations) into tables *_r\n", "stdout", r)
  H.eq(r.err, "", "stderr", r)
  H.eq(query(db, "SELECT id, name, quote(email) FROM user_r ORDER BY id"),
    "2|robert|NULL\n3|carol|NULL\n", "user_r")
  H.eq(query(db, "SELECT * FROM role_r"), "1|admin\n", "role_r")
  for _, t in ipairs({ "user", "role", "device" }) do
    H.eq(query(db, "SELECT count(*) FROM (SELECT * FROM " .. t .. " EXCEPT SELECT * FROM " .. t
      .. "_r)"), "0\n", t .. " and " .. t .. "_r differ")
  end
end)

H.test("a non-empty target is refused unless --fresh", function()
  local dir = H.tmpdir()
  local db, key = H.fixture(dir)
  H.ok(H.oplog("replay", db, "--key-file", key, "--suffix", "_r"))
  local r = H.oplog("replay", db, "--key-file", key, "--suffix", "_r")
  H.status(r, 2, "target_not_empty")
  H.has(r.err, "pass %-%-fresh", "the command's option, not the Lua one", r)
  H.eq(query(db, "SELECT count(*) FROM user_r"), "2\n", "target untouched")
  r = H.oplog("replay", db, "--key-file", key, "--suffix", "_r", "--fresh", "--upto", "2")
  H.eq(H.ok(r), "replayed 2 entries (4 operations) into tables *_r\n", "stdout", r)
  H.eq(query(db, "SELECT id, name FROM user_r ORDER BY id"), "1|alice\n2|bob\n3|carol\n", "user_r")
end)

H.test("--into writes a replica file; --aggregate and --since select entries", function()
  local dir = H.tmpdir()
  local db, key = H.fixture(dir)
  local replica = dir .. "/replica.db"
  local r = H.oplog("replay", db, "--key-file", key, "--into", replica)
  H.eq(H.ok(r), "replayed 5 entries (7 operations) into " .. replica .. "\n", "stdout", r)
  H.eq(query(replica, "SELECT id, name FROM user ORDER BY id"), "2|robert\n3|carol\n", "replica")
  r = H.oplog("replay", db, "--key-file", key, "--into", dir .. "/devices.db",
    "--aggregate", "devices")
  H.eq(H.ok(r), "replayed 1 entry (1 operation) into " .. dir .. "/devices.db\n", "stdout", r)
  H.eq(query(dir .. "/devices.db", "SELECT hex(firmware) FROM device"), "000102FEFF\n", "blob")
  r = H.oplog("replay", db, "--key-file", key, "--suffix", "_d", "--since", "2", "--upto", "3")
  H.eq(H.ok(r), "replayed 1 entry (1 operation) into tables *_d\n", "stdout", r)
end)

H.test("a replay that fails midway is an error and leaves nothing", function()
  local dir = H.tmpdir()
  local db, key = H.fixture(dir)
  -- entry 4 updates user 2, created by entry 2, which --since 3 leaves out
  local r = H.oplog("replay", db, "--key-file", key, "--suffix", "_tail", "--since", "3")
  H.status(r, 2)
  H.has(r.err, "^oplog: %l[%l_]+: [^\n]*entry 4", "error names the entry", r)
  H.eq(r.out, "", "stdout", r)
  H.eq(query(db, "SELECT count(*) FROM sqlite_master WHERE name LIKE '%_tail'"), "0\n",
    "no table left by the failed replay")
end)

H.test("replay needs the key", function()
  local dir = H.tmpdir()
  local db, key = H.fixture(dir)
  H.status(H.oplog("replay", db, "--suffix", "_r"), 2, "key_required")
  H.ok(H.oplog("keygen", dir .. "/wrong.key"))
  H.status(H.oplog("replay", db, "--suffix", "_r", "--key-file", dir .. "/wrong.key"), 2,
    "wrong_key")
  H.eq(query(db, "SELECT count(*) FROM sqlite_master WHERE name = 'user_r'"), "0\n",
    "no table left by a failed replay")
end)

H.done()
