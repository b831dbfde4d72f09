-- Failures leave nothing behind, and data that does not decode is refused,
-- never read cut short (the promises tests/mutation found unguarded).
local oplog = require "oplog"
local S = require "support"
local testing = S.testing

-- Runs SQL on path with the sqlite3 command (the library's triggers and
-- checks do not apply: this is an attacker, a crash or another program).
local function sqlite(path, sql)
  local p = assert(io.popen("sqlite3 '" .. path .. "' \"" .. sql .. "\" 2>&1"))
  local out = p:read("a")
  assert(p:close(), "sqlite3: " .. out)
  return out
end

describe("a failed write_entry", function()
  after_each(testing.cleanup)

  it("keeps nothing of itself, and the caller's transaction goes on", function()
    local db, path = S.db({ encryption = false })
    db:close()
    -- A forged derived row at (origin 1, seq 256) makes the catch-up that
    -- runs inside the 256th entry's write fail after its row was inserted.
    sqlite(path, "INSERT INTO oplog_index (entry_id, origin, seq, clock, aggregate_name) VALUES (1000000, 1, 256, 256, 'users')")
    db = oplog.open(path, { encryption = false })
    db:begin()
    local v = db:ticket("users").version
    for i = 1, 255 do
      db:write_entry { aggregate = "users", ticket = v + i - 1, ops = { { type = "user", op = "create", row = { id = i, name = "u" } } } }
    end
    S.err("constraint", db.write_entry, db,
      { aggregate = "users", ticket = v + 255, ops = { { type = "user", op = "create", row = { id = 256, name = "u" } } } })
    db:commit()
    assert.equal("255\n", sqlite(path, "SELECT count(*) FROM oplog_entries"))
    assert.equal(v + 255, db:ticket("users").version)
    assert.same({ id = 255, seq = 255 }, { id = db:head().id, seq = db:origin().seq })
    -- the next entry chains on from entry 255
    sqlite(path, "DROP TRIGGER oplog_index_no_delete; DELETE FROM oplog_index WHERE entry_id = 1000000")
    db:begin()
    local id = db:write_entry { aggregate = "users", ticket = db:ticket("users").version,
      ops = { { type = "user", op = "create", row = { id = 256, name = "u" } } } }
    db:commit()
    assert.equal(256, id)
    local r = db:verify()
    for _, p in ipairs(r.problems) do
      assert.is_not_true(p.kind == "chain_break" or p.kind == "missing_entry" or p.kind == "hash_mismatch", p.detail)
    end
    db:close()
  end)
end)

describe("a failed define", function()
  after_each(testing.cleanup)

  it("writes nothing and holds no lock", function()
    local db, path = S.db({ encryption = false })
    db:close()
    sqlite(path, "CREATE TABLE t (x TEXT)")
    db = oplog.open(path, { encryption = false })
    S.err("type_conflict", db.define, db, "thing", { table = "t", aggregate = "things",
      columns = { { "id", "INTEGER PRIMARY KEY" }, { "name", "TEXT" } } })
    assert.is_nil(db:types().thing)
    -- another handle can write at once: the failed define left no transaction open
    local other = oplog.open(path, { encryption = false, busy_timeout = 0 })
    other:define("gadget", { columns = { { "id", "INTEGER PRIMARY KEY" } } })
    other:close()
    assert.is_nil(db:types().thing)
    assert.is_table(db:types().gadget)
    db:close()
  end)
end)

describe("metadata that does not decode", function()
  after_each(testing.cleanup)

  for _, case in ipairs {
    { "a count larger than the pairs", "CAST(X'03000000' || substr(metadata, 5) AS BLOB)" },
    { "a trailing byte", "CAST(metadata || X'00' AS BLOB)" },
    { "a has_value flag of 2", "CAST(substr(metadata, 1, 12) || X'02' || substr(metadata, 14) AS BLOB)" },
  } do
    it("is corrupt when read, never cut short: " .. case[1], function()
      local db, path = S.db({ encryption = false })
      local id = S.add_user(db, 1, "ann", { user = "alice" })
      db:close()
      -- metadata {user = "alice"}: u32 count, len32 "user", then has_value at byte 13
      sqlite(path, "DROP TRIGGER oplog_entries_no_update; UPDATE oplog_entries SET metadata = " .. case[2]
        .. " WHERE id = " .. id)
      db = oplog.open(path, { encryption = false })
      local e = S.err("corrupt", db.entry, db, id)
      assert.truthy(e.message:find("malformed metadata", 1, true), e.message)
      S.err("corrupt", function() for _ in db:entries() do end end)
      db:close()
    end)
  end

  it("an empty value is a value, not a key alone", function()
    local db, path = S.db({ encryption = false })
    local id = S.add_user(db, 1, "ann", { k = "", f = true })
    local function check(d)
      local e = d:entry(id)
      assert.same({ "" }, e.metadata.k)
      assert.same({}, e.metadata.f)
      assert.same({ id }, S.ids(S.collect(d, { metadata = { k = "" } })))
    end
    check(db) -- above the derived tables
    db:close()
    db = oplog.open(path, { encryption = false })
    check(db) -- through oplog_metadata
    db:close()
  end)
end)
