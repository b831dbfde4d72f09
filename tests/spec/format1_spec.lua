-- Format-1 files (tests/fixtures/format1, made by the format-1 code): read
-- as they are by a read-only or keyless open, migrated in place by a
-- writable open with the key, entries, hashes, metadata, tickets and live
-- tables kept.
local oplog = require "oplog"
local S = require "support"
local testing = S.testing

local SOURCE = os.getenv("OPLOG_SOURCE_DIR") or "."
local FIXTURE = SOURCE .. "/tests/fixtures/format1/"
local EXPECTED = dofile(FIXTURE .. "expected.lua")
local ZERO_ORIGIN = string.rep("0", 64)
-- A private copy of the fixture's key (a checkout leaves it readable by
-- others, and a key file others can read is refused).
local function KEY()
  local path = testing.tmpname(".key")
  local f = assert(io.open(path, "wb"))
  f:write(S.read(FIXTURE .. "v1.key"))
  f:close()
  assert(os.execute("chmod 600 '" .. path .. "'"))
  return path
end
local NULL = EXPECTED.null -- how expected.lua writes oplog.null

-- expected.lua's "<null>" as oplog.null, recursively (a copy).
local function nulls(v)
  if v == NULL then return oplog.null end
  if type(v) ~= "table" then return v end
  local t = {}
  for k, x in pairs(v) do t[k] = nulls(x) end
  return t
end

-- A copy of a fixture file in a temporary path (the originals stay as the
-- format-1 code left them).
local function copy(name)
  local path = testing.tmpname(".db")
  local f = assert(io.open(path, "wb"))
  f:write(S.read(FIXTURE .. name))
  f:close()
  return path
end

-- Output of the sqlite3 command on path; fields split by \31, rows by \30.
local function query(path, sql)
  local q = "'" .. sql:gsub("'", "'\\''") .. "'"
  local p = assert(io.popen("sqlite3 -bail -separator \"$(printf \'\\037\')\" -newline \"$(printf \'\\036\')\" '" .. path .. "' " .. q .. " 2>&1"))
  local out = p:read("a")
  assert(p:close(), "sqlite3 failed: " .. out)
  local rows = {}
  for line in out:gmatch("([^\30]*)\30") do
    local fields = {}
    for field in (line .. "\31"):gmatch("([^\31]*)\31") do fields[#fields + 1] = field end
    rows[#rows + 1] = fields
  end
  return rows
end

local function unhex(h)
  return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end))
end

