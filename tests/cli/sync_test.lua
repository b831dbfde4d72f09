-- oplog id, cursor, heads, checkpoint, export, import, join, conflicts and
-- verify --checkpoint: devices shipping their logs through real pipes.
package.path = os.getenv("OPLOG_SOURCE_DIR") .. "/tests/cli/?.lua;" .. package.path
local H = require "helper"

local function sqlite(db, sql)
  local p = io.popen("sqlite3 " .. H.quote(db) .. " " .. H.quote(sql))
  local s = p:read("a")
  p:close()
  return s
end

-- A device: a key and an encrypted log holding `users` rows ids (each its
-- own entry) written by `oplog run`.
local WRITE = [[
local path, key, first, last, prefix = ...
local db <close> = oplog.open(path, { key_file = key })
db:define("user", { table = "users", aggregate = "users",
  columns = { { "id", "INTEGER PRIMARY KEY" }, { "name", "TEXT" } } })
for i = tonumber(first), tonumber(last) do
  db:transaction("users", function(tx) tx:create("user", { id = i, name = prefix .. i }) end)
end
]]

local function device(dir, name, first, last)
  local key = dir .. "/" .. name .. ".key"
  local db = dir .. "/" .. name .. ".db"
  H.ok(H.oplog("keygen", key))
  H.ok(H.oplog("init", db, "--key-file", key))
  local script = dir .. "/write.lua"
  H.write_file(script, WRITE)
  if first then H.ok(H.oplog("run", script, db, key, first, last, name)) end
  return db, key
end

local function write(dir, db, key, first, last, prefix)
  H.ok(H.oplog("run", dir .. "/write.lua", db, key, first, last, prefix))
end

-- Runs a shell pipeline; returns exit status, stdout and stderr.
local function pipeline(dir, cmd)
  local _, _, code = os.execute("(" .. cmd .. ") >" .. H.quote(dir .. "/p.out") .. " 2>" .. H.quote(dir .. "/p.err"))
  return code, H.read_file(dir .. "/p.out") or "", H.read_file(dir .. "/p.err") or ""
end

local HEX64 = "^" .. string.rep("%x", 64) .. "$"

