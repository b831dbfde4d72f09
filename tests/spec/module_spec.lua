-- The module: VERSION, null, keygen, error values, loading twice.
local oplog = require "oplog"
local S = require "support"
local testing = S.testing

describe("oplog module", function()
  after_each(testing.cleanup)

  it("has a semantic VERSION string", function()
    assert.is_string(oplog.VERSION)
    assert.truthy(oplog.VERSION:match("^%d+%.%d+%.%d+$"))
  end)

  it("is the oplog.core table", function()
    assert.equal(require "oplog.core", oplog)
  end)

  it("has a unique null sentinel", function()
    assert.is_not_nil(oplog.null)
    assert.equal("userdata", type(oplog.null))
    assert.equal("oplog.null", tostring(oplog.null))
    assert.is_true(oplog.null ~= nil and oplog.null ~= false)
  end)

  describe("keygen", function()
    it("writes 64 hex characters and a newline, mode 0600", function()
      local path = testing.tmpname(".key")
      oplog.keygen(path)
      local s = S.read(path)
      assert.truthy(s:match("^%x+\n$"))
      assert.equal(65, #s)
      local p = io.popen("stat -c %a '" .. path .. "'")
      local mode = p:read("l")
      p:close()
      assert.equal("600", mode)
    end)

    it("writes a different key each time", function()
      local a, b = testing.tmpname(".key"), testing.tmpname(".key")
      oplog.keygen(a)
      oplog.keygen(b)
      assert.not_equal(S.read(a), S.read(b))
    end)

    it("fails with io if the file exists and leaves it alone", function()
      local path = testing.tmpname(".key")
      oplog.keygen(path)
      local before = S.read(path)
      local e = S.err("io", oplog.keygen, path)
      assert.truthy(#e.message > 0)
      assert.equal(before, S.read(path))
    end)

    it("checks its argument", function()
      local e = S.err("invalid_argument", oplog.keygen, 42)
      assert.truthy(e.message:find("bad argument #1 to 'keygen'", 1, true), e.message)
      assert.truthy(e.message:find("string expected, got number", 1, true), e.message)
    end)
  end)

  describe("error values", function()
    it("are tables with code and message and a __tostring", function()
      local e = S.err("invalid_argument", oplog.open, nil)
      assert.is_table(e)
      assert.equal("invalid_argument", e.code)
      assert.is_string(e.message)
      assert.equal("oplog: invalid_argument: " .. e.message, tostring(e))
      assert.is_true(oplog.is_error(e))
    end)

    it("is_error is false for other values", function()
      assert.is_false(oplog.is_error("oplog: x: y"))
      assert.is_false(oplog.is_error({ code = "x", message = "y" }))
      assert.is_false(oplog.is_error(nil))
    end)

    it("name the function and argument in lauxlib's style", function()
      local db = testing.open_temp()
      local e = S.err("invalid_argument", db.define, db, "t", nil)
      assert.equal("bad argument #2 to 'define' (table expected, got nil)", e.message)
      e = S.err("invalid_argument", function() return db:define("t") end)
      assert.equal("bad argument #2 to 'define' (table expected, got no value)", e.message)
    end)

    it("reject a bad self", function()
      local db = testing.open_temp()
      local e = S.err("invalid_argument", function() return db.head({}) end)
      assert.truthy(e.message:find("oplog.db expected, got table", 1, true), e.message)
    end)
  end)

  describe("loaded twice in one state", function()
    it("reuses metatables and the null sentinel", function()
      local db, path = testing.open_temp()
      db:define("note", S.NOTE)
      local first = package.loaded["oplog.core"]
      package.loaded["oplog.core"] = nil
      package.loaded["oplog"] = nil
      local second = require "oplog"
      assert.are_not.equal(first, second)
      assert.equal(first.null, second.null)
      -- handles made by either load work with the other's values
      local db2 = testing.reopen(path)
      local other = second.open(path, { key_file = path:gsub("%.db$", ".key") })
      assert.equal(getmetatable(db), getmetatable(other))
      other:transaction("notes", function(tx) tx:create("note", { id = 1, body = first.null }) end)
      local e = db:entry(1)
      assert.equal(second.null, e.ops[1].row.body)
      assert.equal(first.null, e.ops[1].row.body)
      local err = S.err("not_found", other.ticket, other, "nope")
      assert.is_true(first.is_error(err))
      other:close()
      db2:close()
      package.loaded["oplog.core"] = first
      package.loaded["oplog"] = first
    end)
  end)
end)
