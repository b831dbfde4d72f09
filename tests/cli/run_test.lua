-- oplog run SCRIPT ARGS...: behaves like lua5.4 SCRIPT ARGS... with oplog.
package.path = os.getenv("OPLOG_SOURCE_DIR") .. "/tests/cli/?.lua;" .. package.path
local H = require "helper"

local dir = H.tmpdir()

local function script(name, text)
  local p = dir .. "/" .. name
  H.write_file(p, text)
  return p
end

local ARGS = script("args.lua", [[
print(arg[-2] ~= nil, arg[-1], arg[0], arg[1], arg[2], #arg)
print(select("#", ...), ...)
]])

H.test("arg and ... are set as lua5.4 sets them", function()
  local r = H.oplog("run", ARGS, "one", "two words")
  H.eq(H.ok(r), "true\trun\t" .. ARGS .. "\tone\ttwo words\t2\n2\tone\ttwo words\n", "stdout", r)
  -- what lua5.4 itself prints for the same script, for comparison
  local p = io.popen("lua5.4 " .. H.quote(ARGS) .. " one 'two words'")
  local lua_out = p:read("a")
  p:close()
  H.eq((r.out:gsub("^true\trun\t", "")), (lua_out:gsub("^false\tlua5%.4\t", "")), "same as lua5.4")
  -- options after the script belong to the script
  r = H.oplog("run", ARGS, "--help", "-x")
  H.has(H.ok(r), "\n2\t%-%-help\t%-x\n$", "script options", r)
  r = H.oplog("run", "--", ARGS)
  H.has(H.ok(r), "^true\t%-%-\t", "after --", r)
end)

H.test("oplog is loaded: global and require, with no LUA_PATH", function()
  local s = script("mod.lua", [[
assert(oplog == require "oplog", "global oplog is the module")
assert(type(oplog.VERSION) == "string")
assert(require("oplog.json").encode({ 1, "x" }) == '[1,"x"]')
io.write("version ", oplog.VERSION, "\n")
]])
  local r = H.oplog("run", s, { clean_env = true })
  local v = H.ok(H.oplog("--version")):match("^oplog (%S+)")
  H.eq(H.ok(r), "version " .. v .. "\n", "stdout", r)
end)

H.test("users' own modules resolve through package.path", function()
  local lib = dir .. "/lib"
  H.sh("mkdir -p " .. H.quote(lib))
  H.write_file(lib .. "/greeting.lua", "return { text = 'hello from a user module' }\n")
  local s = script("uses_mod.lua", "print(require('greeting').text)\n")
  local r = H.oplog("run", s, { env = { LUA_PATH = lib .. "/?.lua;;" } })
  H.eq(H.ok(r), "hello from a user module\n", "via LUA_PATH", r)
  r = H.oplog("run", "../uses_mod.lua", { cwd = lib, clean_env = true })
  H.eq(H.ok(r), "hello from a user module\n", "via ./?.lua", r)
end)

H.test("users' C modules load through package.cpath", function()
  local cdir = dir .. "/cmod"
  H.sh("mkdir -p " .. H.quote(cdir))
  H.write_file(cdir .. "/hello.c", [[
#include <lauxlib.h>
#include <lua.h>
static int hi(lua_State *L) { lua_pushfstring(L, "hi %s", luaL_checkstring(L, 1)); return 1; }
int luaopen_hello(lua_State *L) {
  lua_newtable(L);
  lua_pushcfunction(L, hi);
  lua_setfield(L, -2, "hi");
  return 1;
}
]])
  H.sh("cc -shared -fPIC -I/usr/include/lua5.4 -o " .. H.quote(cdir .. "/hello.so") .. " "
    .. H.quote(cdir .. "/hello.c"))
  local r = H.oplog("run", "-", { stdin = "print(require('hello').hi('device'))",
    env = { LUA_CPATH = cdir .. "/?.so" } })
  H.eq(H.ok(r), "hi device\n", "C module", r)
end)

H.test("os.exit sets the exit status", function()
  H.eq(H.oplog("run", script("exit3.lua", "io.write('bye') os.exit(3)")).code, 3, "os.exit(3)")
  local r = H.oplog("run", script("exit_true.lua", "io.write('bye') os.exit(true)"))
  H.eq(H.ok(r), "bye", "output before os.exit(true)", r)
  H.eq(H.oplog("run", script("exit_false.lua", "os.exit(false)")).code, 1, "os.exit(false)")
  H.eq(H.oplog("run", script("exit_close.lua", "os.exit(4, true)")).code, 4, "os.exit(4, true)")
end)

H.test("a script error goes to stderr with a traceback, exit 2", function()
  local s = script("boom.lua", "local function f() error('boom') end\nf()\n")
  local r = H.oplog("run", s)
  H.status(r, 2)
  H.has(r.err, "^oplog: error: [^\n]*boom%.lua:1: boom\n", "message in the oplog: <code>: <message> shape", r)
  H.has(r.err, "stack traceback:", "traceback", r)
  H.eq(r.out, "", "stdout", r)
end)

H.test("an oplog error escaping a script prints its code", function()
  local s = script("missing.lua", [[
oplog.open(arg[1], { create = false, encryption = false })
]])
  local r = H.oplog("run", s, dir .. "/nope.oplog")
  H.status(r, 2, "not_found")
  local t = script("table_err.lua", "error({ 1 })")
  r = H.oplog("run", t)
  H.status(r, 2)
  H.has(r.err, "error object is a table value", "non-string error", r)
end)

H.test("a missing script or a syntax error is exit 2", function()
  local r = H.oplog("run", dir .. "/no-such-script.lua")
  H.status(r, 2, "not_found")
  H.has(r.err, "no%-such%-script%.lua", "names the script", r)
  r = H.oplog("run", script("syntax.lua", "local = 1\n"))
  H.status(r, 2, "invalid_argument")
  H.has(r.err, "syntax%.lua:1:", "position", r)
end)

H.test("a #! line is skipped, and - reads the script from stdin", function()
  local s = script("shebang.lua", "#!/usr/bin/env oplog run\nprint('shebang ok', ...)\n")
  H.eq(H.ok(H.oplog("run", s, "x")), "shebang ok\tx\n", "shebang")
  local r = H.oplog("run", "-", "a", "b", { stdin = "print('stdin', arg[0], ...)" })
  H.eq(H.ok(r), "stdin\t-\ta\tb\n", "stdin script", r)
end)

H.test("a script writes a log that the command then reads", function()
  local s = script("write.lua", [[
local path = ...
local db <close> = oplog.open(path, { encryption = false })
db:define("note", { columns = { { "id", "INTEGER PRIMARY KEY" }, { "body", "TEXT" } } })
for i = 1, 3 do
  db:transaction("note", function(tx) tx:create("note", { id = i, body = "n" .. i }) end,
    { metadata = { n = tostring(i) } })
end
print("wrote", db:head().id)
]])
  local db = dir .. "/notes.oplog"
  H.eq(H.ok(H.oplog("run", s, db)), "wrote\t3\n", "script output")
  H.has(H.ok(H.oplog("verify", db)), "ok, 3 entries checked", "verify")
  local es = H.decode_lines(H.ok(H.oplog("dump", db, "--json", "--meta", "n=2")))
  H.eq(#es, 1, "entries with n=2")
  H.eq(es[1].ops[1].row.body, "n2", "body")
end)

H.done()
