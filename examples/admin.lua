-- admin.lua: find entries by metadata and time, print them as JSON lines.
--
--   oplog run examples/admin.lua DB KEYFILE KEY=VALUE [SINCE]
--       prints the entries of DB whose metadata KEY has VALUE, created at
--       or after SINCE (unix milliseconds, or -30m / -2h / -7d for "that long
--       ago"; default: all), one JSON object per line
--   oplog run examples/admin.lua
--       demo: builds a small log in a temporary directory, then runs such a
--       query on it and checks the answer
--   (lua5.4 examples/admin.lua ... works the same with oplog's Lua module on
--   LUA_PATH/LUA_CPATH)
local oplog = require "oplog"
local json = require "oplog.json"

-- Entries matching `meta` (all pairs must match), created at or after
-- since_ms. Metadata is matched by the library's index; the time is checked
-- here, on each entry it returns.
local function find(db, meta, since_ms)
  local found = {}
  for e in db:entries({ metadata = meta }) do
    if e.created >= since_ms then found[#found + 1] = e end
  end
  return found
end

local function iso(ms)
  return os.date("!%Y-%m-%dT%H:%M:%S", ms // 1000) .. string.format(".%03dZ", ms % 1000)
end

-- One JSON line per entry: who, when, what, and the rows as written.
local function json_line(e)
  local ops = {}
  for i, op in ipairs(e.ops) do
    ops[i] = json.ordered({ op = op.op, type = op.type, row = op.row,
      mask = json.array(op.mask or {}), nulls = json.array(op.nulls or {}) },
      { "op", "type", "row", "mask", "nulls" })
  end
  return json.encode(json.ordered({
    id = e.id, time = iso(e.created), aggregate = e.aggregate, metadata = e.metadata,
    ops = json.array(ops),
  }, { "id", "time", "aggregate", "metadata", "ops" }), { null = oplog.null })
end

local function parse_since(s)
  if not s then return 0 end
  local n, unit = s:match("^%-(%d+)([mhd])$")
  if n then
    local seconds = tonumber(n) * ({ m = 60, h = 3600, d = 86400 })[unit]
    return (os.time() - seconds) * 1000
  end
  return assert(math.tointeger(tonumber(s)), "SINCE: unix ms or -Nm/-Nh/-Nd, not " .. s)
end

local function query(path, keyfile, kv, since)
  local k, v = (kv or ""):match("^([^=]+)=(.*)$")
  assert(k, "KEY=VALUE expected")
  local db <close> = oplog.open(path, { key_file = keyfile, readonly = true, create = false })
  local found = find(db, { [k] = v }, parse_since(since))
  for _, e in ipairs(found) do print(json_line(e)) end
  return found
end

if arg and arg[1] then
  query(arg[1], arg[2], arg[3], arg[4])
  return
end

-- Demo. Two batches of changes one clock second apart, by three users.
local p = assert(io.popen("mktemp -d"))
local dir = assert(p:read("l"))
p:close()
local path, keyfile = dir .. "/crm.oplog", dir .. "/crm.key"
oplog.keygen(keyfile)
local cutoff
do
  local db <close> = oplog.open(path, { key_file = keyfile })
  db:define("customer", { aggregate = "customers", columns = {
    { "id", "INTEGER PRIMARY KEY" }, { "name", "TEXT NOT NULL" }, { "tier", "TEXT" } } })
  local function change(user, fn) db:transaction("customers", fn, { metadata = { user = user } }) end
  change("alice", function(tx) tx:create("customer", { id = 1, name = "ACME", tier = "gold" }) end)
  change("bob", function(tx) tx:create("customer", { id = 2, name = "Initech" }) end)
  change("alice", function(tx) tx:create("customer", { id = 3, name = "Umbrella" }) end)
  -- everything after the third change is "recent" (its own timestamp,
  -- not os.time(), which can lag the clock that stamps entries)
  cutoff = db:entry(3).created + 1
  os.execute("sleep 0.01")
  change("alice", function(tx)
    tx:update("customer", { id = 2, tier = "silver" }, { "tier" })
  end)
  change("carol", function(tx) tx:delete("customer", { id = 3 }) end)
  change("alice", function(tx)
    tx:update("customer", { id = 1 }, {}, { "tier" }) -- set tier to NULL
  end)
end
print(string.format("# alice's changes since %s (entries 4 and 6 of 6):", iso(cutoff)))
local found = query(path, keyfile, "user=alice", tostring(cutoff))
assert(#found == 2 and found[1].id == 4 and found[2].id == 6, "alice's recent entries")
print("# every change by carol:")
found = query(path, keyfile, "user=carol")
assert(#found == 1 and found[1].ops[1].op == "delete", "carol's delete")
os.execute("rm -rf '" .. dir .. "'")
print("admin: all checks passed")
