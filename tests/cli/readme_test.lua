-- The README's code runs when pasted: the Lua quick start (under "## Lua
-- quick start"), as `oplog run` and as `lua5.4` with the build's module, in
-- an empty directory; and the busted example (under "## Using oplog from
-- your own busted suites") with busted.
package.path = os.getenv("OPLOG_SOURCE_DIR") .. "/tests/cli/?.lua;" .. package.path
local H = require "helper"

local readme = assert(H.read_file(H.SRC .. "/README.md"), "README.md")

-- The first ```lua block after the heading.
local function block(heading)
  local at = readme:find("\n" .. heading .. "\n", 1, true)
  assert(at, "README has no heading " .. heading)
  local code = readme:match("\n```lua\n(.-\n)```\n", at)
  assert(code, "no ```lua block after " .. heading)
  return code
end

H.test("the quick start runs with oplog run, in an empty directory", function()
  local dir = H.tmpdir()
  H.write_file(dir .. "/quickstart.lua", block("## Lua quick start"))
  local r = H.oplog("run", "quickstart.lua", { cwd = dir })
  local out = H.ok(r)
  H.has(out, "^1\torders\talice\t3\n2\torders\talice\t1\n%x+\n$", "output", r)
  H.eq(#out:match("\n(%x+)\n$"), 64, "head hash", r)
end)

H.test("the quick start runs with lua5.4 and the module", function()
  local dir = H.tmpdir()
  H.write_file(dir .. "/quickstart.lua", block("## Lua quick start"))
  local r = H.run({ "quickstart.lua" }, { bin = "lua5.4", cwd = dir })
  H.has(H.ok(r), "^1\torders\talice\t3\n2\torders\talice\t1\n%x+\n$", "output", r)
end)

H.test("the busted example passes", function()
  local dir = H.tmpdir()
  H.write_file(dir .. "/readme_spec.lua", block("## Using oplog from your own busted suites"))
  local busted = io.popen("command -v busted"):read("l")
  H.check(busted, "busted not found")
  local r = H.run({ busted, "-o", "plainTerminal", "readme_spec.lua" }, { bin = "lua5.4", cwd = dir })
  H.has(H.ok(r), "1 success / 0 failures / 0 errors", "busted", r)
end)

H.done()
