-- edge_device.lua: a sensor logger that survives a power cut.
--
--   oplog run examples/edge_device.lua [DIR]
--   lua5.4 examples/edge_device.lua [DIR]     (oplog's Lua module on LUA_PATH/LUA_CPATH)
--
-- A device logs one temperature reading per transaction with its device
-- metadata, sync = "full" (SQLite syncs the file at every commit, so that an
-- acknowledged reading is on disk). A writer process is killed with SIGKILL
-- in the middle of its work, as a power cut would stop it; then the log is
-- opened again, checked and shown. (SIGKILL stops the process between any
-- two instructions; what a real power cut adds, the loss of what the OS had
-- not written yet, is what sync = "full" guards against.)
--
-- Files go to DIR (kept) or to a temporary directory (removed).
local oplog = require "oplog"

local DEVICE = { device = "probe-7", site = "greenhouse-2", firmware = "1.4.2" }

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function open(path, keyfile)
  return oplog.open(path, { key_file = keyfile, sync = "full" })
end

-- One reading per entry: reading n is entry n + 1 (entry 1 provisioned the
-- device).
local function log_reading(db, boot)
  local seq = db:head().id
  local celsius = 18 + (seq * 7 % 40) / 10
  local id = db:transaction("telemetry", function(tx)
    tx:create("reading", { seq = seq, sensor = "temp0", celsius = celsius })
    tx:update("device_state", { device = DEVICE.device, last_seq = seq,
      battery_mv = 3900 - seq }, { "last_seq", "battery_mv" })
  end, { metadata = { device = DEVICE.device, site = DEVICE.site,
    firmware = DEVICE.firmware, boot = tostring(boot) } })
  assert(id == seq + 1, "reading n is entry n + 1")
  return seq
end

-- The writer process: logs readings until it is killed, and acknowledges
-- each one on stdout only after its transaction committed.
if arg and arg[1] == "--writer" then
  local db <close> = open(arg[2], arg[3])
  for _ = 1, 100000 do
    local seq = log_reading(db, 1)
    io.stdout:write("committed ", seq, "\n")
    io.stdout:flush()
  end
  return
end

-- The command that started this script (lua5.4, or oplog run), so that the
-- writer runs the same way.
local function interpreter()
  local i = -1
  while arg[i - 1] do i = i - 1 end
  local parts = {}
  for j = i, -1 do parts[#parts + 1] = q(arg[j]) end
  return table.concat(parts, " ")
end

local keep = arg and arg[1]
local dir = keep
if dir then
  assert(os.execute("mkdir -p " .. q(dir)), "cannot create " .. dir)
else
  local p = assert(io.popen("mktemp -d"))
  dir = assert(p:read("l"), "mktemp -d failed")
  p:close()
end
local path, keyfile = dir .. "/device.oplog", dir .. "/device.key"
os.remove(path); os.remove(path .. "-wal"); os.remove(path .. "-shm"); os.remove(keyfile)

-- 1. Provisioning: key, log, types, the device's state row.
oplog.keygen(keyfile)
do
  local db <close> = open(path, keyfile)
  db:define("reading", { aggregate = "telemetry", columns = {
    { "seq", "INTEGER PRIMARY KEY" }, { "sensor", "TEXT NOT NULL" }, { "celsius", "REAL NOT NULL" } } })
  db:define("device_state", { aggregate = "telemetry", columns = {
    { "device", "TEXT PRIMARY KEY" }, { "last_seq", "INTEGER" }, { "battery_mv", "INTEGER" } } })
  db:transaction("telemetry", function(tx)
    tx:create("device_state", { device = DEVICE.device, last_seq = 0, battery_mv = 3900 })
  end, { metadata = { device = DEVICE.device, site = DEVICE.site, firmware = DEVICE.firmware,
    event = "provisioned" } })
end
print(string.format("1. provisioned %s at %s: %s", DEVICE.device, DEVICE.site, path))

-- 2. Boot 1: the writer logs readings; after at least 20 acknowledged
--    readings the power is cut (SIGKILL), wherever the writer then is.
local acks, errs = dir .. "/acks.txt", dir .. "/writer.err"
local script = debug.getinfo(1, "S").source:gsub("^@", "")
assert(os.execute(string.format([[
: >%s
%s %s --writer %s %s >%s 2>%s &
pid=$!
n=0
while [ "$(grep -c . %s)" -lt 20 ] && [ $n -lt 1500 ] && kill -0 $pid 2>/dev/null; do
  sleep 0.02; n=$((n + 1))
done
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
true]], q(acks), interpreter(), q(script), q(path), q(keyfile), q(acks), q(errs), q(acks))))
local acked = 0
for line in io.lines(acks) do acked = tonumber(line:match("^committed (%d+)$")) or acked end
if acked < 20 then
  local f = io.open(errs)
  error("the writer acknowledged only " .. acked .. " readings: " .. (f and f:read("a") or ""))
end
print(string.format("2. boot 1: the writer acknowledged reading %d, then the power was cut", acked))

-- 3. Boot 2: open the log again. Every acknowledged reading is there; at
--    most the one being written at the cut is there too, and then whole.
local db <close> = open(path, keyfile)
local head = db:head().id
local readings = head - 1
assert(readings >= acked, "an acknowledged reading was lost")
assert(readings <= acked + 1, "more readings than the writer could have committed")
local report = db:verify({ replay = true })
assert(report.ok, "the log verifies after the power cut")
print(string.format("3. boot 2: %d readings, chain intact, live tables equal a replay of the log%s",
  readings, readings > acked and " (the reading in flight at the cut was committed)" or ""))

-- The device carries on where it stopped.
for _ = 1, 3 do log_reading(db, 2) end

-- 4. The log after: readings of both boots, with their device metadata.
print("4. the last entries:")
local shown, last_boot = 0, nil
for e in db:entries({ reverse = true, limit = 6 }) do
  local r = e.ops[1].row
  print(string.format("   entry %-3d reading %-3d %s  %s@%s fw %s boot %s  %s = %.1f C", e.id,
    r.seq, os.date("!%H:%M:%S", e.created // 1000), e.metadata.device[1], e.metadata.site[1],
    e.metadata.firmware[1], e.metadata.boot[1], r.sensor, r.celsius))
  assert(r.seq == e.id - 1, "reading " .. r.seq .. " in entry " .. e.id)
  last_boot = last_boot or e.metadata.boot[1]
  shown = shown + 1
end
assert(shown == 6 and last_boot == "2", "the newest entries are from boot 2")
local n = 0
for e in db:entries({ metadata = { device = DEVICE.device, boot = "1" } }) do
  n = n + 1
  assert(e.id == n + 1, "boot 1 readings are contiguous")
end
assert(n == readings, "every boot 1 reading carries the device metadata")
report = db:verify({ replay = true })
assert(report.ok and report.entries == head + 3, "the log verifies after boot 2")
print(string.format("5. verified %d entries: ok (%d readings of boot 1, 3 of boot 2)",
  report.entries, n))
db:close()

if keep then
  print(string.format("\nKept in %s. Try: oplog dump %s --key-file %s --meta boot=2", dir, path,
    keyfile))
else
  os.execute("rm -rf " .. q(dir))
end
print("edge_device: all checks passed")
