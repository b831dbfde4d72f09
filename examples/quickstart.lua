-- quickstart.lua: oplog in one page.
--
--   oplog run examples/quickstart.lua [DIR]
--   lua5.4 examples/quickstart.lua [DIR]      (oplog's Lua module on LUA_PATH/LUA_CPATH)
--
-- Creates a key and a log (in DIR, kept, or in a temporary directory,
-- removed), records a small shop's orders in transactions, reads the log
-- back, rebuilds the tables from it and verifies it. Every step checks its
-- result, so the script fails loudly if something is wrong.
local oplog = require "oplog"

local keep = arg and arg[1]
local dir = keep
if dir then
  assert(os.execute("mkdir -p '" .. dir .. "'"), "cannot create " .. dir)
else
  local p = assert(io.popen("mktemp -d"))
  dir = assert(p:read("l"), "mktemp -d failed")
  p:close()
end
local function step(fmt, ...) print(string.format(fmt, ...)) end

-- 1. A root key. Everything written is encrypted with data keys that are
--    themselves encrypted with this key: keep it safe, and apart from the log.
local keyfile, path = dir .. "/shop.key", dir .. "/shop.oplog"
oplog.keygen(keyfile)
step("1. new root key in %s (64 hex characters, mode 0600)", keyfile)

-- 2. Open (create) the log and define two row types in one aggregate.
--    An aggregate is a group of tables that change together; each type is
--    a live SQLite table that the log keeps in step with.
local db <close> = oplog.open(path, { key_file = keyfile })
db:define("order", {
  aggregate = "orders",
  columns = { { "id", "INTEGER PRIMARY KEY" }, { "customer", "TEXT NOT NULL" },
    { "status", "TEXT NOT NULL" }, { "note", "TEXT" } },
})
db:define("order_line", {
  aggregate = "orders",
  columns = { { "order_id", "INTEGER NOT NULL" }, { "line", "INTEGER NOT NULL" },
    { "item", "TEXT NOT NULL" }, { "qty", "INTEGER NOT NULL" } },
  key = { "order_id", "line" }, -- a composite key: the live table gets PRIMARY KEY (order_id, line)
})
step("2. opened %s; types 'order' and 'order_line' in aggregate 'orders'", path)

-- 3. Write in transactions. Each transaction changes the live tables and
--    appends ONE log entry holding all its operations, with metadata.
local id1 = db:transaction("orders", function(tx)
  tx:create("order", { id = 1, customer = "alice", status = "new", note = "gift wrap" })
  tx:create_items("order_line", {
    { order_id = 1, line = 1, item = "teapot", qty = 1 },
    { order_id = 1, line = 2, item = "cup", qty = 4 },
  })
end, { metadata = { user = "alice", channel = "web" } })
step("3. entry %d: alice ordered a teapot and 4 cups", id1)

local id2 = db:transaction("orders", function(tx)
  -- update: the key selects the row, the mask lists the columns to set,
  -- the last list the columns to set to NULL
  tx:update("order", { id = 1, status = "paid" }, { "status" }, { "note" })
end, { metadata = { user = "alice", reason = "payment" } })
step("   entry %d: order 1 paid (status set, note cleared)", id2)

local id3 = db:transaction("orders", function(tx)
  tx:create("order", { id = 2, customer = "bob", status = "new" })
  tx:create("order_line", { order_id = 2, line = 1, item = "kettle", qty = 1 })
  tx:delete("order_line", { order_id = 1, line = 2 })
end, { metadata = { user = "clerk", ticket = { "T-7", "T-9" } } })
step("   entry %d: bob ordered a kettle; a clerk removed alice's cups", id3)
assert(id1 < id2 and id2 < id3, "entry ids grow")

-- A failing transaction leaves nothing behind: no row, no entry.
local ok, err = pcall(db.transaction, db, "orders", function(tx)
  tx:create("order", { id = 3, customer = "carol", status = "new" })
  tx:create("order", { id = 1, customer = "mallory", status = "new" }) -- id 1 exists
end)
assert(not ok and err.code == "constraint", "duplicate key must fail")
assert(db:head().id == id3, "the failed transaction wrote no entry")
step("   a transaction that failed (%s) was rolled back whole: still %d entries", err.code, id3)

-- 4. Read the log back, decrypted, and query it by metadata.
step("4. the log:")
local n = 0
for e in db:entries() do
  n = n + 1
  local kinds = {}
  for _, op in ipairs(e.ops) do kinds[#kinds + 1] = op.op .. " " .. op.type end
  step("   #%d %s by %s: %s", e.id, e.aggregate, e.metadata.user[1], table.concat(kinds, ", "))
end
assert(n == 3, "three entries")
local first = assert(db:entry(id1))
assert(#first.ops == 3 and first.ops[3].row.item == "cup", "entry 1 holds all 3 operations")
local by_alice = 0
for _ in db:entries({ metadata = { user = "alice" } }) do by_alice = by_alice + 1 end
assert(by_alice == 2, "two entries by alice")
step("   %d of them carry user=alice; the ticket of 'orders' is at version %d", by_alice,
  db:ticket("orders").version)

-- 5. Replay: rebuild the tables from the log alone (here: order_replay and
--    order_line_replay in the same file; `into = "other.db"` makes a replica).
local r = db:replay({ suffix = "_replay" })
assert(r.entries == 3 and r.ops == 7, "replayed 3 entries, 7 operations")
step("5. replayed %d entries (%d operations) into order_replay, order_line_replay",
  r.entries, r.ops)

-- 6. Verify: the hash chain links every entry to the one before, so any
--    change or removal shows; with the key every entry is decrypted too, and
--    replay = true compares a fresh replay with the live tables.
local report = db:verify({ replay = true })
assert(report.ok and report.entries == 3, "the log verifies")
local head = db:head()
step("6. verified %d entries: ok. Head: entry %d, hash %s...", report.entries, head.id,
  head.hash:sub(1, 16))

db:close()
if keep then
  step("\nKept in %s. Try:\n  oplog dump %s --key-file %s\n  oplog verify %s", dir, path,
    keyfile, path)
else
  os.execute("rm -rf '" .. dir .. "'")
end
step("quickstart: all checks passed")
