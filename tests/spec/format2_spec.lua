-- What format 2 adds: rows logged as the live table stored them, each
-- entry's origin, seq and clock, metadata without NUL bytes.
local oplog = require "oplog"
local S = require "support"
local testing = S.testing

-- Runs sql on the file at path with the sqlite3 command-line tool; returns
-- its output (rows as "a|b|c" lines).
local function sql(path, query)
  local q = "'" .. query:gsub("'", "'\\''") .. "'"
  local p = assert(io.popen("sqlite3 -bail '" .. path .. "' " .. q .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  assert(ok, "sqlite3 failed: " .. out)
  return out
end

-- Writes the entries of the issue's example: a DEFAULT the log cannot
-- guess, and a NUMERIC column given text.
local EV = { columns = { { "id", "INTEGER PRIMARY KEY" }, { "at", "INTEGER DEFAULT (random())" },
  { "n", "NUMERIC" } } }

describe("format 2: the log holds rows as stored", function()
  after_each(testing.cleanup)

  it("a DEFAULT (random()) and NUMERIC affinity: replay and replicas equal the live rows", function()
    local db, path = testing.open_temp()
    db:define("ev", EV)
    db:transaction("ev", function(tx) tx:create("ev", { n = "7" }) end)
    db:transaction("ev", function(tx)
      tx:create("ev", { n = "7.5" })
      tx:create("ev", { id = 10, n = "x7" })
    end)
    assert.is_true(db:verify { replay = true }.ok)

    local live = sql(path, "SELECT id, at, typeof(at), n, typeof(n) FROM ev ORDER BY id")
    local lines = {}
    for line in live:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.equal(3, #lines)
    assert.truthy(lines[1]:match("^1|%-?%d+|integer|7|integer$"), lines[1])
    assert.truthy(lines[2]:match("^2|%-?%d+|integer|7%.5|real$"), lines[2])
    assert.truthy(lines[3]:match("^10|%-?%d+|integer|x7|text$"), lines[3])

    -- the logged rows carry the stored values and storage classes
    local function class(v)
      return ({ integer = "integer", float = "real" })[math.type(v)] or type(v) == "string" and "text"
    end
    local logged = {}
    for e in db:entries() do
      for _, op in ipairs(e.ops) do
        local r = op.row
        logged[#logged + 1] = string.format("%s|%s|%s|%s|%s", r.id, r.at, class(r.at), r.n, class(r.n))
      end
    end
    local row1 = db:entry(1).ops[1].row
    assert.equal(7, row1.n)
    assert.equal("integer", math.type(row1.n))
    assert.equal(1, row1.id)
    assert.equal("integer", math.type(row1.at))
    assert.equal(string.format("1|%d|integer|7|integer", row1.at), lines[1]) -- at: the live value
    assert.same(lines, logged)

    -- a replica file has exactly the live rows (random() is not evaluated again)
    local replica = testing.tmpname(".replica")
    assert.same({ entries = 2, ops = 3 }, db:replay { into = replica })
    assert.equal(live, sql(replica, "SELECT id, at, typeof(at), n, typeof(n) FROM ev ORDER BY id"))
    -- and so do tables replayed next to the live ones
    assert.same({ entries = 2, ops = 3 }, db:replay { suffix = "_r" })
    assert.equal(live, sql(path, "SELECT id, at, typeof(at), n, typeof(n) FROM ev_r ORDER BY id"))
  end)

  it("an update logs the key and the stored values of its mask columns", function()
    local db = testing.open_temp()
    db:define("m", { aggregate = "ms", columns = { { "id", "INTEGER PRIMARY KEY" }, { "n", "NUMERIC" },
      { "i", "INTEGER" }, { "t", "TEXT" }, { "other", "TEXT" } } })
    db:transaction("ms", function(tx) tx:create("m", { id = 1, n = 1, i = 1, t = "a", other = "o" }) end)
    local id = db:transaction("ms", function(tx)
      tx:update("m", { id = 1, n = "3.0", i = "12", t = 5, other = "given, not masked" },
        { "n", "i", "t" }, {})
      tx:update("m", { id = 1, n = "4.5" }, { "n" }, { "other" })
    end)
    local ops = db:entry(id).ops
    assert.same({ id = 1, n = 3, i = 12, t = "5" }, ops[1].row)
    assert.equal("integer", math.type(ops[1].row.n))
    assert.equal("integer", math.type(ops[1].row.i))
    assert.same({ "n", "i", "t" }, ops[1].mask)
    assert.same({ id = 1, n = 4.5 }, ops[2].row)
    assert.equal("float", math.type(ops[2].row.n))
    assert.same({ "other" }, ops[2].nulls)
    assert.is_true(db:verify { replay = true }.ok)
  end)

  it("booleans given to a BOOLEAN column are logged as INTEGER 1 and 0", function()
    local db, path = testing.open_temp()
    db:define("f", { aggregate = "fs", columns = { { "id", "INTEGER PRIMARY KEY" }, { "on", "BOOLEAN" } } })
    db:transaction("fs", function(tx)
      tx:create("f", { id = 1, on = true })
      tx:create("f", { id = 2, on = false })
      tx:update("f", { id = 1, on = false }, { "on" })
    end)
    local ops = db:entry(1).ops
    assert.same({ id = 1, on = 1 }, ops[1].row)
    assert.same({ id = 2, on = 0 }, ops[2].row)
    assert.same({ id = 1, on = 0 }, ops[3].row)
    for _, op in ipairs(ops) do assert.equal("integer", math.type(op.row.on)) end
    assert.equal("1|0|integer\n2|0|integer\n", sql(path, "SELECT id, \"on\", typeof(\"on\") FROM f ORDER BY id"))
    assert.is_true(db:verify { replay = true }.ok)
  end)

  it("a REAL column logs floats, also for integral values (create, update, DEFAULT)", function()
    local db, path = testing.open_temp()
    db:define("r", { aggregate = "rs", columns = { { "id", "INTEGER PRIMARY KEY" }, { "x", "REAL" },
      { "d", "REAL DEFAULT 0" } } })
    db:transaction("rs", function(tx)
      tx:create("r", { id = 1, x = 2.0 })
      tx:create("r", { id = 2, x = 3 }) -- an integer becomes REAL in the table
      tx:update("r", { id = 1, x = 4.0 }, { "x" })
    end)
    assert.equal("1|4.0|real|0.0|real\n2|3.0|real|0.0|real\n",
      sql(path, "SELECT id, x, typeof(x), d, typeof(d) FROM r ORDER BY id"))
    local ops = db:entry(1).ops
    assert.equal("float", math.type(ops[1].row.x))
    assert.equal(2.0, ops[1].row.x)
    assert.equal("float", math.type(ops[1].row.d))
    assert.equal(0.0, ops[1].row.d)
    assert.equal("float", math.type(ops[2].row.x))
    assert.equal(3.0, ops[2].row.x)
    assert.equal("float", math.type(ops[3].row.x))
    assert.equal(4.0, ops[3].row.x)
  end)

  it("write_entry logs the caller's rows as given", function()
    local db = S.db()
    db:begin()
    db:write_entry { aggregate = "users", ticket = db:ticket("users"),
      ops = { { type = "user", op = "create", row = { id = 1, name = "n", active = true } } } }
    db:commit()
    assert.same({ id = 1, name = "n", active = true }, db:entry(1).ops[1].row)
  end)
end)

describe("format 2: origin, seq and clock", function()
  after_each(testing.cleanup)

  it("db:origin() names the file's origin; its entries count seq and clock from 1", function()
    local db, path = S.db()
    local o = db:origin()
    assert.equal(64, #o.id)
    assert.truthy(o.id:match("^[0-9a-f]+$"), o.id)
    assert.not_equal(string.rep("0", 64), o.id)
    assert.same({ id = o.id, seq = 0, clock = 0 }, o)

    S.add_user(db, 1)
    db:transaction("notes", function(tx)
      tx:create("note", { id = 1 })
      tx:entry()
      tx:create("note", { id = 2 })
    end)
    db:begin()
    db:write_entry { aggregate = "users", ticket = db:ticket("users"),
      ops = { { type = "user", op = "create", row = { id = 9, name = "low" } } } }
    db:commit()
    pcall(db.transaction, db, "users", function(tx) -- rolled back: no seq, no clock
      tx:create("user", { id = 2, name = "x" })
      error("no")
    end)
    S.add_user(db, 3)

    local list = S.collect(db)
    assert.equal(5, #list)
    for i, e in ipairs(list) do
      assert.equal(o.id, e.origin)
      assert.equal(i, e.id)
      assert.equal(i, e.seq)
      assert.equal(i, e.clock)
      assert.equal("integer", math.type(e.seq))
      assert.equal("integer", math.type(e.clock))
      assert.same(e, db:entry(e.id))
    end
    local rev = S.collect(db, { reverse = true, limit = 1 })[1]
    assert.equal(5, rev.seq)
    assert.same({ id = o.id, seq = 5, clock = 5 }, db:origin())
    assert.equal(5, db:head().id)

    -- the origin is the file's: the same through another handle, after
    -- reopening, read-only and without the key
    assert.same(db:origin(), testing.reopen(path):origin())
    db:close()
    assert.same({ id = o.id, seq = 5, clock = 5 }, testing.reopen(path, { readonly = true }):origin())
    local keyless = oplog.open(path)
    assert.same({ id = o.id, seq = 5, clock = 5 }, keyless:origin())
    keyless:close()
    local again = testing.reopen(path)
    S.add_user(again, 4)
    local e = again:entry(6)
    assert.equal(o.id, e.origin)
    assert.equal(6, e.seq)
    assert.equal(6, e.clock)
  end)

  it("every file has its own origin", function()
    local a = testing.open_temp()
    local b = testing.open_temp { encryption = false }
    local c = testing.open_temp()
    assert.not_equal(a:origin().id, b:origin().id)
    assert.not_equal(a:origin().id, c:origin().id)
    assert.not_equal(b:origin().id, c:origin().id)
    assert.truthy(b:origin().id:match("^[0-9a-f]+$"))
  end)

  it("origin raises closed on a closed handle", function()
    local db = testing.open_temp()
    db:close()
    S.err("closed", db.origin, db)
  end)
end)

describe("format 2: metadata keys and values without NUL bytes", function()
  after_each(testing.cleanup)

  local BAD = {
    { { ["k\0z"] = "v" }, "key contains a NUL byte" },
    { { k = "v\0w" }, "value contains a NUL byte" },
    { { k = { "a", "b\0c" } }, "value contains a NUL byte" },
    { { k = { "\0" } }, "value contains a NUL byte" },
  }

  -- Nothing was written: no entry, no ticket redeemed, no metadata row in
  -- the file once the handle is closed.
  local function assert_nothing_written(db, path)
    assert.equal(0, db:head().id)
    assert.same({ id = db:origin().id, seq = 0, clock = 0 }, db:origin())
    assert.equal(1, db:ticket("users").version)
    assert.same({}, S.collect(db))
    db:close()
    assert.equal("0|0|1\n", sql(path, "SELECT (SELECT count(*) FROM oplog_entries), "
      .. "(SELECT count(*) FROM oplog_metadata), (SELECT version FROM oplog_ticket WHERE name = 'users')"))
  end

  it("db:transaction refuses them before running fn", function()
    local db, path = S.db()
    local ran = false
    for _, c in ipairs(BAD) do
      local e = S.err("invalid_argument", db.transaction, db, "users", function(tx)
        ran = true
        tx:create("user", { id = 1, name = "a" })
      end, { metadata = c[1] })
      assert.truthy(e.message:find(c[2], 1, true), e.message)
      assert.truthy(e.message:find("bad argument #3 to 'transaction'", 1, true), e.message)
    end
    assert.is_false(ran)
    assert.is_false(S.exists(db, "user", 1))
    assert_nothing_written(db, path)
  end)

  it("db:transaction refuses them when fn put them in opts.metadata, and rolls back", function()
    local db, path = S.db()
    for _, c in ipairs(BAD) do
      local opts = { metadata = {} }
      local e = S.err("invalid_argument", db.transaction, db, "users", function(tx)
        tx:create("user", { id = 1, name = "a" })
        opts.metadata = c[1]
      end, opts)
      assert.truthy(e.message:find(c[2], 1, true), e.message)
    end
    assert.is_false(S.exists(db, "user", 1))
    assert_nothing_written(db, path)
  end)

  it("tx:entry refuses them and writes no entry", function()
    local db, path = S.db()
    for _, c in ipairs(BAD) do
      -- uncaught: the transaction fails as a whole
      local e = S.err("invalid_argument", db.transaction, db, "users", function(tx)
        tx:create("user", { id = 1, name = "a" })
        tx:entry(c[1])
      end)
      assert.truthy(e.message:find(c[2], 1, true), e.message)
      assert.truthy(e.message:find("bad argument #1 to 'entry'", 1, true), e.message)
    end
    assert.is_false(S.exists(db, "user", 1))
    -- caught inside fn: that call wrote nothing; the operations stay queued
    -- for the transaction's own entry
    local id = db:transaction("users", function(tx)
      tx:create("user", { id = 1, name = "a" })
      for _, c in ipairs(BAD) do S.err("invalid_argument", tx.entry, tx, c[1]) end
    end)
    assert.equal(1, id)
    assert.equal(1, db:head().id)
    assert.same({}, db:entry(1).metadata)
    assert.equal(1, #db:entry(1).ops)
    db:close()
    assert.equal("1|0\n", sql(path, "SELECT (SELECT count(*) FROM oplog_entries), "
      .. "(SELECT count(*) FROM oplog_metadata)"))
  end)

  it("db:write_entry refuses them and writes nothing", function()
    local db, path = S.db()
    local v = db:ticket("users").version
    db:begin()
    for _, c in ipairs(BAD) do
      local e = S.err("invalid_argument", db.write_entry, db, { aggregate = "users", ticket = v,
        metadata = c[1], ops = { { type = "user", op = "create", row = { id = 1, name = "a" } } } })
      assert.truthy(e.message:find(c[2], 1, true), e.message)
      assert.truthy(e.message:find("bad argument #1 to 'write_entry'", 1, true), e.message)
    end
    db:commit()
    assert_nothing_written(db, path)
  end)

  it("an entries filter refuses them", function()
    local db = S.db()
    S.add_user(db, 1, "a", { k = "v" })
    for _, c in ipairs(BAD) do
      local e = S.err("invalid_argument", db.entries, db, { metadata = c[1] })
      assert.truthy(e.message:find(c[2], 1, true), e.message)
      assert.truthy(e.message:find("bad argument #1 to 'entries'", 1, true), e.message)
    end
    -- what the NUL would have cut the strings to still matches as usual
    assert.same({ 1 }, S.ids(S.collect(db, { metadata = { k = "v" } })))
  end)
end)

describe("format 2: derived tables", function()
  after_each(testing.cleanup)

  it("after close, oplog_metadata, oplog_ticket and oplog_index cover every entry", function()
    local db, path = S.db()
    -- (one key per entry: the order of a table's keys is Lua's)
    S.add_user(db, 1, "a", { tags = { "x", "y" } })
    db:transaction("notes", function(tx) tx:create("note", { id = 1 }) end, { metadata = { flag = true } })
    S.add_user(db, 2, "b", { who = "alice" })
    db:close()
    assert.equal("1|1|tags|'x'\n1|2|tags|'y'\n2|1|flag|NULL\n3|1|who|'alice'\n",
      sql(path, "SELECT entry_id, position, key, quote(value) FROM oplog_metadata ORDER BY entry_id, position"))
    assert.equal("notes|2\nusers|3\n", sql(path, "SELECT name, version FROM oplog_ticket ORDER BY name"))
    assert.equal("1|1|users\n2|2|notes\n3|3|users\n",
      sql(path, "SELECT entry_id, seq, aggregate_name FROM oplog_index ORDER BY entry_id"))
    assert.equal("1|1|1|users\n2|2|2|notes\n3|3|3|users\n",
      sql(path, "SELECT id, seq, clock, aggregate_name FROM oplog_entries ORDER BY id"))
    local again = testing.reopen(path)
    assert.is_true(again:verify().ok)
  end)

  it("a derived row that disagrees with the entries is index_mismatch", function()
    local db, path = S.db()
    S.add_user(db, 1, "a", { who = "alice" })
    S.add_user(db, 2, "b", { who = "bob" })
    db:close()
    sql(path, "DROP TRIGGER oplog_metadata_no_update; "
      .. "UPDATE oplog_metadata SET value = 'mallory' WHERE entry_id = 2")
    local again = testing.reopen(path)
    local r = again:verify()
    assert.is_false(r.ok)
    assert.equal(2, r.entries)
    assert.equal(1, #r.problems)
    assert.equal("index_mismatch", r.problems[1].kind)
    assert.equal(2, r.problems[1].id)
    assert.truthy(r.problems[1].detail:find("oplog_metadata", 1, true), r.problems[1].detail)
    -- the entry itself is intact and still reads as written
    assert.same({ who = { "bob" } }, again:entry(2).metadata)
  end)
end)
