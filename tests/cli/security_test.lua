-- Issue 14 through the command: --passphrase-fd, key files, weak and
-- overflowing KDF limits, private files, and a hostile catalog meeting
-- `replay --into --fresh`.
package.path = os.getenv("OPLOG_SOURCE_DIR") .. "/tests/cli/?.lua;" .. package.path
local H = require "helper"

local function sql(db, query)
  local p = io.popen("sqlite3 " .. H.quote(db) .. " " .. H.quote(query))
  local out = p:read("a")
  p:close()
  return out
end

local function mode(path)
  local p = io.popen("stat -c %a " .. H.quote(path) .. " 2>/dev/null")
  local m = p:read("l")
  p:close()
  return m
end

-- Writes two entries with the Lua option passphrase_fd = 3 (as a script
-- would, never holding the passphrase in a Lua string).
local WRITE = [[
local db <close> = oplog.open(arg[1], { passphrase_fd = 3 })
db:define("note", { columns = { { "id", "INTEGER PRIMARY KEY" }, { "body", "TEXT" } } })
for i = 1, 2 do
  db:transaction("note", function(tx) tx:create("note", { id = i, body = "secret " .. i }) end)
end
]]

H.test("--passphrase-fd: init, the Lua option passphrase_fd, dump, verify, a wrong passphrase", function()
  local dir = H.tmpdir()
  local db = dir .. "/app.oplog"
  local pass = { [3] = "correct horse battery staple\n" }
  local r = H.oplog("init", db, "--passphrase-fd", "3", "--kdf-ops", "2", "--kdf-mem", "8", { fds = pass })
  H.has(H.ok(r), "passphrase on descriptor 3", "stdout", r)
  H.eq(sql(db, "SELECT value FROM oplog_config WHERE name = 'kdf_mem'"), "8388608\n", "stored limit")
  H.write_file(dir .. "/write.lua", WRITE)
  H.ok(H.oplog("run", dir .. "/write.lua", db, { fds = pass }))
  local es = H.decode_lines(H.ok(H.oplog("dump", db, "--json", "--passphrase-fd=3", { fds = pass })))
  H.eq(#es, 2, "entries")
  H.eq(es[2].ops[1].row.body, "secret 2", "decrypted")
  -- the same passphrase from the environment opens it too
  H.ok(H.oplog("verify", db, "--passphrase-env", "P", { env = { P = "correct horse battery staple" } }))
  r = H.oplog("verify", db, "--passphrase-fd", "3", { fds = pass })
  H.has(H.ok(r), "ok, 2 entries checked %(hash chain, decryption%)", "stdout", r)
  -- the passphrase may come on standard input, too
  H.ok(H.oplog("head", db, "--passphrase-fd", "0", { stdin = "correct horse battery staple\n" }))
  -- a wrong passphrase on the descriptor
  for _, cmd in ipairs { "dump", "verify", "stats" } do
    r = H.oplog(cmd, db, "--passphrase-fd", "3", { fds = { [3] = "wrong horse\n" } })
    H.status(r, 2, "wrong_key")
  end
  r = H.oplog("run", dir .. "/write.lua", db, { fds = { [3] = "wrong horse\n" } })
  H.status(r, 2, "wrong_key")
  H.eq(sql(db, "SELECT count(*) FROM oplog_entries"), "2\n", "nothing written with a wrong passphrase")
end)

H.test("keys rekey with --passphrase-fd: two descriptors, or one with two lines", function()
  local dir = H.tmpdir()
  local db = dir .. "/app.oplog"
  H.ok(H.oplog("init", db, "--passphrase-fd", "3", "--kdf-mem", "8", { fds = { [3] = "first\n" } }))
  H.write_file(dir .. "/write.lua", WRITE)
  H.ok(H.oplog("run", dir .. "/write.lua", db, { fds = { [3] = "first\n" } }))
  local r = H.oplog("keys", db, "--passphrase-fd", "3", "rekey", "--passphrase-fd", "4", "--kdf-mem", "8",
    { fds = { [3] = "first\n", [4] = "second\n" } })
  H.has(H.ok(r), "re%-wrapped every data key of .* and started data key 2\n$", "stdout", r)
  H.status(H.oplog("dump", db, "--passphrase-fd", "3", { fds = { [3] = "first\n" } }), 2, "wrong_key")
  H.ok(H.oplog("verify", db, "--passphrase-fd", "3", { fds = { [3] = "second\n" } }))
  -- one descriptor: the current passphrase on its first line, the new on
  -- the second, as a here-document in a shell script
  local script = dir .. "/rekey.sh"
  H.write_file(script, table.concat({
    "exec " .. H.quote(H.BIN) .. " keys " .. H.quote(db)
      .. " --passphrase-fd 3 rekey --passphrase-fd 3 --kdf-mem 8 3<<EOF",
    "second", "third", "EOF", "" }, "\n"))
  r = H.run({ script }, { bin = "sh" })
  H.has(H.ok(r), "started data key 3", "stdout", r)
  H.ok(H.oplog("verify", db, "--passphrase-fd", "3", { fds = { [3] = "third\n" } }))
  -- to a key file and back to a passphrase on a descriptor
  H.ok(H.oplog("keygen", dir .. "/k"))
  r = H.oplog("keys", db, "--passphrase-fd", "3", "rekey", "--key-file", dir .. "/k", { fds = { [3] = "third\n" } })
  H.has(H.ok(r), "started data key 4", "stdout", r)
  r = H.oplog("keys", db, "--key-file", dir .. "/k", "rekey", "--passphrase-fd", "5", "--kdf-ops", "3",
    "--kdf-mem", "8", { fds = { [5] = "fourth\n" } })
  H.has(H.ok(r), "started data key 5", "stdout", r)
  H.eq(sql(db, "SELECT value FROM oplog_config WHERE name = 'kdf_ops'"), "3\n", "stored passes")
  local es = H.decode_lines(H.ok(H.oplog("dump", db, "--json", "--passphrase-fd", "3", { fds = { [3] = "fourth\n" } })))
  H.eq(#es, 2, "entries after four rekeys")
end)

H.test("--passphrase-fd: bad values, no descriptor, one key option only", function()
  local dir = H.tmpdir()
  local db = dir .. "/app.oplog"
  for _, bad in ipairs { "x", "-1", "3.0", "", "99999999999" } do
    local r = H.oplog("init", db, "--passphrase-fd", bad)
    H.status(r, 2, "invalid_argument")
    H.has(r.err, "wants a file descriptor number", "stderr", r)
  end
  local r = H.oplog("init", db, "--passphrase-fd", "7")
  H.status(r, 2, "io")
  H.has(r.err, "descriptor 7", "stderr", r)
  H.check(not H.read_file(db), "a failed init left a file", r)
  r = H.oplog("init", db, "--passphrase-fd", "3", { fds = { [3] = "\n" } })
  H.status(r, 2, "invalid_argument")
  H.has(r.err, "empty", "stderr", r)
  r = H.oplog("init", db, "--passphrase-fd", "3", "--passphrase-env", "P", { fds = { [3] = "p\n" }, env = { P = "p" } })
  H.status(r, 2, "invalid_argument")
  H.has(r.err, "only one of", "stderr", r)
  r = H.oplog("init", db, "--no-encryption")
  H.ok(r)
  r = H.oplog("keys", db, "--no-encryption", "rekey", "--passphrase-fd")
  H.status(r, 2, "invalid_argument")
  H.has(r.err, "needs a value", "stderr", r)
end)

H.test("every command that takes a key documents --passphrase-fd", function()
  for _, cmd in ipairs { "init", "dump", "verify", "replay", "keys" } do
    H.has(H.ok(H.oplog(cmd, "--help")), "%-%-passphrase%-fd N", cmd .. " --help")
  end
  H.has(H.ok(H.oplog("--help")), "%-%-passphrase%-fd N", "oplog --help")
  H.has(H.ok(H.oplog("keys", "--help")), "starts a new data key", "keys --help")
  -- the hint for a missing key names it too
  local dir = H.tmpdir()
  local db = dir .. "/app.oplog"
  H.ok(H.oplog("keygen", dir .. "/k"))
  H.ok(H.oplog("init", db, "--key-file", dir .. "/k"))
  local r = H.oplog("dump", db)
  H.status(r, 2, "key_required")
  H.has(r.err, "%-%-passphrase%-fd N", "stderr", r)
end)

H.test("weak and overflowing Argon2id limits for a new passphrase are refused", function()
  local dir = H.tmpdir()
  local db = dir .. "/app.oplog"
  local fds = { [3] = "a passphrase\n" }
  for _, case in ipairs {
    { { "--kdf-ops", "1" }, "too weak" },
    { { "--kdf-mem", "7" }, "too weak" },
    { { "--kdf-mem", "17592186044417" }, "below 10%^9" },  -- 2^44 + 1 MiB: 1 MiB after a wrap
    { { "--kdf-mem", "1000000000000000000000000" }, "below 10%^9" }, -- 25 digits
    { { "--kdf-ops", "18446744073709551617" }, "below 10%^9" },
    -- more than the command's own opens accept (kdf_limit): a file it
    -- could not open again
    { { "--kdf-ops", "9" }, "up to 8 passes and 256 MiB" },
    { { "--kdf-mem", "257" }, "up to 8 passes and 256 MiB" },
  } do
    local args = { "init", db, "--passphrase-fd", "3" }
    table.move(case[1], 1, #case[1], #args + 1, args)
    args[#args + 1] = { fds = fds }
    local r = H.oplog(table.unpack(args))
    H.status(r, 2, "invalid_argument")
    H.has(r.err, case[2], "stderr", r)
    H.check(not H.read_file(db), "a refused init created a file", r)
  end
  -- and for rekey's new passphrase; the current key keeps working
  H.ok(H.oplog("keygen", dir .. "/k"))
  H.ok(H.oplog("init", db, "--key-file", dir .. "/k"))
  local r = H.oplog("keys", db, "--key-file", dir .. "/k", "rekey", "--passphrase-fd", "3", "--kdf-ops", "1",
    { fds = fds })
  H.status(r, 2, "invalid_argument")
  H.has(r.err, "too weak", "stderr", r)
  H.ok(H.oplog("verify", db, "--key-file", dir .. "/k"))
end)

H.test("key files open to others, or longer than a key, are refused", function()
  local dir = H.tmpdir()
  local key, db = dir .. "/k", dir .. "/app.oplog"
  H.ok(H.oplog("keygen", key))
  H.ok(H.oplog("init", db, "--key-file", key))
  local hex = H.read_file(key)
  for _, m in ipairs { "644", "640", "604" } do
    H.sh("chmod " .. m .. " " .. H.quote(key))
    local r = H.oplog("dump", db, "--key-file", key)
    H.status(r, 2, "invalid_argument")
    H.has(r.err, "chmod 600", "stderr", r)
  end
  H.sh("chmod 600 " .. H.quote(key))
  H.ok(H.oplog("dump", db, "--key-file", key))
  -- 200 bytes: the key and then some
  H.write_file(dir .. "/long.key", hex .. string.rep(" ", 200 - #hex - 1) .. "\n", "600")
  local r = H.oplog("dump", db, "--key-file", dir .. "/long.key")
  H.status(r, 2, "invalid_argument")
  H.has(r.err, "longer", "stderr", r)
  -- OPLOG_KEY_FILE goes through the same checks
  H.sh("chmod 644 " .. H.quote(key))
  r = H.oplog("dump", db, { env = { OPLOG_KEY_FILE = key } })
  H.status(r, 2, "invalid_argument")
end)

H.test("the log, its -wal and -shm, and a replica are created 0600 under umask 000", function()
  local dir = H.tmpdir()
  local key, db = dir .. "/k", dir .. "/app.oplog"
  H.ok(H.oplog("keygen", key))
  H.ok(H.oplog("init", db, "--key-file", key, { umask = "000" }))
  H.eq(mode(db), "600", "log file mode")
  -- a writer holding the file open: its -wal and -shm exist meanwhile
  H.write_file(dir .. "/hold.lua", [[
local db <close> = oplog.open(arg[1], { key_file = arg[2] })
db:define("note", { columns = { { "id", "INTEGER PRIMARY KEY" }, { "body", "TEXT" } } })
db:transaction("note", function(tx) tx:create("note", { id = 1, body = "x" }) end)
local function mode(p)
  local f = io.popen("stat -c %a '" .. p .. "'")
  local m = f:read("l")
  f:close()
  return m
end
print(mode(arg[1] .. "-wal"), mode(arg[1] .. "-shm"))
]])
  local r = H.oplog("run", dir .. "/hold.lua", db, key, { umask = "000" })
  H.eq(H.ok(r), "600\t600\n", "modes of -wal and -shm", r)
  H.ok(H.oplog("replay", db, "--into", dir .. "/replica.db", "--key-file", key, { umask = "000" }))
  H.eq(mode(dir .. "/replica.db"), "600", "replica mode")
  -- the check is not vacuous: under umask 000 sqlite3 itself makes 0644
  H.sh("umask 000 && sqlite3 " .. H.quote(dir .. "/raw.db") .. " 'CREATE TABLE t (x)'")
  H.eq(mode(dir .. "/raw.db"), "644", "plain SQLite file mode")
end)

H.test("a catalog naming oplog_keys cannot make replay --into --fresh drop the victim's keys", function()
  local dir = H.tmpdir()
  local src, skey = H.fixture(dir)
  local victim, vkey = dir .. "/victim.oplog", dir .. "/victim.key"
  H.ok(H.oplog("keygen", vkey))
  H.ok(H.oplog("init", victim, "--key-file", vkey))
  local keys_before = sql(victim, "SELECT id, hex(wrapped) FROM oplog_keys")
  H.check(keys_before ~= "", "the victim has a key")
  -- the attacker's file: type user's live table is now "oplog_keys"
  H.eq(sql(src, "UPDATE oplog_types SET table_name = 'oplog_keys' WHERE name = 'user'; SELECT changes()"), "1\n",
    "attack applied")
  local r = H.oplog("replay", src, "--into", victim, "--fresh", "--key-file", skey)
  H.status(r, 2, "corrupt")
  H.eq(sql(victim, "SELECT id, hex(wrapped) FROM oplog_keys"), keys_before, "victim's oplog_keys")
  H.ok(H.oplog("verify", victim, "--key-file", vkey))
  -- the same file refuses every other command, too
  H.status(H.oplog("verify", src), 2, "corrupt")
  -- a declaration that smuggles in a column
  local src2 = H.fixture(H.tmpdir())
  sql(src2, "UPDATE oplog_type_columns SET decl = 'TEXT, injected TEXT DEFAULT(1)' "
    .. "WHERE type_name = 'user' AND name = 'email'")
  H.status(H.oplog("verify", src2), 2, "corrupt")
end)

H.done()
