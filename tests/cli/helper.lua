-- Shared by the tests of the `oplog` command: runs the binary, checks
-- results, counts passes and failures. Each test file is a lua5.4 script
-- registered with ctest (tests/cli/tests.cmake).
local H = {}

H.BIN = assert(os.getenv("OPLOG_BIN"), "OPLOG_BIN is not set (run through ctest)")
H.SRC = assert(os.getenv("OPLOG_SOURCE_DIR"), "OPLOG_SOURCE_DIR is not set")

-- dkjson (shipped with lua-busted) is an independent, standard decoder.
H.json = require "dkjson"

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
H.quote = sh_quote

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
H.read_file = read_file

function H.write_file(path, text, mode)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  if mode then assert(os.execute("chmod " .. mode .. " " .. sh_quote(path))) end
end

function H.sh(cmd)
  local ok, how, code = os.execute(cmd)
  if not ok then error(string.format("command failed (%s %s): %s", how, code, cmd), 2) end
end

-- A fresh temporary directory, removed at the end of the test file.
local tmpdirs = {}
function H.tmpdir()
  local p = io.popen("mktemp -d /tmp/oplog-cli-test.XXXXXX")
  local d = p:read("l")
  p:close()
  assert(d and d ~= "", "mktemp failed")
  tmpdirs[#tmpdirs + 1] = d
  return d
end

-- Runs a command line. args: list of arguments after the program.
-- opts: bin (default OPLOG_BIN), env (table; false unsets), cwd, stdin
-- (text), stdout (a path instead of a scratch file), clean_env (unset
-- LUA_PATH/LUA_CPATH first), fds ({ [3] = text, ... }: the command gets
-- each text to read on that descriptor, from a private scratch file),
-- umask (e.g. "000": the command runs under it).
-- Returns { code, out, err }.
local scratch
function H.run(args, opts)
  opts = opts or {}
  scratch = scratch or H.tmpdir()
  local parts = {}
  if opts.cwd then parts[#parts + 1] = "cd " .. sh_quote(opts.cwd) .. " &&" end
  if opts.umask then parts[#parts + 1] = "umask " .. sh_quote(opts.umask) .. " &&" end
  parts[#parts + 1] = "env"
  if opts.clean_env then
    parts[#parts + 1] = "-u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4"
  end
  parts[#parts + 1] = "-u OPLOG_KEY_FILE"
  if os.getenv("ASAN_OPTIONS") and (opts.bin or H.BIN) ~= "lua5.4" then
    -- Under the sanitizer build the test env turns leak checks off for the
    -- uninstrumented lua5.4; the oplog binary is instrumented: check it.
    parts[#parts + 1] = "-u LD_PRELOAD ASAN_OPTIONS=detect_leaks=1"
  end
  for k, v in pairs(opts.env or {}) do
    if v == false then
      parts[#parts + 1] = "-u " .. k
    else
      parts[#parts + 1] = k .. "=" .. sh_quote(v)
    end
  end
  parts[#parts + 1] = sh_quote(opts.bin or H.BIN)
  for _, a in ipairs(args) do parts[#parts + 1] = sh_quote(a) end
  local stdin = "/dev/null"
  if opts.stdin then
    stdin = scratch .. "/stdin"
    H.write_file(stdin, opts.stdin)
  end
  for fd, text in pairs(opts.fds or {}) do
    assert(math.type(fd) == "integer" and fd > 2 and fd < 10, "fds: a descriptor from 3 to 9")
    local file = scratch .. "/fd" .. fd
    H.write_file(file, text, "600")
    parts[#parts + 1] = fd .. "<" .. sh_quote(file)
  end
  local cmd = table.concat(parts, " ") .. " <" .. sh_quote(stdin) .. " >"
    .. sh_quote(opts.stdout or (scratch .. "/out"))
    .. " 2>" .. sh_quote(scratch .. "/err")
  local _, how, code = os.execute(cmd)
  if how == "signal" then code = 128 + code end
  return { code = code, out = read_file(scratch .. "/out") or "", err = read_file(scratch .. "/err") or "",
    cmd = cmd }
end

-- Shorthand: oplog ARGS... with the given options.
function H.oplog(...)
  local args = { ... }
  local opts
  if type(args[#args]) == "table" then opts = table.remove(args) end
  return H.run(args, opts)
end

------------------------------------------------------------------ checks

local passed, failed = 0, 0
local current

local function describe(r)
  if type(r) ~= "table" or r.code == nil then return "" end
  return string.format("\n  command: %s\n  exit: %s\n  stdout: %s\n  stderr: %s", r.cmd, r.code,
    r.out, r.err)
end

function H.check(cond, msg, r)
  if not cond then error(string.format("%s%s", msg, describe(r)), 2) end
end

function H.eq(got, want, msg, r)
  if got ~= want then
    error(string.format("%s: expected %q, got %q%s", msg or "value", tostring(want), tostring(got),
      describe(r)), 2)
  end
end

function H.has(text, pattern, msg, r)
  if not tostring(text):find(pattern) then
    error(string.format("%s: %q not found in %q%s", msg or "output", pattern, tostring(text),
      describe(r)), 2)
  end
end

function H.hasnt(text, pattern, msg, r)
  if tostring(text):find(pattern) then
    error(string.format("%s: %q unexpectedly found in %q%s", msg or "output", pattern,
      tostring(text), describe(r)), 2)
  end
end

-- Expects exit status `code`; for failures also the "oplog: <code>:" line.
function H.status(r, code, errcode)
  H.eq(r.code, code, "exit status", r)
  if errcode then
    H.has(r.err, "^oplog: " .. errcode:gsub("%p", "%%%0") .. ": ", "stderr", r)
  end
end

-- Expects success and returns stdout.
function H.ok(r)
  H.eq(r.code, 0, "exit status", r)
  return r.out
end

-- Parses one JSON document, failing on anything else.
function H.decode(text, r)
  local v, pos, err = H.json.decode(text, 1, H.json.null)
  H.check(v ~= nil, "invalid JSON (" .. tostring(err) .. "): " .. text, r)
  H.check(not text:sub(pos):find("%S"), "trailing text after JSON: " .. text, r)
  return v
end

-- Parses output with one JSON object per line.
function H.decode_lines(text, r)
  local list = {}
  for line in text:gmatch("[^\n]+") do list[#list + 1] = H.decode(line, r) end
  return list
end

function H.test(name, fn)
  current = name
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    passed = passed + 1
    print("ok   " .. name)
  else
    failed = failed + 1
    print("FAIL " .. name .. "\n" .. tostring(err))
  end
end

function H.done()
  for _, d in ipairs(tmpdirs) do os.execute("rm -rf " .. sh_quote(d)) end
  print(string.format("%d passed, %d failed", passed, failed))
  os.exit(failed == 0 and 0 or 1)
end

------------------------------------------------------------------ fixtures

-- A Lua script, run with `oplog run`, that builds a small log: two types in
-- aggregate "users", one in "devices", metadata, an update with a null, a
-- delete, a blob and a non-UTF-8 string. 5 entries, 7 operations:
--   1 users   create user 1, create role 1   source=import tag=a tag=b
--   2 users   create user 2, create user 3   source=web
--   3 devices create device                  source=factory flagged
--   4 users   update user 2                  source=web
--   5 users   delete user 1                  (no metadata)
H.FIXTURE = [[
local path, keyfile = ...
local db <close> = oplog.open(path, keyfile == "-" and { encryption = false }
  or { key_file = keyfile })
db:define("user", { columns = { { "id", "INTEGER PRIMARY KEY" }, { "name", "TEXT NOT NULL" },
  { "email", "TEXT" } }, aggregate = "users" })
db:define("role", { columns = { { "user_id", "INTEGER PRIMARY KEY" }, { "role", "TEXT" } },
  aggregate = "users" })
db:define("device", { columns = { { "serial", "TEXT PRIMARY KEY" }, { "firmware", "BLOB" },
  { "volts", "REAL" } },
  aggregate = "devices" })
db:transaction("users", function(tx)
  tx:create("user", { id = 1, name = "alice", email = "alice@example.org" })
  tx:create("role", { user_id = 1, role = "admin" })
end, { metadata = { source = "import", tag = { "a", "b" } } })
db:transaction("users", function(tx)
  tx:create("user", { id = 2, name = "bob", email = "bob@example.org" })
  tx:create("user", { id = 3, name = "carol", email = oplog.null })
end, { metadata = { source = "web" } })
db:transaction("devices", function(tx)
  tx:create("device", { serial = "SN-ü1", firmware = "\0\1\2\254\255", volts = 3.0 })
end, { metadata = { source = "factory", flagged = true } })
db:transaction("users", function(tx)
  tx:update("user", { id = 2, name = "robert" }, { "name" }, { "email" })
end, { metadata = { source = "web" } })
db:transaction("users", function(tx)
  tx:delete("user", { id = 1 })
end)
]]

-- Builds the fixture log in dir; returns db path and key file ("-": none).
function H.fixture(dir, plaintext)
  local db = dir .. "/fixture.oplog"
  local key = "-"
  if not plaintext then
    key = dir .. "/fixture.key"
    H.ok(H.oplog("keygen", key))
  end
  H.write_file(dir .. "/fixture.lua", H.FIXTURE)
  H.ok(H.oplog("run", dir .. "/fixture.lua", db, key))
  return db, key
end

return H
