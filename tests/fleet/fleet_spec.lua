-- Fleet: shipping device logs to a real PostgreSQL server and verifying
-- them there. Run by tests/fleet/pg.sh, which starts a private server
-- (OPLOG_PG is its connection string) and stops it at the end.
local oplog = require "oplog"

local PG = assert(os.getenv("OPLOG_PG"), "run through tests/fleet/pg.sh")
local BIN = assert(os.getenv("OPLOG_BIN"), "OPLOG_BIN is not set")
local PG_CTL = assert(os.getenv("OPLOG_PG_CTL"))

-- sizes: smaller under the sanitizers, which make every write slow
local SLOW = os.getenv("ASAN_OPTIONS") ~= nil
local N_RESTART = SLOW and 5000 or 10000
local N_EIGHT = SLOW and 300 or 1000

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function sh(cmd)
  local ok, how, code = os.execute(cmd)
  return ok and 0 or code, how
end

-- The output of a command that prints rows, "|" between columns.
local function rows(cmd, what)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local text = p:read("a")
  local ok = p:close()
  assert(ok, what .. " failed: " .. text)
  return (text:gsub("\n$", ""))
end
-- psql's rows of a query
local function sql(query)
  return rows("env -u LD_PRELOAD psql -X -q -At -v ON_ERROR_STOP=1 " .. q(PG) .. " -c " .. q(query), "psql")
end
local function count(query) return math.tointeger(tonumber(sql(query))) end

local tmp = (function()
  local p = io.popen("mktemp -d /tmp/oplog-fleet.XXXXXX")
  local d = p:read("l")
  p:close()
  return d
end)()

local function run(args)
  local out = tmp .. "/out." .. math.random(1e9)
  local code = sh("env -u OPLOG_KEY_FILE " .. q(BIN) .. " " .. args .. " >" .. out .. " 2>&1")
  local f = io.open(out)
  local text = f:read("a")
  f:close()
  os.remove(out)
  return code, text
end

local n_db = 0
-- A new encrypted device file with a `user` type; returns db, path, key path.
local function device(name)
  n_db = n_db + 1
  local path = string.format("%s/%s-%d.db", tmp, name or "dev", n_db)
  local key = path .. ".key"
  oplog.keygen(key)
  local db = oplog.open(path, { key_file = key })
  db:define("user", { columns = { { "id", "INTEGER PRIMARY KEY" }, { "name", "TEXT NOT NULL" },
    { "score", "REAL" }, { "active", "BOOLEAN" }, { "photo", "BLOB" } } })
  return db, path, key
end

-- n entries of one create each, in one SQLite commit; ids from `from`
local function write(db, from, n, tag)
  db:transaction("user", function(tx)
    for i = from, from + n - 1 do
      tx:create("user", { id = i, name = (tag or "u") .. "-name-" .. i, score = i / 4, active = i % 2 == 0,
        photo = string.char(i % 256, 0, 255) })
      if i < from + n - 1 then tx:entry({ device = tag or "u", n = tostring(i) }) end
    end
  end, { metadata = { device = tag or "u", n = tostring(from + n - 1) } })
end

local function origin_hex(db) return db:origin().id end
local function stored(db, schema)
  return count(string.format("SELECT count(*) FROM %s.oplog_entries WHERE origin = '\\x%s'",
    schema or "oplog", origin_hex(db)))
end

local function errcode(fn)
  local ok, e = pcall(fn)
  assert(not ok, "expected an error")
  return e.code, e.message
end

-- ---------------------------------------------------------------- apply

-- sqlite3's rows of a query on the file at path
local function lite(path, query) return rows("sqlite3 -bail -separator '|' " .. q(path) .. " " .. q(query), "sqlite3") end

