-- The command's own surface: help, version, usage errors.
package.path = os.getenv("OPLOG_SOURCE_DIR") .. "/tests/cli/?.lua;" .. package.path
local H = require "helper"

local COMMANDS = { "keygen", "init", "run", "dump", "verify", "replay", "stats", "head", "keys" }

H.test("--help lists every command and the exit statuses", function()
  local r = H.oplog("--help")
  local out = H.ok(r)
  for _, c in ipairs(COMMANDS) do H.has(out, "\n  " .. c .. " ", "global help", r) end
  H.has(out, "OPLOG_KEY_FILE", "global help", r)
  H.has(out, "Exit status: 0 success, 1", "global help", r)
  H.eq(r.err, "", "stderr", r)
  H.eq(H.oplog("-h").out, out, "-h same as --help")
  H.eq(H.oplog("help").out, out, "help same as --help")
end)

H.test("COMMAND --help describes each command", function()
  for _, c in ipairs(COMMANDS) do
    local r = H.oplog(c, "--help")
    local out = H.ok(r)
    H.has(out, "^Usage: oplog " .. c, c .. " --help", r)
    H.eq(H.oplog("help", c).out, out, "help " .. c)
  end
  -- --help wins wherever it is among a command's options.
  local r = H.oplog("dump", "no-such.db", "--json", "--help")
  H.has(H.ok(r), "^Usage: oplog dump", "dump ... --help", r)
  -- key options are described where a command opens a file
  H.has(H.oplog("verify", "--help").out, "%-%-passphrase%-env VAR")
  H.has(H.oplog("dump", "--help").out, "base64")
end)

H.test("--version prints the module version", function()
  local r = H.oplog("--version")
  H.has(H.ok(r), "^oplog %d+%.%d+%.%d+[%w%.%-+]*\n$", "--version", r)
end)

H.test("no command is a usage error", function()
  local r = H.oplog()
  H.status(r, 2, "invalid_argument")
  H.has(r.err, "oplog %-%-help", "points at help", r)
  H.eq(r.out, "", "stdout", r)
end)

H.test("unknown command and unknown global option", function()
  local r = H.oplog("frobnicate", "x.db")
  H.status(r, 2, "invalid_argument")
  H.has(r.err, "unknown command \"frobnicate\"", "stderr", r)
  r = H.oplog("--frob")
  H.status(r, 2, "invalid_argument")
  H.has(r.err, "unknown option %-%-frob", "stderr", r)
  r = H.oplog("help", "frobnicate")
  H.status(r, 2, "invalid_argument")
end)

H.test("bad flags: unknown, missing value, value on a flag, repeated, extra args", function()
  local cases = {
    { { "dump", "x.db", "--frob" }, "unknown option %-%-frob" },
    { { "dump", "x.db", "--since" }, "%-%-since needs a value" },
    { { "dump", "x.db", "--since", "abc" }, "%-%-since wants an entry id" },
    { { "dump", "x.db", "--upto=-1" }, "%-%-upto wants an entry id" },
    { { "dump", "x.db", "--json=yes" }, "%-%-json takes no value" },
    { { "dump", "x.db", "--meta", "=v" }, "%-%-meta wants K=V or K" },
    { { "dump", "x.db", "--meta", "k=1", "--meta", "k=2" }, "%-%-meta k given twice" },
    { { "dump", "x.db", "--aggregate", "a", "--aggregate=b" }, "given twice" },
    { { "dump" }, "missing DB" },
    { { "dump", "x.db", "y.db" }, "unexpected argument \"y.db\"" },
    { { "verify", "x.db", "--head", "abc" }, "64 hex" },
    { { "replay", "x.db", "--no-encryption" }, "exactly one of %-%-suffix" },
    { { "replay", "x.db", "--suffix", "_r", "--into", "y.db" }, "exactly one of %-%-suffix" },
    { { "keys", "x.db" }, "missing action" },
    { { "keys", "x.db", "shuffle" }, "unknown action \"shuffle\"" },
    { { "keys", "x.db", "--key-file", "k", "rekey" }, "rekey needs the new root key" },
    { { "keys", "x.db", "--key-file", "k", "rekey", "--no-encryption" }, "unknown option" },
    { { "keys", "x.db", "list", "extra" }, "unexpected argument" },
    { { "stats", "x.db", "--key-file", "k", "--no-encryption" }, "only one of" },
    { { "head", "x.db", "--passphrase-env", "OPLOG_TEST_SURELY_UNSET" },
      "OPLOG_TEST_SURELY_UNSET .* is not set" },
    { { "head", "x.db", "--passphrase-env", "OPLOG_TEST_EMPTY" }, "OPLOG_TEST_EMPTY .* is empty",
      { OPLOG_TEST_EMPTY = "" } },
    { { "keygen" }, "missing KEYFILE" },
    { { "init", "x.db" }, "choose a key" },
    { { "run" }, "missing SCRIPT" },
  }
  local dir = H.tmpdir()
  for _, c in ipairs(cases) do
    local r = H.run(c[1], { cwd = dir, env = c[3] })
    H.status(r, 2, "invalid_argument")
    H.has(r.err, c[2], table.concat(c[1], " "), r)
    H.eq(r.out, "", "stdout of " .. table.concat(c[1], " "), r)
  end
end)

H.test("a missing file is not_found and is not created", function()
  local dir = H.tmpdir()
  for _, c in ipairs({ { "dump", "--no-encryption" }, { "verify" }, { "stats" }, { "head" },
    { "keys", "list" }, { "replay", "--suffix", "_r", "--no-encryption" } }) do
    local args = { c[1], dir .. "/missing.db" }
    table.move(c, 2, #c, 3, args)
    local r = H.run(args)
    H.status(r, 2, "not_found")
    H.check(not H.read_file(dir .. "/missing.db"), c[1] .. " created the missing file", r)
  end
end)

H.test("every command that opens a log refuses a wrong key", function()
  local dir = H.tmpdir()
  local db = H.fixture(dir)
  local wrong = dir .. "/wrong.key"
  H.ok(H.oplog("keygen", wrong))
  for _, c in ipairs({ { "dump" }, { "verify" }, { "stats" }, { "head" }, { "keys", "list" },
    { "keys", "rotate" }, { "replay", "--suffix", "_r" } }) do
    local args = { c[1], db, "--key-file", wrong }
    table.move(c, 2, #c, #args + 1, args)
    local r = H.run(args)
    H.status(r, 2, "wrong_key")
    H.eq(r.out, "", c[1] .. " stdout", r)
  end
end)

H.done()
