-- db:transaction and the tx methods.
local oplog = require "oplog"
local S = require "support"
local testing = S.testing

-- What must not change when a transaction fails.
local function snapshot(db)
  local s = db:stats()
  return {
    head = db:head(),
    origin = db:origin(), -- seq and clock do not advance either
    entries = s.entries,
    users_ticket = db:ticket("users").version,
    notes_ticket = db:ticket("notes").version,
    ids = S.ids(S.collect(db)),
    metadata_hits = #S.collect(db, { metadata = { who = "alice" } }),
  }
end

describe("db:transaction", function()
  local db, path
  before_each(function() db, path = S.db() end)
  after_each(testing.cleanup)

  it("writes one entry with every operation in call order", function()
    local id = db:transaction("users", function(tx)
      tx:create("user", { id = 1, name = "ann", email = "ann@x", score = 1.5 })
      tx:create("user", { id = 2, name = "bob" })
      tx:update("user", { id = 1, name = "Ann", score = oplog.null }, { "name" }, { "email" })
      tx:delete("user", { id = 2 })
      tx:create_items("user", { { id = 3, name = "c" }, { id = 4, name = "d" } })
      tx:delete_items("user", { { id = 3 }, { id = 4 } })
    end)
    assert.equal(1, id)
    local e = db:entry(id)
    assert.equal("users", e.aggregate)
    assert.equal(1, e.id)
    local kinds = {}
    for i, op in ipairs(e.ops) do
      kinds[i] = op.op
      assert.equal("user", op.type)
    end
    assert.same({ "create", "create", "update", "delete", "create_items", "create_items",
      "delete_items", "delete_items" }, kinds)
    -- format 2: a create logs every column as stored (NULL for those not given)
    assert.same({ id = 1, name = "ann", email = "ann@x", score = 1.5, avatar = oplog.null,
      active = oplog.null }, e.ops[1].row)
    assert.same({ id = 2, name = "bob", email = oplog.null, score = oplog.null, avatar = oplog.null,
      active = oplog.null }, e.ops[2].row)
    assert.same({ "name" }, e.ops[3].mask)
    assert.same({ "email" }, e.ops[3].nulls)
    -- an update logs the key and its mask columns only (score was given but not masked)
    assert.same({ id = 1, name = "Ann" }, e.ops[3].row)
    assert.same({ id = 2 }, e.ops[4].row)
    assert.same({}, e.ops[1].mask)
    assert.same({}, e.ops[1].nulls)
    assert.same({ id = 3, name = "c", email = oplog.null, score = oplog.null, avatar = oplog.null,
      active = oplog.null }, e.ops[5].row)
    assert.same({ id = 4, name = "d", email = oplog.null, score = oplog.null, avatar = oplog.null,
      active = oplog.null }, e.ops[6].row)
    assert.same({ id = 3 }, e.ops[7].row)
    assert.same({ id = 4 }, e.ops[8].row)
    -- live table: 1 left, 2, 3 and 4 deleted
    assert.is_true(S.exists(db, "user", 1))
    assert.is_false(S.exists(db, "user", 2))
    assert.is_false(S.exists(db, "user", 3))
    assert.is_true(db:verify { replay = true }.ok)
  end)

  it("returns the entry id followed by everything fn returned", function()
    local r = table.pack(db:transaction("users", function(tx)
      tx:create("user", { id = 1, name = "a" })
      return "x", nil, 3
    end))
    assert.equal(4, r.n)
    assert.equal(1, r[1])
    assert.equal("x", r[2])
    assert.is_nil(r[3])
    assert.equal(3, r[4])
  end)

  it("returns nil and writes nothing when fn records no operation", function()
    local before = snapshot(db)
    local r = table.pack(db:transaction("users", function() return "only" end))
    assert.equal(2, r.n)
    assert.is_nil(r[1])
    assert.equal("only", r[2])
    assert.same(before, snapshot(db))
  end)

  it("redeems the aggregate's ticket once per entry", function()
    local v = db:ticket("users").version
    local n = db:ticket("notes").version
    assert.equal(1, v) -- a ticket starts at 1
    assert.equal(1, n)
    S.add_user(db, 1)
    assert.equal(v + 1, db:ticket("users").version)
    S.add_user(db, 2)
    assert.equal(v + 2, db:ticket("users").version)
    assert.equal(n, db:ticket("notes").version) -- another aggregate's ticket stays
    db:transaction("notes", function(tx) tx:create("note", { id = 1 }) end)
    assert.equal(n + 1, db:ticket("notes").version)
    assert.equal(v + 2, db:ticket("users").version)
    -- the versions persist: another handle and a reopened file see the same
    assert.equal(v + 2, testing.reopen(path):ticket("users").version)
    db:close()
    local again = testing.reopen(path)
    assert.equal(v + 2, again:ticket("users").version)
    assert.equal(n + 1, again:ticket("notes").version)
  end)

  describe("tx:entry", function()
    it("writes several entries in one transaction, each with its metadata", function()
      local v = db:ticket("users").version
      local ids = {}
      local last, r = db:transaction("users", function(tx)
        assert.is_nil(tx:entry()) -- nothing queued yet
        tx:create("user", { id = 1, name = "a" })
        tx:create("user", { id = 2, name = "b" })
        ids[1] = tx:entry { batch = "1" }
        tx:create("user", { id = 3, name = "c" })
        ids[2] = tx:entry { batch = { "2", "two" } }
        return "done"
      end, { metadata = { batch = "unused" } })
      assert.same({ 1, 2 }, ids)
      assert.equal(2, last) -- the last entry written
      assert.equal("done", r)
      assert.equal(v + 2, db:ticket("users").version)
      assert.equal(2, #db:entry(1).ops)
      assert.same({ batch = { "1" } }, db:entry(1).metadata)
      assert.same({ batch = { "2", "two" } }, db:entry(2).metadata)
      assert.same({}, S.collect(db, { metadata = { batch = "unused" } }))
    end)

    it("operations after the last tx:entry form the final entry", function()
      local id = db:transaction("users", function(tx)
        tx:create("user", { id = 1, name = "a" })
        tx:entry()
        tx:create("user", { id = 2, name = "b" })
      end, { metadata = { final = true } })
      assert.equal(2, id)
      assert.same({ final = {} }, db:entry(2).metadata)
      assert.same({}, db:entry(1).metadata)
    end)

    it("an error after tx:entry rolls back every entry of the transaction", function()
      local before = snapshot(db)
      assert.has_error(function()
        db:transaction("users", function(tx)
          tx:create("user", { id = 1, name = "a" })
          tx:entry()
          tx:create("user", { id = 2, name = "b" })
          tx:entry()
          error("late")
        end)
      end, "late")
      assert.same(before, snapshot(db))
      assert.is_false(S.exists(db, "user", 1))
    end)

    it("checks its metadata", function()
      local e
      db:transaction("users", function(tx)
        tx:create("user", { id = 1, name = "a" })
        e = S.err("invalid_argument", tx.entry, tx, { k = 1 })
        S.err("invalid_argument", tx.entry, tx, "k")
      end)
      assert.truthy(e.message:find("bad argument #1 to 'entry'", 1, true), e.message)
      assert.equal(1, #db:entry(1).ops)
    end)
  end)

  it("stores metadata: a string, a list, key only (true or {})", function()
    local id = db:transaction("users", function(tx)
      tx:create("user", { id = 1, name = "a" })
    end, { metadata = { who = "alice", tags = { "x", "y" }, flag = true, empty = {} } })
    assert.same({ who = { "alice" }, tags = { "x", "y" }, flag = {}, empty = {} }, db:entry(id).metadata)
    assert.same({}, db:entry(S.add_user(db, 2)).metadata)
  end)

  it("reads opts.metadata again after fn, so fn can fill it in", function()
    local opts = { metadata = {} }
    local id = db:transaction("users", function(tx)
      local rowid = tx:create("user", { name = "auto" })
      opts.metadata.user = tostring(rowid)
    end, opts)
    assert.same({ user = { "1" } }, db:entry(id).metadata)
  end)

  it("rejects bad metadata before doing anything", function()
    local before = snapshot(db)
    local ran = false
    local cases = {
      { { metadata = { who = 1 } }, "key 'who'" },
      { { metadata = { who = false } }, "key 'who'" },
      { { metadata = { who = { "a", 2 } } }, "value #2" },
      { { metadata = { [1] = "x" } }, "keys must be strings" },
      { { metadata = "who" }, "field 'metadata': table expected" },
      { { meta = {} }, "unknown option 'meta'" },
    }
    for _, c in ipairs(cases) do
      local e = S.err("invalid_argument", db.transaction, db, "users", function(tx)
        ran = true
        tx:create("user", { id = 9, name = "x" })
      end, c[1])
      assert.truthy(e.message:find(c[2], 1, true), e.message)
    end
    assert.is_false(ran)
    assert.same(before, snapshot(db))
  end)

  it("rolls back when fn breaks the metadata it left for the commit", function()
    local before = snapshot(db)
    local opts = { metadata = {} }
    S.err("invalid_argument", db.transaction, db, "users", function(tx)
      tx:create("user", { id = 9, name = "x" })
      opts.metadata.bad = 42
    end, opts)
    assert.same(before, snapshot(db))
    assert.is_false(S.exists(db, "user", 9))
  end)

  describe("on error", function()
    before_each(function()
      S.add_user(db, 1, "ann", { who = "alice" })
      db:transaction("notes", function(tx) tx:create("note", { id = 1, body = "n" }) end)
    end)

    it("re-raises the user's error value itself and rolls everything back", function()
      local before = snapshot(db)
      local boom = setmetatable({}, { __tostring = function() return "boom" end })
      local ok, e = pcall(db.transaction, db, "users", function(tx)
        tx:create("user", { id = 2, name = "bob" })
        tx:update("user", { id = 1, name = "changed" }, { "name" })
        tx:delete("user", { id = 1 })
        error(boom)
      end, { metadata = { who = "alice" } })
      assert.is_false(ok)
      assert.equal(boom, e)
      assert.same(before, snapshot(db))
      assert.is_true(S.exists(db, "user", 1))
      assert.is_false(S.exists(db, "user", 2))
      assert.is_true(db:verify { replay = true }.ok)
    end)

    it("keeps string errors as they were", function()
      local ok, e = pcall(db.transaction, db, "users", function() error("plain", 0) end)
      assert.is_false(ok)
      assert.equal("plain", e)
      local ok2, e2 = pcall(db.transaction, db, "users", function() error() end)
      assert.is_false(ok2)
      assert.is_nil(e2)
    end)

    it("rolls back on a constraint violation in a live table", function()
      local before = snapshot(db)
      local e = S.err("constraint", db.transaction, db, "users", function(tx)
        tx:create("user", { id = 2, name = "bob" })
        tx:create("user", { id = 1, name = "dup" })
      end)
      assert.truthy(e.message:find("UNIQUE", 1, true), e.message)
      assert.same(before, snapshot(db))
      assert.is_false(S.exists(db, "user", 2))
      S.err("constraint", db.transaction, db, "users", function(tx)
        tx:create("user", { id = 5 }) -- name is NOT NULL
      end)
      assert.same(before, snapshot(db))
    end)

    it("rolls back earlier items when a later item fails", function()
      local before = snapshot(db)
      S.err("constraint", db.transaction, db, "users", function(tx)
        tx:create_items("user", { { id = 7, name = "a" }, { id = 8, name = "b" }, { id = 1, name = "dup" } })
      end)
      assert.same(before, snapshot(db))
      assert.is_false(S.exists(db, "user", 7))
    end)

    it("keeps the transaction dead after a library error caught inside fn", function()
      local before = snapshot(db)
      local inner
      local e = S.err("constraint", db.transaction, db, "users", function(tx)
        tx:create("user", { id = 2, name = "bob" })
        local ok, err = pcall(tx.create, tx, "user", { id = 1, name = "dup" })
        assert(not ok and err.code == "constraint")
        inner = S.err("constraint", tx.create, tx, "user", { id = 3, name = "c" })
        return "ignored"
      end)
      assert.truthy(inner.message:find("already rolled back", 1, true), inner.message)
      assert.truthy(e.message:find("UNIQUE", 1, true), e.message)
      assert.same(before, snapshot(db))
      assert.is_false(S.exists(db, "user", 2))
    end)

    it("a binding-level misuse caught inside fn does not end the transaction", function()
      local id = db:transaction("users", function(tx)
        local ok, err = pcall(tx.create, tx, "user", { id = 2, name = {} })
        assert(not ok and err.code == "invalid_argument")
        tx:create("user", { id = 2, name = "ok" })
      end)
      assert.equal(1, #db:entry(id).ops)
    end)

    it("update and delete of a missing row are not_found", function()
      local before = snapshot(db)
      S.err("not_found", db.transaction, db, "users", function(tx)
        tx:update("user", { id = 99, name = "x" }, { "name" })
      end)
      S.err("not_found", db.transaction, db, "users", function(tx)
        tx:delete("user", { id = 99 })
      end)
      S.err("not_found", db.transaction, db, "users", function(tx)
        tx:delete_items("user", { { id = 1 }, { id = 99 } })
      end)
      assert.same(before, snapshot(db))
      assert.is_true(S.exists(db, "user", 1))
    end)
  end)

  it("does not nest: invalid_argument, and the outer transaction goes on", function()
    local id = db:transaction("users", function(tx)
      tx:create("user", { id = 1, name = "a" })
      local e = S.err("invalid_argument", db.transaction, db, "notes", function() end)
      assert.truthy(e.message:find("nest", 1, true), e.message)
      S.err("invalid_argument", db.begin, db)
      tx:create("user", { id = 2, name = "b" })
    end)
    assert.equal(2, #db:entry(id).ops)
  end)

  it("is refused while a low-level transaction is open", function()
    db:begin()
    S.err("invalid_argument", db.transaction, db, "users", function() end)
    db:rollback()
  end)

  it("tx raises closed outside its function", function()
    local saved
    db:transaction("users", function(tx)
      saved = tx
      assert.equal("oplog.tx (open)", tostring(tx))
      tx:create("user", { id = 1, name = "a" })
    end)
    assert.equal("oplog.tx (closed)", tostring(saved))
    for _, m in ipairs { "create", "update", "delete", "create_items", "delete_items", "entry" } do
      local e = S.err("closed", saved[m], saved, "user", { id = 1 }, { "name" })
      assert.truthy(e.message:find("oplog.tx", 1, true))
    end
    -- also after a failed transaction
    pcall(db.transaction, db, "users", function(tx) saved = tx; error("x") end)
    S.err("closed", saved.create, saved, "user", { id = 5, name = "e" })
    assert.is_false(S.exists(db, "user", 5))
  end)

  it("a tx of one handle is not a tx of another", function()
    local saved
    db:transaction("users", function(tx) saved = tx end)
    local e = S.err("invalid_argument", saved.create, db, "user", {})
    assert.truthy(e.message:find("oplog.tx expected", 1, true), e.message)
  end)

  it("closing the db inside fn rolls back and raises closed", function()
    local e = S.err("closed", db.transaction, db, "users", function(tx)
      tx:create("user", { id = 1, name = "a" })
      db:close()
      S.err("closed", tx.create, tx, "user", { id = 2, name = "b" })
    end)
    assert.truthy(#e.message > 0)
    local again = testing.reopen(path)
    assert.equal(0, again:head().id)
  end)

  it("create returns the rowid and logs a key SQLite chose", function()
    local r1, r2
    local id = db:transaction("users", function(tx)
      r1 = tx:create("user", { name = "auto" })
      r2 = tx:create("user", { id = 10, name = "ten" })
    end)
    assert.equal(1, r1)
    assert.equal(10, r2)
    assert.equal(1, db:entry(id).ops[1].row.id)
    assert.is_true(db:verify { replay = true }.ok)
  end)

  describe("in coroutines", function()
    it("fn may yield; the transaction goes on when resumed", function()
      local co = coroutine.wrap(function()
        return db:transaction("users", function(tx)
          tx:create("user", { id = 1, name = "a" })
          local v = coroutine.yield("paused")
          tx:create("user", { id = 2, name = v })
          return "resumed"
        end)
      end)
      assert.equal("paused", co())
      -- meanwhile the handle has a transaction open: no second one
      S.err("invalid_argument", db.transaction, db, "notes", function() end)
      local id, r = co("b")
      assert.equal(1, id)
      assert.equal("resumed", r)
      assert.same({ id = 2, name = "b", email = oplog.null, score = oplog.null, avatar = oplog.null,
        active = oplog.null }, db:entry(1).ops[2].row)
    end)

    it("an error after a yield rolls back", function()
      local co = coroutine.create(function()
        return db:transaction("users", function(tx)
          tx:create("user", { id = 1, name = "a" })
          coroutine.yield()
          error("after yield", 0)
        end)
      end)
      assert.is_true(coroutine.resume(co))
      local ok, e = coroutine.resume(co)
      assert.is_false(ok)
      assert.equal("after yield", e)
      assert.equal(0, db:head().id)
      assert.is_false(S.exists(db, "user", 1))
    end)

    it("a dropped coroutine's transaction is rolled back when collected", function()
      local co = coroutine.wrap(function()
        db:transaction("users", function(tx)
          tx:create("user", { id = 1, name = "a" })
          coroutine.yield()
        end)
      end)
      co()
      co = nil
      collectgarbage()
      collectgarbage()
      S.add_user(db, 2) -- the handle is free again
      assert.is_false(S.exists(db, "user", 1))
      assert.equal(1, db:head().id)
    end)
  end)

  it("accepts a callable table as fn", function()
    local fn = setmetatable({}, { __call = function(_, tx) tx:create("user", { id = 1, name = "a" }) return 7 end })
    local id, v = db:transaction("users", fn)
    assert.equal(1, id)
    assert.equal(7, v)
  end)

  it("rejects operations on a type of another aggregate", function()
    local e = S.err("invalid_argument", db.transaction, db, "users", function(tx)
      tx:create("note", { id = 1 })
    end)
    assert.truthy(e.message:find("notes", 1, true), e.message)
    S.err("invalid_argument", db.transaction, db, "users", function(tx)
      tx:create("nosuchtype", { id = 1 })
    end)
  end)

  describe("misuse raises invalid_argument naming the argument", function()
    local function in_tx(fn)
      local e
      db:transaction("users", function(tx) e = S.err("invalid_argument", fn, tx) end)
      return e
    end

    it("on db:transaction itself", function()
      local e = S.err("invalid_argument", db.transaction, db, 1, function() end)
      assert.equal("bad argument #1 to 'transaction' (string expected, got number)", e.message)
      e = S.err("invalid_argument", db.transaction, db, "users", "fn")
      assert.equal("bad argument #2 to 'transaction' (function expected, got string)", e.message)
      e = S.err("invalid_argument", db.transaction, db, "users", function() end, 5)
      assert.equal("bad argument #3 to 'transaction' (table expected, got number)", e.message)
      S.err("invalid_argument", db.transaction, db, "", function(tx) tx:create("user", {}) end)
    end)

    it("on tx methods", function()
      local cases = {
        { function(tx) tx:create(1, {}) end, "bad argument #1 to 'create' (string expected, got number)" },
        { function(tx) tx:create("user") end, "bad argument #2 to 'create' (table expected, got no value)" },
        { function(tx) tx:create("user", { id = 1, name = function() end }) end,
          "bad argument #2 to 'create' (row: column 'name': function is not a storable value" },
        { function(tx) tx:create("user", { id = 1, name = {} }) end, "column 'name': table is not" },
        { function(tx) tx:create("user", { "positional" }) end, "row: column names must be strings, got number" },
        { function(tx) tx:update("user", { id = 1 }, "name") end,
          "bad argument #3 to 'update' (mask: list of column names expected, got string)" },
        { function(tx) tx:update("user", { id = 1 }, nil, { 1 }) end,
          "bad argument #4 to 'update' (nulls[1]: column name expected, got number)" },
        { function(tx) tx:create_items("user", { { id = 1, name = "a" }, 5 }) end,
          "bad argument #2 to 'create_items' (rows[2]: table expected, got number)" },
        { function(tx) tx:delete_items("user", { { [true] = 1 } }) end, "rows[1]: column names must be strings" },
        { function(tx) tx.create({}, "user", {}) end, "calling 'create' on bad self" },
      }
      for _, c in ipairs(cases) do
        local e = in_tx(c[1])
        assert.truthy(e.message:find(c[2], 1, true), e.message .. " / " .. c[2])
      end
    end)

    it("rows naming a column the type lacks, and bad updates (core checks)", function()
      S.add_user(db, 1)
      local cases = {
        function(tx) tx:create("user", { id = 2, name = "x", nope = 1 }) end,
        function(tx) tx:update("user", { id = 1, name = "x" }) end, -- no mask, no nulls
        function(tx) tx:update("user", { id = 1, name = "x" }, {}, {}) end,
        function(tx) tx:update("user", { id = 1, name = "x" }, { "name" }, { "name" }) end,
        function(tx) tx:update("user", { id = 1 }, { "name" }) end, -- mask names an absent column
        function(tx) tx:update("user", { name = "x" }, { "name" }) end, -- no key
        function(tx) tx:delete("user", { name = "x" }) end,
        function(tx) tx:create("user", { id = 2, name = "\255\254" }) end, -- not UTF-8 text
      }
      for i, fn in ipairs(cases) do
        local ok, e = pcall(db.transaction, db, "users", fn)
        assert(not ok and oplog.is_error(e), "case " .. i)
        assert.equal("invalid_argument", e.code, "case " .. i .. ": " .. tostring(e))
      end
      assert.equal(1, db:head().id)
    end)
  end)
end)
