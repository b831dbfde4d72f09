-- workload.lua — writes the files that tests/format/reader.py reads.
--
--   oplog run tests/format/workload.lua OUTDIR all   -- enc.db, plain.db, pass.db, migrates v1-*.db
--   oplog run tests/format/workload.lua OUTDIR lag   -- lag.db, left with its derived tables behind
--
-- `all` writes, each with the same varied workload of > 300 entries:
--   enc.db    key file enc.key; a key rotation in the middle, then a rekey to
--             enc2.key and one more entry (read it with enc2.key)
--   plain.db  encryption = false
--   pass.db   passphrase "format test" (Argon2id at its minimum limits), a rotation
-- and migrates OUTDIR/v1-encrypted.db (key v1.key) and OUTDIR/v1-plain.db,
-- copies of tests/fixtures/format1 the caller made, then writes a few
-- format-2 entries on top of their format-1 ones. Every handle is closed,
-- so the derived tables cover every entry.
-- (sync = "normal": durability is not what is tested here.)
-- `lag` writes the workload to lag.db (key file enc.key) and exits without
-- closing the handle: entries above 'indexed_upto' stay above it.
local oplog = require "oplog"

local dir, mode = arg[1], arg[2]
assert(dir and (mode == "all" or mode == "lag"), "usage: workload.lua OUTDIR all|lag")
local function path(name) return dir .. "/" .. name end
local NULL = oplog.null

local function expect_error(code, f, ...)
  local ok, err = pcall(f, ...)
  assert(not ok, "expected an error " .. code)
  assert(oplog.is_error(err) and err.code == code, "expected " .. code .. ", got " .. tostring(err))
end

local function define(db)
  -- rowid key, DEFAULTs (also non-deterministic ones), NUMERIC, BLOB and untyped columns
  db:define("item", { aggregate = "shop", columns = {
    { "id", "INTEGER PRIMARY KEY" }, { "name", "TEXT NOT NULL" }, { "price", "NUMERIC" },
    { "qty", "INTEGER DEFAULT 1" }, { "tag", "TEXT DEFAULT 'none'" },
    { "token", "INTEGER NOT NULL DEFAULT (random())" }, { "made", "TEXT DEFAULT CURRENT_TIMESTAMP" },
    { "photo", "BLOB" }, { "extra", "DEFAULT NULL" } } })
  -- composite key without a declared PRIMARY KEY (define adds it)
  db:define("line", { aggregate = "shop", columns = {
    { "item_id", "INTEGER NOT NULL" }, { "line", "INTEGER NOT NULL" }, { "qty", "INTEGER" },
    { "note", "TEXT" } }, key = { "item_id", "line" } })
  -- composite key with COLLATE BINARY, booleans, REAL, UNIQUE, another table name
  db:define("flag", { aggregate = "flags", table = "flags_t", columns = {
    { "owner", "TEXT NOT NULL COLLATE BINARY" }, { "name", "TEXT NOT NULL" }, { "on", "BOOLEAN" },
    { "score", "REAL" }, { "weight", "DOUBLE PRECISION DEFAULT 0.5" }, { "data", "BLOB" },
    { "label", "VARCHAR(20) UNIQUE" } }, key = { "owner", "name" } })
  db:define("reading", { aggregate = "sensors", columns = {
    { "device", "TEXT" }, { "at", "INTEGER" }, { "value", "REAL" }, { "raw", "NUMERIC" },
    { "seen", "INTEGER DEFAULT (abs(random()) % 1000)" } }, key = { "device", "at" } })
  db:define("doc", { aggregate = "docs", columns = {
    { "id", "TEXT PRIMARY KEY" }, { "body", "TEXT" }, { "n", "NUMERIC DEFAULT 3.0" } } })
  -- a key column compared under another collation is refused
  expect_error("invalid_argument", db.define, db, "bad", { columns = {
    { "id", "TEXT PRIMARY KEY COLLATE NOCASE" } } })
end

