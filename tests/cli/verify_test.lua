-- oplog verify: summary, --json, --head, --replay, problems found.
package.path = os.getenv("OPLOG_SOURCE_DIR") .. "/tests/cli/?.lua;" .. package.path
local H = require "helper"

local function sqlite(db, sql)
  H.sh("sqlite3 " .. H.quote(db) .. " " .. H.quote(sql) .. " >/dev/null")
end

local function query(db, sql)
  local p = io.popen("sqlite3 " .. H.quote(db) .. " " .. H.quote(sql))
  local s = p:read("a")
  p:close()
  return s
end

H.test("an intact log verifies with the key: exit 0 and a summary", function()
  local dir = H.tmpdir()
  local db, key = H.fixture(dir)
  local r = H.oplog("verify", db, "--key-file", key)
  H.has(H.ok(r), "fixture%.oplog: ok, 5 entries checked %(hash chain, decryption%)\n$", "summary", r)
  H.eq(r.err, "", "stderr (not a terminal: no progress bar)", r)
end)

H.test("without the key only the chain is checked, and the output says so", function()
  local dir = H.tmpdir()
  local db = H.fixture(dir)
  local r = H.oplog("verify", db)
  local out = H.ok(r)
  H.has(out, "ok, 5 entries checked %(hash chain%)\n", "summary", r)
  H.has(out, "no key given", "note", r)
  local v = H.decode(H.ok(H.oplog("verify", db, "--json")))
  H.eq(v.ok, true, "ok")
  H.eq(v.decrypted, false, "decrypted")
  -- --replay needs the plaintext
  H.status(H.oplog("verify", db, "--replay"), 2, "key_required")
end)