H.test("id, cursor and heads need no key; heads --json parses", function()
  local dir = H.tmpdir()
  local db = device(dir, "dev", 1, 3)
  local id = H.ok(H.oplog("id", db)):match("^(%x+)\n$")
  H.check(id and id:match(HEX64) and id == id:lower(), "id: 64 lowercase hex")
  H.eq(H.ok(H.oplog("cursor", db)), id .. ":3\n", "cursor")
  local r = H.oplog("heads", db)
  H.has(H.ok(r), "^" .. id .. " seq 3 clock 3 hash %x+  %(this file%)\n$", "heads", r)
  local heads = H.decode(H.ok(H.oplog("heads", db, "--json")))
  H.eq(#heads, 1, "heads")
  H.eq(heads[1].origin, id, "origin")
  H.eq(heads[1].seq, 3, "seq")
  H.eq(heads[1].clock, 3, "clock")
  H.eq(heads[1].hash, H.ok(H.oplog("head", db)):match(" (%x+)\n$"), "hash = head's")
  H.status(H.oplog("id", dir .. "/missing.db"), 2, "not_found")
  H.status(H.oplog("cursor"), 2, "invalid_argument")
end)

H.test("export | import through a real pipe, as over ssh", function()
  local dir = H.tmpdir()
  local dev, dkey = device(dir, "dev", 1, 3)
  local hub, hkey = device(dir, "hub")
  local q = H.quote
  local cmd = string.format(
    "OPLOG_KEY_FILE=%s %s export %s --to \"$(%s id %s)\" --since \"$(%s cursor %s)\" | OPLOG_KEY_FILE=%s %s import %s -",
    q(dkey), q(H.BIN), q(dev), q(H.BIN), q(hub), q(H.BIN), q(hub), q(hkey), q(H.BIN), q(hub))
  local code, out, err = pipeline(dir, cmd)
  H.eq(code, 0, "exit status: " .. err)
  H.has(out, "^imported 3 new entries from stdin %(0 already held, 0 conflicts%)\n$", "import says what it did")
  H.eq(sqlite(hub, "SELECT id, name FROM users ORDER BY id"), "1|dev1\n2|dev2\n3|dev3\n", "hub's live rows")

  -- more writes; the cursor makes the next run ship only those
  write(dir, dev, dkey, 4, 5, "dev")
  code, out, err = pipeline(dir, cmd:gsub("import (%S+) %-$", "import %1 --json -"))
  H.eq(code, 0, "exit status: " .. err)
  local r = H.decode(out)
  H.eq(r.entries, 2, "entries")
  H.eq(r.skipped, 0, "skipped")
  H.eq(r.conflicts, 0, "conflicts")
  -- the hub now holds the device's origin at 5
  local devid = H.ok(H.oplog("id", dev)):match("%x+")
  H.has(H.ok(H.oplog("cursor", hub)), devid .. ":5", "hub's cursor")
  H.ok(H.oplog("verify", hub, "--key-file", hkey, "--replay"))
end)

H.test("export -o FILE (mode 0600) then import FILE, and import from stdin by default", function()
  local dir = H.tmpdir()
  local dev, dkey = device(dir, "dev", 1, 2)
  local hub, hkey = device(dir, "hub")
  local hubid = H.ok(H.oplog("id", hub)):match("%x+")
  local stream = dir .. "/s.oplog"
  local r = H.oplog("export", dev, "--key-file", dkey, "--to", hubid, "-o", stream)
  H.has(H.ok(r), "^exported 2 entries %(%d+ bytes%) to ", "summary", r)
  local p = io.popen("stat -c %a " .. H.quote(stream))
  H.eq(p:read("l"), "600", "mode")
  p:close()
  r = H.oplog("import", hub, "--key-file", hkey, { stdin = H.read_file(stream) })
  H.has(H.ok(r), "imported 2 new entries from stdin", "import", r)
  r = H.oplog("import", hub, "--key-file", hkey, stream)
  H.has(H.ok(r), "imported 0 new entries from .*s%.oplog %(2 already held, 0 conflicts%)", "again", r)
  -- the stream on stdout is the same bytes as -o writes
  local out = dir .. "/stdout.oplog"
  H.ok(H.oplog("export", dev, "--key-file", dkey, "--to", hubid, { stdout = out }))
  H.check(#H.read_file(out) > 0, "a stream on stdout")
end)

H.test("export errors: encrypted without --to, bad --to, a stream for another file", function()
  local dir = H.tmpdir()
  local dev, dkey = device(dir, "dev", 1, 1)
  local hub, hkey = device(dir, "hub")
  local other = device(dir, "other")
  H.status(H.oplog("export", dev, "--key-file", dkey, "-o", dir .. "/x"), 2, "invalid_argument")
  H.check(not H.read_file(dir .. "/x"), "a failed export leaves no file")
  H.status(H.oplog("export", dev, "--key-file", dkey, "--to", "abc"), 2, "invalid_argument")
  H.status(H.oplog("export", dev, "--to", H.ok(H.oplog("id", hub)):match("%x+")), 2, "key_required")
  local stream = dir .. "/s"
  H.ok(H.oplog("export", dev, "--key-file", dkey, "--to", H.ok(H.oplog("id", other)):match("%x+"), "-o", stream))
  H.status(H.oplog("import", hub, "--key-file", hkey, stream), 2, "wrong_key")
  H.status(H.oplog("import", hub, "--key-file", hkey, dir .. "/nope"), 2, "not_found")
end)

H.test("join both ways with --other-key-file, conflicts listed alike", function()
  local dir = H.tmpdir()
  local a, akey = device(dir, "a", 1, 2)
  local b, bkey = device(dir, "b", 2, 3) -- user 2 written on both
  local r = H.oplog("join", a, b, "--key-file", akey, "--other-key-file", bkey)
  H.has(H.ok(r), "^imported 2 new entries from ", "join a <- b", r)
  r = H.oplog("join", b, a, "--key-file", bkey, "--other-key-file", akey, "--json")
  local j = H.decode(H.ok(r), r)
  H.eq(j.entries, 2, "join b <- a")
  H.eq(H.ok(H.oplog("heads", a, "--json")), H.ok(H.oplog("heads", b, "--json")), "same heads")
  H.eq(sqlite(a, "SELECT id, name FROM users ORDER BY id"), sqlite(b, "SELECT id, name FROM users ORDER BY id"),
    "same live rows")
  local ca = H.decode_lines(H.ok(H.oplog("conflicts", a, "--json")))
  local cb = H.decode_lines(H.ok(H.oplog("conflicts", b, "--json")))
  H.eq(#ca, 1, "one conflict in a")
  H.eq(#cb, 1, "one conflict in b")
  H.eq(ca[1].kind, "exists", "kind")
  H.eq(ca[1].op, 1, "op")
  H.check(type(ca[1].entry_id) == "number" and ca[1].detail ~= "", "entry_id and detail")
  r = H.oplog("conflicts", a)
  H.has(H.ok(r), "^entry %d+ op 1 exists: ", "text", r)
  -- no key for OTHER: an encrypted OTHER cannot be read
  r = H.oplog("join", a, b, "--key-file", akey)
  H.status(r, 2, "key_required")
  H.has(r.err, "give OTHER's key: %-%-other%-key%-file", "the hint names OTHER's options", r)
  for _, db in ipairs { a, b } do
    H.ok(H.oplog("verify", db, "--key-file", db == a and akey or bkey, "--replay"))
  end
end)

H.test("conflicts on a log with none: nothing on stdout, a note on stderr", function()
  local dir = H.tmpdir()
  local a = device(dir, "a", 1, 1)
  local r = H.oplog("conflicts", a)
  H.eq(H.ok(r), "", "stdout")
  H.has(r.err, "none", "note")
  H.eq(H.ok(H.oplog("conflicts", a, "--json")), "", "json: no lines")
end)

H.test("checkpoint and verify --checkpoint: exit 0, 1 and 2", function()
  local dir = H.tmpdir()
  local a, akey = device(dir, "a", 1, 2)
  local b = device(dir, "b", 1, 1)
  local r = H.oplog("checkpoint", a, "--key-file", akey)
  local text = H.ok(r)
  local id = H.ok(H.oplog("id", a)):match("%x+")
  local hash = H.ok(H.oplog("head", a)):match(" (%x+)\n$")
  H.has(text, id, "origin in the checkpoint", r)
  H.has(text, hash, "head hash in the checkpoint", r)
  local cp = dir .. "/a.checkpoint"
  H.write_file(cp, text)
  r = H.oplog("verify", a, "--checkpoint", cp)
  H.has(H.ok(r), "ok, 2 entries checked %(hash chain, checkpoint%)", "verify", r)
  -- stdin
  H.ok(H.oplog("verify", a, "--checkpoint", "-", { stdin = text }))
  -- another file: exit 1, checkpoint_mismatch
  r = H.oplog("verify", b, "--checkpoint", cp)
  H.status(r, 1)
  H.has(r.out, "checkpoint_mismatch", "kind", r)
  local v = H.decode(H.oplog("verify", b, "--checkpoint", cp, "--json").out)
  H.eq(v.ok, false, "ok")
  H.eq(v.problems[1].kind, "checkpoint_mismatch", "kind")
  -- a tampered signature: exit 1, bad_signature
  local at = text:find("%S+\n$")
  local c = text:sub(at + 7, at + 7)
  H.write_file(dir .. "/bad", text:sub(1, at + 6) .. (c == "x" and "y" or "x") .. text:sub(at + 8))
  r = H.oplog("verify", a, "--checkpoint", dir .. "/bad")
  H.status(r, 1)
  H.has(r.out, "bad_signature", "kind", r)
  -- malformed or missing: exit 2
  H.write_file(dir .. "/junk", "hello\n")
  H.status(H.oplog("verify", a, "--checkpoint", dir .. "/junk"), 2, "invalid_argument")
  H.status(H.oplog("verify", a, "--checkpoint", dir .. "/none"), 2, "not_found")
  -- signing needs the key; an empty log has nothing to checkpoint
  H.status(H.oplog("checkpoint", a), 2, "key_required")
  local e, ekey = device(dir, "e")
  H.status(H.oplog("checkpoint", e, "--key-file", ekey), 2, "invalid_argument")
end)

H.test("every sync command has --help and is listed in oplog --help", function()
  local top = H.ok(H.oplog("--help"))
  for _, cmd in ipairs { "id", "cursor", "heads", "checkpoint", "export", "import", "join", "conflicts" } do
    local r = H.oplog(cmd, "--help")
    H.has(H.ok(r), "^Usage: oplog " .. cmd .. " DB", "help of " .. cmd, r)
    H.has(top, "\n  " .. cmd .. " DB", "listed: " .. cmd)
  end
  H.has(H.ok(H.oplog("verify", "--help")), "%-%-checkpoint FILE", "verify --help")
end)

H.done()