-- Lines of "|"-separated fields; the fields at real_cols rewritten as
-- %.15g of their number: SQLite's printf is exact to 15 digits only, and
-- PostgreSQL prints the shortest text that reads back the same double.
local function norm(text, real_cols)
  local out = {}
  for line in text:gmatch("[^\n]+") do
    local f = {}
    for v in (line .. "|"):gmatch("(.-)|") do f[#f + 1] = v end
    for _, c in ipairs(real_cols or {}) do
      if f[c] ~= "NULL" then f[c] = string.format("%.15g", assert(tonumber(f[c]), line)) end
    end
    out[#out + 1] = table.concat(f, "|")
  end
  return out
end

-- A shop: items (a UNIQUE code, every value type) and tags (a composite key).
local function define_shop(db)
  db:define("item", { aggregate = "shop", columns = { { "id", "INTEGER PRIMARY KEY" }, { "name", "TEXT NOT NULL" }, { "code", "TEXT UNIQUE" },
    { "qty", "INTEGER" }, { "price", "REAL" }, { "flag", "BOOLEAN" }, { "pic", "BLOB" } } })
  db:define("tag", { aggregate = "shop", columns = { { "item", "INTEGER NOT NULL" }, { "label", "TEXT NOT NULL" }, { "note", "TEXT" } },
    key = { "item", "label" } })
end

-- The live tables of the shop, as text, in the file and in PostgreSQL.
local function shop_lite(path)
  return {
    items = norm(lite(path, "SELECT id, name, coalesce(code, 'NULL'), coalesce(qty, 'NULL'), CASE WHEN price IS NULL"
      .. " THEN 'NULL' ELSE printf('%.15g', price) END, coalesce(flag, 'NULL'), CASE WHEN pic IS NULL THEN 'NULL'"
      .. " ELSE lower(hex(pic)) END FROM item ORDER BY id"), { 5 }),
    tags = norm(lite(path, "SELECT item, label, coalesce(note, 'NULL') FROM tag ORDER BY item, label")),
  }
end
local function shop_pg(schema)
  return {
    items = norm(sql("SELECT id, name, coalesce(code, 'NULL'), coalesce(qty::text, 'NULL'), coalesce(price::text, 'NULL'),"
      .. " CASE WHEN flag IS NULL THEN 'NULL' WHEN flag THEN '1' ELSE '0' END, coalesce(encode(pic, 'hex'), 'NULL')"
      .. " FROM " .. schema .. ".item ORDER BY id"), { 5 }),
    tags = norm(sql("SELECT item, label, coalesce(note, 'NULL') FROM " .. schema .. ".tag ORDER BY item, label")),
  }
end

-- The conflicts of a file and of a schema, as "origin seq op kind[ detail]"
-- lines (a constraint's message is each engine's own).
local function conflicts_lite(db)
  local out = {}
  for c in db:conflicts() do
    local e = db:entry(c.entry_id)
    out[#out + 1] = table.concat({ e.origin, e.seq, c.op, c.kind, c.kind ~= "constraint" and c.detail or "" }, " ")
  end
  table.sort(out)
  return out
end
local function conflicts_pg(schema)
  local out = {}
  local text = sql("SELECT encode(origin, 'hex'), seq, op, kind, CASE WHEN kind = 'constraint' THEN '' ELSE detail END"
    .. " FROM " .. schema .. ".oplog_conflicts")
  for line in text:gmatch("[^\n]+") do out[#out + 1] = (line:gsub("|", " ")) end
  table.sort(out)
  return out
end

-- One random transaction of a shop device that applies in its own file:
-- dev.items / dev.tags mirror its live rows (it imports nothing).
local function shop_tx(rng, dev)
  local items, tags = dev.items, dev.tags
  dev.db:transaction("shop", function(tx)
    for _ = 1, rng(3) do
      local ids, tagkeys = {}, {}
      for id in pairs(items) do ids[#ids + 1] = id end
      for k in pairs(tags) do tagkeys[#tagkeys + 1] = k end
      table.sort(ids)
      table.sort(tagkeys)
      local pick = rng(6)
      if pick == 1 or #ids == 0 then
        local id = rng(12)
        if not items[id] then
          local used = {}
          for _, row in pairs(items) do if row.code then used[row.code] = true end end
          local code = "c" .. rng(4)
          if used[code] or rng(3) == 1 then code = nil end
          items[id] = { code = code }
          tx:create("item", { id = id, name = dev.name .. id, code = code, qty = rng(100) - 50, price = rng(1000) / 7,
            flag = rng(2) == 1, pic = string.char(rng(256) - 1, 0, rng(256) - 1) })
        end
      elseif pick == 2 then
        local id = ids[rng(#ids)]
        local mask, nulls = {}, {}
        local row = { id = id, name = dev.name .. "-u" .. rng(99), qty = rng(9), price = rng(100) / 3, flag = rng(2) == 1,
          pic = "" }
        for _, c in ipairs({ "name", "qty", "price", "flag", "pic" }) do
          if rng(2) == 1 then mask[#mask + 1] = c end
        end
        if rng(4) == 1 then nulls[1] = "qty" ; for i = #mask, 1, -1 do if mask[i] == "qty" then table.remove(mask, i) end end end
        if #mask == 0 and #nulls == 0 then mask[1] = "name" end
        tx:update("item", row, mask, nulls)
      elseif pick == 3 then
        local id = ids[rng(#ids)]
        items[id] = nil
        tx:delete("item", { id = id })
      elseif pick == 4 or #tagkeys == 0 then
        local item, label = rng(12), ({ "x", "y" })[rng(2)]
        if not tags[item .. "|" .. label] then
          tags[item .. "|" .. label] = true
          tx:create("tag", { item = item, label = label, note = dev.name })
        end
      elseif pick == 5 then
        local k = tagkeys[rng(#tagkeys)]
        local item, label = k:match("^(%d+)|(.*)$")
        tx:update("tag", { item = tonumber(item), label = label, note = dev.name .. rng(9) }, { "note" })
      else
        local k = tagkeys[rng(#tagkeys)]
        local item, label = k:match("^(%d+)|(.*)$")
        tags[k] = nil
        tx:delete("tag", { item = tonumber(item), label = label })
      end
    end
  end)
end

describe("oplog ship --apply", function()
  it("applies a device's log to live tables equal to its own, resuming after more writes", function()
    local db, path = device("apply-one")
    define_shop(db)
    local rng = (function()
      local seed = 7
      return function(n)
        seed = (seed * 1103515245 + 12345) % 2147483648
        return seed % n + 1
      end
    end)()
    local dev = { db = db, name = "d", items = {}, tags = {} }
    for _ = 1, 40 do shop_tx(rng, dev) end
    write(db, 1, 5)
    local n = db:origin().seq
    assert.is_true(n > 40)
    -- shipped first without apply: apply later takes every entry not applied yet
    assert.equal(n, db:ship({ postgres = PG, schema = "a1" }).entries)
    local r = db:ship({ postgres = PG, schema = "a1", apply = true })
    assert.same({ entries = 0, skipped = n, batches = 0, checkpoints = 0, applied = n, conflicts = 0 }, r)
    assert.same(shop_lite(path), shop_pg("a1"))
    assert.equal(5, count("SELECT count(*) FROM a1.\"user\""))
    assert.equal("1|u-name-1|0.25|f|\\x0100ff",
      sql("SELECT id, name, score, active, photo FROM a1.\"user\" WHERE id = 1"))
    -- PostgreSQL's types, mapped from the catalog
    assert.equal("id bigint|name text|code text|qty bigint|price double precision|flag boolean|pic bytea",
      sql("SELECT string_agg(column_name || ' ' || data_type, '|' ORDER BY ordinal_position)"
        .. " FROM information_schema.columns WHERE table_schema = 'a1' AND table_name = 'item'"))
    -- the log's rows stay encrypted; the applied operations are there in the clear, as the live tables are
    assert.equal(0, count("SELECT count(*) FROM a1.oplog_entries WHERE position('u-name-1'::bytea in data) > 0"))
    assert.equal(1, count("SELECT count(*) FROM a1.oplog_applied WHERE position('u-name-1'::bytea in data) > 0"))
    -- nothing new: nothing applied
    r = db:ship({ postgres = PG, schema = "a1", apply = true })
    assert.equal(0, r.applied)
    for _ = 1, 30 do shop_tx(rng, dev) end
    local more = db:origin().seq - n
    r = db:ship({ postgres = PG, schema = "a1", apply = true })
    assert.equal(more, r.entries)
    assert.equal(more, r.applied)
    assert.equal(0, r.conflicts)
    assert.same(shop_lite(path), shop_pg("a1"))
    assert.equal(n + more, count("SELECT count(*) FROM a1.oplog_applied"))
    assert.equal(0, count("SELECT count(*) FROM a1.oplog_conflicts"))
    db:close()
    -- the command line says what it applied
    local dbb, pb, kb = device("apply-cli")
    write(dbb, 100, 3)
    dbb:close()
    local code, text = run("ship " .. q(pb) .. " --key-file " .. q(kb) .. " --postgres " .. q(PG) .. " --schema a1 --apply")
    assert.equal(0, code, text)
    assert.matches("applied 3 entries (0 conflicts)", text, 1, true)
    code, text = run("ship " .. q(pb) .. " --key-file " .. q(kb) .. " --postgres " .. q(PG) .. " --schema a1 --apply --json")
    assert.equal(0, code, text)
    assert.matches('"applied":0,"conflicts":0', text, 1, true)
    assert.equal(8, count("SELECT count(*) FROM a1.\"user\""))
  end)

  it("puts a late device's entries in their place: rows recomputed, a conflict moved", function()
    local a, pa, ka = device("late-a")
    local b, pb, kb = device("late-b")
    define_shop(a)
    define_shop(b)
    for i = 1, 5 do
      a:transaction("shop", function(tx) tx:create("item", { id = i, name = "a" .. i, code = "c" .. i }) end)
    end
    a:transaction("shop", function(tx) tx:update("item", { id = 3, name = "a3x" }, { "name" }) end)
    local r = a:ship({ postgres = PG, schema = "a3", apply = true })
    assert.equal(6, r.applied)
    assert.equal(0, r.conflicts)
    -- b wrote offline meanwhile, at clocks 1 and 2: before a's 3rd entry in the total order
    b:transaction("shop", function(tx) tx:create("item", { id = 3, name = "b3" }) end)
    b:transaction("shop", function(tx) tx:create("item", { id = 7, name = "b7", code = "c4" }) end)
    -- (a text where the column is INTEGER: SQLite keeps it, PostgreSQL's bigint cannot;
    -- the key is there all the same: exists, as in the file)
    b:transaction("shop", function(tx) tx:create("item", { id = 2, name = "b2", qty = "many" }) end)
    r = b:ship({ postgres = PG, schema = "a3", apply = true })
    assert.equal(3, r.applied)
    -- a's create of 3 now finds b's row (exists), so a's update of 3 applies to b's row;
    -- b's code c4 came first, so a's item 4 cannot take it (constraint)
    assert.equal(3, r.conflicts)
    assert.equal(table.concat({ "1|a1|c1", "2|a2|c2", "3|a3x|", "5|a5|c5", "7|b7|c4" }, "\n"),
      sql("SELECT id, name, coalesce(code, '') FROM a3.item ORDER BY id"))
    local ca = origin_hex(a)
    local cb = origin_hex(b)
    local want = { ca .. " 3 1 exists create of item, key (3): a row with this key exists", ca .. " 4 1 constraint ",
      cb .. " 3 1 exists create of item, key (2): a row with this key exists" }
    table.sort(want)
    assert.same(want, conflicts_pg("a3"))
    -- as a file that joins both
    local g, pg_path = device("late-g")
    g:join(pa, { key_file = ka })
    g:join(pb, { key_file = kb })
    assert.same(shop_lite(pg_path), shop_pg("a3"))
    assert.same(conflicts_lite(g), conflicts_pg("a3"))
    -- a value PostgreSQL's type cannot hold, on a new key: a constraint conflict there, where the file takes it (documented)
    b:transaction("shop", function(tx) tx:create("item", { id = 8, name = "b8", qty = "many" }) end)
    r = b:ship({ postgres = PG, schema = "a3", apply = true })
    assert.equal(1, r.conflicts)
    assert.equal("constraint|create of item, key (8): invalid input syntax for type bigint: \"many\"",
      sql("SELECT kind, detail FROM a3.oplog_conflicts WHERE seq = 4 AND origin = '\\x" .. cb .. "'"))
    a:close()
    b:close()
    g:close()
  end)

  it("orders entries of one clock by origin id, whatever their seqs (a device ahead in clock)", function()
    local p, pp, kp = device("tie-p")
    local q_, pq, kq = device("tie-q")
    local x, px, kx = device("tie-x")
    for _, d in ipairs({ p, q_, x }) do define_shop(d) end
    -- lo: the lower origin id; hi joins x first, so that its first entry has clock 7 and seq 1
    local lo, hi, plo, klo, phi, khi = p, q_, pp, kp, pq, kq
    if origin_hex(q_) < origin_hex(p) then lo, hi, plo, klo, phi, khi = q_, p, pq, kq, pp, kp end
    for i = 1, 6 do x:transaction("shop", function(tx) tx:create("item", { id = 20 + i, name = "x" }) end) end
    hi:join(px, { key_file = kx })
    hi:transaction("shop", function(tx) tx:create("item", { id = 1, name = "hi" }) end)
    for i = 1, 6 do lo:transaction("shop", function(tx) tx:create("item", { id = 10 + i, name = "lo" }) end) end
    lo:transaction("shop", function(tx) tx:create("item", { id = 1, name = "lo" }) end)
    assert.same({ 7, 1 }, { hi:origin().clock, hi:origin().seq })
    assert.same({ 7, 7 }, { lo:origin().clock, lo:origin().seq })
    -- hi applies first; lo's entries then sort before its clock-7 entry, which is applied again after lo's
    assert.equal(7, hi:ship({ postgres = PG, schema = "a5", apply = true }).applied)
    local r = lo:ship({ postgres = PG, schema = "a5", apply = true })
    assert.equal(7, r.applied)
    assert.equal(1, r.conflicts)
    assert.equal("lo", sql("SELECT name FROM a5.item WHERE id = 1"))
    assert.same({ origin_hex(hi) .. " 1 1 exists create of item, key (1): a row with this key exists" }, conflicts_pg("a5"))
    local g, pg_path = device("tie-g")
    for _, f in ipairs({ { plo, klo }, { phi, khi } }) do g:join(f[1], { key_file = f[2] }) end
    assert.same(shop_lite(pg_path), shop_pg("a5"))
    assert.same(conflicts_lite(g), conflicts_pg("a5"))
    for _, d in ipairs({ p, q_, x, g }) do d:close() end
  end)

  it("survives a PostgreSQL restart while applying: nothing applied, then everything once", function()
    local a, pa, ka = device("apply-restart")
    define_shop(a)
    local rng = (function()
      local seed = 11
      return function(n)
        seed = (seed * 1103515245 + 12345) % 2147483648
        return (seed >> 8) % n + 1
      end
    end)()
    local dev = { db = a, name = "r", items = {}, tags = {} }
    for _ = 1, 50 do shop_tx(rng, dev) end
    local n = a:origin().seq
    a:close()
    -- another applier holds the apply lock: this one ships, then waits inside its apply
    local log = tmp .. "/apply-restart.log"
    sh("(env -u LD_PRELOAD psql -X -q " .. q(PG) .. " -c 'BEGIN' -c 'SELECT pg_advisory_xact_lock(1869638759, hashtext($$\"a4\"$$))'"
      .. " -c 'SELECT pg_sleep(60)' >/dev/null 2>&1 &)")
    sh("(" .. q(BIN) .. " ship " .. q(pa) .. " --key-file " .. q(ka) .. " --postgres " .. q(PG)
      .. " --schema a4 --apply >" .. log .. " 2>&1; echo $? >>" .. log .. ") &")
    local waiting = 0
    for _ = 1, 400 do
      waiting = count("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 1869638759"
        .. " AND NOT granted")
      if waiting > 0 then break end
      sh("sleep 0.05")
    end
    assert.equal(1, waiting, "the ship never reached the apply")
    assert.equal(0, sh(PG_CTL .. " restart -m immediate >/dev/null 2>&1"))
    local text = ""
    for _ = 1, 600 do
      local f = io.open(log)
      text = f and f:read("a") or ""
      if f then f:close() end
      if text:match("\n?%d+\n$") then break end
      sh("sleep 0.05")
    end
    assert.matches("oplog: io: postgres", text, 1, true)
    assert.matches("2\n$", text)
    -- shipped (committed batch by batch), nothing applied
    assert.equal(n, count("SELECT count(*) FROM a4.oplog_entries"))
    assert.equal(0, count("SELECT count(*) FROM a4.oplog_applied"))
    local code, out = run("ship " .. q(pa) .. " --key-file " .. q(ka) .. " --postgres " .. q(PG) .. " --schema a4 --apply --json")
    assert.equal(0, code, out)
    assert.matches('"entries":0,"skipped":' .. n .. ',"batches":0,"checkpoints":0,"applied":' .. n .. ',"conflicts":0', out,
      1, true)
    assert.same(shop_lite(pa), shop_pg("a4"))
    code, out = run("ship " .. q(pa) .. " --key-file " .. q(ka) .. " --postgres " .. q(PG) .. " --schema a4 --apply --json")
    assert.equal(0, code, out)
    assert.matches('"applied":0', out, 1, true)
    assert.equal(n, count("SELECT count(*) FROM a4.oplog_applied"))
  end)

  it("refuses a type defined differently there (type_conflict), keeping what it shipped", function()
    local a = device("tc-a")
    define_shop(a)
    a:transaction("shop", function(tx) tx:create("item", { id = 1, name = "one" }) end)
    assert.equal(1, a:ship({ postgres = PG, schema = "a2", apply = true }).applied)
    local b, pb, kb = device("tc-b")
    b:define("item", { aggregate = "shop", columns = { { "id", "INTEGER PRIMARY KEY" }, { "name", "TEXT" } } })
    b:transaction("shop", function(tx) tx:create("item", { id = 2, name = "two" }) end)
    local code, msg = errcode(function() b:ship({ postgres = PG, schema = "a2", apply = true }) end)
    assert.equal("type_conflict", code)
    assert.matches("item", msg, 1, true)
    assert.equal(1, stored(b, "a2")) -- shipped, not applied
    assert.equal(0, count("SELECT count(*) FROM a2.oplog_applied WHERE origin = '\\x" .. origin_hex(b) .. "'"))
    assert.equal("1|one", sql("SELECT id, name FROM a2.item"))
    -- another type on that table, and a table that is not the catalog's: the same
    local c = device("tc-c")
    c:define("thing", { table = "item", columns = { { "id", "INTEGER PRIMARY KEY" } } })
    c:transaction("item", function(tx) tx:create("thing", { id = 3 }) end)
    code, msg = errcode(function() c:ship({ postgres = PG, schema = "a2", apply = true }) end)
    assert.equal("type_conflict", code)
    assert.matches("belongs to type item", msg, 1, true)
    sql("CREATE TABLE a2.gadget (id bigint)")
    local d = device("tc-d")
    d:define("gadget", { columns = { { "id", "INTEGER PRIMARY KEY" } } })
    d:transaction("gadget", function(tx) tx:create("gadget", { id = 4 }) end)
    code, msg = errcode(function() d:ship({ postgres = PG, schema = "a2", apply = true }) end)
    assert.equal("type_conflict", code)
    assert.matches("not the catalog's", msg, 1, true)
    assert.equal(0, count("SELECT count(*) FROM a2.gadget"))
    assert.equal(1, count("SELECT count(*) FROM a2.oplog_applied"))
    c:close()
    d:close()
    a:close()
    b:close()
    local _ = pb .. kb
  end)

  it("converges as a join does: random histories of three devices, in any shipping order (fixed seeds)", function()
    local seeds = tonumber(os.getenv("OPLOG_FLEET_SEEDS") or "") or 3
    for seed = 1, seeds do
      local state = seed * 7919
      local function rng(n)
        state = (state * 1103515245 + 12345) % 2147483648
        return (state >> 8) % n + 1
      end
      local schema = "law" .. seed
      local devs = {}
      for i = 1, 3 do
        local db, p, k = device("law" .. seed)
        define_shop(db)
        devs[i] = { db = db, path = p, key = k, name = string.char(96 + i), items = {}, tags = {} }
      end
      local late = 0
      for _ = 1, 60 do
        local d = devs[rng(3)]
        if rng(8) == 1 then
          -- d syncs with another device: its clock jumps ahead of its seq, its
          -- rows are the merge, and its next ship carries (and applies) the other's entries
          local e = devs[rng(3)]
          if e ~= d then
            d.db:join(e.path, { key_file = e.key })
            d.items, d.tags = {}, {}
            for _, line in ipairs(norm(lite(d.path, "SELECT id, coalesce(code, 'NULL') FROM item"))) do
              local id, code = line:match("^(%d+)|(.*)$")
              d.items[tonumber(id)] = { code = code ~= "NULL" and code or nil }
            end
            for _, line in ipairs(norm(lite(d.path, "SELECT item, label FROM tag"))) do d.tags[line] = true end
          end
        elseif rng(3) == 1 then
          local before = sql("SELECT to_regclass('" .. schema .. ".oplog_applied') IS NOT NULL") == "t"
            and count("SELECT count(*) FROM " .. schema .. ".oplog_applied") or 0
          local r = d.db:ship({ postgres = PG, schema = schema, apply = rng(5) > 1 })
          if r.applied > 0 and before > 0 then late = late + 1 end
        else
          shop_tx(rng, d)
        end
      end
      for _, d in ipairs(devs) do d.db:ship({ postgres = PG, schema = schema, apply = true }) end
      -- the same entries joined into one file
      local g, pg_path = device("law-g" .. seed)
      define_shop(g)
      for _, d in ipairs(devs) do g:join(d.path, { key_file = d.key }) end
      local want = shop_lite(pg_path)
      assert.same(want, shop_pg(schema))
      local cl, cp = conflicts_lite(g), conflicts_pg(schema)
      assert.same(cl, cp)
      assert.is_true(#cl > 0, "seed " .. seed .. ": no conflict arose")
      assert.is_true(late > 0)
      -- applying again changes nothing
      for _, d in ipairs(devs) do
        local r = d.db:ship({ postgres = PG, schema = schema, apply = true })
        assert.equal(0, r.applied)
        d.db:close()
      end
      assert.same(want, shop_pg(schema))
      assert.same(cl, conflicts_pg(schema))
      g:close()
    end
  end)
end)

describe("oplog ship", function()
  teardown(function() os.execute("rm -rf " .. q(tmp)) end)

  it("ships a log, ships nothing twice, resumes after more writes", function()
    local db, path = device("a")
    write(db, 1, 120)
    local r = db:ship({ postgres = PG, schema = "s1", batch = 50 })
    assert.same({ entries = 120, skipped = 0, batches = 3, checkpoints = 1, applied = 0, conflicts = 0 }, r)
    assert.equal(120, stored(db, "s1"))
    -- as stored: the server's rows hash as the file's (verify recomputes them)
    local head = db:heads()[1]
    assert.equal(head.hash, sql(string.format("SELECT encode(hash, 'hex') FROM s1.oplog_entries WHERE origin = "
      .. "'\\x%s' AND seq = 120", origin_hex(db))))
    assert.equal(240, count("SELECT count(*) FROM s1.oplog_metadata")) -- device and n per entry
    assert.equal("7|u", sql("SELECT string_agg(value, '|' ORDER BY value) FROM s1.oplog_metadata WHERE seq = 7"))
    -- the data stays encrypted: no name appears in the stored bytes
    assert.equal(0, count("SELECT count(*) FROM s1.oplog_entries WHERE position('u-name-7'::bytea in data) > 0"))
    -- again: nothing new
    r = db:ship({ postgres = PG, schema = "s1" })
    assert.same({ entries = 0, skipped = 120, batches = 0, checkpoints = 0, applied = 0, conflicts = 0 }, r)
    assert.equal(120, stored(db, "s1"))
    -- more writes: only they go
    write(db, 121, 30)
    r = db:ship({ postgres = PG, schema = "s1" })
    assert.equal(30, r.entries)
    assert.equal(120, r.skipped)
    assert.equal(1, r.checkpoints)
    assert.equal(150, stored(db, "s1"))
    assert.equal("150", sql("SELECT seq FROM s1.oplog_checkpoints"))
    local v = oplog.verify_postgres({ postgres = PG, schema = "s1" })
    assert.same({ ok = true, entries = 150, problems = {} }, v)
    -- apply decrypts: without the key it is refused before anything is shipped
    write(db, 151, 1)
    db:close()
    local code, text = run("ship " .. q(path) .. " --postgres " .. q(PG) .. " --schema s1 --apply")
    assert.equal(2, code)
    assert.matches("key_required", text, 1, true)
    assert.equal(150, count("SELECT count(*) FROM s1.oplog_entries"))
    code, text = run("ship " .. q(path) .. " --postgres " .. q(PG) .. " --schema s1")
    assert.equal(0, code, text)
    assert.equal(151, count("SELECT count(*) FROM s1.oplog_entries"))
  end)

  it("collects two devices, and a relay's imported entries once", function()
    local a, pa, ka = device("two-a")
    local b, pb, kb = device("two-b")
    write(a, 1, 10, "a")
    write(b, 1000, 15, "b")
    assert.equal(10, a:ship({ postgres = PG, schema = "s2" }).entries)
    assert.equal(15, b:ship({ postgres = PG, schema = "s2" }).entries)
    -- b imports a's log, then ships: a's entries are there already
    b:join(pa, { key_file = ka })
    local r = b:ship({ postgres = PG, schema = "s2" })
    assert.equal(0, r.entries)
    assert.equal(25, r.skipped)
    write(a, 11, 5, "a")
    b:join(pa, { key_file = ka })
    -- the relay ships a's new entries before a does
    r = b:ship({ postgres = PG, schema = "s2" })
    assert.equal(5, r.entries)
    r = a:ship({ postgres = PG, schema = "s2" })
    assert.equal(0, r.entries)
    assert.equal(15, r.skipped)
    assert.equal(30, count("SELECT count(*) FROM s2.oplog_entries"))
    assert.equal(2, count("SELECT count(DISTINCT origin) FROM s2.oplog_entries"))
    assert.is_true(oplog.verify_postgres({ postgres = PG, schema = "s2" }).ok)
    local one = oplog.verify_postgres({ postgres = PG, schema = "s2", origin = origin_hex(b) })
    assert.equal(15, one.entries)
    a:close()
    b:close()
    local _ = pb .. kb
  end)

  it("refuses a fork (a cloned device), also when it has nothing new, storing nothing", function()
    local a, pa, ka = device("fork")
    write(a, 1, 5)
    a:ship({ postgres = PG, schema = "s3" })
    a:close()
    -- the clone: a copy of the file, writing on its own
    local pc = pa .. ".clone"
    assert(os.execute("cp " .. q(pa) .. " " .. q(pc)))
    a = oplog.open(pa, { key_file = ka })
    local c = oplog.open(pc, { key_file = ka })
    write(a, 6, 3, "orig")
    write(c, 6, 2, "clone")
    assert.equal(3, a:ship({ postgres = PG, schema = "s3" }).entries)
    local code, msg = errcode(function() c:ship({ postgres = PG, schema = "s3" }) end)
    assert.equal("fork", code)
    assert.matches(origin_hex(a), msg, 1, true)
    assert.matches("cloned device", msg, 1, true)
    -- the clone is behind the server (7 < 8) but its entry at seq 7 differs
    assert.equal(7, c:origin().seq)
    assert.equal(8, stored(a, "s3"))
    code = run("ship " .. q(pc) .. " --key-file " .. q(ka) .. " --postgres " .. q(PG) .. " --schema s3")
    assert.equal(2, code)
    -- nothing of the clone was stored
    assert.equal(8, stored(a, "s3"))
    assert.equal("orig", sql("SELECT value FROM s3.oplog_metadata WHERE key = 'device' AND seq = 8"))
    assert.is_true(oplog.verify_postgres({ postgres = PG, schema = "s3" }).ok)
    a:close()
    c:close()
  end)

  it("refuses a gap (the server lost entries under a running ship), then heals on the next ship", function()
    local a = device("gap")
    write(a, 1, 300)
    local calls = 0
    local code = errcode(function()
      a:ship({ postgres = PG, schema = "s4", batch = 100, progress = function(done)
        calls = calls + 1
        if done == 100 then
          -- a restore of an older backup: the server now holds up to seq 40
          sql("DELETE FROM s4.oplog_metadata WHERE seq > 40; DELETE FROM s4.oplog_entries WHERE seq > 40")
        end
      end })
    end)
    assert.equal("gap", code)
    assert.equal(40, stored(a, "s4")) -- the batch 101..200 stored nothing
    local r = a:ship({ postgres = PG, schema = "s4", batch = 100 })
    assert.equal(260, r.entries)
    assert.equal(40, r.skipped)
    assert.equal(300, stored(a, "s4"))
    assert.is_true(oplog.verify_postgres({ postgres = PG, schema = "s4" }).ok)
    a:close()
  end)

  it("detects tampering in PostgreSQL (verify --postgres exits 1)", function()
    local a, pa, ka = device("tamper")
    write(a, 1, 20)
    a:ship({ postgres = PG, schema = "s5" })
    local base = "verify --postgres " .. q(PG) .. " --schema s5"
    local code, text = run(base)
    assert.equal(0, code, text)
    assert.matches("ok, 20 entries checked", text, 1, true)
    local o = "'\\x" .. origin_hex(a) .. "'"
    sql("UPDATE s5.oplog_entries SET created = created + 1 WHERE seq = 3 AND origin = " .. o)
    sql("DELETE FROM s5.oplog_entries WHERE seq = 10 AND origin = " .. o)
    sql("UPDATE s5.oplog_entries SET prev_hash = hash WHERE seq = 15 AND origin = " .. o)
    code, text = run(base .. " --json")
    assert.equal(1, code, text)
    local kinds = {}
    for id, kind in text:gmatch('"id":(%d+),"kind":"([%w_]+)"') do kinds[#kinds + 1] = id .. " " .. kind end
    table.sort(kinds)
    assert.same({ "11 missing_entry", "15 chain_break", "15 hash_mismatch", "3 hash_mismatch" }, kinds)
    -- a rewritten tail is caught by the signed checkpoint
    sql("DELETE FROM s5.oplog_entries WHERE seq = 20 AND origin = " .. o)
    local v = oplog.verify_postgres({ postgres = PG, schema = "s5" })
    local last = v.problems[#v.problems]
    assert.equal("checkpoint_mismatch", last.kind)
    assert.equal(20, last.id)
    sql("UPDATE s5.oplog_checkpoints SET text = replace(text, 'time', 'time 1') ")
    code, text = run(base .. " --origin " .. origin_hex(a))
    assert.equal(1, code)
    assert.matches("checkpoint_mismatch", text, 1, true)
    -- the key is never needed, and a missing schema is an error (exit 2)
    code, text = run("verify --postgres " .. q(PG) .. " --schema nothing_here")
    assert.equal(2, code)
    assert.matches("not_found", text, 1, true)
    a:close()
    local _ = pa .. ka
  end)

  it("survives a PostgreSQL restart in the middle of a ship: nothing lost, nothing doubled", function()
    local a, pa, ka = device("restart")
    write(a, 1, N_RESTART)
    a:close()
    local log = tmp .. "/restart.log"
    -- small batches: many transactions, so that the restart lands inside the ship
    sh("(" .. q(BIN) .. " ship " .. q(pa) .. " --key-file " .. q(ka) .. " --postgres " .. q(PG)
      .. " --schema s6 --batch 20 >" .. log .. " 2>&1; echo $? >>" .. log .. ") &")
    -- wait until some batches are in, then restart the server under it
    local n = 0
    for _ = 1, 200 do
      local ok, res = pcall(count, "SELECT count(*) FROM s6.oplog_entries")
      n = ok and res or 0
      if n > 0 then break end
      sh("sleep 0.05")
    end
    assert.is_true(n > 0 and n < N_RESTART, "the restart did not land inside the ship (" .. n .. ")")
    assert.equal(0, sh(PG_CTL .. " restart -m immediate >/dev/null 2>&1"))
    for _ = 1, 600 do
      local f = io.open(log)
      local text = f and f:read("a") or ""
      if f then f:close() end
      if text:match("\n?%d+\n$") then break end
      sh("sleep 0.05")
    end
    local f = io.open(log)
    local text = f:read("a")
    f:close()
    assert.matches("oplog: io: postgres", text, 1, true)
    local before = count("SELECT count(*) FROM s6.oplog_entries")
    assert.is_true(before < N_RESTART)
    local code, out = run("ship " .. q(pa) .. " --key-file " .. q(ka) .. " --postgres " .. q(PG)
      .. " --schema s6 --json")
    assert.equal(0, code, out)
    assert.matches('"entries":' .. (N_RESTART - before) .. ',"skipped":' .. before, out, 1, true)
    assert.equal(N_RESTART, count("SELECT count(*) FROM s6.oplog_entries"))
    assert.equal(N_RESTART, count("SELECT count(DISTINCT seq) FROM s6.oplog_entries"))
    assert.is_true(oplog.verify_postgres({ postgres = PG, schema = "s6" }).ok)
  end)

  it("takes 8 devices shipping and applying at once, and one device shipping twice at once", function()
    local paths = {}
    for i = 1, 8 do
      local db, p, k = device("eight")
      write(db, i * 10000, N_EIGHT + i * 50, "d" .. i)
      db:close()
      paths[i] = { p, k }
    end
    local cmds = {}
    for i = 1, 8 do
      cmds[#cmds + 1] = q(BIN) .. " ship " .. q(paths[i][1]) .. " --key-file " .. q(paths[i][2])
        .. " --postgres " .. q(PG) .. " --schema s7 --batch 150 --apply >" .. tmp .. "/eight." .. i .. " 2>&1"
    end
    -- device 1 twice more at the same time
    for j = 9, 10 do
      cmds[#cmds + 1] = q(BIN) .. " ship " .. q(paths[1][1]) .. " --key-file " .. q(paths[1][2])
        .. " --postgres " .. q(PG) .. " --schema s7 --batch 150" .. (j == 9 and " --apply" or "") .. " >" .. tmp
        .. "/eight." .. j .. " 2>&1"
    end
    local script = "pids=''; "
    for _, c in ipairs(cmds) do script = script .. c .. " & pids=\"$pids $!\"; " end
    script = script .. "st=0; for p in $pids; do wait $p || st=1; done; exit $st"
    local code = sh("sh -c " .. q(script))
    if code ~= 0 then
      for j = 1, 10 do
        local f = io.open(tmp .. "/eight." .. j)
        print(j, f and f:read("a"))
        if f then f:close() end
      end
    end
    assert.equal(0, code)
    local total = 0
    for i = 1, 8 do total = total + N_EIGHT + i * 50 end
    assert.equal(total, count("SELECT count(*) FROM s7.oplog_entries"))
    assert.equal(8, count("SELECT count(*) FROM s7.oplog_checkpoints"))
    -- applied once each, every row there (the devices' ids do not overlap)
    assert.equal(total, count("SELECT count(*) FROM s7.oplog_applied"))
    assert.equal(total, count("SELECT count(*) FROM s7.\"user\""))
    assert.equal(0, count("SELECT count(*) FROM s7.oplog_conflicts"))
    local v = oplog.verify_postgres({ postgres = PG, schema = "s7" })
    assert.is_true(v.ok)
    assert.equal(total, v.entries)
  end)
end)