H.test("--json prints one parseable object", function()
  local dir = H.tmpdir()
  local db, key = H.fixture(dir)
  local r = H.oplog("verify", db, "--key-file", key, "--json", "--replay")
  local v = H.decode(H.ok(r), r)
  H.eq(v.ok, true, "ok", r)
  H.eq(v.entries, 5, "entries", r)
  H.eq(#v.problems, 0, "problems", r)
  H.eq(v.decrypted, true, "decrypted", r)
  H.eq(v.replay, true, "replay", r)
end)

H.test("--head: the current head passes, another hash is a problem (exit 1)", function()
  local dir = H.tmpdir()
  local db, key = H.fixture(dir)
  local head = H.ok(H.oplog("head", db)):match("^%d+ (%x+)\n$")
  H.check(head and #head == 64, "head hash")
  local r = H.oplog("verify", db, "--key-file", key, "--head", head)
  H.has(H.ok(r), "ok, 5 entries checked %(hash chain, decryption, head%)", "summary", r)
  H.ok(H.oplog("verify", db, "--head", head:upper()))
  local other = string.rep("ab", 32)
  r = H.oplog("verify", db, "--head", other)
  H.status(r, 1)
  H.has(r.out, "1 problem in 5 entries checked", "summary", r)
  H.has(r.out, "head_mismatch", "problem kind", r)
  r = H.oplog("verify", db, "--head", other, "--json")
  H.status(r, 1)
  local v = H.decode(r.out, r)
  H.eq(v.ok, false, "ok", r)
  H.eq(v.problems[1].kind, "head_mismatch", "kind", r)
end)

H.test("--head recorded earlier still passes after the log grew", function()
  local dir = H.tmpdir()
  local db, key = H.fixture(dir)
  local old = H.ok(H.oplog("head", db)):match(" (%x+)")
  H.write_file(dir .. "/append.lua", [[
local db <close> = oplog.open(arg[1], { key_file = arg[2] })
db:transaction("users", function(tx) tx:create("user", { id = 50, name = "erin" }) end)
]])
  H.ok(H.oplog("run", dir .. "/append.lua", db, key))
  local r = H.oplog("verify", db, "--head", old)
  H.has(H.ok(r), "ok, 6 entries checked %(hash chain, head%)", "summary", r)
end)

H.test("verify and dump while another process writes", function()
  local dir = H.tmpdir()
  local db, key = H.fixture(dir)
  H.write_file(dir .. "/writer.lua", [[
local db <close> = oplog.open(arg[1], { key_file = arg[2] })
for i = 1, 400 do
  db:transaction("users", function(tx) tx:create("user", { id = 1000 + i, name = "w" .. i }) end)
end
db:close()
print("done")
]])
  local cmd = H.quote(H.BIN) .. " run " .. H.quote(dir .. "/writer.lua") .. " " .. H.quote(db)
    .. " " .. H.quote(key)
  H.sh(cmd .. " >" .. H.quote(dir .. "/writer.out") .. " 2>&1 &")
  local last = 0
  for _ = 1, 8 do
    local r = H.oplog("verify", db, "--key-file", key, "--json")
    local v = H.decode(H.ok(r), r)
    H.eq(v.ok, true, "verify during writes", r)
    H.check(v.entries >= last, "entries went back", r)
    last = v.entries
    local d = H.oplog("dump", db, "--key-file", key, "--json", "--since", tostring(v.entries - 3))
    H.decode_lines(H.ok(d), d)
  end
  -- wait for the writer (at most a minute), then everything is there
  H.sh("n=0; until grep -q done " .. H.quote(dir .. "/writer.out") .. " || [ $n -ge 1200 ]; do "
    .. "sleep 0.05; n=$((n + 1)); done")
  H.eq(H.read_file(dir .. "/writer.out"), "done\n", "writer output")
  local v = H.decode(H.ok(H.oplog("verify", db, "--key-file", key, "--json", "--replay")))
  H.eq(v.entries, 405, "entries after the writer")
  H.eq(v.ok, true, "ok after the writer")
end)

H.test("a tampered entry is reported with its id (exit 1)", function()
  local dir = H.tmpdir()
  local db, key = H.fixture(dir)
  -- An attacker with write access drops the immutability trigger first,
  -- then changes entry 2's metadata (source=web) where format 2 keeps it: in
  -- the entry's row, as a blob (u32 count, len32 key, key, u8 has_value,
  -- len32 value, value).
  local web = "0100000006000000736F757263650103000000776562"
  H.eq(query(db, "SELECT hex(metadata) FROM oplog_entries WHERE id = 2"),
    web .. "\n", "entry 2's metadata blob before")
  sqlite(db, "DROP TRIGGER oplog_entries_no_update; "
    .. "UPDATE oplog_entries SET metadata = X'" .. web:gsub("776562$", "657665") .. "' WHERE id = 2")
  for _, args in ipairs({ { "--key-file", key }, {} }) do
    local r = H.oplog("verify", db, table.unpack(args))
    H.status(r, 1)
    H.has(r.out, "problems? in 5 entries checked", "summary", r)
    H.has(r.out, "\n  entry 2: hash_mismatch", "problem line", r)
    H.hasnt(r.out, "entry [13-5]:", "other entries are intact", r)
  end
  -- with the key the ciphertext, bound to the metadata, does not decrypt either
  local r = H.oplog("verify", db, "--key-file", key)
  H.has(r.out, "\n  entry 2: decrypt_failed", "problem line with the key", r)
  r = H.oplog("verify", db, "--json")
  H.status(r, 1)
  local v = H.decode(r.out, r)
  H.eq(v.ok, false, "ok")
  local found = false
  for _, p in ipairs(v.problems) do
    if p.id == 2 and p.kind == "hash_mismatch" then found = true end
    H.eq(p.id, 2, "problems concern entry 2 only")
    H.eq(type(p.detail), "string", "detail")
  end
  H.check(found, "problem of entry 2 in JSON", r)
end)

H.test("a derived row that disagrees with its entry is index_mismatch (exit 1)", function()
  local dir = H.tmpdir()
  local db, key = H.fixture(dir)
  -- oplog_metadata is derived from the entries (format 2): the entry is
  -- intact, the table that finds it by metadata is not
  sqlite(db, "DROP TRIGGER oplog_metadata_no_update; "
    .. "UPDATE oplog_metadata SET value = 'evil' WHERE entry_id = 2")
  for _, args in ipairs({ { "--key-file", key }, {} }) do
    local r = H.oplog("verify", db, table.unpack(args))
    H.status(r, 1)
    H.has(r.out, ": 1 problem in 5 entries checked", "summary", r)
    H.has(r.out, "\n  entry 2: index_mismatch: [^\n]*oplog_metadata", "problem line", r)
  end
  local r = H.oplog("verify", db, "--json")
  H.status(r, 1)
  local v = H.decode(r.out, r)
  H.eq(v.ok, false, "ok")
  H.eq(#v.problems, 1, "problems")
  H.eq(v.problems[1].id, 2, "problem id")
  H.eq(v.problems[1].kind, "index_mismatch", "problem kind")
  -- the entry still dumps with its metadata as written
  local d = H.decode_lines(H.ok(H.oplog("dump", db, "--key-file", key, "--json", "--since", "1",
    "--upto", "2")))
  H.eq(d[1].metadata.source[1], "web", "entry 2's metadata")
end)

H.test("--replay finds live tables changed behind the log's back", function()
  local dir = H.tmpdir()
  local db, key = H.fixture(dir)
  H.ok(H.oplog("verify", db, "--key-file", key, "--replay"))
  sqlite(db, "UPDATE user SET name = 'mallory' WHERE id = 3")
  local r = H.oplog("verify", db, "--key-file", key)
  H.ok(r) -- the log itself is intact
  r = H.oplog("verify", db, "--key-file", key, "--replay")
  H.status(r, 1)
  H.has(r.out, "live_mismatch", "problem kind", r)
  H.has(r.out, "user", "problem names the table", r)
end)

H.test("verify only reads: the file is unchanged", function()
  local dir = H.tmpdir()
  local db, key = H.fixture(dir)
  local before = H.read_file(db)
  H.ok(H.oplog("verify", db, "--key-file", key, "--replay"))
  H.eq(H.read_file(db), before, "log file after verify")
end)

H.test("read-only commands leave a one-file log one file", function()
  local dir = H.tmpdir()
  local db, key = H.fixture(dir)
  local before = H.read_file(db)
  H.check(not H.read_file(db .. "-wal") and not H.read_file(db .. "-shm"), "the fixture has sidecar files")
  H.ok(H.oplog("verify", db, "--key-file", key))
  H.ok(H.oplog("stats", db))
  H.ok(H.oplog("dump", db, "--key-file", key))
  H.ok(H.oplog("head", db))
  H.check(not H.read_file(db .. "-wal"), "a read-only command left " .. db .. "-wal")
  H.check(not H.read_file(db .. "-shm"), "a read-only command left " .. db .. "-shm")
  H.eq(H.read_file(db), before, "log file after read-only commands")
end)

H.test("a damaged file: verify names it and reports what it checked up to the damage", function()
  local dir = H.tmpdir()
  local db = dir .. "/big.oplog"
  H.write_file(dir .. "/big.lua", [[
    local db <close> = require("oplog").open(arg[1], { encryption = false })
    db:define("t", { columns = { { "id", "INTEGER PRIMARY KEY" }, { "v", "TEXT" } } })
    for i = 1, 400 do db:transaction("t", function(tx) tx:create("t", { v = string.rep("x", 300) }) end) end
  ]])
  H.ok(H.oplog("run", dir .. "/big.lua", db))
  -- zero 10 pages near the end, as a half-written copy would leave them
  H.sh("dd if=/dev/zero of='" .. db .. "' bs=4096 seek=80 count=10 conv=notrunc 2>/dev/null")
  local r = H.oplog("verify", db, "--no-encryption", "--json")
  H.status(r, 1)
  local report = H.decode(r.out, r)
  H.eq(report.ok, false, "ok", r)
  H.check(report.entries > 0 and report.entries < 400, "entries checked before the damage: " .. tostring(report.entries), r)
  local last = report.problems[#report.problems]
  H.eq(last.kind, "corrupt", "kind", r)
  H.has(last.detail, "big%.oplog", "the damaged file is named", r)
  -- a command that cannot read it names it too
  r = H.oplog("dump", db, "--no-encryption")
  H.status(r, 2, "corrupt")
  H.has(r.err, "big%.oplog", "stderr", r)
end)

H.test("one entry is one entry", function()
  local dir = H.tmpdir()
  local db = dir .. "/one.oplog"
  H.write_file(dir .. "/one.lua", [[
    local db <close> = require("oplog").open(arg[1], { encryption = false })
    db:define("t", { columns = { { "id", "INTEGER PRIMARY KEY" } } })
    db:transaction("t", function(tx) tx:create("t", {}) end)
  ]])
  H.ok(H.oplog("run", dir .. "/one.lua", db))
  H.has(H.ok(H.oplog("verify", db, "--no-encryption")), "ok, 1 entry checked %(", "singular")
end)

H.done()
