-- Reading the log: db:entries, db:entry, decoded values.
local oplog = require "oplog"
local S = require "support"
local testing = S.testing

describe("reading entries", function()
  local db, path
  before_each(function()
    db, path = S.db()
    S.add_user(db, 1, "a", { who = "alice", kind = "signup" })       -- 1
    db:transaction("notes", function(tx) tx:create("note", { id = 1, body = "n1" }) end,
      { metadata = { who = "bob" } })                                  -- 2
    S.add_user(db, 2, "b", { who = "alice", tags = { "x", "y" } })    -- 3
    db:transaction("notes", function(tx) tx:create("note", { id = 2 }) end) -- 4
    S.add_user(db, 3, "c", { who = "carol", kind = "signup" })        -- 5
  end)
  after_each(testing.cleanup)

  it("entries() gives every entry in id order with the documented shape", function()
    local list = S.collect(db)
    assert.same({ 1, 2, 3, 4, 5 }, S.ids(list))
    local e = list[1]
    assert.equal("users", e.aggregate)
    assert.equal("integer", math.type(e.created))
    assert.is_true(math.abs(e.created - os.time() * 1000) < 120000)
    assert.equal(1, e.key_id)
    assert.same({ who = { "alice" }, kind = { "signup" } }, e.metadata)
    -- format 2: the row as the table stored it, every column
    assert.same({ { type = "user", op = "create", row = { id = 1, name = "a", email = oplog.null,
      score = oplog.null, avatar = oplog.null, active = oplog.null }, mask = {}, nulls = {} } }, e.ops)
    -- and where the entry sits in its origin's chain
    assert.equal(db:origin().id, e.origin)
    assert.equal(1, e.seq)
    assert.equal(1, e.clock)
    local fields = {}
    for k in pairs(e) do fields[#fields + 1] = k end
    table.sort(fields)
    assert.same({ "aggregate", "clock", "created", "id", "key_id", "metadata", "ops", "origin", "seq" }, fields)
  end)

  it("filters by aggregate, since, upto, limit and reverse", function()
    assert.same({ 1, 3, 5 }, S.ids(S.collect(db, { aggregate = "users" })))
    assert.same({ 2, 4 }, S.ids(S.collect(db, { aggregate = "notes" })))
    assert.same({}, S.ids(S.collect(db, { aggregate = "nothing" })))
    assert.same({ 3, 4, 5 }, S.ids(S.collect(db, { since = 2 })))
    assert.same({ 1, 2, 3 }, S.ids(S.collect(db, { upto = 3 })))
    assert.same({ 3, 4 }, S.ids(S.collect(db, { since = 2, upto = 4 })))
    assert.same({ 1, 2 }, S.ids(S.collect(db, { limit = 2 })))
    assert.same({ 5, 4, 3, 2, 1 }, S.ids(S.collect(db, { reverse = true })))
    assert.same({ 5, 3 }, S.ids(S.collect(db, { reverse = true, aggregate = "users", limit = 2 })))
    assert.same({ 3 }, S.ids(S.collect(db, { aggregate = "users", since = 1, upto = 4 })))
  end)

  it("filters by metadata: all pairs must match, true = key present", function()
    assert.same({ 1, 3 }, S.ids(S.collect(db, { metadata = { who = "alice" } })))
    assert.same({ 1 }, S.ids(S.collect(db, { metadata = { who = "alice", kind = "signup" } })))
    assert.same({ 1, 5 }, S.ids(S.collect(db, { metadata = { kind = true } })))
    assert.same({ 3 }, S.ids(S.collect(db, { metadata = { tags = "y" } })))
    assert.same({}, S.ids(S.collect(db, { metadata = { who = "nobody" } })))
    assert.same({ 5 }, S.ids(S.collect(db, { metadata = { kind = "signup" }, aggregate = "users", since = 1 })))
  end)

  it("entry(id) gives one entry or nil", function()
    assert.same(S.collect(db, { since = 2, limit = 1 })[1], db:entry(3))
    assert.is_nil(db:entry(6))
    assert.is_nil(db:entry(0))
    assert.is_nil(db:entry(-1))
  end)

  it("rejects bad filters", function()
    local cases = {
      { { since = "1" }, "field 'since': integer expected, got string" },
      { { limit = 1.5 }, "field 'limit': integer expected" },
      { { reverse = 1 }, "field 'reverse': boolean expected" },
      { { aggregate = 1 }, "field 'aggregate': string expected" },
      { { metadata = "who" }, "field 'metadata': table expected" },
      { { metadata = { who = 1 } }, "key 'who'" },
      { { since = -1 }, "must not be negative" },
      { { from = 1 }, "bad argument #1 to 'entries' (unknown option 'from')" },
      { 7, "bad argument #1 to 'entries' (table expected, got number)" },
    }
    for _, c in ipairs(cases) do
      local e = S.err("invalid_argument", db.entries, db, c[1])
      assert.truthy(e.message:find(c[2], 1, true), e.message .. " / " .. c[2])
    end
    local e = S.err("invalid_argument", db.entry, db, "1")
    assert.equal("bad argument #1 to 'entry' (integer expected, got string)", e.message)
    S.err("invalid_argument", db.entry, db, 1.5)
  end)

  describe("the iterator", function()
    it("streams: entries written during the loop do not disturb it", function()
      local seen = {}
      for e in db:entries { aggregate = "notes" } do
        seen[#seen + 1] = e.id
        S.add_user(db, 100 + e.id)
      end
      assert.same({ 2, 4 }, seen)
      assert.equal(7, db:head().id)
    end)

    it("can be called directly and returns nil after the end", function()
      local next_entry = db:entries { limit = 2 }
      assert.equal(1, next_entry().id)
      assert.equal(2, next_entry().id)
      assert.is_nil(next_entry())
      assert.is_nil(next_entry())
    end)

    it("break closes it through its closing value", function()
      local f, s, c, closing = db:entries()
      assert.is_function(f)
      assert.is_nil(s)
      assert.is_nil(c)
      assert.equal("oplog.iter (open)", tostring(closing))
      local saved
      for e, _ in f, s, c, closing do
        saved = closing
        if e.id == 2 then break end
      end
      assert.equal("oplog.iter (closed)", tostring(saved))
      S.err("closed", f)
    end)

    it("an error in the loop body closes it", function()
      local f, s, c, closing = db:entries()
      local ok = pcall(function()
        for _ in f, s, c, closing do error("stop") end
      end)
      assert.is_false(ok)
      assert.equal("oplog.iter (closed)", tostring(closing))
    end)

    it("close() closes it; garbage collection closes a dropped one", function()
      local f, _, _, it = db:entries()
      f()
      it:close()
      it:close()
      S.err("closed", f)
      local weak = setmetatable({}, { __mode = "v" })
      do
        local g, _, _, it2 = db:entries()
        g()
        weak[1] = it2
      end
      collectgarbage()
      collectgarbage()
      assert.is_nil(weak[1])
      db:close() -- nothing left open on the handle
    end)

    it("keeps its db alive while reachable", function()
      local function entries_of_a_new_handle()
        local h = testing.reopen(path) -- reachable only through the iterator
        return (h:entries())
      end
      local f = entries_of_a_new_handle()
      collectgarbage()
      collectgarbage()
      assert.equal(1, f().id)
      assert.equal(2, f().id)
    end)

    it("closing the db closes its open iterators first", function()
      local f, _, _, it = db:entries()
      assert.equal(1, f().id)
      local f2 = db:entries { reverse = true }
      db:close()
      assert.equal("oplog.iter (closed)", tostring(it))
      local e = S.err("closed", f)
      assert.truthy(e.message:find("oplog.iter", 1, true))
      S.err("closed", f2)
    end)

    it("two loops on one handle are independent", function()
      local pairs_seen = {}
      for a in db:entries { aggregate = "notes" } do
        for b in db:entries { aggregate = "notes" } do
          pairs_seen[#pairs_seen + 1] = a.id .. ":" .. b.id
        end
      end
      assert.same({ "2:2", "2:4", "4:2", "4:4" }, pairs_seen)
    end)
  end)

  it("a second handle sees committed entries of the first, and back", function()
    local other = testing.reopen(path)
    assert.equal(5, #S.collect(other))
    S.add_user(db, 50)
    assert.equal(6, other:head().id)
    assert.equal(50, other:entry(6).ops[1].row.id)
    other:transaction("notes", function(tx) tx:create("note", { id = 9, body = "from other" }) end)
    assert.equal("from other", db:entry(7).ops[1].row.body)
    assert.same(db:head(), other:head())
  end)
end)

describe("values", function()
  local db
  before_each(function()
    db = testing.open_temp()
    db:define("v", { aggregate = "vals", columns = {
      { "id", "INTEGER PRIMARY KEY" }, { "i", "INTEGER" }, { "r", "REAL" }, { "t", "TEXT" },
      { "b", "BLOB" }, { "flag", "BOOLEAN" }, { "any", "DEFAULT NULL" } } })
  end)
  after_each(testing.cleanup)

  local function roundtrip(row)
    local id = db:transaction("vals", function(tx) tx:create("v", row) end)
    return db:entry(id).ops[1].row
  end

  it("keep integer vs float", function()
    local r = roundtrip { id = 1, i = 42, r = 2.0, any = 3 }
    assert.equal("integer", math.type(r.i))
    assert.equal(42, r.i)
    assert.equal("float", math.type(r.r))
    assert.equal(2.0, r.r)
    assert.equal("integer", math.type(r.any))
    r = roundtrip { id = 2, i = math.maxinteger, r = -0.5, any = 1e300 }
    assert.equal(math.maxinteger, r.i)
    assert.equal(-0.5, r.r)
    assert.equal("float", math.type(r.any))
    assert.equal(1e300, r.any)
    r = roundtrip { id = 3, i = math.mininteger, r = 1 / 0 }
    assert.equal(math.mininteger, r.i)
    assert.equal(math.huge, r.r)
  end)

  it("keep text and blobs byte for byte", function()
    local bin = "\0\1\2\255\254 binary \0"
    local r = roundtrip { id = 1, t = "héllo ✓", b = bin, any = "" }
    assert.equal("héllo ✓", r.t)
    assert.equal(bin, r.b)
    assert.equal("", r.any)
    local big = string.rep("xyz", 100000)
    assert.equal(big, roundtrip({ id = 2, b = big }).b)
  end)

  it("keep oplog.null; booleans are logged as stored: INTEGER 1 and 0", function()
    local null = oplog.null
    local r = roundtrip { id = 1, flag = true, t = null, b = null }
    -- columns not given are logged as the NULL stored
    assert.same({ id = 1, i = null, r = null, t = null, b = null, flag = 1, any = null }, r)
    assert.equal("integer", math.type(r.flag))
    r = roundtrip({ id = 2, flag = false })
    assert.equal(0, r.flag)
    assert.equal("integer", math.type(r.flag))
  end)

  it("masks and nulls survive the round trip", function()
    db:transaction("vals", function(tx) tx:create("v", { id = 1, i = 1, t = "t", r = 1.5 }) end)
    local id = db:transaction("vals", function(tx)
      tx:update("v", { id = 1, i = 2, r = 9.5 }, { "i", "r" }, { "t", "b" })
      tx:update("v", { id = 1 }, nil, { "flag" })
    end)
    local ops = db:entry(id).ops
    assert.same({ "i", "r" }, ops[1].mask)
    assert.same({ "t", "b" }, ops[1].nulls)
    assert.same({ id = 1, i = 2, r = 9.5 }, ops[1].row)
    assert.same({}, ops[2].mask)
    assert.same({ "flag" }, ops[2].nulls)
    assert.same({ id = 1 }, ops[2].row) -- the key; the nulls are in the list
    assert.is_true(db:verify { replay = true }.ok)
  end)

  it("other Lua values are invalid_argument", function()
    for _, bad in ipairs { {}, print, coroutine.create(print), io.stdout } do
      local e = S.err("invalid_argument", db.transaction, db, "vals", function(tx)
        tx:create("v", { id = 1, any = bad })
      end)
      assert.truthy(e.message:find("not a storable value", 1, true), e.message)
    end
    assert.equal(0, db:head().id)
  end)
end)
