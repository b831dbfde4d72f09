-- oplog.testing, the helper for users' own test suites.
local oplog = require "oplog"
local testing = require "oplog.testing"
local S = require "support"

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

describe("oplog.testing", function()
  after_each(testing.cleanup)

  it("open_temp makes an encrypted database with a generated key", function()
    local db, path, key_file = testing.open_temp()
    assert.equal("oplog.db (" .. path .. ")", tostring(db))
    assert.truthy(S.read(key_file):match("^%x+\n$"))
    db:define("note", S.NOTE)
    db:close()
    S.err("key_required", oplog.open, path, { encryption = false })
    oplog.open(path, { key_file = key_file }):close()
  end)

  it("passes oplog.open options through and leaves them unchanged", function()
    local opts = { encryption = false, sync = "normal" }
    local db, path, key_file = testing.open_temp(opts)
    assert.is_nil(key_file)
    assert.same({ encryption = false, sync = "normal" }, opts)
    db:define("note", S.NOTE)
    db:transaction("notes", function(tx) tx:create("note", { id = 1 }) end)
    assert.equal(0, db:entry(1).key_id)
    local p = testing.open_temp { passphrase = "pw", kdf = S.FAST_KDF }
    p:close()
    assert.has_error(function() testing.open_temp("x") end)
    assert.is_string(path)
  end)

  it("reopen gives another handle with the same key options", function()
    local db, path = testing.open_temp { passphrase = "pw", kdf = S.FAST_KDF }
    db:define("note", S.NOTE)
    local ro = testing.reopen(path, { readonly = true })
    assert.is_table(ro:types().note)
    S.err("readonly", ro.begin, ro)
    assert.has_error(function() testing.reopen("/nonexistent.db") end)
  end)

  it("tmpname gives fresh unused paths", function()
    local a, b = testing.tmpname(".db"), testing.tmpname(".db")
    assert.not_equal(a, b)
    assert.is_false(exists(a))
    assert.truthy(a:match("%.db$"))
  end)

  it("cleanup closes the handles and removes every file", function()
    local db, path, key_file = testing.open_temp()
    local other = testing.reopen(path)
    db:define("note", S.NOTE)
    assert.is_true(exists(path))
    assert.is_true(exists(path .. "-wal"))
    testing.cleanup()
    assert.equal("oplog.db (closed)", tostring(db))
    assert.equal("oplog.db (closed)", tostring(other))
    for _, p in ipairs { path, path .. "-wal", path .. "-shm", key_file } do
      assert.is_false(exists(p), p)
    end
  end)

  it("removes the files when the Lua state closes", function()
    local script = [[
      local t = require "oplog.testing"
      local db, path, key_file = t.open_temp()
      db:define("n", { columns = { { "id", "INTEGER PRIMARY KEY" } } })
      io.write(path, "\n", key_file, "\n")
    ]]
    local p = assert(io.popen("lua5.4 -e '" .. script:gsub("'", "'\\''") .. "'"))
    local path, key_file = p:read("l"), p:read("l")
    assert.is_true(p:close())
    assert.truthy(path and path:match("%.db$"))
    assert.is_false(exists(path))
    assert.is_false(exists(path .. "-wal"))
    assert.is_false(exists(key_file))
  end)
end)
