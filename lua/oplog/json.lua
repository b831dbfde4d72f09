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
--   json.ordered(t, {keys...}).
local json = {}

json.null = setmetatable({}, { __tostring = function() return "null" end })

local ARRAY = setmetatable({}, { __mode = "k" })
local ORDER = setmetatable({}, { __mode = "k" })

-- Marks t (possibly empty) as a JSON array. Returns t.
function json.array(t)
  ARRAY[t] = true
  return t
end

-- Gives the order in which t's keys are written; keys of t not in the list
-- follow, sorted. Returns t.
function json.ordered(t, keys)
  ORDER[t] = keys
  return t
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
  return '"' .. s:gsub('[%c"\\]', function(c)
    return ESC[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function number(v)
  if math.type(v) == "integer" then
    return string.format("%d", v)
  end
  if v ~= v or v == math.huge or v == -math.huge then
    return "null"
  end
  local s = string.format("%.14g", v)
  if tonumber(s) ~= v then s = string.format("%.17g", v) end
  if not s:find("[%.eEn]") then s = s .. ".0" end
  return s
end

local function is_array(t)
  if ARRAY[t] then return true end
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

local function encode_table(t, out, null, seen)
  if seen[t] then error("oplog.json: cannot encode a cyclic table") end
  seen[t] = true
  if is_array(t) then
    out[#out + 1] = "["
    for i = 1, #t do
      if i > 1 then out[#out + 1] = "," end
      encode(t[i], out, null, seen)
    end
    out[#out + 1] = "]"
  else
    local keys, done = {}, {}
    for _, k in ipairs(ORDER[t] or {}) do
      if t[k] ~= nil then keys[#keys + 1] = k; done[k] = true end
    end
    local rest = {}
    for k in pairs(t) do
      if not done[k] then rest[#rest + 1] = k end
    end
    table.sort(rest, function(a, b) return keystr(a) < keystr(b) end)
    table.move(rest, 1, #rest, #keys + 1, keys)
    out[#out + 1] = "{"
    for i, k in ipairs(keys) do
      if i > 1 then out[#out + 1] = "," end
      encode(keystr(k), out, null, seen)
      out[#out + 1] = ":"
      encode(t[k], out, null, seen)
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
    if json.is_utf8(v) then
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

-- Encodes v as one line of JSON. opts.null: another value to write as null
-- (the `oplog` command passes oplog.null).
function json.encode(v, opts)
  local out = {}
  encode(v, out, opts and opts.null, {})
  return table.concat(out)
end

return json
