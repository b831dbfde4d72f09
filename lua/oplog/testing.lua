--[[
oplog.testing: temporary databases for users' own test suites (busted or
any other framework).

  local testing = require "oplog.testing"

  local db, path, key_file = testing.open_temp()      -- new file, generated key
  local db2 = testing.open_temp{ encryption = false } -- any oplog.open options
  local db3 = testing.open_temp{ passphrase = "pw", kdf = { ops = 2, mem = 8 << 20 } }
  local other = testing.reopen(path)                  -- second handle, same key options
  local name = testing.tmpname(".db")                 -- a fresh unused path
  testing.cleanup()                                   -- close handles, remove files

  testing.open_temp(opts) -> db, path, key_file
    Creates a new database in a fresh temporary path. opts are those of
    oplog.open; when they name no key (key_file, key, passphrase or
    encryption = false), a random key is generated with oplog.keygen into
    key_file, which is then returned. opts is not modified.
  testing.reopen(path, opts) -> db
    Opens a file made by open_temp again with the same key options, plus
    opts (e.g. { readonly = true, busy_timeout = 0 }).
  testing.tmpname(suffix) -> path
    A path that does not exist yet (os.tmpname() .. suffix), removed by
    cleanup together with its -wal, -shm and -journal files.
  testing.cleanup()
    Closes every handle opened through this module and removes every file
    it created. With busted: after_each(testing.cleanup). It also runs when
    the module is garbage collected or the Lua state closes.
]]
local oplog = require "oplog"

local M = {}

local files = {}                            -- paths to remove
local handles = setmetatable({}, { __mode = "k" }) -- handles to close
local key_opts = {}                         -- path -> key options used

local function track(path)
  for _, suffix in ipairs { "", "-wal", "-shm", "-journal" } do
    files[#files + 1] = path .. suffix
  end
end

function M.tmpname(suffix)
  local base = os.tmpname() -- creates an empty file, which reserves the name
  files[#files + 1] = base
  local path = base .. (suffix or ".tmp")
  track(path)
  return path
end

local KEY_NAMES = { "key_file", "key", "passphrase", "encryption", "kdf" }

function M.open_temp(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("oplog.testing.open_temp: options table expected, got " .. type(opts), 2)
  end
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  local path = M.tmpname(".db")
  local key_file
  if o.key_file == nil and o.key == nil and o.passphrase == nil and o.passphrase_fd == nil
    and o.encryption ~= false then
    key_file = path:gsub("%.db$", ".key")
    files[#files + 1] = key_file
    oplog.keygen(key_file)
    o.key_file = key_file
  end
  local db = oplog.open(path, o)
  handles[db] = true
  local k = {}
  for _, name in ipairs(KEY_NAMES) do k[name] = o[name] end
  key_opts[path] = k
  return db, path, key_file
end

function M.reopen(path, opts)
  local k = key_opts[path]
  if not k then
    error("oplog.testing.reopen: " .. tostring(path) .. " was not made by open_temp", 2)
  end
  local o = {}
  for name, v in pairs(k) do o[name] = v end
  for name, v in pairs(opts or {}) do o[name] = v end
  local db = oplog.open(path, o)
  handles[db] = true
  return db
end

function M.cleanup()
  for db in pairs(handles) do
    pcall(db.close, db)
    handles[db] = nil
  end
  for i = #files, 1, -1 do
    os.remove(files[i])
    files[i] = nil
  end
  for path in pairs(key_opts) do key_opts[path] = nil end
end

-- Removes leftovers when the module is dropped or the state closes.
M._sentinel = setmetatable({}, { __gc = function() M.cleanup() end })

return M
