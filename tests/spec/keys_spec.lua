-- db:stats, db:keys, db:rotate_key, db:rekey.
local oplog = require "oplog"
local S = require "support"
local testing = S.testing

describe("stats and keys", function()
  local db, path, key_file
  before_each(function()
    db, path, key_file = S.db()
    S.add_user(db, 1)
    S.add_user(db, 2)
    db:transaction("notes", function(tx) tx:create("note", { id = 1 }) end)
  end)
  after_each(testing.cleanup)

  it("stats counts entries per aggregate with its ticket", function()
    local s = db:stats()
    assert.equal(3, s.entries)
    assert.equal("integer", math.type(s.bytes))
    assert.is_true(s.bytes > 0)
    assert.equal(1, s.keys)
    assert.same({
      users = { entries = 2, ticket = db:ticket("users").version },
      notes = { entries = 1, ticket = db:ticket("notes").version },
    }, s.aggregates)
  end)

  it("keys lists the data keys; rotate_key makes a new active one", function()
    local keys = db:keys()
    assert.equal(1, #keys)
    assert.equal(1, keys[1].id)
    assert.equal("active", keys[1].state)
    assert.equal("integer", math.type(keys[1].created))
    local new = db:rotate_key()
    assert.equal(2, new)
    keys = db:keys()
    assert.equal(2, #keys)
    local state = {}
    for _, k in ipairs(keys) do state[k.id] = k.state end
    assert.same({ "retired", "active" }, state)
    assert.equal(2, db:stats().keys)
    local id = S.add_user(db, 3)
    assert.equal(2, db:entry(id).key_id)
    assert.equal(1, db:entry(1).key_id)
    assert.equal("user1", db:entry(1).ops[1].row.name)
    assert.is_true(db:verify().ok)
  end)

  it("rekey re-wraps the data keys under a new root key", function()
    db:rotate_key()
    S.add_user(db, 3)
    local new_key = testing.tmpname(".key")
    oplog.keygen(new_key)
    db:rekey { key_file = new_key }
    assert.equal("user1", db:entry(1).ops[1].row.name) -- the open handle goes on
    db:close()
    S.err("wrong_key", oplog.open, path, { key_file = key_file })
    local again = oplog.open(path, { key_file = new_key })
    assert.equal("user1", again:entry(1).ops[1].row.name)
    assert.equal("user3", again:entry(4).ops[1].row.name)
    again:rekey { passphrase = "now a passphrase", kdf = S.FAST_KDF }
    again:close()
    S.err("wrong_key", oplog.open, path, { key_file = new_key })
    again = oplog.open(path, { passphrase = "now a passphrase" })
    assert.equal(4, #S.collect(again))
    again:close()
  end)

  it("rekey checks its options", function()
    S.err("invalid_argument", db.rekey, db, {})
    S.err("invalid_argument", db.rekey, db, { encryption = false })
    local e = S.err("invalid_argument", db.rekey, db)
    assert.equal("bad argument #1 to 'rekey' (table expected, got no value)", e.message)
    e = S.err("invalid_argument", db.rekey, db, { key = string.rep("k", 32), readonly = true })
    assert.truthy(e.message:find("unknown option 'readonly'", 1, true), e.message)
    S.err("invalid_argument", db.rekey, db, { key = "short" })
    S.err("invalid_argument", db.rekey, db, { key = string.rep("k", 32), passphrase = "p" })
    assert.equal("user1", db:entry(1).ops[1].row.name)
  end)

  it("key operations are refused where they make no sense", function()
    db:begin()
    S.err("invalid_argument", db.rotate_key, db)
    db:rollback()
    db:close()
    local keyless = oplog.open(path)
    S.err("key_required", keyless.rotate_key, keyless)
    S.err("key_required", keyless.rekey, keyless, { key = string.rep("k", 32) })
    keyless:close()
    local ro = testing.reopen(path, { readonly = true })
    S.err("readonly", ro.rotate_key, ro)
    local plain = testing.open_temp { encryption = false }
    assert.same({}, plain:keys())
    assert.equal(0, plain:stats().keys)
    S.err("invalid_argument", plain.rotate_key, plain)
  end)
end)
