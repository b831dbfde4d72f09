-- lua_api_fuzz.lua — fuzzes the Lua API's argument handling.
--
-- Each step calls one module function or db / tx / iterator method with
-- arguments drawn from a pool of wrong types and hostile values (nil,
-- NaN, huge and negative numbers, strings with NULs and invalid UTF-8,
-- tables with erroring metamethods, functions that raise, yield, close
-- the handle or re-enter the API, closed handles, oplog.null, ...), mixed
-- with valid values so that deeper checks are reached. Every call runs
-- under pcall; an error must be an oplog error table with a known code, a
-- string message and __tostring "oplog: <code>: <message>", or the very
-- value a user callback raised. Every so often the main handle must still
-- work and verify (with replay) must find the log and live tables equal.
--
-- Run standalone: lua5.4 lua_api_fuzz.lua (LUA_PATH/CPATH into the build,
-- REL_FUZZ_RUNS steps, REL_SEED). rel_fuzz_lua.c drives the same steps
-- from libFuzzer bytes (it sets REL_FUZZ_HARNESS and calls M.run_input).
local oplog = require "oplog"

local M = {}

local CODES = {}
for c in ([[invalid_argument not_found closed ticket_conflict type_conflict
  constraint key_required wrong_key decrypt_failed corrupt busy readonly io
  nomem schema_too_new target_not_empty sql]]):gmatch("%S+") do
  CODES[c] = true
end

local SENTINEL = "user-callback-error"
local seen_codes = {}
local seen_example = {}

local function violation(fmt, ...)
  error("VIOLATION: " .. string.format(fmt, ...), 0)
end

-- An error is fine when it is a proper oplog error, or exactly what a user
-- callback raised (passed through), or Lua refusing a yield across C.
local function check_error(what, err)
  if err == SENTINEL then return end
  if type(err) == "string" and err:find("attempt to yield", 1, true) then return end
  if type(err) == "table" and err.sentinel == SENTINEL then return end
  if type(err) ~= "table" then
    violation("%s raised a %s, not an oplog error: %s", what, type(err), tostring(err))
  end
  if not CODES[err.code] then
    violation("%s raised unknown code %s (%s)", what, tostring(err.code), tostring(err.message))
  end
  if type(err.message) ~= "string" then violation("%s: message is a %s", what, type(err.message)) end
  local s = tostring(err)
  if s ~= "oplog: " .. err.code .. ": " .. err.message then
    violation("%s: tostring gives %q", what, s)
  end
  seen_codes[err.code] = (seen_codes[err.code] or 0) + 1
  if not seen_example[err.code] then seen_example[err.code] = what .. ": " .. err.message end
end

local ctx -- filled by M.setup

-- ------------------------------------------------------------------ values
local function hostile_table()
  return setmetatable({}, { __index = function() error(SENTINEL, 0) end })
end

local function pool_value(r)
  local k = r(34)
  if k == 1 then return nil
  elseif k == 2 then return true
  elseif k == 3 then return false
  elseif k == 4 then return 0
  elseif k == 5 then return -1
  elseif k == 6 then return 1.5
  elseif k == 7 then return 0 / 0
  elseif k == 8 then return math.huge
  elseif k == 9 then return math.mininteger
  elseif k == 10 then return math.maxinteger
  elseif k == 11 then return ""
  elseif k == 12 then return "x"
  elseif k == 13 then return "a\0b"
  elseif k == 14 then return "\xff\xfe\xc3("
  elseif k == 15 then return string.rep("z", 70000)
  elseif k == 16 then return {}
  elseif k == 17 then return { 1, 2, 3 }
  elseif k == 18 then return { a = 1 }
  elseif k == 19 then return function() end
  elseif k == 20 then return function() error(SENTINEL, 0) end
  elseif k == 21 then return coroutine.create(function() end)
  elseif k == 22 then return oplog.null
  elseif k == 23 then return ctx.db
  elseif k == 24 then return ctx.closed
  elseif k == 25 then return io.stdout
  elseif k == 26 then return hostile_table()
  elseif k == 27 then return "items"
  elseif k == 28 then return "item"
  elseif k == 29 then return "'; DROP TABLE oplog_entries; --"
  elseif k == 30 then return -2 ^ 63
  elseif k == 31 then return { { "id", "INTEGER PRIMARY KEY" } }
  elseif k == 32 then return function() coroutine.yield() end
  elseif k == 33 then return function() ctx.db:close() end -- checked: db is reopened
  else return 2 ^ 53 + 1
  end
