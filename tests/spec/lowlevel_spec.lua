-- The low-level path: db:begin/commit/rollback, db:ticket, db:write_entry.
local oplog = require "oplog"
local S = require "support"
local testing = S.testing

describe("low-level writes", function()
  local db, path
  before_each(function() db, path = S.db() end)
  after_each(testing.cleanup)

  local function op_create(id, name)
    return { type = "user", op = "create", row = { id = id, name = name or ("u" .. id) } }
  end

  it("write_entry between begin and commit writes the entry, not the live table", function()
    local t = db:ticket("users")
    db:begin()
    local id = db:write_entry {
      aggregate = "users", ticket = t.version, metadata = { who = "alice", tags = { "a", "b" } },
      ops = {
        op_create(1, "ann"),
        { type = "user", op = "update", row = { id = 1, name = "Ann" }, mask = { "name" }, nulls = { "email" } },
        { type = "user", op = "create_items", row = { id = 2, name = "b" } },
        { type = "user", op = "delete_items", row = { id = 2 } },
        { type = "user", op = "delete", row = { id = 1 } },
      },
    }
    db:commit()
    assert.equal(1, id)
    local e = db:entry(id)
    assert.same({ who = { "alice" }, tags = { "a", "b" } }, e.metadata)
    assert.equal(5, #e.ops)
    assert.same({ "create", "update", "create_items", "delete_items", "delete" },
      { e.ops[1].op, e.ops[2].op, e.ops[3].op, e.ops[4].op, e.ops[5].op })
    assert.same({ id = 1, name = "ann" }, e.ops[1].row) -- as given: no columns added
    assert.same({ "name" }, e.ops[2].mask)
    assert.same({ "email" }, e.ops[2].nulls)
    assert.same({ id = 1, name = "Ann" }, e.ops[2].row)
    assert.equal(t.version + 1, db:ticket("users").version)
    assert.is_false(S.exists(db, "user", 1))
  end)

  it("accepts the ticket table db:ticket returned", function()
    db:begin()
    db:write_entry { aggregate = "users", ticket = db:ticket("users"), ops = { op_create(1) } }
    db:commit()
    assert.equal(1, db:head().id)
  end)

  it("several entries in one transaction, each redeeming the next version", function()
    local v = db:ticket("users").version
    db:begin()
    local a = db:write_entry { aggregate = "users", ticket = v, ops = { op_create(1) } }
    local b = db:write_entry { aggregate = "users", ticket = v + 1, ops = { op_create(2) } }
    db:commit()
    assert.same({ 1, 2 }, { a, b })
    assert.equal(v + 2, db:ticket("users").version)
  end)

  it("rollback keeps nothing", function()
    local v = db:ticket("users").version
    db:begin()
    db:write_entry { aggregate = "users", ticket = v, metadata = { who = "alice" }, ops = { op_create(1) } }
    db:rollback()
    assert.equal(0, db:head().id)
    assert.equal(v, db:ticket("users").version)
    assert.same({}, S.collect(db, { metadata = { who = "alice" } }))
  end)

  it("a stale ticket is ticket_conflict and leaves nothing of that entry", function()
    local v = db:ticket("users").version
    db:begin()
    db:write_entry { aggregate = "users", ticket = v, ops = { op_create(1) } }
    local e = S.err("ticket_conflict", db.write_entry, db,
      { aggregate = "users", ticket = v, metadata = { who = "late" }, ops = { op_create(2) } })
    assert.truthy(e.message:find("users", 1, true), e.message)
    -- the surrounding transaction stays open and usable
    db:write_entry { aggregate = "users", ticket = v + 1, ops = { op_create(3) } }
    db:commit()
    assert.same({ 1, 2 }, S.ids(S.collect(db)))
    assert.same({}, S.collect(db, { metadata = { who = "late" } }))
    assert.equal(v + 2, db:ticket("users").version)
  end)

  it("ticket conflict between two handles on one file", function()
    local other = testing.reopen(path)
    local mine = db:ticket("users").version
    local theirs = other:ticket("users").version
    assert.equal(mine, theirs)
    other:begin()
    other:write_entry { aggregate = "users", ticket = theirs, ops = { op_create(1, "theirs") } }
    other:commit()
    db:begin()
    S.err("ticket_conflict", db.write_entry, db,
      { aggregate = "users", ticket = mine, ops = { op_create(2, "mine") } })
    -- read the ticket again and retry, as Boundary's callers do
    local fresh = db:ticket("users").version
    assert.equal(mine + 1, fresh)
    db:write_entry { aggregate = "users", ticket = fresh, ops = { op_create(2, "mine") } }
    db:commit()
    local names = {}
    for e in other:entries() do names[#names + 1] = e.ops[1].row.name end
    assert.same({ "theirs", "mine" }, names)
  end)

  it("tickets of other aggregates are independent", function()
    local n = db:ticket("notes").version
    db:begin()
    db:write_entry { aggregate = "users", ticket = db:ticket("users"), ops = { op_create(1) } }
    db:commit()
    assert.equal(n, db:ticket("notes").version)
  end)

  it("begin, commit and rollback are checked", function()
    S.err("invalid_argument", db.commit, db)
    S.err("invalid_argument", db.rollback, db)
    S.err("invalid_argument", db.write_entry, db,
      { aggregate = "users", ticket = 1, ops = { op_create(1) } })
    db:begin()
    S.err("invalid_argument", db.begin, db)
    db:rollback()
  end)

  it("misuse of write_entry raises invalid_argument naming the field", function()
    local v = db:ticket("users").version
    db:begin()
    local cases = {
      { "entry", "bad argument #1 to 'write_entry' (table expected, got string)" },
      { { ticket = v, ops = { op_create(1) } }, "field 'aggregate': string expected, got nil" },
      { { aggregate = "users", ops = { op_create(1) } }, "field 'ticket': integer or ticket table expected" },
      { { aggregate = "users", ticket = 1.5, ops = { op_create(1) } }, "field 'ticket'" },
      { { aggregate = "users", ticket = v }, "field 'ops': list of operations expected, got nil" },
      { { aggregate = "users", ticket = v, ops = {} }, "at least one operation" },
      { { aggregate = "users", ticket = v, ops = { 1 } }, "ops[1]: table expected, got number" },
      { { aggregate = "users", ticket = v, ops = { { op = "create", row = {} } } }, "ops[1].type: string expected" },
      { { aggregate = "users", ticket = v, ops = { { type = "user", op = "upsert", row = {} } } },
        "ops[1].op: unknown operation 'upsert'" },
      { { aggregate = "users", ticket = v, ops = { { type = "user", op = "create" } } }, "ops[1].row: table expected" },
      { { aggregate = "users", ticket = v, ops = { op_create(1), { type = "user", op = "create", row = { id = {} } } } },
        "ops[2].row: column 'id': table is not a storable value" },
      { { aggregate = "users", ticket = v, ops = { { type = "user", op = "update", row = { id = 1 }, mask = "x" } } },
        "ops[1].mask: list of column names expected" },
      { { aggregate = "users", ticket = v, ops = { { type = "user", op = "create", row = { id = 1 }, colour = 1 } } },
        "ops[1]: unknown option 'colour'" },
      { { aggregate = "users", ticket = v, ops = { op_create(1) }, meta = {} }, "unknown option 'meta'" },
      { { aggregate = "users", ticket = v, ops = { op_create(1) }, metadata = { k = 1 } }, "key 'k'" },
    }
    for _, c in ipairs(cases) do
      local e = S.err("invalid_argument", db.write_entry, db, c[1])
      assert.truthy(e.message:find(c[2], 1, true), e.message .. " / " .. c[2])
    end
    -- checked by the core
    S.err("invalid_argument", db.write_entry, db,
      { aggregate = "users", ticket = v, ops = { { type = "user", op = "create", row = { id = 1, nope = 2 } } } })
    S.err("invalid_argument", db.write_entry, db,
      { aggregate = "users", ticket = v, ops = { { type = "note", op = "create", row = { id = 1 } } } })
    S.err("invalid_argument", db.write_entry, db,
      { aggregate = "users", ticket = v, ops = { { type = "user", op = "create", row = op_create(1).row, mask = { "name" } } } })
    db:commit()
    assert.equal(0, db:head().id)
    assert.equal(v, db:ticket("users").version)
  end)
end)
