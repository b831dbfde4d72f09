-- The command's helper modules, loaded from the build tree by lua5.4:
-- oplog.json (checked against dkjson, an independent decoder) and
-- oplog.progress (frames and the redraw rate, with a fake clock).
package.path = os.getenv("OPLOG_SOURCE_DIR") .. "/tests/cli/?.lua;" .. package.path
local H = require "helper"
local json = require "oplog.json"
local progress = require "oplog.progress"

local function roundtrip(v)
  local text = json.encode(v)
  return H.decode(text), text
end

H.test("json: scalars", function()
  H.eq(json.encode(nil), "null", "nil")
  H.eq(json.encode(json.null), "null", "json.null")
  local sentinel = {}
  H.eq(json.encode({ a = sentinel }, { null = sentinel }), '{"a":null}', "null option")
  H.eq(json.encode(true), "true", "true")
  H.eq(json.encode(42), "42", "integer")
  H.eq(json.encode(math.mininteger), "-9223372036854775808", "min integer")
  H.eq(json.encode(1.0), "1.0", "integral float")
  H.eq(json.encode(-0.5), "-0.5", "float")
  for _, x in ipairs({ 0.1, 1 / 3, 1e300, -2.5e-300, 123456789.125 }) do
    H.eq(H.decode(json.encode(x)), x, "float " .. x .. " round trip")
  end
  H.eq(json.encode(0 / 0), "null", "nan")
  H.eq(json.encode(math.huge), "null", "inf")
end)

H.test("json: strings escape what JSON requires and keep UTF-8", function()
  local s = 'quote " backslash \\ nl \n tab \t cr \r nul \0 bell \7 del \127 é 日本 😀'
  local v, text = roundtrip(s)
  H.eq(v, s, "round trip")
  H.hasnt(text, "[%z\1-\31]", "raw control characters")
  H.eq(json.encode("é"), '"é"', "UTF-8 kept as is")
end)

H.test("json: bytes that are not UTF-8 become {base64=...}", function()
  local cases = {
    ["\0\1\2\254\255"] = "AAEC/v8=",
    ["\255"] = "/w==",
    ["ab\255"] = "YWL/",
    ["\237\160\128"] = "7aCA", -- a UTF-16 surrogate, not valid UTF-8
    ["\192\128"] = "wIA=",     -- an overlong NUL
  }
  for s, b64 in pairs(cases) do
    local v = roundtrip(s)
    H.eq(type(v), "table", "object for " .. b64)
    H.eq(v.base64, b64, "base64")
  end
  H.eq(json.base64(""), "", "empty")
  H.eq(json.base64("f"), "Zg==", "f")
  H.eq(json.base64("fo"), "Zm8=", "fo")
  H.eq(json.base64("foo"), "Zm9v", "foo")
  H.eq(json.base64("foobar"), "Zm9vYmFy", "foobar")
end)

H.test("json: arrays, objects, order", function()
  H.eq(json.encode({ 1, 2, "x" }), '[1,2,"x"]', "array")
  H.eq(json.encode({}), "{}", "empty table is an object")
  H.eq(json.encode(json.array({})), "[]", "marked empty array")
  H.eq(json.encode({ b = 1, a = 2, c = { d = {} } }), '{"a":2,"b":1,"c":{"d":{}}}', "sorted keys")
  H.eq(json.encode(json.ordered({ b = 1, a = 2, z = 3 }, { "z", "b" })), '{"z":3,"b":1,"a":2}',
    "given order first")
  H.eq(json.encode({ [1] = "a", [3] = "c" }), '{"1":"a","3":"c"}', "sparse array is an object")
  local v = roundtrip({ list = { { x = 1 }, { y = { true, false } } }, n = 0 })
  H.eq(v.list[2].y[2], false, "nested")
  local cyclic = {}
  cyclic.self = cyclic
  H.check(not pcall(json.encode, cyclic), "cyclic table refused")
  H.check(not pcall(json.encode, print), "function refused")
end)

H.test("progress: a frame shows label, bar, percent, done/total, rate, ETA", function()
  local f = progress.frame("verify", 50, 100, 2.0, 80)
  H.has(f, "^verify %[#+%-+%]  50%% 50/100 25/s ETA 0:02$", "frame")
  H.check(#f <= 80, "fits the width: " .. f)
  H.has(progress.frame("replay", 100, 100, 3.0, 80), "100%% 100/100 33/s done 0:03$", "last frame")
  H.has(progress.frame("dump", 0, 5000, 0, 80), "0/5000 0/s ETA %-:%-%-$", "first frame")
  H.has(progress.frame("verify", 12000, 1200000, 1.0, 80), "12000/1200000 12k/s ETA 1:39$", "ETA")
  H.has(progress.frame("verify", 1, 7200, 1.0, 80), "ETA 1:59:59$", "hours")
  local narrow = progress.frame("verify", 50, 100, 2.0, 30)
  H.hasnt(narrow, "%[", "no bar when narrow")
end)

H.test("progress: redrawn at most 10 times a second, last frame always", function()
  local t, frames = 0, {}
  local bar = progress.new("verify", true, {
    now = function() return t end,
    write = function(s) frames[#frames + 1] = s end,
    width = 80,
  })
  -- 2 seconds of work, one callback per millisecond
  for i = 0, 2000 do
    t = i / 1000
    bar:update(i, 2000)
  end
  local n = #frames
  H.check(n >= 20 and n <= 22, "frames drawn in 2 s: " .. n)
  H.has(frames[n], "100%% 2000/2000", "last frame")
  bar:finish()
  H.eq(frames[#frames], "\r\27[K", "finish erases the line")
  -- off: nothing at all
  local off = progress.new("verify", false, { now = os.clock, write = error, width = 80 })
  off:update(1, 2)
  off:finish()
end)

H.test("progress: without a terminal (plain lua5.4) nothing is drawn", function()
  local bar = progress.new("verify")
  H.eq(bar.on, false, "on")
  bar:update(1, 2)
  bar:finish()
end)

H.done()