end

-- A value usable as a table key (not nil, not NaN).
local function key_of(v, default)
  if v == nil or v ~= v then return default end
  return v
end

-- Paths stay inside the scratch directory: a pool string like "x" would
-- otherwise create files wherever the test runs.
local function path_value(r, good)
  local k = r(8)
  if k == 1 then return ctx.dir end -- a directory
  if k == 2 then return ctx.dir .. "/missing/dir/x.db" end
  if k == 3 then return ctx.dir .. "/" .. string.rep("p", 5000) end
  if k == 4 then
    local v = pool_value(r)
    if type(v) == "string" and v ~= "" then return nil end
    return v -- a wrong type, or ""
  end
  if k == 5 then return ctx.dir .. "/k1.key" end -- not a database
  return good
end

local function maybe(r, good)
  if r(3) == 1 then return pool_value(r) end
  return good
end

-- A row for type "item" with some fields valid, some not.
local function row(r)
  local t = {}
  local n = r(5) - 1
  local names = { "id", "name", "data", "score", "nope", "ID", "", "na\0me" }
  for _ = 1, n do
    t[names[r(#names)]] = pool_value(r)
  end
  if r(2) == 1 then t.id = r(1000) end
  if r(4) == 1 then t[key_of(pool_value(r), 1)] = "v" end -- non-string keys
  if r(6) == 1 then t = pool_value(r) end
  return t
end

local function list(r)
  local l = {}
  for i = 1, r(4) - 1 do l[i] = maybe(r, ({ "name", "data", "score", "id" })[r(4)]) end
  if r(6) == 1 then return pool_value(r) end
  return l
end

local function opts_table(r, keys)
  local t = {}
  for _ = 1, r(4) - 1 do
    local k = keys[r(#keys)]
    t[k] = pool_value(r)
  end
  if r(8) == 1 then t[key_of(pool_value(r), "x")] = 1 end
  if r(8) == 1 then return pool_value(r) end
  return t
end

-- ------------------------------------------------------------------ steps
local TX_METHODS = { "create", "update", "delete", "create_items", "delete_items" }

local function tx_body(r)
  return function(tx)
    for _ = 1, r(4) do
      local m = TX_METHODS[r(#TX_METHODS)]
      local args
      if m == "create_items" or m == "delete_items" then
        args = { maybe(r, "item"), maybe(r, { row(r), row(r) }) }
      else
        args = { maybe(r, "item"), row(r), list(r), list(r) }
      end
      local ok, err = pcall(tx[m], tx, table.unpack(args, 1, 4))
      if not ok then
        check_error("tx:" .. m, err)
        if r(2) == 1 then error(err, 0) end -- let the transaction fail with it
      end
    end
    local k = r(8)
    if k == 1 then error(SENTINEL, 0)
    elseif k == 2 then error({ sentinel = SENTINEL }, 0)
    elseif k == 3 then ctx.leaked_tx = tx -- used after its transaction
    elseif k == 4 then ctx.db:transaction("items", function() end) -- nested
    elseif k == 5 then ctx.db:begin()
    end
    return "ret", 2
  end
end

local function progress(r)
  local k = r(5)
  if k == 1 then return function() error(SENTINEL, 0) end
  elseif k == 2 then return function() coroutine.yield() end
  elseif k == 3 then return function() ctx.db:head() end -- re-enter
  elseif k == 4 then return function() return true end -- stop
  end
  return pool_value(r)
end

local STEPS -- name -> function(r) returning the call to check

STEPS = {
  function(r) return "open", oplog.open, path_value(r, ctx.dir .. "/o.db"), opts_table(r,
      { "key", "key_file", "passphrase", "encryption", "readonly", "create", "busy_timeout",
        "sync", "kdf" }) end,
  function(r) return "open2", oplog.open, ctx.path, { key = maybe(r, ctx.key),
      readonly = maybe(r, false), sync = maybe(r, "full"), busy_timeout = maybe(r, 100) } end,
  function(r) return "keygen", oplog.keygen, path_value(r, ctx.dir .. "/k" .. r(3) .. ".key") end,
  function(r) return "define", ctx.db.define, ctx.db, maybe(r, "item"), maybe(r, {
      columns = maybe(r, ctx.columns), table = maybe(r, "items"), aggregate = maybe(r, "items"),
      key = maybe(r, "id") }) end,
  function(r) return "types", ctx.db.types, maybe(r, ctx.db) end,
  function(r) return "ticket", ctx.db.ticket, ctx.db, maybe(r, "items") end,
  function(r) return "transaction", ctx.db.transaction, ctx.db, maybe(r, "items"),
      maybe(r, tx_body(r)), opts_table(r, { "metadata" }) end,
  function(r) return "transaction_md", ctx.db.transaction, ctx.db, "items", tx_body(r),
      { metadata = { k = maybe(r, "v"), multi = maybe(r, { "a", pool_value(r) }),
        flag = maybe(r, true), [key_of(maybe(r, "x"), "x")] = pool_value(r) } } end,
  function(r) return "begin", ctx.db.begin, ctx.db end,
  function(r) return "commit", ctx.db.commit, ctx.db end,
  function(r) return "rollback", ctx.db.rollback, ctx.db end,
  function(r) return "write_entry", ctx.db.write_entry, ctx.db, maybe(r, {
      aggregate = maybe(r, "items"), ticket = maybe(r, 1), metadata = maybe(r, { a = "b" }),
      ops = maybe(r, { { type = maybe(r, "item"), op = maybe(r, "create"), row = row(r),
        mask = list(r), nulls = list(r) } }) }) end,
  function(r) return "entries", function(db, f)
      -- generic-for shape: next function, nil, nil, closing value
      local it, _, _, obj = db:entries(f)
      for _ = 1, r(4) do
        local e = it()
        if not e then break end
      end
      local k = r(4)
      if k == 1 then obj:close()
      elseif k == 2 then obj:close(); it() -- after close
      elseif k == 3 then ctx.dangling, ctx.dangling_obj = it, obj -- used in later steps
      end
      return it
    end, ctx.db, opts_table(r, { "aggregate", "since", "upto", "metadata", "limit", "reverse" }) end,
  function(r) return "entry", ctx.db.entry, ctx.db, maybe(r, r(5)) end,
  function(r) return "replay", ctx.db.replay, ctx.db, maybe(r, { suffix = maybe(r, "_r"),
      into = r(3) == 1 and path_value(r, ctx.dir .. "/replica.db") or nil, fresh = maybe(r, true), aggregate = maybe(r, nil),
      since = maybe(r, nil), upto = maybe(r, nil), progress = progress(r) }) end,
  function(r) return "verify", ctx.db.verify, ctx.db, maybe(r, { replay = maybe(r, false),
      head = maybe(r, nil), progress = progress(r) }) end,
  function(r) return "head", ctx.db.head, maybe(r, ctx.db) end,
  function(r) return "stats", ctx.db.stats, maybe(r, ctx.db) end,
  function(r) return "keys", ctx.db.keys, maybe(r, ctx.db) end,
  function(r) return "rotate_key", ctx.db.rotate_key, maybe(r, ctx.db) end,
  function(r) return "rekey", ctx.db.rekey, ctx.db, opts_table(r,
      { "key", "key_file", "passphrase", "encryption", "kdf" }) end,
  function(r) return "closed", ctx.closed[({ "head", "stats", "ticket", "transaction", "verify",
      "close", "entries" })[r(7)]], ctx.closed, pool_value(r) end,
  function(r) return "leaked_tx", function()
      local tx = ctx.leaked_tx
      if not tx then return end
      return tx[TX_METHODS[r(#TX_METHODS)]](tx, "item", row(r))
    end end,
  function(r) return "method_on_wrong_self", ctx.db[({ "head", "define", "entries", "verify" })[r(4)]],
      pool_value(r), pool_value(r) end,
  function(r) return "is_error", oplog.is_error or function() end, pool_value(r) end,
  function(r) return "dangling_iter", function()
      if ctx.dangling then return ctx.dangling() end
    end end,
}

-- One step: pick a call, run it under pcall, check the outcome.
local function step(r)
  local name, f, a1, a2, a3, a4 = STEPS[r(#STEPS)](r)
  if type(f) ~= "function" then
    violation("%s is not a function in the API", name)
  end
  local ok, err = pcall(f, a1, a2, a3, a4)
  if not ok then check_error(name, err) end
  if ctx.db_is_closed() then ctx.reopen() end
  if name == "rekey" and ok then ctx.db:rekey({ key = ctx.key }) end -- keep the test key
  pcall(ctx.db.rollback, ctx.db) -- end a low-level transaction a step left open
  -- No high-level transaction may stay open behind the user's back.
  local tok, terr = pcall(ctx.db.transaction, ctx.db, "items", function() end)
  if not tok then violation("after %s a transaction cannot start: %s", name, tostring(terr)) end
  local hok, herr = pcall(ctx.db.head, ctx.db)
  if not hok then violation("after %s the handle is broken: %s", name, tostring(herr)) end
end

local function verify_all()
  -- An open iterator keeps a statement running, and SQLite cannot drop the
  -- replay's temporary tables under it (reported: "database table is
  -- locked"): close it first.
  if ctx.dangling_obj then pcall(ctx.dangling_obj.close, ctx.dangling_obj) end
  -- Iterators the steps abandoned without closing are closed by __gc.
  ctx.dangling, ctx.dangling_obj = nil, nil
  collectgarbage("collect")
  collectgarbage("collect")
  local ok, rep = pcall(ctx.db.verify, ctx.db, { replay = true })
  if not ok then violation("verify failed to run: %s", tostring(rep)) end
  if not rep.ok then
    local p = rep.problems[1] or {}
    violation("verify found %d problems, first: %s %s %s", #rep.problems, tostring(p.id),
      tostring(p.kind), tostring(p.detail))
  end
end

function M.setup(dir)
  ctx = { dir = dir, path = dir .. "/lua_fuzz.db", key = string.rep("k", 32) }
  ctx.columns = { { "id", "INTEGER PRIMARY KEY" }, { "name", "TEXT" }, { "data", "BLOB" },
    { "score", "REAL" } }
  function ctx.reopen()
    ctx.db = oplog.open(ctx.path, { key = ctx.key, busy_timeout = 100 })
  end
  function ctx.db_is_closed()
    local ok, err = pcall(ctx.db.head, ctx.db)
    return not ok and type(err) == "table" and err.code == "closed"
  end
  ctx.reopen()
  ctx.db:define("item", { columns = ctx.columns, table = "items" })
  ctx.db:transaction("items", function(tx) tx:create("item", { id = 1, name = "a" }) end)
  ctx.closed = oplog.open(ctx.path, { key = ctx.key })
  ctx.closed:close()
  ctx.steps = 0
  -- Fixed case: the handle's own open iterator is no reason for "busy" (which
  -- tells the caller to retry, and retrying cannot help here).
  ctx.db:transaction("items", function(tx) tx:create("item", { id = 2 }) end)
  local it, _, _, obj = ctx.db:entries()
  it()
  for _ = 1, 2 do -- the second replay has to drop the first one's tables
    local ok, err = pcall(ctx.db.replay, ctx.db, { suffix = "_fx", fresh = true })
    if not ok then
      check_error("replay with an open iterator", err)
      if err.code == "busy" then
        violation("replay{fresh=true} with an iterator of the same handle open fails with " ..
          "busy (%s): retrying cannot help", err.message)
      end
    end
  end
  obj:close()
end

-- libFuzzer: the bytes are the random choices.
function M.run_input(bytes)
  local i = 0
  local function r(n)
    i = i + 1
    local b = bytes:byte(i) or 0
    return b % n + 1
  end
  for _ = 1, 1 + #bytes // 24 do step(r) end
  ctx.steps = ctx.steps + 1
  if ctx.steps % 64 == 0 then verify_all() end
  -- a rekey fuzz step may have changed the key: keep the handle's key
  return true
end

function M.finish()
  verify_all()
  ctx.db:close()
end

M.seen_codes = seen_codes

if not REL_FUZZ_HARNESS then
  local runs = tonumber(os.getenv("REL_FUZZ_RUNS") or "3000")
  local seed = tonumber(os.getenv("REL_SEED") or "20261121")
  math.randomseed(seed)
  local tmp = os.getenv("TMPDIR") or "/tmp"
  local dir = tmp .. "/oplog-rel-luafuzz-" .. tostring(os.time()) .. "-" .. tostring(math.random(1e9))
  assert(os.execute("mkdir -p '" .. dir .. "'"))
  M.setup(dir)
  local function r(n) return math.random(n) end
  for s = 1, runs do
    step(r)
    if s % 200 == 0 then verify_all() end
  end
  M.finish()
  local codes = {}
  for c, n in pairs(seen_codes) do codes[#codes + 1] = c .. "=" .. n end
  table.sort(codes)
  if os.getenv("REL_VERBOSE") then
    for c, ex in pairs(seen_example) do print("  " .. c .. ": e.g. " .. ex) end
  end
  print(string.format("lua api fuzz: %d calls, every error clean (%s)", runs, table.concat(codes, " ")))
  os.execute("rm -rf '" .. dir .. "'")
end

return M