local function workload(db, rotate)
  define(db)
  local auto, odd
  -- creates: auto key and DEFAULTs filled in; NUMERIC given text; REAL into
  -- INTEGER; text into BLOB-affinity columns; NULL; metadata of all shapes
  db:transaction("shop", function(tx)
    auto = tx:create("item", { name = "teapot", price = "12" })
    tx:create("item", { id = 10, name = "cup", price = "3.50", qty = 4, photo = "\0\1PNG\r\n", extra = "text" })
    odd = tx:create("item", { name = "odd", price = "abc", tag = NULL, qty = 2.0, photo = NULL, extra = 7 })
  end, { metadata = { user = "alice", tags = { "a", "b" }, urgent = true, ["ключ"] = "значение ✓",
    empty = "", none = {} } })
  assert(auto == 1 and odd == 11, "auto keys " .. tostring(auto) .. " " .. tostring(odd))
  -- no metadata at all
  db:transaction("shop", function(tx)
    tx:create_items("line", { { item_id = 1, line = 1, qty = 1, note = "x" }, { item_id = 10, line = 1, qty = 4 },
      { item_id = 10, line = 2, qty = "5", note = "" } })
  end)
  -- booleans, NaN, huge and negative zero reals, a one-byte NUL blob
  db:transaction("flags", function(tx)
    tx:create("flag", { owner = "ann", name = "dark", on = true, score = 0 / 0, data = "\0", label = "l1" })
    tx:create("flag", { owner = "ann", name = "beta", on = false, score = 1e300, weight = -0.0, label = "l2" })
    tx:create("flag", { owner = "bob", name = "dark", score = -2.5, data = "", on = NULL })
    tx:create("flag", { owner = "Ann", name = "dark", score = math.mininteger, weight = math.maxinteger })
  end, { metadata = { who = { "x", "y", "z" } } })
  -- updates with masks and nulls; key given as text for an INTEGER key column
  db:transaction("shop", function(tx)
    tx:update("item", { id = 1, price = "7.25", qty = 3, name = "ignored" }, { "price", "qty" }, { "tag" })
    tx:update("line", { item_id = 10, line = "2", note = "changed", qty = 99 }, { "note" })
    tx:update("item", { id = 10, name = "mug" }, { "name" }, { "photo", "extra" })
    tx:update("item", { id = odd }, nil, { "price" })
  end, { metadata = { user = "bob", reason = "edit" } })
  db:transaction("flags", function(tx)
    tx:update("flag", { owner = "ann", name = "dark", on = false }, { "on" }, { "score" })
    tx:delete("flag", { owner = "bob", name = "dark" })
  end, { metadata = { user = "bob" } })
  db:transaction("shop", function(tx)
    tx:delete_items("line", { { item_id = 1, line = 1 }, { item_id = "10", line = 1 } })
    tx:delete("item", { id = odd })
  end, { metadata = { user = "carol", reason = "cleanup" } })
  -- low level: leaves the live tables as they are when replayed (an update
  -- to the current value, a create then a delete; a boolean as given)
  db:begin()
  local lowlevel = db:write_entry { aggregate = "shop", ticket = db:ticket("shop"),
    metadata = { source = "lowlevel", imported = true },
    ops = {
      { type = "item", op = "update", row = { id = 10, name = "mug", qty = 0 }, mask = { "name" } },
      { type = "line", op = "create", row = { item_id = 99, line = 1, qty = true, note = "tmp" } },
      { type = "line", op = "delete", row = { item_id = 99, line = 1 } },
    } }
  db:commit()
  if rotate then db:rotate_key() end
  -- two entries in one transaction
  db:transaction("docs", function(tx)
    tx:create("doc", { id = "d1", body = "日本語 ✓", n = "12.0" })
    tx:entry { part = "1" }
    tx:create("doc", { id = "d2", body = NULL })
    tx:update("doc", { id = "d1", n = "x" }, { "n" })
  end, { metadata = { part = "2" } })
  -- many small entries: the derived tables catch up in bulk on the way
  for i = 1, 300 do
    local dev = "dev" .. (i % 3)
    db:transaction("sensors", function(tx)
      tx:create("reading", { device = dev, at = i, value = i * 0.5, raw = tostring(i) })
      if i % 10 == 0 then
        tx:update("reading", { device = "dev" .. ((i - 1) % 3), at = tostring(i - 1), value = -i }, { "value" },
          { "raw" })
      end
      if i % 25 == 0 then tx:delete("reading", { device = "dev" .. ((i - 2) % 3), at = i - 2 }) end
    end, { metadata = { device = dev, n = tostring(i), tag = (i % 7 == 0) and { "seven", "x" } or nil } })
  end
  db:transaction("shop", function(tx)
    tx:create("item", { id = -5, name = "neg", price = 1e-3, qty = math.mininteger })
    tx:update("item", { id = 1, price = 8 }, { "price" })
  end, { metadata = { user = "alice" } })
  return lowlevel
end

-- Writes NAME.given: the ids of the entries written with write_entry, whose
-- rows are as given rather than as stored (reader.py --given).
local function given(name, ids)
  local f = assert(io.open(path(name .. ".given"), "w"))
  f:write(table.concat(ids, ","), "\n")
  f:close()
end

if mode == "lag" then
  oplog.keygen(path("lag.key"))
  local db = oplog.open(path("lag.db"), { key_file = path("lag.key"), sync = "normal" })
  given("lag.db", { workload(db, true) })
  local o = db:origin()
  assert(o.seq > 300)
  os.exit(0, false) -- no close: the derived tables stay behind the newest entries
end

-- encrypted, with a rotation and, at the end, a rekey
oplog.keygen(path("enc.key"))
oplog.keygen(path("enc2.key"))
do
  local db <close> = oplog.open(path("enc.db"), { key_file = path("enc.key"), sync = "normal" })
  given("enc.db", { workload(db, true) })
  db:rekey { key_file = path("enc2.key") }
  db:transaction("docs", function(tx) tx:create("doc", { id = "after-rekey", body = "new key" }) end,
    { metadata = { user = "admin" } })
end
do
  local db <close> = oplog.open(path("plain.db"), { encryption = false, sync = "normal" })
  given("plain.db", { workload(db, false) })
end
do
  local db <close> = oplog.open(path("pass.db"), { passphrase = "format test", kdf = { ops = 2, mem = 8 << 20 }, sync = "normal" })
  given("pass.db", { workload(db, true) })
end

-- format 1: the writable open with the key migrates; new entries follow
for _, f in ipairs { { "v1-encrypted.db", { key_file = path("v1.key") } }, { "v1-plain.db", { encryption = false } } } do
  local db <close> = oplog.open(path(f[1]), f[2])
  assert(db:head().id == 14, f[1] .. " was not the 14-entry fixture")
  db:transaction("ev", function(tx)
    tx:create("ev", { n = "8", note = "after migration" })
    tx:update("ev", { id = 1, note = "updated" }, { "note" }, { "n" })
  end, { metadata = { user = "dave", k = true } })
  db:transaction("users", function(tx)
    tx:create("member", { org = "new", uid = 7, role = "x" })
    tx:delete("user", { id = "u1" })
  end)
  given(f[1], {})
  local o = db:origin()
  assert(o.seq == 16 and o.clock == 16, "after migration: seq " .. o.seq .. " clock " .. o.clock)
end
print("workload written to " .. dir)
