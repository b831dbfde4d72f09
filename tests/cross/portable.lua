-- Writes, or checks value for value, a log meant to cross architectures
-- (tests/cross/portability.sh runs it with `oplog run`, on the target
-- under qemu and natively):
--   oplog run portable.lua write DB KEY WRITER [N]
--   oplog run portable.lua check DB KEY [N]
-- KEY is key_file=PATH or passphrase_env=VAR (a new passphrase file gets
-- the least Argon2id cost, 8 MiB). N entries (default 300: past the
-- 256-entry batch of the derived tables). Every value is a function of the
-- entry's number, so the checker recomputes what each entry must hold:
-- 64-bit integers beyond 2^32 (both signs, the extremes), reals (tiny,
-- huge, subnormal, negative, fractions), BLOBs of every byte value, UTF-8
-- text, booleans, NULLs, metadata with several values, updates with masks
-- and nulls, deletes, create_items with a composite key.
local oplog = require "oplog"

local mode, path, keyarg, a4, a5 = ...
local function usage()
  io.stderr:write("usage: portable.lua write DB KEY WRITER [N] | check DB KEY [N]\n")
  os.exit(2)
end
if (mode ~= "write" and mode ~= "check") or not path or not keyarg then usage() end
local writer = mode == "write" and a4 or nil
local n = math.tointeger(tonumber(mode == "write" and a5 or a4) or 300)

local function key_opts()
  local k, v = keyarg:match("^([%w_]+)=(.+)$")
  if k == "key_file" then return { key_file = v } end
  if k == "passphrase_env" then
    return { passphrase = assert(os.getenv(v), v .. " is not set"), kdf = { ops = 2, mem = 8 * 1024 * 1024 } }
  end
  usage()
end

local SAMPLE = {
  aggregate = "samples",
  columns = { { "id", "INTEGER PRIMARY KEY" }, { "big", "INTEGER" }, { "r", "REAL" }, { "b", "BLOB" },
    { "t", "TEXT" }, { "flag", "BOOLEAN" }, { "n", "INTEGER" } },
}
local ITEM = {
  aggregate = "samples",
  columns = { { "k", "INTEGER NOT NULL" }, { "part", "TEXT NOT NULL" }, { "v", "BLOB" } },
  key = { "k", "part" },
}

local SPECIAL_INT = { math.maxinteger, math.mininteger, (1 << 53) + 1, 0x0102030405060708, -(1 << 32) }
local SPECIAL_REAL = { 1e300, 2.0 ^ -1074, -math.pi, 0.1, 2.0 ^ 63, -1.5e-300, 1 / 3 }

