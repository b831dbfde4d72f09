-- Format-1 files (written by oplog 0.1.0, tests/fixtures/format1): read as
-- they are by a read-only or keyless open, migrated in place by the first
-- writable open with the key, with every entry's bytes and hash kept.
local oplog = require "oplog"
local S = require "support"

local SRC = assert(os.getenv("OPLOG_SOURCE_DIR"), "OPLOG_SOURCE_DIR") .. "/tests/fixtures/format1/"
local expected = dofile(SRC .. "expected.lua").files

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  p:close()
  return out
end

local function sql(path, q) return (sh(string.format("sqlite3 %q %q", path, q)):gsub("\n$", "")) end

local function read_all(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- A fresh copy of the fixture in its own directory (the key file 0600).
local function copy(name)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute(string.format("mkdir -p %q && cp %q %q %q && chmod 600 %q/v1.key", dir, SRC .. name,
    SRC .. "v1.key", dir, dir)))
  return dir .. "/" .. name, dir .. "/v1.key", dir
end

local function open_opts(name, key_file, extra)
  local o = {}
  if expected[name].open.encryption == false then o.encryption = false else o.key_file = key_file end
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

-- The fixture's serialisation of values (oplog.null as "<null>").
local function norm(v)
  if v == oplog.null then return "<null>" end
  if type(v) == "table" then
    local t = {}
    for k, x in pairs(v) do t[k] = norm(x) end
    return t
  end
  return v
end

-- Entries as the format-1 code read them back, field for field.
local function assert_entries(db, want)
  local got = {}
  for e in db:entries() do
    got[#got + 1] = {
      id = e.id, aggregate = e.aggregate, created = e.created, key_id = e.key_id,
      metadata = e.metadata, ops = norm(e.ops),
    }
    assert.equal(e.id, e.seq)   -- a format-1 entry's seq is its old id
    assert.equal(e.id, e.clock) -- and its clock too
  end
  assert.same(want, got)
end

for _, name in ipairs { "v1-encrypted.db", "v1-plain.db" } do
  local exp = expected[name]
  describe("format-1 file " .. name, function()
    it("opened read-only: read as it is, nothing changed", function()
      local path, key_file = copy(name)
      local before = read_all(path)
      local db = oplog.open(path, open_opts(name, key_file, { readonly = true }))
      assert.same(exp.head, db:head())
      assert.equal(string.rep("0", 64), db:origin().id) -- no origin before migration
      assert_entries(db, exp.entries)
      local r = db:verify { replay = true }
      assert.is_true(r.ok, r.problems[1] and r.problems[1].detail)
      assert.equal(14, r.entries)
      db:close()
      assert.equal(before, read_all(path))
      assert.equal("1", sql(path, "PRAGMA user_version"))
    end)

    it("migrated by a writable open: same entries, bytes and hashes; new entries chain on", function()
      local path, key_file = copy(name)
      local db = oplog.open(path, open_opts(name, key_file))
      assert.equal("2", sql(path, "PRAGMA user_version"))
      local origin = db:origin()
      assert.matches("^%x+$", origin.id)
      assert.equal(64, #origin.id)
      assert.not_equal(string.rep("0", 64), origin.id)
      assert.same({ id = exp.id or origin.id, seq = 14, clock = 14 }, { id = origin.id, seq = origin.seq, clock = origin.clock })
      assert.same(exp.head, db:head())
      assert_entries(db, exp.entries)
      -- the stored bytes: data, hashes and links unchanged, format 1 kept per entry
      for _, se in ipairs(exp.stored_entries) do
        local row = sql(path, string.format(
          "SELECT hex(hash), hex(prev_hash), length(data), key_id, format, seq, clock FROM oplog_entries WHERE id = %d", se.id))
        assert.equal(string.format("%s|%s|%d|%d|1|%d|%d", se.hash:upper(), se.prev_hash:upper(), se.data_bytes, se.key_id,
          se.id, se.id), row)
      end
          for agg, v in pairs(exp.tickets) do assert.same(v, db:ticket(agg)) end
      local r = db:verify { replay = true }
      assert.is_true(r.ok, r.problems[1] and r.problems[1].detail)
      -- a new entry: format 2, seq 15 of this origin, linked to entry 14's hash
      local id = db:transaction("ev", function(tx) tx:create("ev", { n = "8" }) end)
      local e = db:entry(id)
      assert.same({ 15, 15, 15 }, { id, e.seq, e.clock })
      assert.equal(origin.id, e.origin)
      assert.equal(exp.head.hash:upper(), sql(path, "SELECT hex(prev_hash) FROM oplog_entries WHERE id = 15"))
      assert.equal("2", sql(path, "SELECT format FROM oplog_entries WHERE id = 15"))
      r = db:verify { replay = true }
      assert.is_true(r.ok, r.problems[1] and r.problems[1].detail)
      db:close()
      -- reopened: the same origin, nothing migrated twice
      db = oplog.open(path, open_opts(name, key_file))
      assert.equal(origin.id, db:origin().id)
      assert.equal(15, db:origin().seq)
      assert.is_true(db:verify { replay = true }.ok)
      db:close()
    end)

    it("a newer schema is refused with schema_too_new, the file untouched", function()
      local path, key_file = copy(name)
      sql(path, "PRAGMA user_version = 3")
      local before = read_all(path)
      S.err("schema_too_new", oplog.open, path, open_opts(name, key_file))
      assert.equal(before, read_all(path))
    end)
  end)
end

describe("format-1 encrypted file", function()
  it("opened writable without its key: not migrated, readable in the clear parts", function()
    local path = copy("v1-encrypted.db")
    local db = oplog.open(path, {})
    assert.equal("1", sql(path, "PRAGMA user_version"))
    assert.same(expected["v1-encrypted.db"].head, db:head())
    S.err("key_required", db.entries, db)
    assert.is_true(db:verify().ok)
    db:close()
    assert.equal("1", sql(path, "PRAGMA user_version"))
  end)

  it("opened with a wrong key: wrong_key, not migrated", function()
    local path, _, dir = copy("v1-encrypted.db")
    local other = dir .. "/other.key"
    oplog.keygen(other)
    S.err("wrong_key", oplog.open, path, { key_file = other })
    assert.equal("1", sql(path, "PRAGMA user_version"))
  end)
end)
