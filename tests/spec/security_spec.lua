-- Issue 14 through the Lua API: the ceilings a file cannot raise
-- (kdf_limit, max_entry_bytes) and passphrase_fd's arguments. The attacks
-- themselves are performed in tests/c/test_security.c and, through the
-- command, tests/cli/security_test.lua (which also runs passphrase_fd end
-- to end: a Lua script cannot make a pipe).
local oplog = require "oplog"
local S = require "support"
local testing = S.testing

local function sqlite(path, sql)
  assert(os.execute("sqlite3 '" .. path .. "' \"" .. sql .. "\" > /dev/null"))
end

describe("security ceilings", function()
  after_each(testing.cleanup)

  describe("kdf_limit", function()
    local function pass_file(kdf, limit)
      local path = testing.tmpname(".db")
      local db = oplog.open(path, { passphrase = "open sesame", kdf = kdf, kdf_limit = limit })
      db:define("note", S.NOTE)
      db:transaction("notes", function(tx) tx:create("note", { id = 1, body = "x" }) end)
      db:close()
      return path
    end

    it("a file asking for 4 GiB and 2^31 passes is refused at once", function()
      local path = pass_file(S.FAST_KDF)
      sqlite(path, "UPDATE oplog_config SET value = 4294967296 WHERE name = 'kdf_mem';"
        .. " UPDATE oplog_config SET value = 2147483648 WHERE name = 'kdf_ops'")
      local t0 = os.clock()
      local e = S.err("invalid_argument", oplog.open, path, { passphrase = "open sesame" })
      assert.truthy(e.message:find("kdf_limit", 1, true), e.message)
      assert.is_true(os.clock() - t0 < 1)
    end)

    it("admits what the caller allows, and no more", function()
      local path = pass_file(S.FAST_KDF) -- 2 passes, 8 MiB
      local e = S.err("invalid_argument", oplog.open, path,
        { passphrase = "open sesame", kdf_limit = { mem = 4 << 20 } })
      assert.truthy(e.message:find("kdf_limit", 1, true), e.message)
      S.err("invalid_argument", oplog.open, path, { passphrase = "open sesame", kdf_limit = { ops = 1 } })
      oplog.open(path, { passphrase = "open sesame", kdf_limit = { ops = 2, mem = 8 << 20 } }):close()
      -- more passes than the default ceiling (8): only with kdf_limit raised
      -- a new passphrase above the ceiling is refused: the file could not be
      -- opened again without raising it
      local e2 = S.err("invalid_argument", oplog.open, testing.tmpname(".db"),
        { passphrase = "open sesame", kdf = { ops = 9, mem = 8 << 20 } })
      assert.truthy(e2.message:find("kdf_limit", 1, true), e2.message)
      path = pass_file({ ops = 9, mem = 8 << 20 }, { ops = 9 })
      S.err("invalid_argument", oplog.open, path, { passphrase = "open sesame" })
      oplog.open(path, { passphrase = "open sesame", kdf_limit = { ops = 9 } }):close()
    end)

    it("is checked as an option", function()
      for _, lim in ipairs { 3, { ops = -1 }, { mem = -1 }, { ops = 1.5 }, { memory = 1 } } do
        S.err("invalid_argument", oplog.open, testing.tmpname(".db"), { passphrase = "p", kdf_limit = lim })
      end
    end)
  end)

  describe("max_entry_bytes", function()
    it("refuses to write a larger entry and never loads one", function()
      local db, path, key_file = testing.open_temp({ max_entry_bytes = 4096 })
      db:define("note", S.NOTE)
      local big = string.rep("b", 6000)
      S.err("invalid_argument", db.transaction, db, "notes", function(tx)
        tx:create("note", { id = 1, body = big })
      end)
      assert.equal(0, db:stats().entries)
      db:close()
      db = oplog.open(path, { key_file = key_file, max_entry_bytes = 65536 })
      db:transaction("notes", function(tx) tx:create("note", { id = 1, body = big }) end)
      db:transaction("notes", function(tx) tx:create("note", { id = 2, body = "small" }) end)
      db:close()
      db = oplog.open(path, { key_file = key_file, max_entry_bytes = 4096 })
      local e = S.err("corrupt", db.entry, db, 1)
      assert.truthy(e.message:find("max_entry_bytes", 1, true), e.message)
      assert.equal("small", db:entry(2).ops[1].row.body)
      local report = db:verify()
      assert.is_false(report.ok)
      assert.equal("too_large", report.problems[1].kind)
      assert.equal(1, report.problems[1].id)
      db:close()
      db = oplog.open(path, { key_file = key_file })  -- the default, 16 MiB
      assert.equal(big, db:entry(1).ops[1].row.body)
      db:close()
    end)

    it("is checked as an option", function()
      for _, n in ipairs { 0, -1, 1.5, "1" } do
        S.err("invalid_argument", oplog.open, testing.tmpname(".db"), { encryption = false, max_entry_bytes = n })
      end
    end)
  end)

  describe("passphrase_fd", function()
    it("is a descriptor number, and one key choice", function()
      for _, fd in ipairs { -1, 1.5, "3", 1 << 40 } do
        S.err("invalid_argument", oplog.open, testing.tmpname(".db"), { passphrase_fd = fd })
      end
      local e = S.err("invalid_argument", oplog.open, testing.tmpname(".db"), { passphrase = "p", passphrase_fd = 0 })
      assert.truthy(e.message:find("exclude each other", 1, true), e.message)
      -- a descriptor that is not open: io, and no file is made
      local path = testing.tmpname(".db")
      e = S.err("io", oplog.open, path, { passphrase_fd = 1000, kdf = S.FAST_KDF })
      assert.truthy(e.message:find("descriptor 1000", 1, true), e.message)
      assert.is_nil(io.open(path))
      -- rekey takes it too (checked the same way)
      local db = S.db()
      S.err("invalid_argument", db.rekey, db, { passphrase_fd = -1 })
      S.err("io", db.rekey, db, { passphrase_fd = 1000 })
      db:close()
    end)
  end)
end)