local function blob(i)
  if i == 1 then
    local t = {}
    for b = 0, 255 do t[#t + 1] = string.char(b) end
    return table.concat(t)
  end
  local t = {}
  for k = 0, i % 40 do t[#t + 1] = string.char((i * 31 + k * 7) % 256) end
  -- a leading 0xff keeps it from being valid UTF-8 (a BLOB, not TEXT)
  return "\xff" .. table.concat(t)
end

-- The row entry i creates, as stored (booleans as 0/1, NULL as oplog.null).
local function sample(i)
  local big = SPECIAL_INT[i] or ((i << 32) + i * 977) * (i % 2 == 0 and -1 or 1)
  local r = SPECIAL_REAL[i] or (i / 7) * 1e10 * (i % 3 == 0 and -1 or 1)
  return { id = i, big = big, r = r, b = blob(i), t = "entry " .. i .. " h\u{e9}llo \u{2713}",
    flag = i % 2, n = i % 3 == 0 and -i * (1 << 33) or oplog.null }
end

-- The entry i: its operations as logged and its metadata.
local function entry(i)
  local ops = { { type = "sample", op = "create", row = sample(i), mask = {}, nulls = {} } }
  if i % 7 == 0 then
    ops[#ops + 1] = { type = "sample", op = "update",
      row = { id = i - 1, big = -(i << 40), r = i * 1.0e-5 }, mask = { "big", "r" }, nulls = { "t" } }
  end
  if i % 11 == 0 then
    ops[#ops + 1] = { type = "sample", op = "delete", row = { id = i - 2 }, mask = {}, nulls = {} }
  end
  if i % 13 == 0 then
    for p = 1, 2 do
      ops[#ops + 1] = { type = "item", op = "create_items",
        row = { k = i * (1 << 34), part = "p" .. p, v = blob(i + p) }, mask = {}, nulls = {} }
    end
  end
  local meta = { seq = tostring(i), tag = { "a", "b\u{e9}" }, big = tostring((1 << 40) + i) }
  return ops, meta
end

local db <close> = oplog.open(path, key_opts())

if mode == "write" then
  db:define("sample", SAMPLE)
  db:define("item", ITEM)
  for i = 1, n do
    local ops, meta = entry(i)
    meta.writer = writer
    db:transaction("samples", function(tx)
      local items = {}
      for _, op in ipairs(ops) do
        if op.op == "create" then
          local row = {}
          for k, v in pairs(op.row) do row[k] = v end
          row.flag = op.row.flag == 1 -- written as a boolean, stored as 0/1
          tx:create(op.type, row)
        elseif op.op == "update" then
          tx:update(op.type, op.row, op.mask, op.nulls)
        elseif op.op == "delete" then
          tx:delete(op.type, op.row)
        else
          items[#items + 1] = op.row
        end
      end
      if #items > 0 then tx:create_items("item", items) end
    end, { metadata = meta })
  end
  print(string.format("portable: wrote %d entries to %s", n, path))
  return
end

-- check
local function same(a, b)
  if math.type(a) ~= math.type(b) or type(a) ~= type(b) then return false end
  if math.type(a) == "float" then return string.pack("<d", a) == string.pack("<d", b) end
  return a == b
end

local function show(v)
  if v == oplog.null then return "NULL" end
  if type(v) == "string" then return string.format("%q", v) end
  return string.format("%s (%s)", v, math.type(v) or type(v))
end

local seen = 0
for e in db:entries() do
  seen = seen + 1
  local i = e.id
  local where = "entry " .. i
  assert(e.aggregate == "samples", where .. ": aggregate")
  assert(e.seq == i, where .. ": seq " .. tostring(e.seq))
  local ops, meta = entry(i)
  assert(#e.ops == #ops, where .. ": " .. #e.ops .. " operations, want " .. #ops)
  for j, want in ipairs(ops) do
    local got = e.ops[j]
    local at = where .. " op " .. j
    assert(got.type == want.type and got.op == want.op, at .. ": " .. got.op .. " " .. got.type)
    local cols = 0
    for k, v in pairs(want.row) do
      cols = cols + 1
      assert(same(got.row[k], v), at .. ": " .. k .. " = " .. show(got.row[k]) .. ", want " .. show(v))
    end
    for _ in pairs(got.row) do cols = cols - 1 end
    assert(cols == 0, at .. ": extra columns")
    assert(table.concat(got.mask, ",") == table.concat(want.mask, ","), at .. ": mask")
    assert(table.concat(got.nulls, ",") == table.concat(want.nulls, ","), at .. ": nulls")
  end
  for k, v in pairs(meta) do
    local want = type(v) == "table" and v or { v }
    assert(table.concat(e.metadata[k] or {}, "\0") == table.concat(want, "\0"), where .. ": metadata " .. k)
  end
  assert(e.metadata.writer and #e.metadata.writer == 1, where .. ": metadata writer")
end
assert(seen == n, "entries: " .. seen .. ", want " .. n)
local r = db:verify({ replay = true })
if not r.ok then
  for _, p in ipairs(r.problems) do io.stderr:write(p.id, " ", p.kind, " ", p.detail, "\n") end
  error("verify{replay} found problems")
end
local w = db:entry(1).metadata.writer[1]
print(string.format("portable: %d entries written on %s read back value for value, verify{replay} ok", n, w))
