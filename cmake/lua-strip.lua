-- Only for the static oplog command (OPLOG_STATIC), run by the host's Lua at
-- configure time:  lua5.4 cmake/lua-strip.lua IN OUT
-- Writes IN without its comments and without the white space that only lays
-- it out (indentation, trailing blanks, runs of blanks between tokens: one
-- stays), keeping every line where it was, so that error messages and
-- tracebacks name the same lines. Strings are copied as they are. Then it
-- proves the result is the same program: both compile to the same bytecode,
-- line information included (string.dump, not stripped), or it fails.
local input, output = arg[1], arg[2]
local f = assert(io.open(input, "rb"))
local src = f:read("a")
f:close()

local out, i, n = {}, 1, #src

-- The level of a long bracket opening at position p ("[" "="* "["), or nil.
local function long_open(p)
  local eq = src:match("^%[(=*)%[", p)
  return eq and #eq or nil
end

-- Skips a long bracket of that level from p (at its "["): returns the
-- position after it and the text it spans.
local function long_skip(p, level)
  local close = "]" .. string.rep("=", level) .. "]"
  local _, e = src:find(close, p + level + 2, true)
  if not e then error(input .. ": unfinished long bracket", 0) end
  return e + 1, src:sub(p, e)
end

local pending_space = false -- blanks were skipped since the last token
local line_start = true

local function emit(s)
  if pending_space and not line_start then out[#out + 1] = " " end
  pending_space = false
  out[#out + 1] = s
  line_start = false
end

while i <= n do
  local c = src:sub(i, i)
  if c == "\n" then
    out[#out + 1] = "\n"
    pending_space, line_start = false, true
    i = i + 1
  elseif c == " " or c == "\t" or c == "\r" or c == "\f" or c == "\v" then
    pending_space = true
    i = i + 1
  elseif src:sub(i, i + 1) == "--" then
    local level = src:sub(i + 2, i + 2) == "[" and long_open(i + 2)
    if level then
      -- a long comment: only its newlines stay
      local e, text = long_skip(i + 2, level)
      local _, lines = text:gsub("\n", "")
      if lines > 0 then
        out[#out + 1] = string.rep("\n", lines)
        pending_space, line_start = false, true
      else
        pending_space = true
      end
      i = e
    else
      local e = src:find("\n", i, true) or n + 1
      i = e
    end
  elseif c == "[" and long_open(i) then
    local e, text = long_skip(i, long_open(i))
    emit(text)
    i = e
  elseif c == '"' or c == "'" then
    -- a short string, escapes included (\" \\, an escaped newline, \z
    -- and the white space it skips); what Lua would refuse, load() does
    local p = i + 1
    while true do
      local d = src:sub(p, p)
      if d == "" then error(input .. ": unfinished string", 0) end
      if d == "\\" then
        p = p + 2
        if src:sub(p - 1, p - 1) == "z" then p = src:find("[^%s]", p) or n + 1 end
      elseif d == c then
        break
      else
        p = p + 1
      end
    end
    emit(src:sub(i, p))
    i = p + 1
  else
    -- anything else up to the next blank, quote, bracket or comment
    local e = i
    while e <= n do
      local d = src:sub(e, e)
      if d:match("[%s\"'%[]") or src:sub(e, e + 1) == "--" then break end
      e = e + 1
    end
    if e == i then e = i + 1 end
    emit(src:sub(i, e - 1))
    i = e
  end
end

local stripped = table.concat(out)
local function compile(text)
  local fn, err = load(text, "=" .. input)
  if not fn then error(err, 0) end
  return string.dump(fn)
end
if compile(stripped) ~= compile(src) then
  error(input .. ": the stripped source compiles differently (cmake/lua-strip.lua)", 0)
end
f = assert(io.open(output, "wb"))
f:write(stripped)
f:close()