-- The rows of a live table as expected.lua lists them: { types = {col =
-- storage class}, values = {col = value} }, ORDER BY its key.
local function table_rows(path, spec)
  local sel = {}
  for _, c in ipairs(spec.columns) do
    local q = '"' .. c .. '"'
    sel[#sel + 1] = "typeof(" .. q .. ")"
    sel[#sel + 1] = "CASE typeof(" .. q .. ") WHEN 'blob' THEN hex(" .. q .. ") WHEN 'real' THEN printf('%!.17g', "
      .. q .. ") ELSE " .. q .. " END"
  end
  local order = {}
  for _, c in ipairs(spec.order_by) do order[#order + 1] = '"' .. c .. '"' end
  local name = spec.sql:match('^CREATE TABLE "([^"]+)"')
  local rows = {}
  for i, f in ipairs(query(path, "SELECT " .. table.concat(sel, ", ") .. " FROM \"" .. name .. "\" ORDER BY "
    .. table.concat(order, ", "))) do
    local types, values = {}, {}
    for j, c in ipairs(spec.columns) do
      local class, text = f[2 * j - 1], f[2 * j]
      types[c] = class
      if class == "null" then values[c] = NULL
      elseif class == "integer" then values[c] = math.tointeger(tonumber(text))
      elseif class == "real" then values[c] = tonumber(text) + 0.0
      elseif class == "blob" then values[c] = unhex(text)
      else values[c] = text end
    end
    rows[i] = { types = types, values = values }
  end
  return rows
end

-- db:entries() without the format-2 fields, and those fields apart.
local function entries_and_places(db)
  local list, places = {}, {}
  for e in db:entries() do
    places[#places + 1] = { id = e.id, origin = e.origin, seq = e.seq, clock = e.clock }
    e.origin, e.seq, e.clock = nil, nil, nil
    list[#list + 1] = e
  end
  return list, places
end

local function places_of(origin, n)
  local t = {}
  for i = 1, n do t[i] = { id = i, origin = origin, seq = i, clock = i } end
  return t
end

local function user_version(path)
  return query(path, "PRAGMA user_version")[1][1]
end

for _, name in ipairs { "v1-encrypted.db", "v1-plain.db" } do
  local X = EXPECTED.files[name]
  local encrypted = X.config.encryption == "key"
  local function key_opts(extra)
    local o = encrypted and { key_file = KEY() } or { encryption = false }
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
  end
  local n = X.entry_count

  describe("a format-1 file (" .. name .. ")", function()
    after_each(testing.cleanup)

    it("is what the fixture says: user_version 1", function()
      local path = copy(name)
      assert.equal("1", user_version(path))
      assert.equal(14, n)
    end)

    it("opened read-only reads as the format-1 code read it, and stays unchanged", function()
      local path = copy(name)
      local before = S.read(path)
      local db <close> = oplog.open(path, key_opts { readonly = true })
      local list, places = entries_and_places(db)
      assert.same(nulls(X.entries), list)
      -- not migrated: no origin yet (all zeros); seq = clock = the old id
      assert.same(places_of(ZERO_ORIGIN, n), places)
      assert.same({ id = ZERO_ORIGIN, seq = n, clock = n }, db:origin())
      assert.same(X.head, db:head())
      assert.same({ ok = true, entries = n, problems = {} }, db:verify { replay = true })
      assert.same(X.tickets.ev, db:ticket("ev"))
      assert.same(X.tickets.users, db:ticket("users"))
      assert.same(X.types, db:types())
      local stats = db:stats()
      stats.bytes = nil
      assert.same(X.stats, stats)
      S.err("readonly", db.transaction, db, "ev", function(tx) tx:create("ev", { id = 99 }) end)
      db:close()
      assert.equal(before, S.read(path))
      assert.equal("1", user_version(path))
    end)

    if encrypted then
      it("opened without the key reads what needs no key, and stays unchanged", function()
        local path = copy(name)
        local before = S.read(path)
        local db <close> = oplog.open(path)
        assert.same({ id = ZERO_ORIGIN, seq = n, clock = n }, db:origin())
        assert.same(X.head, db:head())
        assert.same({ ok = true, entries = n, problems = {} }, db:verify())
        assert.same(X.tickets.ev, db:ticket("ev"))
        assert.equal(n, db:stats().entries)
        S.err("key_required", db.entry, db, 1)
        db:close()
        assert.equal(before, S.read(path))
        assert.equal("1", user_version(path))
      end)
    end

    it("opened writable is migrated in place, keeping entries, hashes, metadata and tickets", function()
      local path = copy(name)
      local db <close> = oplog.open(path, key_opts())
      local origin = db:origin()
      assert.equal(64, #origin.id)
      assert.truthy(origin.id:match("^[0-9a-f]+$"), origin.id)
      assert.not_equal(ZERO_ORIGIN, origin.id)
      assert.same({ id = origin.id, seq = n, clock = n }, origin)

      local list, places = entries_and_places(db)
      assert.same(nulls(X.entries), list)
      assert.same(places_of(origin.id, n), places)
      assert.same(X.head, db:head()) -- the old chain, hashes kept
      assert.same({ ok = true, entries = n, problems = {} }, db:verify { replay = true })
      assert.same(X.tickets.ev, db:ticket("ev"))
      assert.same(X.tickets.users, db:ticket("users"))
      assert.same(X.types, db:types())
      assert.same(X.keys, db:keys())
      local stats = db:stats()
      stats.bytes = nil
      assert.same(X.stats, stats)
      -- metadata search finds the migrated entries
      local alice = {}
      for _, e in ipairs(X.entries) do
        for _, v in ipairs(e.metadata.user or {}) do
          if v == "alice" then alice[#alice + 1] = e.id end
        end
      end
      assert.is_true(#alice > 1)
      assert.same(alice, S.ids(S.collect(db, { metadata = { user = "alice" } })))
      db:close()

      -- stored as format-1 entries of the new origin, bytes and hashes as they were
      assert.equal("3", user_version(path))
      assert.same({ { "2" } }, query(path, "SELECT value FROM oplog_config WHERE name = 'format'"))
      local stored = query(path, "SELECT id, seq, clock, aggregate_name, created, key_id, lower(hex(hash)), "
        .. "lower(hex(prev_hash)), length(data), format, (SELECT lower(hex(id)) FROM oplog_origins o "
        .. "WHERE o.no = e.origin) FROM oplog_entries e ORDER BY id")
      assert.equal(n, #stored)
      for i, s in ipairs(X.stored_entries) do
        assert.same({ tostring(s.id), tostring(s.id), tostring(s.id), s.aggregate, tostring(s.created),
          tostring(s.key_id), s.hash, s.prev_hash, tostring(s.data_bytes), "1", origin.id }, stored[i])
      end
      -- after close the derived tables cover every entry, as format 1 had them
      local meta = {}
      for i, r in ipairs(X.metadata_rows) do
        meta[i] = { tostring(r.entry_id), tostring(r.seq), r.key, r.value == NULL and "NULL" or "'" .. r.value .. "'" }
      end
      assert.same(meta, query(path, "SELECT entry_id, position, key, quote(value) FROM oplog_metadata "
        .. "ORDER BY entry_id, position"))
      assert.same({ { "ev", tostring(X.ticket_rows.ev) }, { "users", tostring(X.ticket_rows.users) } },
        query(path, "SELECT name, version FROM oplog_ticket ORDER BY name"))

      -- the live tables are untouched
      for _, t in pairs(X.tables) do assert.same(t.rows, table_rows(path, t)) end
    end)

    it("once migrated, new entries chain on and replay keeps format-1 rules for the old ones", function()
      local path = copy(name)
      local db <close> = oplog.open(path, key_opts())
      local origin = db:origin().id
      local id = db:transaction("ev", function(tx) tx:create("ev", { id = 500, n = "8" }) end,
        { metadata = { user = "new" } })
      assert.equal(n + 1, id)
      local e = db:entry(id)
      assert.equal(origin, e.origin)
      assert.equal(n + 1, e.seq)
      assert.equal(n + 1, e.clock)
      -- a format-2 entry: the row as stored, DEFAULT filled in, affinity applied
      assert.same({ id = 500, at = 42, n = 8, note = oplog.null }, e.ops[1].row)
      assert.equal("integer", math.type(e.ops[1].row.n))
      assert.same({ id = origin, seq = n + 1, clock = n + 1 }, db:origin())
      assert.same({ ok = true, entries = n + 1, problems = {} }, db:verify { replay = true })
      assert.equal(X.tickets.ev.version + 1, db:ticket("ev").version)

      -- a replica of the old entries equals the live tables the format-1 code made
      local replica = testing.tmpname(".replica")
      local r = db:replay { into = replica, upto = n }
      assert.equal(n, r.entries)
      for _, t in pairs(X.tables) do assert.same(t.rows, table_rows(replica, t)) end
      db:close()
      assert.same({ { tostring(n + 1), tostring(n + 1), "2" } },
        query(path, "SELECT seq, clock, format FROM oplog_entries WHERE id = " .. (n + 1)))

      -- reopened: the same origin, and everything still verifies
      local again <close> = oplog.open(path, key_opts())
      assert.equal(origin, again:origin().id)
      assert.same({ ok = true, entries = n + 1, problems = {} }, again:verify { replay = true })
      -- a read-only open of the migrated file sees the same
      local ro <close> = oplog.open(path, key_opts { readonly = true })
      assert.same(again:origin(), ro:origin())
      assert.same(again:head(), ro:head())
    end)
  end)
end

describe("a format-1 file the library cannot take", function()
  it("from a newer schema is refused with schema_too_new, the file untouched", function()
    for _, name in ipairs { "v1-encrypted.db", "v1-plain.db" } do
      local path = copy(name)
      query(path, "PRAGMA user_version = 4")
      local before = S.read(path)
      local o = EXPECTED.files[name].config.encryption == "key" and { key_file = KEY() }
        or { encryption = false }
      S.err("schema_too_new", oplog.open, path, o)
      assert.equal(before, S.read(path))
    end
  end)

  it("opened with a wrong key is wrong_key and not migrated", function()
    local path = copy("v1-encrypted.db")
    local other = testing.tmpname(".key")
    oplog.keygen(other)
    S.err("wrong_key", oplog.open, path, { key_file = other })
    assert.equal("1", user_version(path))
  end)
end)
