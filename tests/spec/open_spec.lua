-- oplog.open: key choices, options, errors; the handle's life cycle.
local oplog = require "oplog"
local S = require "support"
local testing = S.testing

local function write_file(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

local function new_file(opts)
  local db, path, key_file = testing.open_temp(opts)
  db:define("note", S.NOTE)
  db:transaction("notes", function(tx) tx:create("note", { id = 1, body = "secret" }) end)
  db:close()
  return path, key_file
end

describe("oplog.open", function()
  after_each(testing.cleanup)

  describe("key choices", function()
    it("key_file with 64 hex characters", function()
      local path, key_file = new_file()
      local db = oplog.open(path, { key_file = key_file })
      assert.equal("secret", db:entry(1).ops[1].row.body)
      assert.equal(1, db:entry(1).key_id)
      db:close()
    end)

    it("key_file with 32 raw bytes, and key = the same 32 bytes", function()
      local kf = testing.tmpname(".key")
      local raw = string.rep("\7", 16) .. string.rep("\200", 16)
      write_file(kf, raw)
      local path = testing.tmpname(".db")
      -- a key file others can read is refused (as ssh refuses such keys)
      local e = S.err("invalid_argument", oplog.open, path, { key_file = kf })
      assert.truthy(e.message:find("chmod 600", 1, true), e.message)
      assert.is_true(os.execute("chmod 600 " .. kf))
      local db = oplog.open(path, { key_file = kf })
      db:define("note", S.NOTE)
      db:transaction("notes", function(tx) tx:create("note", { id = 1, body = "b" }) end)
      db:close()
      db = oplog.open(path, { key = raw })
      assert.equal("b", db:entry(1).ops[1].row.body)
      db:close()
    end)

    it("key must be 32 bytes", function()
      local e = S.err("invalid_argument", oplog.open, testing.tmpname(".db"), { key = "short" })
      assert.truthy(e.message:find("32", 1, true), e.message)
    end)

    it("a missing key file is not_found", function()
      S.err("not_found", oplog.open, testing.tmpname(".db"), { key_file = "/nonexistent/dir/k" })
    end)

    it("passphrase with lowered kdf limits", function()
      local path = new_file { passphrase = "correct horse", kdf = S.FAST_KDF }
      local db = oplog.open(path, { passphrase = "correct horse" })
      assert.equal("secret", db:entry(1).ops[1].row.body)
      db:close()
      S.err("wrong_key", oplog.open, path, { passphrase = "wrong horse" })
    end)

    it("KDF limits outside libsodium's range are invalid_argument", function()
      -- above crypto_pwhash_MEMLIMIT_MAX: refused before any allocation
      local e = S.err("invalid_argument", oplog.open, testing.tmpname(".db"),
        { passphrase = "p", kdf = { ops = 2, mem = 1 << 50 } })
      assert.truthy(e.message:find("kdf limits out of range", 1, true), e.message)
    end)

    it("a new passphrase with weak KDF limits is refused, nothing created", function()
      -- ops 1 with 8 KiB made ~30,000 guesses per second and core
      for _, kdf in ipairs { { ops = 1, mem = 8192 }, { ops = 1, mem = 64 << 20 }, { ops = 2, mem = (8 << 20) - 1 } } do
        local path = testing.tmpname(".db")
        local e = S.err("invalid_argument", oplog.open, path, { passphrase = "p", kdf = kdf })
        assert.truthy(e.message:find("too weak", 1, true), e.message)
        assert.is_nil(io.open(path))
      end
    end)

    it("an empty passphrase is invalid_argument", function()
      S.err("invalid_argument", oplog.open, testing.tmpname(".db"), { passphrase = "" })
    end)

    it("encryption = false makes a plaintext file", function()
      local path = new_file { encryption = false }
      local db = oplog.open(path, { encryption = false })
      local e = db:entry(1)
      assert.equal(0, e.key_id)
      assert.equal("secret", e.ops[1].row.body)
      assert.equal(0, db:stats().keys)
      db:close()
      S.err("wrong_key", oplog.open, path, { key = string.rep("k", 32) })
    end)

    it("a wrong key is wrong_key", function()
      local path = new_file()
      S.err("wrong_key", oplog.open, path, { key = string.rep("x", 32) })
    end)

    it("an encrypted file is never opened in plaintext mode: key_required", function()
      local path = new_file()
      S.err("key_required", oplog.open, path, { encryption = false })
    end)

    it("a new file needs a key choice: key_required", function()
      local path = testing.tmpname(".db")
      S.err("key_required", oplog.open, path)
      S.err("key_required", oplog.open, path, {})
    end)

    it("key options exclude each other", function()
      local e = S.err("invalid_argument", oplog.open, testing.tmpname(".db"),
        { key = string.rep("k", 32), encryption = false })
      assert.truthy(e.message:find("bad argument #2 to 'open'", 1, true), e.message)
    end)

    it("without any key option an encrypted file opens keyless", function()
      local path = new_file()
      local db = oplog.open(path)
      assert.equal(1, db:head().id)
      assert.equal(1, db:stats().entries)
      assert.is_table(db:types().note)
      assert.is_number(db:ticket("notes").version)
      assert.equal(1, #db:keys())
      local r = db:verify()
      assert.is_true(r.ok)
      S.err("key_required", db.entry, db, 1)
      S.err("key_required", function() for _ in db:entries() do end end)
      S.err("key_required", db.transaction, db, "notes", function(tx)
        tx:create("note", { id = 2 })
      end)
      db:close()
    end)
  end)

  describe("options", function()
    it("readonly: reads work, writes fail with readonly", function()
      local path, key_file = new_file()
      local db = oplog.open(path, { key_file = key_file, readonly = true })
      assert.equal("secret", db:entry(1).ops[1].row.body)
      S.err("readonly", db.transaction, db, "notes", function(tx)
        tx:create("note", { id = 2 })
      end)
      S.err("readonly", db.define, db, "other", { columns = { { "id", "INTEGER PRIMARY KEY" } } })
      S.err("readonly", db.begin, db)
      db:close()
    end)

    it("create = false on a missing file is not_found and creates nothing", function()
      local path = testing.tmpname(".db")
      S.err("not_found", oplog.open, path, { encryption = false, create = false })
      assert.is_nil(io.open(path, "rb"))
    end)

    it("create = false opens an existing file", function()
      local path, key_file = new_file()
      local first = oplog.open(path, { key_file = key_file })
      local origin, head = first:origin(), first:head()
      first:close()
      local db = oplog.open(path, { key_file = key_file, create = false })
      -- the same file, with its entry and identity, not a new one
      assert.same(origin, db:origin())
      assert.same(head, db:head())
      assert.equal(1, head.id)
      assert.equal("secret", db:entry(1).ops[1].row.body)
      assert.is_table(db:types().note)
      db:transaction("notes", function(tx) tx:create("note", { id = 2, body = "more" }) end)
      assert.equal(2, db:head().id)
      db:close()
    end)

    it("busy_timeout = 0 does not wait for another writer", function()
      local path, key_file = new_file()
      local a = oplog.open(path, { key_file = key_file })
      local b = oplog.open(path, { key_file = key_file, busy_timeout = 0 })
      a:begin()
      local t0 = os.time()
      S.err("busy", b.begin, b)
      S.err("busy", b.transaction, b, "notes", function() end)
      assert.is_true(os.time() - t0 < 2) -- the default would wait 5 s each
      a:rollback()
      b:begin()
      b:rollback()
      a:close()
      b:close()
    end)

    it("busy_timeout waits that long", function()
      local path, key_file = new_file()
      local a = oplog.open(path, { key_file = key_file })
      local b = oplog.open(path, { key_file = key_file, busy_timeout = 1100 })
      a:begin()
      local t0 = os.time()
      S.err("busy", b.begin, b)
      local waited = os.time() - t0 -- whole seconds: >= 1 after 1.1 s
      a:rollback()
      a:close()
      b:close()
      assert.is_true(waited >= 1 and waited < 4, "waited " .. waited)
    end)

    it("the default busy_timeout waits for another process's writer", function()
      local path, key_file = new_file()
      local db = oplog.open(path, { key_file = key_file }) -- busy_timeout left out
      local now = oplog.open(path, { key_file = key_file, busy_timeout = 0 })
      local go = testing.tmpname(".go")
      -- The other process takes the write lock and says so; once told to go
      -- on it holds the lock 0.5 s more and commits its entry (note 2).
      local script = string.format([[
        local oplog = require "oplog"
        local db = oplog.open(%q, { key_file = %q })
        db:transaction("notes", function(tx)
          tx:create("note", { id = 2, body = "other" })
          io.write("locked\n")
          io.flush()
          for _ = 1, 1000 do
            local f = io.open(%q)
            if f then f:close() break end
            os.execute("sleep 0.01")
          end
          os.execute("sleep 0.5")
        end)
        db:close()
      ]], path, key_file, go)
      local p = assert(io.popen("lua5.4 -e '" .. script:gsub("'", "'\\''") .. "'"))
      assert.equal("locked", p:read("l"))
      -- the lock is held: a handle that does not wait fails at once
      S.err("busy", now.transaction, now, "notes", function() end)
      assert(io.open(go, "w")):close()
      -- the default waits until the other commits, then writes after it
      local ok, id = pcall(db.transaction, db, "notes", function(tx)
        tx:create("note", { id = 3, body = "mine" })
      end)
      assert.is_true(p:close())
      assert.is_true(ok, tostring(id))
      assert.equal(3, id)
      assert.equal("other", db:entry(2).ops[1].row.body)
      db:close()
      now:close()
    end)

    it("sync accepts full and normal only", function()
      local path, key_file = new_file()
      oplog.open(path, { key_file = key_file, sync = "normal" }):close()
      oplog.open(path, { key_file = key_file, sync = "full" }):close()
      local e = S.err("invalid_argument", oplog.open, path, { key_file = key_file, sync = "fast" })
      assert.truthy(e.message:find("sync", 1, true), e.message)
    end)

    it("unknown options are invalid_argument naming the option", function()
      local e = S.err("invalid_argument", oplog.open, testing.tmpname(".db"),
        { encryption = false, readOnly = true })
      assert.equal("bad argument #2 to 'open' (unknown option 'readOnly')", e.message)
      e = S.err("invalid_argument", oplog.open, testing.tmpname(".db"),
        { passphrase = "p", kdf = { ops = 1, memory = 8192 } })
      assert.truthy(e.message:find("unknown option 'memory'", 1, true), e.message)
    end)

    it("wrongly typed options are invalid_argument", function()
      local p = testing.tmpname(".db")
      local cases = {
        { { encryption = false, readonly = "yes" }, "field 'readonly': boolean expected, got string" },
        { { encryption = false, busy_timeout = 1.5 }, "field 'busy_timeout': integer expected" },
        { { encryption = false, busy_timeout = -1 }, "busy_timeout" },
        { { key_file = 7 }, "field 'key_file': string expected, got number" },
        { { encryption = "no" }, "field 'encryption': boolean expected, got string" },
        { { passphrase = "p", kdf = 3 }, "field 'kdf': table expected, got number" },
        { { passphrase = "p", kdf = { ops = -1 } }, "kdf" },
        { "opts", "table expected, got string" },
      }
      for _, c in ipairs(cases) do
        local e = S.err("invalid_argument", oplog.open, p, c[1])
        assert.truthy(e.message:find(c[2], 1, true), e.message)
      end
      S.err("invalid_argument", oplog.open, {}, { encryption = false })
      S.err("invalid_argument", oplog.open, "", { encryption = false })
    end)
  end)

  describe("damaged or foreign files", function()
    it("a file that is not a database is corrupt", function()
      local path = testing.tmpname(".db")
      write_file(path, string.rep("this is not an SQLite database. ", 200))
      S.err("corrupt", oplog.open, path, { encryption = false })
    end)

    it("a file from a newer schema is schema_too_new", function()
      local path, key_file = new_file()
      -- PRAGMA user_version is the big-endian integer at offset 60
      S.patch(path, 60, "\0\0\3\231")
      local e = S.err("schema_too_new", oplog.open, path, { key_file = key_file })
      assert.truthy(e.message:find("999", 1, true), e.message)
    end)
  end)

  describe("the handle", function()
    it("has a __tostring with the path, then closed", function()
      local db, path = testing.open_temp()
      assert.equal("oplog.db (" .. path .. ")", tostring(db))
      db:close()
      assert.equal("oplog.db (closed)", tostring(db))
    end)

    it("close is idempotent and any other call raises closed", function()
      local db = testing.open_temp()
      db:close()
      db:close()
      local calls = {
        { "define", "t", { columns = { { "id", "INTEGER PRIMARY KEY" } } } },
        { "types" }, { "ticket", "a" }, { "transaction", "a", function() end },
        { "begin" }, { "commit" }, { "rollback" },
        { "write_entry", { aggregate = "a", ticket = 0, ops = {} } },
        { "entries" }, { "entry", 1 }, { "replay", { suffix = "_r" } }, { "verify" },
        { "head" }, { "origin" }, { "stats" }, { "keys" }, { "rotate_key" },
        { "rekey", { key = string.rep("k", 32) } },
      }
      for _, c in ipairs(calls) do
        local e = S.err("closed", db[c[1]], db, table.unpack(c, 2))
        assert.truthy(e.message:find("closed", 1, true))
      end
    end)

    it("<close> variables close the handle", function()
      local path, key_file = new_file()
      local outer
      do
        local db <close> = oplog.open(path, { key_file = key_file })
        outer = db
        db:begin() -- holds the write lock until closed
      end
      assert.equal("oplog.db (closed)", tostring(outer))
      local b = oplog.open(path, { key_file = key_file, busy_timeout = 0 })
      b:begin()
      b:rollback()
      b:close()
    end)

    it("<close> closes on error too", function()
      local path, key_file = new_file()
      local outer
      local ok = pcall(function()
        local db <close> = oplog.open(path, { key_file = key_file })
        outer = db
        db:begin()
        error("boom")
      end)
      assert.is_false(ok)
      assert.equal("oplog.db (closed)", tostring(outer))
      local b = oplog.open(path, { key_file = key_file, busy_timeout = 0 })
      b:begin()
      b:rollback()
      b:close()
    end)

    it("garbage collection of an unclosed handle closes it", function()
      local path, key_file = new_file()
      local weak = setmetatable({}, { __mode = "v" })
      local function open_and_drop()
        local db = oplog.open(path, { key_file = key_file })
        db:begin() -- holds the write lock
        weak[1] = db
      end
      open_and_drop()
      local b = oplog.open(path, { key_file = key_file, busy_timeout = 0 })
      collectgarbage()
      collectgarbage()
      assert.is_nil(weak[1])
      b:begin() -- would be busy if the collected handle still held its lock
      b:rollback()
      b:close()
    end)
  end)
end)
