-- oplog keys list | rotate | rekey.
package.path = os.getenv("OPLOG_SOURCE_DIR") .. "/tests/cli/?.lua;" .. package.path
local H = require "helper"

local APPEND = [[
local db <close> = oplog.open(arg[1], { key_file = arg[2] })
db:transaction("users", function(tx) tx:create("user", { id = 10, name = "dave" }) end)
]]

local function key_lines(out)
  local t = {}
  for id, state in out:gmatch("\n(%d+) +%d%d%d%d%-%d%d%-%d%dT[%d:%.]+Z +(%a+)") do
    t[#t + 1] = id .. ":" .. state
  end
  return table.concat(t, " ")
end

H.test("list needs no key and shows the active key", function()
  local dir = H.tmpdir()
  local db = H.fixture(dir)
  local r = H.oplog("keys", db, "list")
  H.has(H.ok(r), "^id +created +state\n", "header", r)
  H.eq(key_lines(r.out), "1:active", "keys", r)
end)

H.test("rotate makes a new active key; old entries stay readable", function()
  local dir = H.tmpdir()
  local db, key = H.fixture(dir)
  H.status(H.oplog("keys", db, "rotate"), 2, "key_required")
  local r = H.oplog("keys", db, "--key-file", key, "rotate")
  H.has(H.ok(r), "data key 2 is now active", "stdout", r)
  H.eq(key_lines(H.ok(H.oplog("keys", db, "list"))), "1:retired 2:active", "keys after rotate")
  H.write_file(dir .. "/append.lua", APPEND)
  H.ok(H.oplog("run", dir .. "/append.lua", db, key))
  local es = H.decode_lines(H.ok(H.oplog("dump", db, "--key-file", key, "--json")))
  H.eq(#es, 6, "entries")
  H.eq(es[1].key_id, 1, "old entry key")
  H.eq(es[6].key_id, 2, "new entry key")
  H.ok(H.oplog("verify", db, "--key-file", key))
  -- the key may also come before the DB, and from OPLOG_KEY_FILE
  H.ok(H.oplog("keys", "--key-file", key, db, "rotate"))
  H.ok(H.oplog("keys", db, "rotate", { env = { OPLOG_KEY_FILE = key } }))
  H.eq(key_lines(H.ok(H.oplog("keys", db, "list"))), "1:retired 2:retired 3:retired 4:active",
    "keys after three rotations")
end)

H.test("rekey with a new key file: only the new key opens the log", function()
  local dir = H.tmpdir()
  local db, key = H.fixture(dir)
  local new = dir .. "/new.key"
  H.ok(H.oplog("keygen", new))
  local before = H.ok(H.oplog("dump", db, "--key-file", key, "--json"))
  local r = H.oplog("keys", db, "--key-file", key, "rekey", "--key-file", new)
  H.has(H.ok(r), "re%-wrapped every data key of .* %(root key from .*new%.key%) and started data key 2\n$",
    "stdout", r)
  -- the rekey also rotated: entries from now on use a key the old root never wrapped
  H.eq(key_lines(H.ok(H.oplog("keys", db, "list"))), "1:retired 2:active", "keys after rekey")
  H.status(H.oplog("dump", db, "--key-file", key), 2, "wrong_key")
  H.eq(H.ok(H.oplog("dump", db, "--key-file", new, "--json")), before, "entries under the new key")
  H.ok(H.oplog("verify", db, "--key-file", new))
end)

H.test("rekey to a passphrase, and a wrong current key changes nothing", function()
  local dir = H.tmpdir()
  local db, key = H.fixture(dir)
  H.ok(H.oplog("keygen", dir .. "/wrong.key"))
  local env = { NEW_PASS = "a new passphrase" }
  local r = H.oplog("keys", db, "--key-file", dir .. "/wrong.key", "rekey", "--passphrase-env",
    "NEW_PASS", { env = env })
  H.status(r, 2, "wrong_key")
  H.ok(H.oplog("dump", db, "--key-file", key))
  r = H.oplog("keys", db, "--key-file", key, "rekey", "--passphrase-env", "NEW_PASS",
    "--kdf-mem", "8", { env = env })
  H.ok(r)
  local p = io.popen("sqlite3 " .. H.quote(db)
    .. " \"SELECT value FROM oplog_config WHERE name = 'kdf_mem'\"")
  H.eq(p:read("a"), "8388608\n", "the new passphrase's memory limit")
  p:close()
  H.ok(H.oplog("verify", db, "--passphrase-env", "NEW_PASS", { env = env }))
  H.status(H.oplog("dump", db, "--key-file", key), 2, "wrong_key")
  r = H.oplog("keys", db, "--passphrase-env", "NEW_PASS", "rekey", "--passphrase-env", "UNSET_PASS",
    { env = env })
  H.status(r, 2, "invalid_argument")
  H.has(r.err, "UNSET_PASS", "stderr", r)
end)

H.test("a plaintext log has no keys", function()
  local dir = H.tmpdir()
  local db = H.fixture(dir, true)
  H.has(H.ok(H.oplog("keys", db, "list")), "plaintext log", "keys list")
end)

H.done()
