-- Shared helpers for the busted specs (not a spec itself).
local oplog = require "oplog"
local testing = require "oplog.testing"

local S = {}

S.FAST_KDF = { ops = 2, mem = 8 * 1024 * 1024 } -- the least a new passphrase may ask

-- Calls fn(...) and asserts it raises an oplog error with `code`; returns it.
function S.err(code, fn, ...)
  local ok, e = pcall(fn, ...)
  assert(not ok, "expected error '" .. code .. "', but the call succeeded")
  assert(oplog.is_error(e), "expected an oplog error table, got " .. tostring(e))
  assert(e.code == code, "expected error '" .. code .. "', got " .. tostring(e))
  return e
end

-- The "user" type of aggregate "users" used across the specs.
S.USER = {
  table = "users",
  aggregate = "users",
  columns = {
    { "id", "INTEGER PRIMARY KEY" },
    { "name", "TEXT NOT NULL" },
    { "email", "TEXT UNIQUE" },
    { "score", "REAL" },
    { "avatar", "BLOB" },
    { "active", "BOOLEAN" },
  },
}

S.NOTE = {
  aggregate = "notes",
  columns = { { "id", "INTEGER PRIMARY KEY" }, { "body", "TEXT" } },
}

-- A fresh encrypted database with the user and note types.
function S.db(opts)
  local db, path, key_file = testing.open_temp(opts)
  db:define("user", S.USER)
  db:define("note", S.NOTE)
  return db, path, key_file
end

-- Writes one entry creating user `id` and returns its entry id.
function S.add_user(db, id, name, meta)
  return (db:transaction("users", function(tx)
    tx:create("user", { id = id, name = name or ("user" .. id) })
  end, meta and { metadata = meta } or nil))
end

local NULLABLE = { user = "score", note = "body" }

-- true when the live table of user/note has a row with key id: probes with
-- an update that is then rolled back (the API offers no reads of live
-- tables).
function S.exists(db, type, id)
  local probe = {}
  local column = assert(NULLABLE[type])
  local ok, e = pcall(db.transaction, db, db:types()[type].aggregate, function(tx)
    tx:update(type, { id = id }, nil, { column })
    error(probe)
  end)
  assert(not ok)
  if e == probe then return true end
  if oplog.is_error(e) and e.code == "not_found" then return false end
  error(e, 0)
end

-- Collects db:entries(filter) into a list.
function S.collect(db, filter)
  local list = {}
  for e in db:entries(filter) do list[#list + 1] = e end
  return list
end

function S.ids(list)
  local ids = {}
  for i, e in ipairs(list) do ids[i] = e.id end
  return ids
end

-- Reads a whole file.
function S.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- Overwrites bytes of a file at a 0-based offset.
function S.patch(path, offset, bytes)
  local f = assert(io.open(path, "r+b"))
  assert(f:seek("set", offset))
  assert(f:write(bytes))
  f:close()
end

S.testing = testing
return S
