-- db:define, db:types, db:ticket.
local oplog = require "oplog"
local S = require "support"
local testing = S.testing

describe("db:define", function()
  local db, path
  before_each(function() db, path = testing.open_temp() end)
  after_each(testing.cleanup)

  it("registers a type with defaults: table = name, aggregate = table, key = PRIMARY KEY", function()
    db:define("tag", { columns = { { "id", "INTEGER PRIMARY KEY" }, { "label", "TEXT NOT NULL" } } })
    assert.same({
      tag = {
        table = "tag",
        aggregate = "tag",
        key = { "id" },
        columns = { { "id", "INTEGER PRIMARY KEY" }, { "label", "TEXT NOT NULL" } },
      },
    }, db:types())
    -- the aggregate's ticket exists from the definition on, starting at version 1
    assert.same({ name = "tag", version = 1 }, db:ticket("tag"))
    assert.equal("integer", math.type(db:ticket("tag").version))
  end)

  it("takes table, aggregate and a composite key", function()
    db:define("member", {
      table = "members",
      aggregate = "groups",
      columns = { { "group_id", "INTEGER NOT NULL" }, { "user_id", "INTEGER NOT NULL" }, { "role", "TEXT" } },
      key = { "group_id", "user_id" },
    })
    db:define("grp", { table = "grps", aggregate = "groups",
      columns = { { "id", "INTEGER PRIMARY KEY" } }, key = "id" })
    local t = db:types()
    assert.same({ "group_id", "user_id" }, t.member.key)
    assert.equal("members", t.member.table)
    assert.equal("groups", t.member.aggregate)
    assert.same({ "id" }, t.grp.key)
    db:transaction("groups", function(tx)
      tx:create("grp", { id = 1 })
      tx:create("member", { group_id = 1, user_id = 2, role = "admin" })
    end)
    S.err("constraint", db.transaction, db, "groups", function(tx)
      tx:create("member", { group_id = 1, user_id = 2 })
    end)
  end)

  it("the same spec again is a no-op; a different one is type_conflict", function()
    db:define("note", S.NOTE)
    local before = db:types()
    db:define("note", S.NOTE)
    assert.same(before, db:types())
    S.err("type_conflict", db.define, db, "note", {
      aggregate = "notes", columns = { { "id", "INTEGER PRIMARY KEY" }, { "body", "BLOB" } } })
    S.err("type_conflict", db.define, db, "note2", {
      table = "note", columns = { { "id", "INTEGER PRIMARY KEY" } } })
    assert.same(before, db:types())
  end)

  it("persists definitions in the file", function()
    db:define("note", S.NOTE)
    db:close()
    local again = testing.reopen(path)
    assert.same({ table = "note", aggregate = "notes", key = { "id" },
      columns = { { "id", "INTEGER PRIMARY KEY" }, { "body", "TEXT" } } }, again:types().note)
    again:transaction("notes", function(tx) tx:create("note", { id = 1 }) end)
  end)

  it("types() is empty for a new file and ticket of an unknown aggregate is not_found", function()
    assert.same({}, db:types())
    local e = S.err("not_found", db.ticket, db, "nope")
    assert.truthy(#e.message > 0)
  end)

  it("rejects bad names and specs with invalid_argument", function()
    local one = { { "id", "INTEGER PRIMARY KEY" } }
    S.err("invalid_argument", db.define, db, "bad name", { columns = one })
    S.err("invalid_argument", db.define, db, "oplog_x", { columns = one })
    S.err("invalid_argument", db.define, db, "sqlite_x", { columns = one })
    S.err("invalid_argument", db.define, db, "t", { columns = { { "a b", "TEXT" } } })
    S.err("invalid_argument", db.define, db, "t", { columns = one, key = "nope" })
    S.err("invalid_argument", db.define, db, "t", { columns = { { "a", "TEXT" } } }) -- no key
    S.err("invalid_argument", db.define, db, "t", { columns = { { "id", "INTEGER PRIMARY KEY" },
      { "x", "TEXT); DROP TABLE oplog_entries; --" } } })
    S.err("invalid_argument", db.define, db, "t", { columns = { { "id", "INTEGER PRIMARY KEY" },
      { "x", "NOT A (TYPE" } } })
    assert.same({}, db:types())
  end)

  it("rejects misuse of its arguments naming them", function()
    local cases = {
      { { 1, { columns = {} } }, "bad argument #1 to 'define' (string expected, got number)" },
      { { "t", "x" }, "bad argument #2 to 'define' (table expected, got string)" },
      { { "t", {} }, "bad argument #2 to 'define' (field 'columns': list of {name, decl} expected, got nil)" },
      { { "t", { columns = {} } }, "at least one column" },
      { { "t", { columns = { "id" } } }, "columns[1]: {name, decl}" },
      { { "t", { columns = { { "id" } } } }, "columns[1]: {name, decl}" },
      { { "t", { columns = { { "id", "INTEGER PRIMARY KEY" } }, colums = 1 } }, "unknown option 'colums'" },
      { { "t", { columns = { { "id", "INTEGER PRIMARY KEY" } }, key = 3 } }, "field 'key'" },
      { { "t", { columns = { { "id", "INTEGER PRIMARY KEY" } }, key = { 3 } } }, "key[1]" },
      { { "t", { columns = { { "id", "INTEGER PRIMARY KEY" } }, table = false } }, "field 'table': string expected, got boolean" },
    }
    for _, c in ipairs(cases) do
      local e = S.err("invalid_argument", db.define, db, table.unpack(c[1]))
      assert.truthy(e.message:find(c[2], 1, true), e.message .. " / " .. c[2])
    end
  end)

  it("an error from SQLite itself is sql with SQLite's message", function()
    db:define("odd", { aggregate = "odd", columns = {
      { "id", "INTEGER PRIMARY KEY" },
      { "x", "INTEGER DEFAULT (abs(-9223372036854775807 - 1))" } } })
    local e = S.err("sql", db.transaction, db, "odd", function(tx) tx:create("odd", { id = 1 }) end)
    assert.truthy(e.message:find("overflow", 1, true), e.message)
  end)

  it("is refused inside a transaction", function()
    db:define("note", S.NOTE)
    S.err("invalid_argument", db.transaction, db, "notes", function()
      db:define("other", { columns = { { "id", "INTEGER PRIMARY KEY" } } })
    end)
  end)

  it("can be seen from a second handle", function()
    local other = testing.reopen(path)
    db:define("note", S.NOTE)
    assert.is_table(other:types().note)
    other:transaction("notes", function(tx) tx:create("note", { id = 1 }) end)
  end)
end)
