-- The progress bar of the command on a real terminal (a pty made by
-- script(1)), and its absence when stderr is not a terminal.
package.path = os.getenv("OPLOG_SOURCE_DIR") .. "/tests/cli/?.lua;" .. package.path
local H = require "helper"

local dir = H.tmpdir()
local db, key = H.fixture(dir)

-- Runs a shell command line under a pty; returns what the terminal showed.
local function on_tty(cmdline)
  local out = dir .. "/typescript"
  local cmd = "script -qec " .. H.quote(cmdline) .. " /dev/null </dev/null >" .. H.quote(out)
  local _, _, code = os.execute(cmd)
  return { code = code, out = H.read_file(out) or "", err = "", cmd = cmd }
end

local function oplog_line(...)
  local parts = { H.quote(H.BIN) }
  for _, a in ipairs({ ... }) do parts[#parts + 1] = H.quote(a) end
  return table.concat(parts, " ")
end

H.test("verify on a terminal draws done/total, rate and ETA, then erases it", function()
  local r = on_tty(oplog_line("verify", db, "--key-file", key))
  H.eq(r.code, 0, "exit status", r)
  H.has(r.out, "\rverify %[[#%-]+%] +%d+%% %d+/%d+ [%d%.]+[kM]?/s %a+ [%d%-]+:[%d%-]+\27%[K", "a frame", r)
  H.has(r.out, "\r\27%[K", "erased", r)
  H.has(r.out, "ok, 5 entries checked", "summary", r)
end)

H.test("replay on a terminal draws the bar too", function()
  local r = on_tty(oplog_line("replay", db, "--key-file", key, "--suffix", "_tty"))
  H.eq(r.code, 0, "exit status", r)
  H.has(r.out, "\rreplay %[[#%-]+%] +%d+%% %d/%d", "a frame", r)
  H.has(r.out, "replayed 5 entries", "summary", r)
end)

H.test("dump draws it only when stdout is not the terminal", function()
  local file = dir .. "/dump.jsonl"
  local r = on_tty(oplog_line("dump", db, "--key-file", key, "--json") .. " >" .. H.quote(file))
  H.eq(r.code, 0, "exit status", r)
  H.has(r.out, "\rdump %[[#%-]+%] +%d+%% %d/5", "a frame", r)
  local es = H.decode_lines(H.read_file(file))
  H.eq(#es, 5, "entries in the file, free of progress output")
  r = on_tty(oplog_line("dump", db, "--key-file", key, "--json"))
  H.eq(r.code, 0, "exit status", r)
  H.hasnt(r.out, "\rdump", "no bar over the entries", r)
  H.hasnt(r.out, "\27%[K", "no escape sequences among the entries", r)
end)

H.test("nothing extra on stderr when it is not a terminal", function()
  for _, args in ipairs({
    { "verify", db, "--key-file", key, "--replay" },
    { "replay", db, "--key-file", key, "--suffix", "_file" },
    { "dump", db, "--key-file", key, "--json" },
  }) do
    local r = H.run(args)
    H.ok(r)
    H.eq(r.err, "", args[1] .. " stderr", r)
    H.hasnt(r.out, "[\r\27]", args[1] .. " stdout", r)
  end
end)

H.done()
