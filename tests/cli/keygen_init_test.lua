-- oplog keygen and oplog init.
package.path = os.getenv("OPLOG_SOURCE_DIR") .. "/tests/cli/?.lua;" .. package.path
local H = require "helper"

H.test("keygen writes 64 hex chars and a newline, mode 0600", function()
  local dir = H.tmpdir()
  local key = dir .. "/root.key"
  local r = H.oplog("keygen", key)
  H.has(H.ok(r), "root.key", "stdout", r)
  local text = H.read_file(key)
  H.check(text:match("^%x+\n$") and #text == 65, "key file content: " .. text)
  local p = io.popen("stat -c %a " .. H.quote(key))
  H.eq(p:read("l"), "600", "key file mode")
  p:close()
  -- two keys differ
  H.ok(H.oplog("keygen", dir .. "/other.key"))
  H.check(H.read_file(dir .. "/other.key") ~= text, "two keygen runs gave the same key")
end)

H.test("keygen refuses an existing file and leaves it alone", function()
  local dir = H.tmpdir()
  local key = dir .. "/root.key"
  H.write_file(key, "precious\n")
  local r = H.oplog("keygen", key)
  H.status(r, 2)
  H.has(r.err, "^oplog: %l[%l_]+: ", "stderr", r)
  H.eq(H.read_file(key), "precious\n", "existing file")
end)

H.test("init with a key file creates a log that needs that key", function()
  local dir = H.tmpdir()
  local key, db = dir .. "/root.key", dir .. "/app.oplog"
  H.ok(H.oplog("keygen", key))
  local r = H.oplog("init", db, "--key-file", key)
  H.has(H.ok(r), "created .*app%.oplog", "stdout", r)
  H.check(H.read_file(db), "log file not created")
  -- it verifies, and one data key exists
  H.ok(H.oplog("verify", db, "--key-file", key))
  H.has(H.ok(H.oplog("keys", db, "list")), "active", "keys list")
  -- the wrong key and plaintext mode are refused
  H.ok(H.oplog("keygen", dir .. "/wrong.key"))
  H.status(H.oplog("dump", db, "--key-file", dir .. "/wrong.key"), 2, "wrong_key")
  H.status(H.oplog("dump", db, "--no-encryption"), 2, "key_required")
end)

H.test("init takes the key file from OPLOG_KEY_FILE", function()
  local dir = H.tmpdir()
  local key, db = dir .. "/root.key", dir .. "/app.oplog"
  H.ok(H.oplog("keygen", key))
  H.ok(H.oplog("init", db, { env = { OPLOG_KEY_FILE = key } }))
  H.status(H.oplog("dump", db, "--no-encryption"), 2, "key_required")
  H.ok(H.oplog("dump", db, { env = { OPLOG_KEY_FILE = key } }))
  -- an explicit option wins over the environment
  H.status(H.oplog("dump", db, "--no-encryption", { env = { OPLOG_KEY_FILE = key } }), 2,
    "key_required")
end)

H.test("init with a passphrase from the environment", function()
  local dir = H.tmpdir()
  local db = dir .. "/app.oplog"
  local env = { OPLOG_TEST_PASS = "correct horse battery staple" }
  local r = H.oplog("init", db, "--passphrase-env", "OPLOG_TEST_PASS", { env = env })
  H.has(H.ok(r), "passphrase", "stdout", r)
  H.ok(H.oplog("dump", db, "--passphrase-env", "OPLOG_TEST_PASS", { env = env }))
  H.status(H.oplog("dump", db, "--passphrase-env", "OPLOG_TEST_PASS",
    { env = { OPLOG_TEST_PASS = "wrong horse" } }), 2, "wrong_key")
  -- a missing variable is a usage error, and creates nothing
  r = H.oplog("init", dir .. "/other.oplog", "--passphrase-env", "OPLOG_TEST_PASS")
  H.status(r, 2, "invalid_argument")
  H.has(r.err, "OPLOG_TEST_PASS", "stderr", r)
  H.check(not H.read_file(dir .. "/other.oplog"), "init created a file without a key")
end)

H.test("init --kdf-ops/--kdf-mem store lower Argon2id limits for small devices", function()
  local dir = H.tmpdir()
  local db = dir .. "/small.oplog"
  local env = { OPLOG_TEST_PASS = "tiny device" }
  H.ok(H.oplog("init", db, "--passphrase-env", "OPLOG_TEST_PASS", "--kdf-ops", "2",
    "--kdf-mem=8", { env = env }))
  local p = io.popen("sqlite3 " .. H.quote(db) .. " \"SELECT name, value FROM oplog_config "
    .. "WHERE name IN ('kdf_ops', 'kdf_mem') ORDER BY name\"")
  H.eq(p:read("a"), "kdf_mem|8388608\nkdf_ops|2\n", "stored limits")
  p:close()
  H.ok(H.oplog("verify", db, "--passphrase-env", "OPLOG_TEST_PASS", { env = env }))
  H.status(H.oplog("dump", db, "--passphrase-env", "OPLOG_TEST_PASS",
    { env = { OPLOG_TEST_PASS = "wrong" } }), 2, "wrong_key")
  -- only with a passphrase, and only positive integers
  local r = H.oplog("init", dir .. "/k.oplog", "--no-encryption", "--kdf-mem", "8")
  H.status(r, 2, "invalid_argument")
  H.has(r.err, "go with %-%-passphrase%-env", "stderr", r)
  r = H.oplog("init", dir .. "/k.oplog", "--passphrase-env", "OPLOG_TEST_PASS", "--kdf-ops", "0",
    { env = env })
  H.status(r, 2, "invalid_argument")
  H.has(r.err, "%-%-kdf%-ops wants a positive integer below 10%^9, not \"0\"", "stderr", r)
  -- sizes that would overflow are refused, not wrapped (17592186044417 MiB
  -- once became 1 MiB), and limits below the minimum for a new passphrase
  for _, bad in ipairs { "17592186044417", "99999999999999999999999" } do
    r = H.oplog("init", dir .. "/k.oplog", "--passphrase-env", "OPLOG_TEST_PASS", "--kdf-mem", bad, { env = env })
    H.status(r, 2, "invalid_argument")
    H.has(r.err, "wants a positive integer below 10%^9", "stderr", r)
  end
  r = H.oplog("init", dir .. "/k.oplog", "--passphrase-env", "OPLOG_TEST_PASS", "--kdf-ops", "1", { env = env })
  H.status(r, 2, "invalid_argument")
  H.has(r.err, "too weak for a new passphrase", "stderr", r)
  r = H.oplog("init", dir .. "/k.oplog", "--passphrase-env", "OPLOG_TEST_PASS", "--kdf-mem", "4", { env = env })
  H.status(r, 2, "invalid_argument")
  H.has(r.err, "too weak for a new passphrase", "stderr", r)
  H.check(not H.read_file(dir .. "/k.oplog"), "a refused init created a file")
end)

H.test("init --no-encryption creates a plaintext log", function()
  local dir = H.tmpdir()
  local db = dir .. "/plain.oplog"
  H.ok(H.oplog("init", db, "--no-encryption"))
  H.ok(H.oplog("dump", db, "--no-encryption"))
  H.has(H.ok(H.oplog("keys", db, "list")), "plaintext", "keys list")
end)

H.test("init refuses an existing file and leaves it alone", function()
  local dir = H.tmpdir()
  local db = dir .. "/app.oplog"
  H.ok(H.oplog("init", db, "--no-encryption"))
  local before = H.read_file(db)
  local r = H.oplog("init", db, "--no-encryption")
  H.status(r, 2, "invalid_argument")
  H.has(r.err, "already exists", "stderr", r)
  H.eq(H.read_file(db), before, "existing log")
  H.write_file(dir .. "/notes.txt", "not a database")
  H.status(H.oplog("init", dir .. "/notes.txt", "--no-encryption"), 2, "invalid_argument")
  H.eq(H.read_file(dir .. "/notes.txt"), "not a database", "existing file")
end)

H.test("init with a missing key file fails and creates nothing", function()
  local dir = H.tmpdir()
  local r = H.oplog("init", dir .. "/app.oplog", "--key-file", dir .. "/nope.key")
  H.status(r, 2)
  H.has(r.err, "^oplog: %l[%l_]+: ", "stderr", r)
  H.check(H.read_file(dir .. "/app.oplog") == nil, "init left a file behind after failing", r)
end)

H.done()
