-- db:replay, db:verify, db:head.
local oplog = require "oplog"
local S = require "support"
local testing = S.testing

-- Replaces every occurrence of `from` in the file by `to` (same length).
local function patch_all(path, from, to)
  assert(#from == #to)
  local data = S.read(path)
  local n = 0
  local start = 1
  while true do
    local i = data:find(from, start, true)
    if not i then break end
    S.patch(path, i - 1, to)
    n = n + 1
    start = i + #from
  end
  assert(n > 0, "pattern not found in file")
  return n
end

describe("db:replay", function()
  local db, path
  before_each(function()
    db, path = S.db()
    S.add_user(db, 1)
    db:transaction("notes", function(tx) tx:create("note", { id = 1, body = "x" }) end)
    db:transaction("users", function(tx)
      tx:create("user", { id = 2, name = "b" })
      tx:update("user", { id = 1, name = "A" }, { "name" })
    end)
    S.add_user(db, 3)
  end)
  after_each(testing.cleanup)

  it("replays everything into suffixed tables", function()
    assert.same({ entries = 4, ops = 5 }, db:replay { suffix = "_replay" })
    -- targets now have rows: a second replay needs fresh
    local e = S.err("target_not_empty", db.replay, db, { suffix = "_replay" })
    assert.truthy(e.message:find("_replay has rows", 1, true), e.message)
    assert.same({ entries = 4, ops = 5 }, db:replay { suffix = "_replay", fresh = true })
    assert.is_true(db:verify { replay = true }.ok)
  end)

  it("selects entries by aggregate, since and upto", function()
    assert.same({ entries = 3, ops = 4 }, db:replay { suffix = "_u", aggregate = "users" })
    assert.same({ entries = 1, ops = 1 }, db:replay { suffix = "_n", aggregate = "notes" })
    assert.same({ entries = 2, ops = 2 }, db:replay { suffix = "_s", upto = 2 })
    assert.same({ entries = 1, ops = 1 }, db:replay { suffix = "_t", since = 1, upto = 2 })
    -- a range whose updates find no row fails as a whole
    S.err("not_found", db.replay, db, { suffix = "_v", since = 2 })
    assert.same({ entries = 4, ops = 5 }, db:replay { suffix = "_v" })
  end)

  it("replays into another file", function()
    local replica = testing.tmpname(".replica")
    assert.same({ entries = 4, ops = 5 }, db:replay { into = replica })
    S.err("target_not_empty", db.replay, db, { into = replica })
    assert.same({ entries = 4, ops = 5 }, db:replay { into = replica, fresh = true })
    assert.truthy(#S.read(replica) > 0)
  end)

  it("reports progress and stops on an error in the progress function", function()
    local calls = {}
    db:replay { suffix = "_p", progress = function(done, total) calls[#calls + 1] = { done, total } end }
    assert.is_true(#calls >= 1)
    assert.same({ 4, 4 }, calls[#calls])
    local stop = {}
    local ok, e = pcall(db.replay, db, { suffix = "_q", progress = function() error(stop) end })
    assert.is_false(ok)
    assert.equal(stop, e) -- the original error value
    -- nothing of the interrupted replay is left: the same targets replay without fresh
    assert.same({ entries = 4, ops = 5 }, db:replay { suffix = "_q" })
  end)

  it("a progress function may not use its own handle", function()
    local inner
    local ok, e = pcall(db.replay, db, { suffix = "_b", progress = function()
      inner = S.err("invalid_argument", db.head, db)
      db:close()
    end })
    assert.is_false(ok)
    assert.equal("invalid_argument", e.code)
    assert.truthy(inner.message:find("busy", 1, true), inner.message)
    assert.equal(4, db:head().id) -- still open and usable
  end)

  it("checks its options", function()
    S.err("invalid_argument", db.replay, db, {})
    S.err("invalid_argument", db.replay, db, { suffix = "_a", into = "x.db" })
    S.err("invalid_argument", db.replay, db, { suffix = "bad suffix" })
    local e = S.err("invalid_argument", db.replay, db, { suffix = "_a", progress = 5 })
    assert.truthy(e.message:find("field 'progress': function expected", 1, true), e.message)
    e = S.err("invalid_argument", db.replay, db, { sufix = "_a" })
    assert.truthy(e.message:find("unknown option 'sufix'", 1, true), e.message)
    S.err("invalid_argument", db.replay, db, { suffix = "_a", fresh = "yes" })
    S.err("invalid_argument", db.replay, db)
  end)

  it("needs the key and a writable file", function()
    db:close()
    local keyless = oplog.open(path)
    S.err("key_required", keyless.replay, keyless, { suffix = "_k" })
    keyless:close()
    local ro = testing.reopen(path, { readonly = true })
    S.err("readonly", ro.replay, ro, { suffix = "_k" })
  end)

  it("is refused inside a transaction", function()
    db:begin()
    S.err("invalid_argument", db.replay, db, { suffix = "_t" })
    db:rollback()
  end)
end)

describe("db:verify and db:head", function()
  after_each(testing.cleanup)

  it("head of an empty log is id 0 and a zero hash", function()
    local db = S.db()
    assert.same({ id = 0, hash = string.rep("0", 64) }, db:head())
  end)

  it("head moves with each entry; verify accepts it", function()
    local db = S.db()
    S.add_user(db, 1)
    local h1 = db:head()
    assert.equal(1, h1.id)
    assert.truthy(h1.hash:match("^%x+$"))
    assert.equal(64, #h1.hash)
    S.add_user(db, 2)
    local h2 = db:head()
    assert.equal(2, h2.id)
    assert.not_equal(h1.hash, h2.hash)
    local r = db:verify { head = h2.hash }
    assert.same({ ok = true, entries = 2, problems = {} }, r)
    assert.is_true(db:verify { head = h2.hash:upper() }.ok)
  end)

  it("a head the chain does not reach is head_mismatch", function()
    local db = S.db()
    S.add_user(db, 1)
    local r = db:verify { head = string.rep("ab", 32) }
    assert.is_false(r.ok)
    assert.equal(1, #r.problems)
    assert.equal("head_mismatch", r.problems[1].kind)
    assert.equal(0, r.problems[1].id)
    assert.is_string(r.problems[1].detail)
  end)

  it("rejects a head that is not 64 hex characters", function()
    local db = S.db()
    S.err("invalid_argument", db.verify, db, { head = "abc" })
    local e = S.err("invalid_argument", db.verify, db, { head = string.rep("zz", 32) })
    assert.truthy(e.message:find("hex", 1, true), e.message)
    S.err("invalid_argument", db.verify, db, { head = 5 })
    S.err("invalid_argument", db.verify, db, { replay = 1 })
    S.err("invalid_argument", db.verify, db, { quick = true })
  end)

  it("verify with replay finds live tables that differ from the log", function()
    local db = S.db()
    S.add_user(db, 1)
    assert.is_true(db:verify { replay = true }.ok)
    -- write_entry logs a row the live table never got
    db:begin()
    db:write_entry { aggregate = "users", ticket = db:ticket("users"),
      ops = { { type = "user", op = "create", row = { id = 2, name = "ghost" } } } }
    db:commit()
    assert.is_true(db:verify().ok) -- the chain itself is fine
    local r = db:verify { replay = true }
    assert.is_false(r.ok)
    assert.equal("live_mismatch", r.problems[1].kind)
    assert.truthy(r.problems[1].detail:find("users", 1, true), r.problems[1].detail)
  end)

  it("finds a changed entry (hash_mismatch) in a plaintext file", function()
    local db, path = S.db { encryption = false }
    S.add_user(db, 1, "MARKER_abcdef")
    S.add_user(db, 2)
    db:close()
    patch_all(path, "MARKER_abcdef", "MARKER_abcdeg")
    db = testing.reopen(path)
    assert.equal("MARKER_abcdeg", db:entry(1).ops[1].row.name) -- reads do not check the chain
    local r = db:verify()
    assert.is_false(r.ok)
    assert.equal(2, r.entries)
    assert.equal(1, r.problems[1].id)
    assert.equal("hash_mismatch", r.problems[1].kind)
  end)

  it("an entry moved to another aggregate fails to decrypt (decrypt_failed)", function()
    local db, path = testing.open_temp()
    db:define("zz", { aggregate = "zqxjkaggr", columns = { { "id", "INTEGER PRIMARY KEY" } } })
    db:transaction("zqxjkaggr", function(tx) tx:create("zz", { id = 1 }) end)
    db:close()
    -- rename the aggregate everywhere it is stored: the ciphertext is bound to it
    patch_all(path, "zqxjkaggr", "zqxjkaggs")
    db = testing.reopen(path)
    assert.is_table(db:stats().aggregates.zqxjkaggs)
    local e = S.err("decrypt_failed", db.entry, db, 1)
    assert.truthy(#e.message > 0)
    S.err("decrypt_failed", function() for _ in db:entries() do end end)
    local r = db:verify()
    assert.is_false(r.ok)
    local kinds = {}
    for _, p in ipairs(r.problems) do kinds[p.kind] = p.id end
    assert.equal(1, kinds.decrypt_failed)
    assert.equal(1, kinds.hash_mismatch)
  end)

  it("verify works without the key (chain only)", function()
    local db, path = S.db()
    S.add_user(db, 1)
    db:close()
    local keyless = oplog.open(path)
    assert.same({ ok = true, entries = 1, problems = {} }, keyless:verify())
    S.err("key_required", keyless.verify, keyless, { replay = true })
    keyless:close()
  end)

  it("reports progress; an error in it is raised again", function()
    local db = S.db()
    S.add_user(db, 1)
    S.add_user(db, 2)
    local last
    db:verify { replay = true, progress = function(done, total) last = { done, total } end }
    assert.same({ 4, 4 }, last) -- chain and replay phases
    local ok, e = pcall(db.verify, db, { progress = function() error("stop here", 0) end })
    assert.is_false(ok)
    assert.equal("stop here", e)
    assert.is_true(db:verify().ok)
  end)

  it("is refused inside a transaction", function()
    local db = S.db()
    db:begin()
    S.err("invalid_argument", db.verify, db)
    db:rollback()
  end)
end)
