-- Sync: shipping and joining the logs of several files (origins, heads,
-- cursors, export/import, join, conflicts, checkpoints), end to end through
-- the Lua API on two and three files.
local oplog = require "oplog"
local S = require "support"
local testing = S.testing

-- Runs sql on the file at path with the sqlite3 command-line tool; returns
-- its output (rows as "a|b" lines).
local function sql(path, query)
  local q = "'" .. query:gsub("'", "'\\''") .. "'"
  local p = assert(io.popen("sqlite3 -bail '" .. path .. "' " .. q .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  assert(ok, "sqlite3 failed: " .. out)
  return out
end

local function users(path) return sql(path, "SELECT id, name FROM users ORDER BY id") end

-- A file with the spec types; returns db, path, its key options.
local function device(opts)
  local db, path, key_file = S.db(opts)
  return db, path, key_file and { key_file = key_file } or { encryption = false }
end

-- Ships everything `to` lacks from `from`, through a file: the stream
-- recipients get by any pipe. Returns the export's and the import's results.
local function ship(from, to)
  local stream = testing.tmpname(".stream")
  local e = from:export(stream, { to = to:origin().id, since = to:cursor() })
  return e, to:import(stream)
end

-- (origin, seq) of every entry in total order.
local function total(db)
  local list = {}
  for e in db:entries { order = "total" } do list[#list + 1] = e.origin .. ":" .. e.seq end
  return list
end

-- The conflicts as (origin, seq, op, kind) of their entries: entry ids
-- differ between files, origins and seqs do not.
local function conflicts(db)
  local list = {}
  for c in db:conflicts() do
    local e = assert(db:entry(c.entry_id))
    list[#list + 1] = string.format("%s:%d op %d %s", e.origin, e.seq, c.op, c.kind)
  end
  return list
end

local function copy_file(from, to)
  local data = S.read(from)
  local f = assert(io.open(to, "wb"))
  f:write(data)
  f:close()
end

local HEX64 = "^" .. string.rep("%x", 64) .. "$"

describe("sync", function()
  after_each(testing.cleanup)

  describe("heads and cursor", function()
    it("a new file: its own origin at seq 0, the cursor names it", function()
      local db = device()
      local o = db:origin()
      assert.truthy(o.id:match(HEX64))
      assert.equal(o.id:lower(), o.id)
      local heads = db:heads()
      assert.equal(1, #heads)
      assert.same({ origin = o.id, seq = 0, hash = string.rep("0", 64), clock = 0 }, heads[1])
      assert.equal(o.id .. ":0", db:cursor())
    end)

    it("after writes: seq, hash and clock of the newest entry", function()
      local db = device()
      S.add_user(db, 1)
      S.add_user(db, 2)
      local h = db:heads()[1]
      assert.equal(2, h.seq)
      assert.equal(db:head().hash, h.hash)
      assert.equal(db:origin().clock, h.clock)
      assert.equal(db:origin().id .. ":2", db:cursor())
    end)
  end)

  describe("export and import", function()
    it("through a path: entries, heads and live rows arrive; the file is mode 0600", function()
      local a, pa = device()
      local b, pb = device()
      S.add_user(a, 1, "ann")
      S.add_user(a, 2, "abe")
      local stream = testing.tmpname(".stream")
      local e = a:export(stream, { to = b:origin().id })
      assert.equal(2, e.entries)
      assert.equal(#S.read(stream), e.bytes)
      local p = io.popen("stat -c %a '" .. stream .. "'")
      assert.equal("600", p:read("l"))
      p:close()

      assert.same({ entries = 2, skipped = 0, conflicts = 0 }, b:import(stream))
      assert.equal(users(pa), users(pb))
      assert.equal("1|ann\n2|abe\n", users(pb))
      local aid = a:origin().id
      local found
      for _, h in ipairs(b:heads()) do
        if h.origin == aid then found = h end
      end
      assert.same({ origin = aid, seq = 2, hash = a:head().hash, clock = a:origin().clock }, found)
      -- the entries keep their origin and seq; b's own origin wrote nothing
      for entry in b:entries() do
        assert.equal(aid, entry.origin)
      end
      assert.equal(0, b:origin().seq)
      assert.is_true(b:verify { replay = true }.ok)

      -- the same stream again: nothing new
      assert.same({ entries = 0, skipped = 2, conflicts = 0 }, b:import(stream))
    end)

    it("through open Lua files", function()
      local a = device()
      local b, pb = device()
      S.add_user(a, 1)
      local path = testing.tmpname(".stream")
      local out = assert(io.open(path, "wb"))
      local e = a:export(out, { to = b:origin().id })
      out:close()
      assert.equal(1, e.entries)
      assert.equal(#S.read(path), e.bytes)
      local src = assert(io.open(path, "rb"))
      local r = b:import(src)
      src:close()
      assert.equal(1, r.entries)
      assert.equal("1|user1\n", users(pb))
    end)

    it("a closed Lua file or a wrong argument is invalid_argument", function()
      local a = device()
      local f = assert(io.open(testing.tmpname(".stream"), "wb"))
      f:close()
      S.err("invalid_argument", a.export, a, f, { to = a:origin().id })
      S.err("invalid_argument", a.export, a, 42)
      S.err("invalid_argument", a.import, a, {})
      S.err("invalid_argument", a.export, a, testing.tmpname(".s"), { to = a:origin().id, bogus = 1 })
    end)

    it("resumes from the recipient's cursor: only what lies beyond travels", function()
      local a = device()
      local b = device()
      for i = 1, 3 do S.add_user(a, i) end
      local e, r = ship(a, b)
      assert.equal(3, e.entries)
      assert.equal(3, r.entries)
      -- b's cursor names both origins, sorted by origin id
      local ids = { a:origin().id, b:origin().id }
      table.sort(ids)
      local want = {}
      for i, id in ipairs(ids) do want[i] = id .. ":" .. (id == a:origin().id and 3 or 0) end
      assert.equal(table.concat(want, ","), b:cursor())

      for i = 4, 5 do S.add_user(a, i) end
      e, r = ship(a, b)
      assert.equal(2, e.entries)
      assert.same({ entries = 2, skipped = 0, conflicts = 0 }, r)
      -- nothing new: an empty stream still imports (and checks the base)
      e, r = ship(a, b)
      assert.equal(0, e.entries)
      assert.same({ entries = 0, skipped = 0, conflicts = 0 }, r)
    end)

    it("a malformed cursor is invalid_argument", function()
      local a = device()
      S.err("invalid_argument", a.export, a, testing.tmpname(".s"), { to = a:origin().id, since = "nonsense" })
    end)

    it("an encrypted log needs `to`; a plaintext log accepts and ignores it", function()
      local a = device()
      S.add_user(a, 1)
      S.err("invalid_argument", a.export, a, testing.tmpname(".s"))
      local p = device { encryption = false }
      local q, pq = device { encryption = false }
      S.add_user(p, 1)
      local stream = testing.tmpname(".s")
      assert.equal(1, p:export(stream).entries)
      assert.equal(1, q:import(stream).entries)
      assert.equal("1|user1\n", users(pq))
    end)

    it("an encrypted and a plaintext file never exchange entries", function()
      local enc = device()
      local plain = device { encryption = false }
      S.add_user(enc, 1)
      S.add_user(plain, 2)
      local s1 = testing.tmpname(".s")
      enc:export(s1, { to = plain:origin().id })
      S.err("invalid_argument", plain.import, plain, s1)
      local s2 = testing.tmpname(".s")
      plain:export(s2)
      S.err("invalid_argument", enc.import, enc, s2)
    end)

    it("a stream meant for another file is wrong_key; a cut or altered one corrupt; nothing is kept", function()
      local a = device()
      local b, pb = device()
      local c = device()
      S.add_user(a, 1)
      S.add_user(a, 2)
      local stream = testing.tmpname(".s")
      a:export(stream, { to = b:origin().id })
      S.err("wrong_key", c.import, c, stream)
      assert.equal(1, #c:heads())

      local data = S.read(stream)
      local cut = testing.tmpname(".s")
      local f = assert(io.open(cut, "wb"))
      f:write(data:sub(1, #data - 10))
      f:close()
      S.err("corrupt", b.import, b, cut)
      local altered = testing.tmpname(".s")
      f = assert(io.open(altered, "wb"))
      local mid = #data // 2
      f:write(data:sub(1, mid - 1), string.char(data:byte(mid) ~ 0x55), data:sub(mid + 1))
      f:close()
      S.err("corrupt", b.import, b, altered)
      assert.equal(b:origin().id .. ":0", b:cursor())
      assert.equal("", users(pb))
      -- the intact stream still imports afterwards
      assert.equal(2, b:import(stream).entries)
    end)

    it("types the stream uses are defined on the receiver; a different definition is type_conflict", function()
      local a = device()
      S.add_user(a, 1)
      local bare, pbare = testing.open_temp()
      local stream = testing.tmpname(".s")
      a:export(stream, { to = bare:origin().id })
      assert.equal(1, bare:import(stream).entries)
      assert.is_table(bare:types().user)
      assert.equal("1|user1\n", users(pbare))

      local other = testing.open_temp()
      other:define("user", { table = "users", aggregate = "users", columns = { { "id", "INTEGER PRIMARY KEY" } } })
      local s2 = testing.tmpname(".s")
      a:export(s2, { to = other:origin().id })
      S.err("type_conflict", other.import, other, s2)
    end)

    it("progress reports during export and import", function()
      local a = device()
      local b = device()
      for i = 1, 5 do S.add_user(a, i) end
      local calls = 0
      local stream = testing.tmpname(".s")
      a:export(stream, { to = b:origin().id, progress = function(done, total)
        assert.is_true(done <= total)
        calls = calls + 1
      end })
      assert.is_true(calls > 0)
      calls = 0
      b:import(stream, { progress = function() calls = calls + 1 end })
      assert.is_true(calls > 0)
    end)

    it("importing advances the tickets: a writer with an older ticket gets ticket_conflict", function()
      local a = device()
      local b = device()
      S.add_user(b, 100)
      local stale = b:ticket("users")
      S.add_user(a, 1)
      S.add_user(a, 2)
      ship(a, b)
      assert.equal(stale.version + 2, b:ticket("users").version)
      b:begin()
      S.err("ticket_conflict", b.write_entry, b, {
        aggregate = "users", ticket = stale,
        ops = { { type = "user", op = "create", row = { id = 3, name = "late" } } },
      })
      b:rollback()
    end)
  end)

  describe("join", function()
    it("both ways: the same entries, live tables, heads and conflicts", function()
      local a, pa, ka = device()
      local b, pb, kb = device()
      -- offline writes on both devices, one key written by both
      S.add_user(a, 1, "from a")
      S.add_user(a, 7, "a's seven")
      S.add_user(b, 2, "from b")
      S.add_user(b, 7, "b's seven")
      b:transaction("notes", function(tx) tx:create("note", { id = 1, body = "b" }) end)

      local r1 = a:join(pb, kb)
      assert.equal(3, r1.entries)
      local r2 = b:join(pa, ka)
      assert.equal(2, r2.entries)
      assert.equal(0, r2.skipped)

      assert.same(a:heads(), b:heads())
      assert.same(total(a), total(b))
      assert.equal(users(pa), users(pb))
      assert.equal(sql(pa, "SELECT id, body FROM note"), sql(pb, "SELECT id, body FROM note"))
      assert.is_true(a:verify { replay = true }.ok)
      assert.is_true(b:verify { replay = true }.ok)

      -- the two creates of user 7: the one first in the total order holds,
      -- the other is a conflict (kind exists, op 1), the same in both files
      local ca, cb = conflicts(a), conflicts(b)
      assert.same(ca, cb)
      assert.equal(1, #ca)
      local first = a:origin().id < b:origin().id and a or b
      local second = first == a and b or a
      assert.equal(second:origin().id .. ":2 op 1 exists", ca[1])
      local name = first == a and "a's seven" or "b's seven"
      assert.truthy(users(pa):find("7|" .. name, 1, true))
      for c in a:conflicts() do
        assert.equal("string", type(c.detail))
        assert.truthy(c.detail ~= "")
      end

      -- idempotent: joining again brings nothing
      local again = a:join(pb, kb)
      assert.equal(0, again.entries)
      assert.same(a:heads(), b:heads())
    end)

    it("three files, joined in different orders, converge", function()
      local a, pa, ka = device()
      local b, pb, kb = device()
      local c, pc, kc = device()
      S.add_user(a, 1)
      S.add_user(b, 1) -- conflicts with a's
      S.add_user(c, 3)
      c:transaction("users", function(tx) tx:update("user", { id = 3, name = "three" }, { "name" }) end)

      -- a <- b <- c, then c <- a (everything through a relay), b <- a
      b:join(pc, kc)
      a:join(pb, kb)
      c:join(pa, ka)
      b:join(pa, ka)
      assert.same(a:heads(), b:heads())
      assert.same(a:heads(), c:heads())
      assert.same(total(a), total(c))
      assert.equal(users(pa), users(pb))
      assert.equal(users(pa), users(pc))
      assert.same(conflicts(a), conflicts(b))
      assert.same(conflicts(a), conflicts(c))
      for _, db in ipairs { a, b, c } do assert.is_true(db:verify { replay = true }.ok) end
    end)

    it("a relay forwards what it imported", function()
      local a = device()
      local hub = device()
      local c, pc = device()
      S.add_user(a, 1)
      ship(a, hub)
      local _, r = ship(hub, c)
      assert.equal(1, r.entries)
      assert.equal("1|user1\n", users(pc))
      local origins = {}
      for _, h in ipairs(c:heads()) do origins[h.origin] = h.seq end
      assert.equal(1, origins[a:origin().id])
    end)

    it("the other file's key choice: a wrong or missing key fails and changes nothing", function()
      local a = device()
      local b, pb = device()
      S.add_user(b, 1)
      local e = S.err("key_required", a.join, a, pb)
      assert.is_string(e.message)
      local wrong = testing.tmpname(".key")
      oplog.keygen(wrong)
      S.err("wrong_key", a.join, a, pb, { key_file = wrong })
      assert.equal(1, #a:heads())
      S.err("not_found", a.join, a, testing.tmpname(".db"), { encryption = false })
    end)
  end)

  describe("entries in total order", function()
    it("order = 'total' sorts by (clock, origin id, seq); entries carry origin, seq, clock", function()
      local a, pa, ka = device()
      local b = device()
      S.add_user(a, 1)
      S.add_user(a, 2)
      S.add_user(b, 3)
      b:join(pa, ka)
      local prev
      local n = 0
      for e in b:entries { order = "total" } do
        n = n + 1
        assert.truthy(e.origin:match(HEX64))
        assert.is_true(e.seq >= 1)
        if prev then
          assert.is_true(prev.clock < e.clock or (prev.clock == e.clock and (prev.origin < e.origin
            or (prev.origin == e.origin and prev.seq < e.seq))))
        end
        prev = e
      end
      assert.equal(3, n)
      S.err("invalid_argument", b.entries, b, { order = "random" })
    end)
  end)

  describe("fork and gap", function()
    it("gap: a stream that does not continue an origin's chain, with origin and seqs in the message", function()
      local a = device()
      local b = device()
      S.add_user(a, 1)
      S.add_user(a, 2)
      ship(a, b)
      S.add_user(a, 3)
      S.add_user(a, 4)
      local aid = a:origin().id
      local stream = testing.tmpname(".s")
      a:export(stream, { to = b:origin().id, since = aid .. ":3" })
      local e = S.err("gap", b.import, b, stream)
      assert.truthy(e.message:find(aid, 1, true), e.message)
      assert.truthy(e.message:find("seq 2", 1, true) and e.message:find("seq 4", 1, true), e.message)
      -- nothing of it was kept, and the right stream still goes through
      local _, r = ship(a, b)
      assert.equal(2, r.entries)
    end)

    it("fork: a cloned device writes other entries at the same seqs", function()
      local a, pa, ka = device()
      S.add_user(a, 1)
      S.add_user(a, 2)
      a:close()
      local clone_path = testing.tmpname(".db")
      copy_file(pa, clone_path)
      a = oplog.open(pa, ka)
      local clone = oplog.open(clone_path, ka)
      assert.equal(a:origin().id, clone:origin().id)
      S.add_user(a, 3, "original")
      S.add_user(clone, 3, "clone")

      local b = device()
      ship(a, b)
      -- everything: the entry at seq 3 differs
      local full = testing.tmpname(".s")
      clone:export(full, { to = b:origin().id })
      local e = S.err("fork", b.import, b, full)
      assert.truthy(e.message:find(a:origin().id, 1, true), e.message)
      -- from b's cursor: nothing new, but the base hash at seq 3 differs
      local base = testing.tmpname(".s")
      local ex = clone:export(base, { to = b:origin().id, since = b:cursor() })
      assert.equal(0, ex.entries)
      S.err("fork", b.import, b, base)
      clone:close()
      a:close()
    end)
  end)

  describe("checkpoints", function()
    it("names the origin and head hash as origin() and head() give them, and verifies", function()
      local a = device()
      S.add_user(a, 1)
      S.add_user(a, 2)
      local text = a:checkpoint()
      assert.is_string(text)
      assert.truthy(text:find(a:origin().id, 1, true))
      assert.truthy(text:find(a:head().hash, 1, true))
      local r = a:verify { checkpoint = text }
      assert.is_true(r.ok)
      assert.same({}, r.problems)
      -- still true once more entries were written
      S.add_user(a, 3)
      assert.is_true(a:verify { checkpoint = text }.ok)
    end)

    it("an empty log has nothing to checkpoint", function()
      local a = device()
      S.err("invalid_argument", a.checkpoint, a)
    end)

    it("a file that imported the origin verifies its checkpoint; a cut-off copy does not", function()
      local a = device()
      local b = device()
      S.add_user(a, 1)
      S.add_user(a, 2)
      ship(a, b)
      assert.is_true(b:verify { checkpoint = a:checkpoint() }.ok)
      S.add_user(a, 3)
      local text = a:checkpoint()
      local r = b:verify { checkpoint = text }
      assert.is_false(r.ok)
      assert.equal(1, #r.problems)
      assert.equal("checkpoint_mismatch", r.problems[1].kind)
      assert.truthy(r.problems[1].detail:find(a:origin().id, 1, true))
    end)

    it("a cut tail is checkpoint_mismatch", function()
      local a, pa, ka = device()
      S.add_user(a, 1)
      a:close()
      local old = testing.tmpname(".db")
      copy_file(pa, old)
      a = oplog.open(pa, ka)
      S.add_user(a, 2)
      local text = a:checkpoint()
      a:close()
      local cut = oplog.open(old, ka)
      local r = cut:verify { checkpoint = text }
      assert.is_false(r.ok)
      assert.equal("checkpoint_mismatch", r.problems[1].kind)
      cut:close()
    end)

    it("a rewritten history (another entry at the checkpoint's seq) is checkpoint_mismatch", function()
      local a, pa, ka = device()
      S.add_user(a, 1)
      a:close()
      local clone = testing.tmpname(".db")
      copy_file(pa, clone)
      a = oplog.open(pa, ka)
      S.add_user(a, 2)
      local text = a:checkpoint()
      a:close()
      local c = oplog.open(clone, ka)
      S.add_user(c, 3) -- seq 2 of the same origin: another entry
      local r = c:verify { checkpoint = text }
      assert.is_false(r.ok)
      assert.equal(1, #r.problems)
      assert.equal("checkpoint_mismatch", r.problems[1].kind)
      assert.truthy(r.problems[1].detail:find("rewritten", 1, true))
      c:close()
    end)

    it("another file's checkpoint is checkpoint_mismatch", function()
      local a = device()
      local b = device()
      S.add_user(a, 1)
      S.add_user(b, 1)
      local r = b:verify { checkpoint = a:checkpoint() }
      assert.is_false(r.ok)
      assert.equal("checkpoint_mismatch", r.problems[1].kind)
    end)

    it("a tampered signature or body is bad_signature; a malformed text invalid_argument", function()
      local a = device()
      S.add_user(a, 1)
      S.add_user(a, 2)
      local text = a:checkpoint()
      -- one character of the signature's base64 changed
      local sig_at = text:find("%S+\n$")
      local c = text:sub(sig_at + 5, sig_at + 5)
      local tampered = text:sub(1, sig_at + 4) .. (c == "A" and "B" or "A") .. text:sub(sig_at + 6)
      local r = a:verify { checkpoint = tampered }
      assert.is_false(r.ok)
      assert.equal("bad_signature", r.problems[1].kind)
      -- the body changed under the signature (seq 2 -> 1)
      local body = text:gsub("\n2\n", "\n1\n", 1)
      assert.not_equal(text, body)
      assert.equal("bad_signature", a:verify { checkpoint = body }.problems[1].kind)
      S.err("invalid_argument", a.verify, a, { checkpoint = "not a checkpoint" })
      S.err("invalid_argument", a.verify, a, { checkpoint = text:upper() })
      S.err("invalid_argument", a.verify, a, { checkpoint = 42 })
    end)

    it("works without the key: signing needs it, checking does not", function()
      local a, pa = device()
      S.add_user(a, 1)
      local text = a:checkpoint()
      local keyless = oplog.open(pa, { readonly = true })
      assert.is_true(keyless:verify { checkpoint = text }.ok)
      S.err("key_required", keyless.checkpoint, keyless)
      keyless:close()
    end)
  end)

  describe("conflicts", function()
    it("filter since and limit; an entry that applied is not listed", function()
      local a, pa, ka = device()
      local b = device()
      for i = 1, 3 do S.add_user(a, i, "a" .. i) end
      for i = 1, 3 do S.add_user(b, i, "b" .. i) end
      b:join(pa, ka)
      local all = {}
      for c in b:conflicts() do all[#all + 1] = c end
      assert.equal(3, #all)
      for i = 2, #all do assert.is_true(all[i - 1].entry_id < all[i].entry_id) end
      for _, c in ipairs(all) do
        assert.equal(1, c.op)
        assert.equal("exists", c.kind)
      end
      local some = {}
      for c in b:conflicts { since = all[1].entry_id, limit = 1 } do some[#some + 1] = c end
      assert.equal(1, #some)
      assert.same(all[2], some[1])
      S.err("invalid_argument", b.conflicts, b, { bogus = true })
    end)
  end)
end)
