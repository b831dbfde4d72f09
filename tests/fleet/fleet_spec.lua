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

-- psql: the rows of a query as text, "|" between columns
local function sql(query)
  local p = assert(io.popen("env -u LD_PRELOAD psql -X -q -At -v ON_ERROR_STOP=1 " .. q(PG) .. " -c " .. q(query) .. " 2>&1"))
  local text = p:read("a")
  local ok = p:close()
  assert(ok, "psql failed: " .. text)
  return (text:gsub("\n$", ""))
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

describe("oplog ship", function()
  teardown(function() os.execute("rm -rf " .. q(tmp)) end)

  it("ships a log, ships nothing twice, resumes after more writes", function()
    local db = device("a")
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
    -- apply is not available yet: refused before anything is shipped
    write(db, 151, 1)
    assert.equal("invalid_argument", (errcode(function() db:ship({ postgres = PG, schema = "s1", apply = true }) end)))
    assert.equal(150, stored(db, "s1"))
    db:close()
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

  it("takes 8 devices shipping at once, and one device shipping twice at once", function()
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
        .. " --postgres " .. q(PG) .. " --schema s7 --batch 150 >" .. tmp .. "/eight." .. i .. " 2>&1"
    end
    -- device 1 twice more at the same time
    for j = 9, 10 do
      cmds[#cmds + 1] = q(BIN) .. " ship " .. q(paths[1][1]) .. " --key-file " .. q(paths[1][2])
        .. " --postgres " .. q(PG) .. " --schema s7 --batch 150 >" .. tmp .. "/eight." .. j .. " 2>&1"
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
    local v = oplog.verify_postgres({ postgres = PG, schema = "s7" })
    assert.is_true(v.ok)
    assert.equal(total, v.entries)
  end)
end)
