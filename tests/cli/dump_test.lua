-- oplog dump: human and JSON output, filters, key errors.
package.path = os.getenv("OPLOG_SOURCE_DIR") .. "/tests/cli/?.lua;" .. package.path
local H = require "helper"

local dir = H.tmpdir()
local db, key = H.fixture(dir)
local null = H.json.null

local function ids(entries)
  local t = {}
  for i, e in ipairs(entries) do t[i] = e.id end
  return table.concat(t, ",")
end

local function dump_json(...)
  local r = H.oplog("dump", db, "--key-file", key, "--json", ...)
  return H.decode_lines(H.ok(r), r), r
end

H.test("--json writes one JSON object per entry, in id order", function()
  local es, r = dump_json()
  H.eq(ids(es), "1,2,3,4,5", "ids", r)
  -- fields in a stable order
  H.has(r.out, '^{"id":1,"aggregate":"users","created":%d+,"key_id":%d+,"origin":"' .. ("%x"):rep(64)
    .. '","seq":1,"clock":1,"metadata":{', "line 1", r)
  local e = es[1]
  H.eq(e.aggregate, "users", "aggregate")
  H.eq(math.type(e.created), "integer", "created is an integer")
  local now_ms = os.time() * 1000
  H.check(math.abs(now_ms - e.created) < 600000, "created is unix ms near now: " .. e.created)
  H.check(math.type(e.key_id) == "integer" and e.key_id > 0, "key_id of an encrypted entry")
  H.eq(e.metadata.source[1], "import", "metadata source")
  H.eq(#e.metadata.source, 1, "metadata source count")
  H.eq(e.metadata.tag[1] .. e.metadata.tag[2], "ab", "metadata tag values in order")
  H.eq(#e.ops, 2, "ops of entry 1")
  H.eq(e.ops[1].type, "user", "op type")
  H.eq(e.ops[1].op, "create", "op kind")
  H.eq(e.ops[1].row.id, 1, "row id")
  H.eq(e.ops[1].row.name, "alice", "row name")
  H.eq(e.ops[1].row.email, "alice@example.org", "row email")
  H.eq(e.ops[2].type, "role", "second op type")
  H.eq(e.ops[2].row.role, "admin", "second op row")
  -- row columns come in catalog order
  H.has(r.out, '"row":{"id":1,"name":"alice","email":"alice@example.org"}', "row order", r)
end)

H.test("--json: NULL, key-only metadata, update mask and nulls, delete", function()
  local es = dump_json()
  local carol = es[2].ops[2].row
  H.eq(carol.name, "carol", "second op of entry 2")
  H.eq(carol.email, null, "NULL email is null")
  H.has(H.ok(H.oplog("dump", db, "--key-file", key, "--json", "--since", "1", "--upto", "2")),
    '"row":{"id":3,"name":"carol","email":null}', "a create logs every column, NULL as null")
  H.eq(#es[3].metadata.flagged, 0, "key-only metadata has no values")
  local upd = es[4].ops[1]
  H.eq(upd.op, "update", "entry 4 op")
  H.eq(upd.row.name, "robert", "updated name")
  H.eq(upd.mask[1], "name", "mask")
  H.eq(#upd.mask, 1, "mask size")
  H.eq(upd.nulls[1], "email", "nulls")
  H.eq(es[5].ops[1].op, "delete", "entry 5 op")
  H.eq(es[5].ops[1].row.id, 1, "deleted key")
  H.eq(next(es[5].metadata), nil, "no metadata is an empty object")
end)

H.test("--json: BLOB bytes that are not UTF-8 come out as base64", function()
  local es = dump_json("--aggregate", "devices")
  local row = es[1].ops[1].row
  H.eq(type(row.firmware), "table", "blob is an object")
  H.eq(row.firmware.base64, "AAEC/v8=", "blob base64")
  H.eq(row.serial, "SN-ü1", "UTF-8 text stays a string")
  H.eq(math.type(row.volts), "float", "a REAL stays a float")
  local r = H.oplog("dump", db, "--key-file", key, "--json", "--aggregate", "devices")
  H.has(r.out, '"volts":3%.0}', "REAL 3.0 written as 3.0", r)
end)

H.test("filters: --aggregate, --since, --upto, --meta", function()
  H.eq(ids(dump_json("--aggregate", "devices")), "3", "--aggregate devices")
  H.eq(ids(dump_json("--aggregate=users")), "1,2,4,5", "--aggregate=users")
  H.eq(ids(dump_json("--since", "2", "--upto", "4")), "3,4", "--since 2 --upto 4")
  H.eq(ids(dump_json("--since", "5")), "", "--since head")
  H.eq(ids(dump_json("--meta", "source=web")), "2,4", "--meta source=web")
  H.eq(ids(dump_json("--meta", "source=web", "--since", "2")), "4", "--meta with --since")
  H.eq(ids(dump_json("--meta", "source=import", "--meta", "tag=b")), "1", "two --meta")
  H.eq(ids(dump_json("--meta", "source=web", "--meta", "tag=b")), "", "two --meta, no match")
  H.eq(ids(dump_json("--meta", "flagged")), "3", "--meta K alone")
  local r = H.oplog("dump", db, "--key-file", key, "--json", "--meta", "source=nowhere")
  H.eq(H.ok(r), "", "no match prints nothing with --json")
end)

H.test("human output: a header per entry and a line per operation", function()
  local r = H.oplog("dump", db, "--key-file", key)
  local out = H.ok(r)
  H.has(out, "^entry 1  %d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ  aggregate=users  key=%d+  "
    .. "origin=" .. ("%x"):rep(64) .. "  seq=1  clock=1  source=import tag=a tag=b\n", "header of entry 1", r)
  H.has(out, '\n  create +user {id=1, name="alice", email="alice@example.org"}\n', "op line", r)
  H.has(out, '\n  create +user {id=3, name="carol", email=NULL}\n', "a create shows every column", r)
  H.has(out, '\n  update +user {id=2, name="robert"}  mask=name  nulls=email\n', "update line", r)
  H.has(out, "aggregate=devices  key=%d+  origin=%x+  seq=3  clock=3  flagged source=factory\n",
    "key-only metadata, sorted", r)
  H.has(out, 'serial="SN%-ü1"', "UTF-8 text", r)
  H.has(out, "\n  delete +user {id=1}\n$", "last entry", r)
  local n = 0
  for _ in out:gmatch("entry %d+  ") do n = n + 1 end
  H.eq(n, 5, "entries printed")
  r = H.oplog("dump", db, "--key-file", key, "--aggregate", "nobody")
  H.eq(H.ok(r), "", "stdout with no match")
  H.eq(r.err, "dump: no entries match\n", "stderr with no match", r)
  H.has(out, "firmware=x'000102feff', volts=3%.0}", "blob in hex, REAL as 3.0", r)
end)

H.test("origin, seq and clock of each entry, in --json and in the text", function()
  local es, r = dump_json()
  H.eq(#es, 5, "entries", r)
  -- the file's own origin: what the Lua API gives for it
  local script = dir .. "/origin.lua"
  H.write_file(script, 'local db <close> = oplog.open(arg[1], { key_file = arg[2], readonly = true })\n'
    .. 'io.write(db:origin().id, " ", db:origin().seq, " ", db:origin().clock)\n')
  local id, seq, clock = H.ok(H.oplog("run", script, db, key)):match("^(%x+) (%d+) (%d+)$")
  H.eq(#id, 64, "origin id")
  H.eq(id, id:lower(), "origin id in lowercase")
  H.eq(seq .. " " .. clock, "5 5", "origin seq and clock")
  for i, e in ipairs(es) do
    H.eq(e.origin, id, "origin of entry " .. i)
    H.eq(math.type(e.seq), "integer", "seq is an integer")
    H.eq(e.seq, i, "seq of entry " .. i)
    H.eq(math.type(e.clock), "integer", "clock is an integer")
    H.eq(e.clock, i, "clock of entry " .. i)
  end
  H.has(r.out, '"key_id":%d+,"origin":"' .. id .. '","seq":4,"clock":4,"metadata":{"source":%["web"%]}',
    "fields of entry 4 in order", r)
  local t = H.oplog("dump", db, "--key-file", key)
  local text = H.ok(t)
  local n = 0
  for eid, o, s, c in text:gmatch("entry (%d+)  [^\n]*  origin=(%x+)  seq=(%d+)  clock=(%d+)") do
    n = n + 1
    H.eq(eid, tostring(n), "entry order", t)
    H.eq(o, id, "origin in the text of entry " .. eid, t)
    H.eq(s .. " " .. c, eid .. " " .. eid, "seq and clock in the text of entry " .. eid, t)
  end
  H.eq(n, 5, "headers with origin, seq and clock", t)
  H.has(text, "\nentry 5  [^\n]*  key=%d+  origin=" .. id .. "  seq=5  clock=5\n", "no metadata: ends the header", t)
end)

H.test("key errors: none, wrong, plaintext", function()
  H.status(H.oplog("dump", db), 2, "key_required")
  H.ok(H.oplog("keygen", dir .. "/wrong.key"))
  H.status(H.oplog("dump", db, "--key-file", dir .. "/wrong.key"), 2, "wrong_key")
  H.status(H.oplog("dump", db, "--no-encryption"), 2, "key_required")
  H.status(H.oplog("dump", db, "--key-file", dir .. "/no-such.key"), 2)
  H.ok(H.oplog("dump", db, { env = { OPLOG_KEY_FILE = key } }))
end)

H.test("a plaintext log dumps with or without --no-encryption", function()
  local pdir = H.tmpdir()
  local pdb = H.fixture(pdir, true)
  local a = H.ok(H.oplog("dump", pdb, "--json", "--no-encryption"))
  local es = H.decode_lines(a)
  H.eq(ids(es), "1,2,3,4,5", "plaintext ids")
  H.eq(es[1].key_id, 0, "key_id of a plaintext entry")
  H.has(es[1].origin, "^" .. ("%x"):rep(64) .. "$", "origin of a plaintext entry")
  H.check(es[1].origin ~= ("0"):rep(64), "a plaintext file has an origin too")
  H.eq(es[5].seq, 5, "seq of a plaintext entry")
  H.eq(H.ok(H.oplog("dump", pdb, "--json")), a, "dump without a key option")
  -- a key given for a plaintext log is refused, with a hint
  local r = H.oplog("dump", pdb, { env = { OPLOG_KEY_FILE = key } })
  H.status(r, 2, "wrong_key")
  H.has(r.err, "%-%-no%-encryption", "hint", r)
end)

H.test("a failed write (full disk) stops dump with an io error", function()
  local r = H.oplog("dump", db, "--key-file", key, "--json", { stdout = "/dev/full" })
  H.status(r, 2, "io")
  H.has(r.err, "writing output", "stderr", r)
end)

H.test("dump only reads: the file is unchanged", function()
  local before = H.read_file(db)
  H.ok(H.oplog("dump", db, "--key-file", key, "--json"))
  H.eq(H.read_file(db), before, "log file after dump")
end)

H.done()
