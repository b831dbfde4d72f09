-- Import and export stream with bounded memory: the peak RSS (VmHWM) of an
-- `oplog` process exporting or importing 20,000 entries is within a few
-- MB of one doing 2,000 (ipfs-log#136 held every entry of a join in
-- memory). Not run under ASan, whose shadow memory makes RSS meaningless.
package.path = os.getenv("OPLOG_SOURCE_DIR") .. "/tests/cli/?.lua;" .. package.path
local H = require "helper"

local WRITE = [[
local path, n = ...
local db <close> = oplog.open(path, { encryption = false })
db:define("item", { columns = { { "id", "INTEGER PRIMARY KEY" }, { "v", "TEXT" } } })
n = tonumber(n)
for i = 1, n, 100 do
  db:transaction("item", function(tx)
    for j = i, math.min(n, i + 99) do
      tx:create("item", { id = j, v = string.rep("v", 200) })
      tx:entry()
    end
  end)
end
]]

-- Runs the sync step, then prints the process's peak RSS in kB.
local STEP = [[
local what, path, stream = ...
local db <close> = oplog.open(path, { encryption = false })
local r
if what == "export" then r = db:export(stream) else r = db:import(stream) end
local f <close> = assert(io.open("/proc/self/status"))
print(r.entries, f:read("a"):match("VmHWM:%s*(%d+) kB"))
]]

local dir = H.tmpdir()
H.write_file(dir .. "/write.lua", WRITE)
H.write_file(dir .. "/step.lua", STEP)

local function peak(n)
  local src, dst, stream = dir .. "/src" .. n .. ".db", dir .. "/dst" .. n .. ".db", dir .. "/s" .. n
  H.ok(H.oplog("run", dir .. "/write.lua", src, n))
  H.ok(H.oplog("init", dst, "--no-encryption"))
  local out = {}
  for _, step in ipairs { { "export", src }, { "import", dst } } do
    local r = H.oplog("run", dir .. "/step.lua", step[1], step[2], stream)
    local entries, kb = H.ok(r):match("^(%d+)%s+(%d+)")
    H.eq(tonumber(entries), n, step[1] .. " of " .. n .. " entries", r)
    out[step[1]] = tonumber(kb)
  end
  return out
end

H.test("export and import peak RSS does not grow with the stream", function()
  local small, big = peak(2000), peak(20000)
  for _, what in ipairs { "export", "import" } do
    H.check(small[what] and big[what], what .. ": VmHWM read")
    -- SQLite's page cache (2 MB by default) may fill up in the bigger run;
    -- holding 18,000 more entries of ~250 bytes would add more than 4 MB.
    H.check(big[what] - small[what] < 3 * 1024,
      string.format("%s: peak RSS %d kB for 2,000 entries, %d kB for 20,000", what, small[what], big[what]))
  end
end)

H.done()
