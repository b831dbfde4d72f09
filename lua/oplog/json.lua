-- oplog.json: a small JSON encoder for the `oplog` command's --json output
-- and for users' admin scripts (`require "oplog.json"`).
--
-- Mapping:
--   nil, json.null and the `null` option's sentinel (oplog.null) -> null
--   booleans -> true/false; integers -> integers; floats -> numbers that
--   read back to the same double (1.0 stays "1.0"; NaN and infinities,
--   which JSON cannot hold, become null)
--   strings -> JSON strings when they are valid UTF-8; any other byte string
--   (BLOB values, binary metadata) -> {"base64": "<standard base64>"}, so
--   the output is always valid JSON and no byte is lost
--   tables -> arrays when their keys are exactly 1..n (n > 0) or when marked
--   with json.array(t); objects otherwise (an empty table is an object unless
--   marked). Object keys come out sorted, or in the order given with
--   json.ordered(t, {keys...}). Both markers set t's metatable.
local json = {}

json.null = setmetatable({}, { __tostring = function() return "null" end })

-- Markers live in metatables (not weak tables): cheap to set and to test
-- on the many short-lived tables of a dump.
local ARRAY_MT = { __name = "oplog.json.array" }
local ORDER_MTS = setmetatable({}, { __mode = "k" }) -- key list -> metatable

-- Marks t (possibly empty, without a metatable) as a JSON array. Returns t.
function json.array(t)
  return setmetatable(t, ARRAY_MT)
end

-- Gives the order in which t's keys are written (t must have no metatable);
-- keys of t not in the list follow, sorted. Returns t. Reuse one list for
-- many tables: the marker is made once per list.
function json.ordered(t, keys)
  local mt = ORDER_MTS[keys]
  if not mt then
    mt = { __name = "oplog.json.ordered", order = keys }
    ORDER_MTS[keys] = mt
  end
  return setmetatable(t, mt)
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

function json.base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = (n >> 18) & 63
    local c2 = (n >> 12) & 63
    local c3 = (n >> 6) & 63
    local c4 = n & 63
    out[#out + 1] = B64:sub(c1 + 1, c1 + 1) .. B64:sub(c2 + 1, c2 + 1)
      .. (b and B64:sub(c3 + 1, c3 + 1) or "=")
      .. (c and B64:sub(c4 + 1, c4 + 1) or "=")
  end
  return table.concat(out)
end

local ESC = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f",
  ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

-- true when s is valid UTF-8 (strict: no surrogates, nothing past U+10FFFF,
-- no overlong forms), so that it may go into a JSON string as is.
function json.is_utf8(s)
  return utf8.len(s, 1, -1, false) ~= nil
end

local function quote(s)
  if not s:find('[%c"\\]') then return '"' .. s .. '"' end
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESC[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local number
-- The JSON text of a number (also used for human-readable output).
function json.number(v) return number(v) end

function number(v)
  if math.type(v) == "integer" then
    return string.format("%d", v)
  end
  if v ~= v or v == math.huge or v == -math.huge then
    return "null"
  end
  -- the shortest of 15, 16 or 17 digits that reads back as the same double
  local s = string.format("%.15g", v)
  if tonumber(s) ~= v then s = string.format("%.16g", v) end
  if tonumber(s) ~= v then s = string.format("%.17g", v) end
  if not s:find("[%.eEn]") then s = s .. ".0" end
  return s
end

local function is_array(t, mt)
  if mt == ARRAY_MT then return true end
  if mt ~= nil and mt.order then return false end
  local n = #t
  if n == 0 then return false end
  local count = 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then return false end
    count = count + 1
  end
  return count == n
end

local function keystr(k)
  if type(k) == "string" then return k end
  if type(k) == "number" then return number(k) end
  error("oplog.json: cannot encode a key of type " .. type(k))
end

local encode

-- Encoded object keys, cached: the same few column and field names come
-- back on every line of a dump.
local KEYS, nkeys = {}, 0
local function key_json(k)
  local s = KEYS[k]
  if s then return s end
  local out = {}
  encode(keystr(k), out, nil, {})
  s = table.concat(out) .. ":"
  if nkeys >= 4096 then KEYS, nkeys = {}, 0 end
  KEYS[k], nkeys = s, nkeys + 1
  return s
end

local function encode_table(t, out, null, seen)
  if seen[t] then error("oplog.json: cannot encode a cyclic table") end
  seen[t] = true
  local mt = getmetatable(t)
  if is_array(t, mt) then
    out[#out + 1] = "["
    for i = 1, #t do
      if i > 1 then out[#out + 1] = "," end
      encode(t[i], out, null, seen)
    end
    out[#out + 1] = "]"
  else
    out[#out + 1] = "{"
    local first, written = true, 0
    local order = mt and mt.order
    if order then
      for _, k in ipairs(order) do
        local v = t[k]
        if v ~= nil then
          if not first then out[#out + 1] = "," end
          first = false
          out[#out + 1] = key_json(k)
          encode(v, out, null, seen)
          written = written + 1
        end
      end
    end
    local total = 0
    for _ in pairs(t) do total = total + 1 end
    if total > written then
      local listed = {}
      for _, k in ipairs(order or {}) do listed[k] = true end
      local rest = {}
      for k in pairs(t) do
        if not listed[k] then rest[#rest + 1] = k end
      end
      table.sort(rest, function(a, b) return keystr(a) < keystr(b) end)
      for _, k in ipairs(rest) do
        if not first then out[#out + 1] = "," end
        first = false
        out[#out + 1] = key_json(k)
        encode(t[k], out, null, seen)
      end
    end
    out[#out + 1] = "}"
  end
  seen[t] = nil
end

function encode(v, out, null, seen)
  local tv = type(v)
  if v == nil or v == json.null or (null ~= nil and v == null) then
    out[#out + 1] = "null"
  elseif tv == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif tv == "number" then
    out[#out + 1] = number(v)
  elseif tv == "string" then
    if not v:find('[%c"\\\128-\255]') then
      out[#out + 1] = '"' .. v .. '"' -- plain ASCII: the common case, kept fast
    elseif json.is_utf8(v) then
      out[#out + 1] = quote(v)
    else
      out[#out + 1] = '{"base64":"' .. json.base64(v) .. '"}'
    end
  elseif tv == "table" then
    encode_table(v, out, null, seen)
  else
    error("oplog.json: cannot encode a " .. tv)
  end
end

-- Appends the JSON of v to the list of strings `out` (for callers that
-- build a line piece by piece; table.concat(out) gives the text).
function json.write(out, v, null)
  encode(v, out, null, {})
  return out
end

-- Encodes v as one line of JSON. opts.null: another value to write as null
-- (the `oplog` command passes oplog.null).
function json.encode(v, opts)
  local out = {}
  encode(v, out, opts and opts.null, {})
  return table.concat(out)
end

return json
