-- oplog.cli: the `oplog` command. Every subcommand is written against the
-- public Lua API (require "oplog"), the same one users' scripts get; the C
-- side (src/cli.c) only embeds this code and calls cli.main(argv).
local oplog = require "oplog"
local json = require "oplog.json"
local progress = require "oplog.progress"

local cli = {}

-- Errors the command raises itself ARE the library's: the same metatable
-- (taken from an error the binding raises), so oplog.is_error holds for
-- them and they print as "oplog: <code>: <message>".
local Error = getmetatable(select(2, pcall(oplog.open)))
assert(oplog.is_error(setmetatable({ code = "ok", message = "" }, Error)), "the binding's error metatable")

local function fail(code, fmt, ...)
  error(setmetatable({ code = code, message = string.format(fmt, ...) }, Error), 0)
end

local function usage(fmt, ...)
  fail("invalid_argument", fmt, ...)
end

-- Writes to stdout; a failed write (a full disk, a closed pipe) stops the
-- command instead of going on for nothing.
local function out(...)
  local ok, err = io.stdout:write(...)
  if not ok then fail("io", "writing output: %s", err) end
end

------------------------------------------------------------------ help texts

local KEY_OPTIONS = [[
Key options:
  --key-file PATH        the root key: 64 hex characters (as written by
                         `oplog keygen`) or 32 raw bytes
  --passphrase-env VAR   derive the root key from the passphrase held in
                         environment variable VAR (Argon2id)
  --passphrase-fd N      the same, with the passphrase read from open file
                         descriptor N (up to its first newline or its end):
                         e.g. --passphrase-fd 3 3<FILE. The library reads it
                         into locked memory and wipes it; nothing else of
                         the command holds it
  --no-encryption        plaintext log, no key
  OPLOG_KEY_FILE=PATH in the environment stands for --key-file when no key
  option is given.
]]

local HELP = {}

HELP[""] = [[
Usage: oplog COMMAND [ARGS...]

An encrypted, hash-chained operation log in one SQLite file.

Commands:
  keygen KEYFILE            write a new random root key to KEYFILE
  init DB KEY-OPTION [--kdf-ops N] [--kdf-mem MIB]
                            create a new, empty log file
  run SCRIPT [ARGS...]      run a Lua script with the oplog module loaded
  dump DB [--aggregate A] [--since ID] [--upto ID] [--meta K=V]... [--json]
                            print entries
  verify DB [--replay] [--head HEX] [--json]
                            check the hash chain (and decryption, replay)
  replay DB (--suffix S | --into FILE) [--aggregate A] [--since ID]
            [--upto ID] [--fresh]
                            rebuild tables from the log
  stats DB [--json]         entries, size, aggregates and their tickets
  head DB                   id and hash of the newest entry
  keys DB (list | rotate | rekey NEW-KEY-OPTION)
                            list, rotate or re-wrap the data keys

Sync (shipping and joining the logs of several devices):
  id DB                     this file's origin id
  cursor DB                 the last seq held of each origin
  heads DB [--json]         the newest entry of each origin held
  checkpoint DB             a signed checkpoint of this file's origin
  export DB [--to ORIGIN-ID] [--since CURSOR] [-o FILE]
                            write a stream of entries (stdout by default)
  import DB [FILE | -]      import a stream (stdin by default)
  join DB OTHER [--other-key-file PATH | --other-passphrase-env VAR |
                 --other-no-encryption]
                            import everything OTHER holds beyond DB
  conflicts DB [--json]     imported entries that could not apply

Fleet (collecting device logs into PostgreSQL; docs/fleet.md):
  ship DB --postgres CONNINFO [--schema NAME] [--apply] [--json]
                            push every entry the server lacks
  verify --postgres CONNINFO [--schema NAME] [--origin ID] [--json]
                            check the chains and checkpoints stored there

]] .. KEY_OPTIONS .. [[
  verify, head, stats, keys list, id, cursor, heads and conflicts also
  work without the key of an encrypted log: they then read only what is
  stored in the clear (so does export, of a plaintext log).

Exit status: 0 success, 1 a check found problems (verify), 2 bad usage or
any error, with the message on stderr as "oplog: <code>: <message>".

`oplog COMMAND --help` describes a command; `oplog --version` prints the
version.
]]

HELP.keygen = [[
Usage: oplog keygen KEYFILE

Writes a new random 32-byte root key to KEYFILE as 64 hex characters and a
newline, with file mode 0600. Refuses to overwrite an existing file. Keep
the key safe: without it an encrypted log cannot be read.
]]

local KDF_OPTIONS = [[
With --passphrase-env or --passphrase-fd, the Argon2id limits (stored in
the file, used by every later open) may be lowered for small devices, down
to 2 passes and 8 MiB:
  --kdf-ops N            passes (default 2, at most 8)
  --kdf-mem MIB          memory in MiB (default 64, at most 256)
Every later open refuses a file that asks for more than 8 passes or
256 MiB (the library's default kdf_limit).
]]

HELP.init = [[
Usage: oplog init DB KEY-OPTION [--kdf-ops N] [--kdf-mem MIB]

Creates DB as a new, empty log (SQLite, WAL mode) protected by the chosen
key; a key option is required (--no-encryption for a plaintext log). Refuses
a DB that already exists and is not empty: to add the log to an existing
SQLite file, open it with oplog.open from Lua.

]] .. KEY_OPTIONS .. KDF_OPTIONS

HELP.run = [[
Usage: oplog run SCRIPT [ARGS...]

Runs the Lua 5.4 script SCRIPT ("-" reads it from standard input) as
`lua5.4 SCRIPT ARGS...` would, with the oplog module loaded: `require
"oplog"` works without LUA_PATH, and the global `oplog` holds it too. The
global `arg` holds the script name at arg[0], ARGS at arg[1]..arg[n], and
the command line before the script at negative indices; the script also
gets ARGS as `...`. os.exit(status) sets the exit status; an error raised by
the script is printed on stderr with a traceback and exits with 2. Users'
modules load through package.path and package.cpath (LUA_PATH, LUA_CPATH)
as usual. Unlike lua5.4, there are no interpreter options (-e, -l, -i) and
LUA_INIT is not run.
]]

HELP.dump = [[
Usage: oplog dump DB [--aggregate A] [--since ID] [--upto ID] [--meta K=V]...
                  [--json] KEY-OPTION

Prints the entries in id order. Decrypting needs the key.

  --aggregate A   only entries of aggregate A
  --since ID      only entries with id > ID
  --upto ID       only entries with id <= ID
  --meta K=V      only entries whose metadata key K has value V (repeat to
                  require several keys; --meta K alone: K is present)
  --json          one JSON object per line:
                  {"id":..,"aggregate":..,"created":<unix ms>,"key_id":..,
                   "origin":"<64 hex>","seq":..,"clock":..,
                   "metadata":{"K":["V",..]},"ops":[{"type":..,"op":..,
                   "row":{..},"mask":[..],"nulls":[..]}]}
                  SQL NULL is null; a string that is not valid UTF-8 (a
                  BLOB value, say) is written as {"base64":"<base64>"}.

origin is the id of the file that wrote the entry, seq its place in that
origin's chain (1, 2, 3, ...), clock its Lamport clock. Rows are logged as
the live table stored them: a create has every column.

Without --json each entry is a header line (id, time in UTC, aggregate,
key id, origin, seq, clock, metadata) followed by one indented line per
operation.
When stderr is a terminal and stdout is not, a progress bar is shown.

]] .. KEY_OPTIONS

HELP.verify = [[
Usage: oplog verify DB [--replay] [--head HEX] [--checkpoint FILE] [--json]
                   [KEY-OPTION]

Checks the hash chain and that no entry was changed or removed. With the
key it also decrypts every entry; without it (an encrypted log opened with
no key option) it checks the chain only.

  --replay     also replay the whole log into temporary tables and compare
               them with the live tables (needs the key)
  --head HEX   also check that the chain reaches this head hash (as printed
               by `oplog head`): detects a cut-off tail
  --checkpoint FILE
               also check a signed checkpoint (as written by `oplog
               checkpoint`, of this file's origin or of one it imported;
               "-" reads it from stdin): its signature (bad_signature) and
               that the log holds that origin's entry at its seq with its
               hash (checkpoint_mismatch: a cut-off or rewritten tail). A
               malformed checkpoint is an error (exit status 2)
  --json       print one JSON object: {"ok":..,"entries":..,
               "problems":[{"id":..,"kind":..,"detail":..}],"decrypted":..}

Prints a summary and one line per problem. Exit status 0 when the log is
intact, 1 when problems were found, 2 when the check could not run.
When stderr is a terminal, a progress bar is shown.

]] .. KEY_OPTIONS

HELP.replay = [[
Usage: oplog replay DB (--suffix S | --into FILE) [--aggregate A] [--since ID]
                    [--upto ID] [--fresh] KEY-OPTION

Applies the logged operations, in id order, to target tables:
  --suffix S     tables <table>S in DB itself (e.g. --suffix _replay)
  --into FILE    tables of the same names in another SQLite file (a replica)
  --aggregate A, --since ID, --upto ID   select entries as in dump
  --fresh        drop the target tables first; without it they must be
                 absent or empty
Prints how many entries and operations were applied.
When stderr is a terminal, a progress bar is shown.

]] .. KEY_OPTIONS

HELP.stats = [[
Usage: oplog stats DB [--json] [KEY-OPTION]

Prints the number of entries, the file size in bytes, the number of data
keys and, per aggregate, its entries and ticket version. With --json:
{"entries":..,"bytes":..,"keys":..,"aggregates":{"A":{"entries":..,"ticket":..}}}
Needs no key.
]]

HELP.head = [[
Usage: oplog head DB [KEY-OPTION]

Prints the id and the hash (64 hex characters) of the newest entry,
separated by a space: "<id> <hex>". An empty log prints id 0 and a hash of
zeros. Keep the output elsewhere and give it to `oplog verify --head` later
to detect a log cut short (a head recorded earlier still passes once more
entries were written). Needs no key.
]]

HELP.keys = [[
Usage: oplog keys DB [KEY-OPTION] list
       oplog keys DB KEY-OPTION rotate
       oplog keys DB KEY-OPTION rekey NEW-KEY-OPTION

  list     prints each data key: id, creation time (UTC), state (active:
           used for new entries; retired). Needs no key.
  rotate   creates a new active data key; older entries stay readable.
  rekey    re-wraps every data key under a new root key, given after
           `rekey` as --key-file PATH, --passphrase-env VAR or
           --passphrase-fd N (with --kdf-ops N, --kdf-mem MIB as for init),
           and starts a new data key for the entries written from then on.
           Afterwards only the new root key opens DB, and the old root key
           reads none of the new entries, even with a copy of the old file.
Key options before the action give the current root key. The same
descriptor may carry both passphrases, one per line: the current one first.

]] .. KEY_OPTIONS

HELP.id = [[
Usage: oplog id DB [KEY-OPTION]

Prints this file's origin id: 64 lowercase hex characters, the Ed25519
public key made with the file, which names it to other devices (e.g. for
`oplog export --to`). Needs no key.
]]

HELP.cursor = [[
Usage: oplog cursor DB [KEY-OPTION]

Prints the file's cursor: for each origin it holds entries of, the last seq
it holds, as "<origin hex>:<seq>" pairs sorted by origin id and joined by
",". It always names the file's own origin (seq 0 before its first entry).
A sender given it (`oplog export --since CURSOR`) ships only what lies
beyond. Needs no key.
]]

HELP.heads = [[
Usage: oplog heads DB [--json] [KEY-OPTION]

Prints the newest entry of each origin the file holds, ordered by origin
id, one line each: "<origin hex> seq <n> clock <n> hash <hex>", the file's
own origin marked "(this file)". With --json one JSON array:
[{"origin":..,"seq":..,"hash":..,"clock":..}]. Needs no key.
]]

HELP.checkpoint = [[
Usage: oplog checkpoint DB KEY-OPTION

Prints a signed checkpoint of this file's own origin at its newest entry:
text lines naming the origin, seq, head hash and time, a blank line and an
Ed25519 signature line (schema/FORMAT.md "Checkpoint"). Keep it elsewhere
and give it to `oplog verify --checkpoint FILE` later, on this file or on
any file that imported from it: a cut-off or rewritten log no longer
matches it. Signing needs the key of an encrypted log; a file that has not
written an entry yet has nothing to checkpoint (invalid_argument).

]] .. KEY_OPTIONS

HELP.export = [[
Usage: oplog export DB [--to ORIGIN-ID] [--since CURSOR] [-o FILE] [KEY-OPTION]

Writes a stream of the entries DB holds (its own and those it imported)
beyond a cursor, for `oplog import` on another device.
  --to ORIGIN-ID   the recipient's origin id (`oplog id` on its file):
                   required for an encrypted log, whose data keys travel
                   sealed to the recipient; accepted and unused for a
                   plaintext log
  --since CURSOR   the recipient's cursor (`oplog cursor` on its file):
                   only what lies beyond it is shipped (default everything)
  -o FILE, --output FILE
                   write to FILE (created or truncated, mode 0600; removed
                   again if the export fails) instead of stdout
The stream is binary: it is not written to a terminal. With -o a summary
is printed; on stdout nothing but the stream is written. Exporting an
encrypted log needs its key. When stderr is a terminal, a progress bar is
shown.

  oplog export dev.db --to "$(ssh hub oplog id hub.db)" \
    --since "$(ssh hub oplog cursor hub.db)" | ssh hub oplog import hub.db -

]] .. KEY_OPTIONS

HELP.import = [[
Usage: oplog import DB [FILE | -] [--json] KEY-OPTION

Imports a stream written by `oplog export` from FILE, or from stdin when
FILE is "-" or absent. All or nothing, in one transaction: a stream that is
cut short or altered (corrupt), meant for another file (wrong_key), that
does not continue an origin's chain (gap) or contradicts it (fork) changes
nothing. Imported entries are applied to the live tables in the total
order; one that cannot apply is skipped whole and recorded as a conflict
(see oplog conflicts). Prints how many entries were new, already held and
recorded as conflicts; with --json one JSON object
{"entries":..,"skipped":..,"conflicts":..}. When stderr is a terminal, a
progress bar is shown.

]] .. KEY_OPTIONS

HELP.join = [[
Usage: oplog join DB OTHER [--other-key-file PATH | --other-passphrase-env VAR |
                            --other-passphrase-fd N | --other-no-encryption]
                           [--json] KEY-OPTION

Imports everything the file OTHER holds beyond DB's cursor, as `oplog
import` of a stream OTHER would export (OTHER is only read). Key options
give DB's key; the --other-* options give OTHER's, as the key options do
(none: OTHER is opened without a key, which reads only a plaintext log).
OPLOG_KEY_FILE stands for DB's key only. `oplog join A B` then `oplog join
B A` leave both files with the same entries and live tables. Prints what
it did as import does (--json too).

]] .. KEY_OPTIONS

HELP.conflicts = [[
Usage: oplog conflicts DB [--json] [KEY-OPTION]

Lists the recorded conflicts: imported entries skipped whole because one
of their operations could not apply (kind exists: a create of a key that
is there; missing: an update or delete of a row that is not; constraint:
a constraint of the live table), in entry id order, one line each:
"entry <id> op <n> <kind>: <detail>". op is the 1-based index of the
first operation that could not apply. With --json one JSON object per
line: {"entry_id":..,"op":..,"kind":..,"detail":..}. Needs no key.
]]

------------------------------------------------------------------ arguments

local KEY_SPEC = {
  ["--key-file"] = { key = "key_file", value = true },
  ["--passphrase-env"] = { key = "passphrase_env", value = true },
  ["--passphrase-fd"] = { key = "passphrase_fd", value = true },
  ["--no-encryption"] = { key = "no_encryption" },
}

-- Argon2id limits for a NEW passphrase (init, keys rekey): small devices
-- may need less than the default 64 MiB.
local KDF_SPEC = {
  ["--kdf-ops"] = { key = "kdf_ops", value = true },
  ["--kdf-mem"] = { key = "kdf_mem", value = true },
}

local function with_keys(spec)
  local s = {}
  for k, v in pairs(KEY_SPEC) do s[k] = v end
  for k, v in pairs(spec or {}) do s[k] = v end
  return s
end

-- Parses args[first..] against spec ({["--name"] = {key=, value=, multi=}}).
-- "--name=value" and "--name value" both work; "--" ends the options.
-- stop(positionals) returning true stops the parse after a positional; the
-- index of the next argument is returned then.
local function parse(cmd, args, first, spec, stop)
  local o = { pos = {} }
  local i = first
  while i <= #args do
    local a = args[i]
    if a == "--" then
      table.move(args, i + 1, #args, #o.pos + 1, o.pos)
      return o, #args + 1
    elseif a == "--help" or a == "-h" then
      o.help = true
    elseif a:sub(1, 1) == "-" and a ~= "-" then
      local name, val = a:match("^(%-%-[^=]+)=(.*)$")
      name = name or a
      local s = spec[name]
      if not s then
        usage("%s: unknown option %s (see oplog %s --help)", cmd, name, cmd)
      end
      if s.value then
        if val == nil then
          i = i + 1
          val = args[i]
          if val == nil then usage("%s: option %s needs a value", cmd, name) end
        end
        if s.multi then
          o[s.key] = o[s.key] or {}
          table.insert(o[s.key], val)
        elseif o[s.key] ~= nil then
          usage("%s: option %s given twice", cmd, name)
        else
          o[s.key] = val
        end
      else
        if val ~= nil then usage("%s: option %s takes no value", cmd, name) end
        o[s.key] = true
      end
    else
      o.pos[#o.pos + 1] = a
      if stop and stop(o.pos) then return o, i + 1 end
    end
    i = i + 1
  end
  return o, i
end

local function positionals(cmd, o, names)
  if #o.pos < #names then
    usage("%s: missing %s (see oplog %s --help)", cmd, names[#o.pos + 1], cmd)
  elseif #o.pos > #names then
    usage("%s: unexpected argument %q (see oplog %s --help)", cmd, o.pos[#names + 1], cmd)
  end
  return table.unpack(o.pos)
end

local function id_option(cmd, name, s)
  if s == nil then return nil end
  if not s:match("^%d+$") or not math.tointeger(tonumber(s)) then
    usage("%s: %s wants an entry id (a non-negative integer), not %q", cmd, name, s)
  end
  return math.tointeger(tonumber(s))
end

-- The root key chosen by the options (or OPLOG_KEY_FILE when use_env):
-- the fields for oplog.open and a description; nil when none was chosen.
local function key_choice(cmd, o, use_env)
  local n = (o.key_file and 1 or 0) + (o.passphrase_env and 1 or 0) + (o.passphrase_fd and 1 or 0)
    + (o.no_encryption and 1 or 0)
  if n > 1 then
    usage("%s: give only one of --key-file, --passphrase-env, --passphrase-fd and --no-encryption", cmd)
  end
  if o.key_file then
    return { key_file = o.key_file }, "root key from " .. o.key_file
  elseif o.passphrase_env then
    local p = os.getenv(o.passphrase_env)
    if p == nil or p == "" then
      usage("%s: environment variable %s (named by --passphrase-env) is %s", cmd,
        o.passphrase_env, p == nil and "not set" or "empty")
    end
    return { passphrase = p }, "root key from the passphrase in $" .. o.passphrase_env
  elseif o.passphrase_fd then
    -- The core reads the descriptor itself (into locked memory, wiped
    -- after use): the passphrase never becomes a Lua string here.
    local fd = o.passphrase_fd:match("^%d+$") and #o.passphrase_fd <= 9
      and math.tointeger(tonumber(o.passphrase_fd))
    if not fd then
      usage("%s: --passphrase-fd wants a file descriptor number, not %q", cmd, o.passphrase_fd)
    end
    return { passphrase_fd = fd }, "root key from the passphrase on descriptor " .. fd
  elseif o.no_encryption then
    return { encryption = false }, "no encryption"
  elseif use_env then
    local f = os.getenv("OPLOG_KEY_FILE")
    if f and f ~= "" then
      return { key_file = f }, "root key from " .. f .. " (OPLOG_KEY_FILE)"
    end
  end
  return nil
end

-- Adds o's --kdf-ops/--kdf-mem (MiB) to key, which must be a passphrase.
local function add_kdf(cmd, o, key)
  if not (o.kdf_ops or o.kdf_mem) then return key end
  if not (key and (key.passphrase or key.passphrase_fd)) then
    usage("%s: --kdf-ops and --kdf-mem go with --passphrase-env or --passphrase-fd", cmd)
  end
  local kdf = {}
  for name, f in pairs({ kdf_ops = { "ops", 1 }, kdf_mem = { "mem", 1024 * 1024 } }) do
    local v = o[name]
    if v then
      -- digits only, and small enough that N * unit stays an integer the
      -- platform holds (a 20-digit N would wrap around or become a float)
      local n = v:match("^%d+$") and #v <= 9 and math.tointeger(tonumber(v))
      if not n or n < 1 then
        usage("%s: --%s wants a positive integer below 10^9, not %q", cmd, (name:gsub("_", "-")), v)
      end
      kdf[f[1]] = n * f[2]
    end
  end
  -- The command opens files with the default kdf_limit (8 passes, 256 MiB):
  -- it must not make one that it would then refuse to open.
  if (kdf.ops or 0) > 8 or (kdf.mem or 0) > 256 * 1024 * 1024 then
    usage("%s: --kdf-ops and --kdf-mem go up to 8 passes and 256 MiB, the most oplog opens by default "
      .. "(kdf_limit)", cmd)
  end
  key.kdf = kdf
  return key
end

-- The whole content of FILE ("-": stdin), read as bytes.
local function read_all(cmd, file, what)
  if file == "-" then
    local data = io.stdin:read("a")
    if data == nil then fail("io", "%s: reading %s from stdin failed", cmd, what) end
    return data
  end
  local f, err = io.open(file, "rb")
  if not f then fail("not_found", "%s: cannot open %s (%s): %s", cmd, file, what, err) end
  local data, rerr = f:read("a")
  f:close()
  if data == nil then fail("io", "%s: reading %s: %s", cmd, file, rerr) end
  return data
end

-- Opens an existing log: mode "read" opens it read-only.
local function open_db(path, key, mode)
  local opts = { create = false, readonly = (mode == "read") or nil }
  for k, v in pairs(key or {}) do opts[k] = v end
  return oplog.open(path, opts)
end

------------------------------------------------------------------ formatting

-- Stored times are unix milliseconds.
local function utc(ms)
  if math.type(ms) ~= "integer" then return tostring(ms) end
  return os.date("!%Y-%m-%dT%H:%M:%S", ms // 1000) .. string.format(".%03dZ", ms % 1000)
end

local function show_string(s)
  if not json.is_utf8(s) then
    return "x'" .. s:gsub(".", function(c) return string.format("%02x", c:byte()) end) .. "'"
  end
  return '"' .. s:gsub('[%c"\\]', function(c)
    local e = { ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r", ['"'] = '\\"', ["\\"] = "\\\\" }
    return e[c] or string.format("\\x%02x", c:byte())
  end) .. '"'
end

local function show(v)
  if v == nil or v == oplog.null then return "NULL" end
  local t = type(v)
  if t == "string" then return show_string(v) end
  if t == "number" then return json.number(v) end -- shortest exact form
  return tostring(v)
end

-- Column order of each type, from the file's catalog.
local function column_orders(db)
  local orders = {}
  local ok, types = pcall(db.types, db)
  if ok and type(types) == "table" then
    for name, spec in pairs(types) do
      local cols = {}
      for _, c in ipairs(spec.columns or {}) do
        cols[#cols + 1] = type(c) == "table" and (c[1] or c.name) or c
      end
      orders[name] = cols
    end
  end
  return orders
end

local function ordered_keys(row, order)
  local keys, seen = {}, {}
  for _, k in ipairs(order or {}) do
    if row[k] ~= nil then keys[#keys + 1] = k; seen[k] = true end
  end
  local rest = {}
  for k in pairs(row) do
    if not seen[k] then rest[#rest + 1] = k end
  end
  table.sort(rest, function(a, b) return tostring(a) < tostring(b) end)
  table.move(rest, 1, #rest, #keys + 1, keys)
  return keys
end

local function show_meta(metadata)
  local parts = {}
  local keys = {}
  for k in pairs(metadata or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local vals = metadata[k]
    if type(vals) ~= "table" then vals = { vals } end
    if #vals == 0 then parts[#parts + 1] = k end
    for _, v in ipairs(vals) do
      if type(v) == "string" and v:match("^[%w%._:/@%-]+$") then
        parts[#parts + 1] = k .. "=" .. v
      else
        parts[#parts + 1] = k .. "=" .. show(v)
      end
    end
  end
  return table.concat(parts, " ")
end

local function entry_text(e, orders)
  local lines = {}
  local head = string.format("entry %d  %s  aggregate=%s  key=%s  origin=%s  seq=%d  clock=%d",
    e.id, utc(e.created), e.aggregate, tostring(e.key_id), e.origin, e.seq, e.clock)
  local meta = show_meta(e.metadata)
  if meta ~= "" then head = head .. "  " .. meta end
  lines[1] = head
  for _, op in ipairs(e.ops or {}) do
    local row = op.row or {}
    local fields = {}
    for _, k in ipairs(ordered_keys(row, orders[op.type])) do
      fields[#fields + 1] = k .. "=" .. show(row[k])
    end
    local line = string.format("  %-12s %s {%s}", op.op, op.type, table.concat(fields, ", "))
    if op.mask and #op.mask > 0 then line = line .. "  mask=" .. table.concat(op.mask, ",") end
    if op.nulls and #op.nulls > 0 then line = line .. "  nulls=" .. table.concat(op.nulls, ",") end
    lines[#lines + 1] = line
  end
  return table.concat(lines, "\n")
end

-- One entry as one line of JSON, written field by field (a dump may hold
-- millions of entries): {"id","aggregate","created","key_id","origin","seq",
-- "clock","metadata","ops":[{"type","op","row","mask","nulls"}]}.
local function entry_json(e, orders)
  local null = oplog.null
  local o = { '{"id":', string.format("%d", e.id), ',"aggregate":' }
  json.write(o, e.aggregate)
  o[#o + 1] = ',"created":'
  json.write(o, e.created)
  o[#o + 1] = ',"key_id":'
  json.write(o, e.key_id)
  o[#o + 1] = ',"origin":'
  json.write(o, e.origin)
  o[#o + 1] = ',"seq":'
  json.write(o, e.seq)
  o[#o + 1] = ',"clock":'
  json.write(o, e.clock)
  o[#o + 1] = ',"metadata":'
  local meta = {}
  for k, vals in pairs(e.metadata or {}) do
    if type(vals) ~= "table" then vals = { vals } end
    meta[k] = json.array({ table.unpack(vals) })
  end
  json.write(o, meta)
  o[#o + 1] = ',"ops":['
  for i, op in ipairs(e.ops or {}) do
    if i > 1 then o[#o + 1] = "," end
    o[#o + 1] = '{"type":'
    json.write(o, op.type)
    o[#o + 1] = ',"op":'
    json.write(o, op.op)
    o[#o + 1] = ',"row":'
    local row = op.row or {}
    local order = orders[op.type]
    if order and getmetatable(row) == nil then row = json.ordered(row, order) end
    json.write(o, row, null)
    o[#o + 1] = ',"mask":'
    json.write(o, json.array({ table.unpack(op.mask or {}) }))
    o[#o + 1] = ',"nulls":'
    json.write(o, json.array({ table.unpack(op.nulls or {}) }))
    o[#o + 1] = "}"
  end
  o[#o + 1] = "]}"
  return table.concat(o)
end

------------------------------------------------------------------ commands

local commands = {}

function commands.keygen(args)
  local o = parse("keygen", args, 2, {})
  if o.help then out(HELP.keygen) return 0 end
  local path = positionals("keygen", o, { "KEYFILE" })
  oplog.keygen(path)
  out("wrote a new root key to ", path, " (mode 0600); keep it safe: ",
    "without it an encrypted log cannot be read\n")
  return 0
end

-- Argon2id takes its memory at every open of a passphrase file: when that
-- is over a quarter of this machine's memory (a 64 MB device and the
-- default 64 MiB), init says so on stderr, before it derives the key.
local function kdf_note(path, key)
  if not (key.passphrase or key.passphrase_fd) then return end
  local mem = key.kdf and key.kdf.mem or 64 * 1024 * 1024
  local f = io.open("/proc/meminfo", "r")
  local total = f and tonumber((f:read("a") or ""):match("MemTotal:%s*(%d+) kB"))
  if f then f:close() end
  if total and mem > total * 1024 // 4 then
    io.stderr:write(string.format("note: every open of %s will take %d MiB of memory to derive the key "
      .. "(Argon2id), over a quarter of this machine's %d MiB; on a small device give --kdf-mem "
      .. "(8 MiB at least; see oplog init --help)\n", path, mem // (1024 * 1024), total // 1024))
  end
end

function commands.init(args)
  local o = parse("init", args, 2, with_keys(KDF_SPEC))
  if o.help then out(HELP.init) return 0 end
  local path = positionals("init", o, { "DB" })
  local key, how = key_choice("init", o, true)
  if not key then
    usage("init: choose a key: --key-file PATH, --passphrase-env VAR, --passphrase-fd N or --no-encryption "
      .. "(see oplog init --help)")
  end
  key = add_kdf("init", o, key)
  local f = io.open(path, "rb")
  local existed = f ~= nil
  if f then
    local size = f:seek("end")
    f:close()
    if size and size > 0 then
      usage("init: %s already exists; init only creates new logs", path)
    end
  end
  local opts = { create = true }
  for k, v in pairs(key) do opts[k] = v end
  kdf_note(path, key)
  local ok, db = pcall(oplog.open, path, opts)
  if not ok then
    -- A failed init (a missing key file, say) must not leave a half-made
    -- log behind that the next init would refuse.
    if not existed then
      for _, suffix in ipairs({ "", "-wal", "-shm", "-journal" }) do os.remove(path .. suffix) end
    end
    error(db, 0)
  end
  db:close()
  out("created ", path, " (", how, ")\n")
  return 0
end

function commands.dump(args)
  local o = parse("dump", args, 2, with_keys({
    ["--aggregate"] = { key = "aggregate", value = true },
    ["--since"] = { key = "since", value = true },
    ["--upto"] = { key = "upto", value = true },
    ["--meta"] = { key = "meta", value = true, multi = true },
    ["--json"] = { key = "json" },
  }))
  if o.help then out(HELP.dump) return 0 end
  local path = positionals("dump", o, { "DB" })
  local filter = {
    aggregate = o.aggregate,
    since = id_option("dump", "--since", o.since),
    upto = id_option("dump", "--upto", o.upto),
  }
  if o.meta then
    filter.metadata = {}
    for _, kv in ipairs(o.meta) do
      if kv == "" or kv:sub(1, 1) == "=" then usage("dump: --meta wants K=V or K, not %q", kv) end
      local k, v = kv:match("^([^=]+)=(.*)$")
      if not k then k, v = kv, true end
      if filter.metadata[k] ~= nil then usage("dump: --meta %s given twice", k) end
      filter.metadata[k] = v
    end
  end
  local db <close> = open_db(path, key_choice("dump", o, true), "read")
  local orders = column_orders(db)

  -- Progress is measured in ids: entries ids are dense, so this gives a
  -- fair ETA even with filters. Drawn only when the entries themselves are
  -- not going to the same terminal.
  local bar = progress.new("dump", not progress.isatty(1))
  local since = filter.since or 0
  local total = 0
  if bar.on then
    local head = db:head()
    local last = head and head.id or 0
    if filter.upto and filter.upto < last then last = filter.upto end
    total = math.max(0, last - since)
    bar:update(0, total)
  end
  local n = 0
  for e in db:entries(filter) do
    if o.json then
      out(entry_json(e, orders), "\n")
    else
      out(entry_text(e, orders), "\n")
    end
    n = n + 1
    bar:update(math.min(total, e.id - since), total)
  end
  bar:finish()
  if n == 0 and not o.json then
    io.stderr:write("dump: no entries match\n") -- a note, not an error: exit status 0
  end
  return 0
end

local verify_postgres -- the fleet's form of verify (below)

function commands.verify(args)
  for _, a in ipairs(args) do
    if a == "--postgres" or a:match("^%-%-postgres=") then return verify_postgres(args) end
  end
  local o = parse("verify", args, 2, with_keys({
    ["--replay"] = { key = "replay" },
    ["--head"] = { key = "head", value = true },
    ["--checkpoint"] = { key = "checkpoint", value = true },
    ["--json"] = { key = "json" },
  }))
  if o.help then out(HELP.verify) return 0 end
  local path = positionals("verify", o, { "DB" })
  if o.head and not o.head:match("^" .. string.rep("%x", 64) .. "$") then
    usage("verify: --head wants 64 hex characters (as printed by oplog head), not %q", o.head)
  end
  local checkpoint = o.checkpoint and read_all("verify", o.checkpoint, "--checkpoint")
  local key = key_choice("verify", o, true)
  local db <close> = open_db(path, key, "read")
  local encrypted = #db:keys() > 0
  local bar = progress.new("verify")
  local report = db:verify({
    replay = o.replay or nil,
    head = o.head and o.head:lower() or nil,
    checkpoint = checkpoint,
    progress = bar:callback(),
  })
  bar:finish()
  local decrypted = key ~= nil and encrypted
  local problems = report.problems or {}
  if o.json then
    local list = {}
    for i, p in ipairs(problems) do
      list[i] = json.ordered({ id = p.id or 0, kind = p.kind, detail = p.detail or "" },
        { "id", "kind", "detail" })
    end
    out(json.encode(json.ordered({
      ok = report.ok,
      entries = report.entries,
      problems = json.array(list),
      decrypted = decrypted,
      replay = o.replay == true,
      head = o.head and o.head:lower() or nil,
      checkpoint = checkpoint ~= nil,
    }, { "ok", "entries", "problems", "decrypted", "replay", "head", "checkpoint" })), "\n")
  else
    local checks = { "hash chain" }
    if decrypted then checks[#checks + 1] = "decryption" end
    if o.replay then checks[#checks + 1] = "replay" end
    if o.head then checks[#checks + 1] = "head" end
    if checkpoint then checks[#checks + 1] = "checkpoint" end
    local n = report.entries or 0
    local what = string.format("%d %s checked (%s)", n, n == 1 and "entry" or "entries",
      table.concat(checks, ", "))
    if report.ok then
      out(path, ": ok, ", what, "\n")
    else
      out(path, ": ", #problems, #problems == 1 and " problem" or " problems", " in ", what, "\n")
      for _, p in ipairs(problems) do
        local where = (p.id and p.id ~= 0) and ("entry " .. p.id .. ": ") or ""
        out("  ", where, p.kind, p.detail and p.detail ~= "" and (": " .. p.detail) or "", "\n")
      end
    end
    if encrypted and not key then
      out("note: no key given, entries were not decrypted (give --key-file, ",
        "--passphrase-env or --passphrase-fd to check them too)\n")
    end
  end
  return report.ok and 0 or 1
end

function commands.replay(args)
  local o = parse("replay", args, 2, with_keys({
    ["--suffix"] = { key = "suffix", value = true },
    ["--into"] = { key = "into", value = true },
    ["--aggregate"] = { key = "aggregate", value = true },
    ["--since"] = { key = "since", value = true },
    ["--upto"] = { key = "upto", value = true },
    ["--fresh"] = { key = "fresh" },
  }))
  if o.help then out(HELP.replay) return 0 end
  local path = positionals("replay", o, { "DB" })
  if (o.suffix == nil) == (o.into == nil) then
    usage("replay: give exactly one of --suffix S and --into FILE (see oplog replay --help)")
  end
  local opts = {
    suffix = o.suffix,
    into = o.into,
    aggregate = o.aggregate,
    since = id_option("replay", "--since", o.since),
    upto = id_option("replay", "--upto", o.upto),
    fresh = o.fresh or nil,
  }
  local db <close> = open_db(path, key_choice("replay", o, true), "write")
  local bar = progress.new("replay")
  opts.progress = bar:callback()
  local r = db:replay(opts)
  bar:finish()
  out(string.format("replayed %d %s (%d %s) into %s\n", r.entries,
    r.entries == 1 and "entry" or "entries", r.ops, r.ops == 1 and "operation" or "operations",
    o.into and o.into or ("tables *" .. o.suffix)))
  return 0
end

local function ticket_version(t)
  if type(t) == "table" then return t.version end
  return t
end

function commands.stats(args)
  local o = parse("stats", args, 2, with_keys({ ["--json"] = { key = "json" } }))
  if o.help then out(HELP.stats) return 0 end
  local path = positionals("stats", o, { "DB" })
  local db <close> = open_db(path, key_choice("stats", o, true), "read")
  local s = db:stats()
  local names = {}
  for name in pairs(s.aggregates or {}) do names[#names + 1] = name end
  table.sort(names)
  local nkeys = type(s.keys) == "table" and #s.keys or s.keys
  if o.json then
    local aggs = {}
    for _, name in ipairs(names) do
      local a = s.aggregates[name]
      aggs[name] = json.ordered({ entries = a.entries, ticket = ticket_version(a.ticket) },
        { "entries", "ticket" })
    end
    out(json.encode(json.ordered({
      entries = s.entries, bytes = s.bytes, keys = nkeys, aggregates = aggs,
    }, { "entries", "bytes", "keys", "aggregates" })), "\n")
  else
    out(string.format("entries     %d\nbytes       %d\nkeys        %d\n", s.entries, s.bytes,
      nkeys or 0))
    out("aggregates  ", #names, "\n")
    local w = 0
    for _, name in ipairs(names) do w = math.max(w, #name) end
    for _, name in ipairs(names) do
      local a = s.aggregates[name]
      out(string.format("  %-" .. w .. "s  entries %d  ticket %d\n", name, a.entries,
        ticket_version(a.ticket)))
    end
  end
  return 0
end

function commands.head(args)
  local o = parse("head", args, 2, with_keys())
  if o.help then out(HELP.head) return 0 end
  local path = positionals("head", o, { "DB" })
  local db <close> = open_db(path, key_choice("head", o, true), "read")
  local h = db:head()
  if h == nil then h = { id = 0, hash = string.rep("0", 64) } end
  out(string.format("%d %s\n", h.id, h.hash))
  return 0
end

function commands.keys(args)
  -- Options up to the action give the current key; after `rekey`, the new.
  local o, next_i = parse("keys", args, 2, with_keys(), function(pos) return #pos == 2 end)
  if o.help then out(HELP.keys) return 0 end
  local path, action = o.pos[1], o.pos[2]
  if not path then usage("keys: missing DB (see oplog keys --help)") end
  if not action then usage("keys: missing action: list, rotate or rekey (see oplog keys --help)") end
  local key = key_choice("keys", o, true)
  if action == "list" then
    if next_i <= #args then usage("keys: unexpected argument %q after list", args[next_i]) end
    local db <close> = open_db(path, key, "read")
    local keys = db:keys()
    if #keys == 0 then
      out("no data keys: ", path, " is a plaintext log\n")
    else
      out(string.format("%-4s  %-24s  %s\n", "id", "created", "state"))
      for _, k in ipairs(keys) do
        out(string.format("%-4d  %-24s  %s\n", k.id, utc(k.created), k.state))
      end
    end
  elseif action == "rotate" then
    if next_i <= #args then usage("keys: unexpected argument %q after rotate", args[next_i]) end
    local db <close> = open_db(path, key, "write")
    local id = db:rotate_key()
    out("data key ", tostring(id), " is now active; older entries stay readable\n")
  elseif action == "rekey" then
    local n = parse("keys rekey", args, next_i, {
      ["--key-file"] = KEY_SPEC["--key-file"],
      ["--passphrase-env"] = KEY_SPEC["--passphrase-env"],
      ["--passphrase-fd"] = KEY_SPEC["--passphrase-fd"],
      ["--kdf-ops"] = KDF_SPEC["--kdf-ops"],
      ["--kdf-mem"] = KDF_SPEC["--kdf-mem"],
    })
    if n.help then out(HELP.keys) return 0 end
    if #n.pos > 0 then usage("keys: unexpected argument %q after rekey", n.pos[1]) end
    local new, how = key_choice("keys rekey", n, false)
    if not new then
      usage("keys: rekey needs the new root key: --key-file PATH, --passphrase-env VAR or --passphrase-fd N")
    end
    new = add_kdf("keys rekey", n, new)
    local db <close> = open_db(path, key, "write")
    db:rekey(new)
    -- rekey also starts a new data key: the newest one
    local keys = db:keys()
    out("re-wrapped every data key of ", path, " under the new root key (", how,
      ") and started data key ", tostring(keys[#keys] and keys[#keys].id or "?"), "\n")
  else
    usage("keys: unknown action %q: list, rotate or rekey (see oplog keys --help)", action)
  end
  return 0
end

------------------------------------------------------------------ sync

function commands.id(args)
  local o = parse("id", args, 2, with_keys())
  if o.help then out(HELP.id) return 0 end
  local path = positionals("id", o, { "DB" })
  local db <close> = open_db(path, key_choice("id", o, true), "read")
  out(db:origin().id, "\n")
  return 0
end

function commands.cursor(args)
  local o = parse("cursor", args, 2, with_keys())
  if o.help then out(HELP.cursor) return 0 end
  local path = positionals("cursor", o, { "DB" })
  local db <close> = open_db(path, key_choice("cursor", o, true), "read")
  out(db:cursor(), "\n")
  return 0
end

local HEAD_KEYS = { "origin", "seq", "hash", "clock" }

function commands.heads(args)
  local o = parse("heads", args, 2, with_keys({ ["--json"] = { key = "json" } }))
  if o.help then out(HELP.heads) return 0 end
  local path = positionals("heads", o, { "DB" })
  local db <close> = open_db(path, key_choice("heads", o, true), "read")
  local self = db:origin().id
  local heads = db:heads()
  if o.json then
    local list = {}
    for i, h in ipairs(heads) do
      list[i] = json.ordered({ origin = h.origin, seq = h.seq, hash = h.hash, clock = h.clock }, HEAD_KEYS)
    end
    out(json.encode(json.array(list)), "\n")
  else
    for _, h in ipairs(heads) do
      out(string.format("%s seq %d clock %d hash %s%s\n", h.origin, h.seq, h.clock, h.hash,
        h.origin == self and "  (this file)" or ""))
    end
  end
  return 0
end

function commands.checkpoint(args)
  local o = parse("checkpoint", args, 2, with_keys())
  if o.help then out(HELP.checkpoint) return 0 end
  local path = positionals("checkpoint", o, { "DB" })
  local db <close> = open_db(path, key_choice("checkpoint", o, true), "read")
  out(db:checkpoint())
  return 0
end

local HEX64 = "^" .. string.rep("%x", 64) .. "$"

function commands.export(args)
  local o = parse("export", args, 2, with_keys({
    ["--to"] = { key = "to", value = true },
    ["--since"] = { key = "since", value = true },
    ["-o"] = { key = "output", value = true },
    ["--output"] = { key = "output", value = true },
  }))
  if o.help then out(HELP.export) return 0 end
  local path = positionals("export", o, { "DB" })
  if o.to and not o.to:match(HEX64) then
    usage("export: --to wants an origin id, 64 hex characters (as printed by oplog id), not %q", o.to)
  end
  if not o.output and progress.isatty(1) then
    usage("export: the stream is binary and stdout is a terminal: give -o FILE or pipe it")
  end
  local db <close> = open_db(path, key_choice("export", o, true), "read")
  local bar = progress.new("export")
  local r = db:export(o.output or io.stdout, {
    to = o.to and o.to:lower() or nil,
    since = o.since,
    progress = bar:callback(),
  })
  bar:finish()
  if o.output then
    out(string.format("exported %d %s (%d bytes) to %s\n", r.entries, r.entries == 1 and "entry" or "entries",
      r.bytes, o.output))
  end
  return 0
end

------------------------------------------------------------------ fleet (PostgreSQL)

HELP.ship = [[
Usage: oplog ship DB --postgres CONNINFO [--schema NAME] [--apply]
                 [--batch N] [--json] [KEY-OPTION]

Pushes every entry the PostgreSQL server lacks (of every origin DB holds),
as stored: ciphertext, hashes, origin, seq, clock and metadata, with the
signed checkpoints, into tables it creates in schema NAME (default oplog).
It asks the server for its cursor, so it resumes after any interruption
and ships nothing twice. Each batch (N entries, default 5000) is one
PostgreSQL transaction. A server whose chain of an origin does not end
where the batch starts is refused: `gap` (it holds less, e.g. restored
from an older backup) or `fork` (a different entry: a cloned device or a
rewritten history); nothing of that batch is stored.

  --postgres CONNINFO  a libpq connection string or URI, e.g.
                       "host=collector dbname=fleet user=device"
  --schema NAME        the schema of the log's tables (default oplog)
  --apply              then apply every entry DB holds that the schema has
                       not applied to live tables there (named and typed
                       after the catalog), in total order with the skip
                       rule of import, across all devices applying there;
                       needs the key; see docs/fleet.md "Live tables"
  --batch N            entries per transaction (default 5000)
  --json               print {"entries":..,"skipped":..,"batches":..,
                       "checkpoints":..,"applied":..,"conflicts":..}

Without the key of an encrypted log the entries are shipped as they are;
only the checkpoint of this file's own origin needs the key (to sign it).

]] .. KEY_OPTIONS

local SHIP_KEYS = { "entries", "skipped", "batches", "checkpoints", "applied", "conflicts" }

function commands.ship(args)
  local o = parse("ship", args, 2, with_keys({
    ["--postgres"] = { key = "postgres", value = true },
    ["--schema"] = { key = "schema", value = true },
    ["--apply"] = { key = "apply" },
    ["--batch"] = { key = "batch", value = true },
    ["--json"] = { key = "json" },
  }))
  if o.help then out(HELP.ship) return 0 end
  local path = positionals("ship", o, { "DB" })
  if not o.postgres then usage("ship: --postgres CONNINFO is required (see oplog ship --help)") end
  local batch = o.batch and o.batch:match("^%d+$") and #o.batch <= 9 and math.tointeger(tonumber(o.batch))
  if o.batch and not (batch and batch > 0) then usage("ship: --batch wants a positive integer, not %q", o.batch) end
  local db <close> = open_db(path, key_choice("ship", o, true), "read")
  local bar = progress.new("ship")
  local r = db:ship({ postgres = o.postgres, schema = o.schema, apply = o.apply or nil, batch = batch,
    progress = bar:callback() })
  bar:finish()
  if o.json then
    out(json.encode(json.ordered(r, SHIP_KEYS)), "\n")
  else
    out(string.format("shipped %d new %s (%d already on the server, %d %s, %d %s stored)\n", r.entries,
      r.entries == 1 and "entry" or "entries", r.skipped, r.batches, r.batches == 1 and "batch" or "batches",
      r.checkpoints, r.checkpoints == 1 and "checkpoint" or "checkpoints"))
    if o.apply then
      out(string.format("applied %d %s (%d %s)\n", r.applied, r.applied == 1 and "entry" or "entries",
        r.conflicts, r.conflicts == 1 and "conflict" or "conflicts"))
    end
  end
  return 0
end

HELP["verify --postgres"] = [[
Usage: oplog verify --postgres CONNINFO [--schema NAME] [--origin ID] [--json]

Checks the chains and signed checkpoints stored in PostgreSQL by `oplog
ship`, without any key: every origin's seqs run 1, 2, 3, ... without gaps
(missing_entry), each entry's prev_hash is its origin's previous hash
(chain_break) and its hash covers what is stored (hash_mismatch); each
stored checkpoint's signature verifies (bad_signature) and the server
holds that entry with that hash (checkpoint_mismatch). A problem's id is
the entry's seq, its detail names the origin.

  --origin ID   only this origin (64 hex characters, as `oplog id` prints)

Exit status 0 when intact, 1 when problems were found, 2 when the check
could not run.
]]

verify_postgres = function(args)
  local o = parse("verify", args, 2, {
    ["--postgres"] = { key = "postgres", value = true },
    ["--schema"] = { key = "schema", value = true },
    ["--origin"] = { key = "origin", value = true },
    ["--json"] = { key = "json" },
  })
  if o.help then out(HELP["verify --postgres"]) return 0 end
  positionals("verify --postgres", o, {})
  if o.origin and not o.origin:match("^" .. string.rep("%x", 64) .. "$") then
    usage("verify: --origin wants 64 hex characters (as printed by oplog id), not %q", o.origin)
  end
  local bar = progress.new("verify")
  local report = oplog.verify_postgres({ postgres = o.postgres, schema = o.schema, origin = o.origin,
    progress = bar:callback() })
  bar:finish()
  local problems = report.problems
  if o.json then
    local list = {}
    for i, p in ipairs(problems) do
      list[i] = json.ordered({ id = p.id, kind = p.kind, detail = p.detail }, { "id", "kind", "detail" })
    end
    out(json.encode(json.ordered({ ok = report.ok, entries = report.entries, problems = json.array(list) },
      { "ok", "entries", "problems" })), "\n")
  else
    local where = "postgres schema " .. (o.schema or "oplog")
    local what = string.format("%d %s checked (hash chains, checkpoints)", report.entries,
      report.entries == 1 and "entry" or "entries")
    if report.ok then
      out(where, ": ok, ", what, "\n")
    else
      out(where, ": ", #problems, #problems == 1 and " problem" or " problems", " in ", what, "\n")
      for _, p in ipairs(problems) do
        out("  ", p.id ~= 0 and ("seq " .. p.id .. ": ") or "", p.kind, ": ", p.detail, "\n")
      end
    end
  end
  return report.ok and 0 or 1
end

local IMPORT_KEYS = { "entries", "skipped", "conflicts" }

local function import_report(o, r, from)
  if o.json then
    out(json.encode(json.ordered({ entries = r.entries, skipped = r.skipped, conflicts = r.conflicts },
      IMPORT_KEYS)), "\n")
  else
    out(string.format("imported %d new %s from %s (%d already held, %d %s)\n", r.entries,
      r.entries == 1 and "entry" or "entries", from, r.skipped, r.conflicts,
      r.conflicts == 1 and "conflict" or "conflicts"))
  end
end

function commands.import(args)
  local o = parse("import", args, 2, with_keys({ ["--json"] = { key = "json" } }))
  if o.help then out(HELP.import) return 0 end
  if #o.pos == 1 then o.pos[2] = "-" end
  local path, file = positionals("import", o, { "DB", "FILE" })
  local db <close> = open_db(path, key_choice("import", o, true), "write")
  local bar = progress.new("import")
  local r = db:import(file == "-" and io.stdin or file, { progress = bar:callback() })
  bar:finish()
  import_report(o, r, file == "-" and "stdin" or file)
  return 0
end

function commands.join(args)
  local o = parse("join", args, 2, with_keys({
    ["--other-key-file"] = { key = "other_key_file", value = true },
    ["--other-passphrase-env"] = { key = "other_passphrase_env", value = true },
    ["--other-passphrase-fd"] = { key = "other_passphrase_fd", value = true },
    ["--other-no-encryption"] = { key = "other_no_encryption" },
    ["--json"] = { key = "json" },
  }))
  if o.help then out(HELP.join) return 0 end
  local path, other = positionals("join", o, { "DB", "OTHER" })
  local other_key = key_choice("join", {
    key_file = o.other_key_file,
    passphrase_env = o.other_passphrase_env,
    passphrase_fd = o.other_passphrase_fd,
    no_encryption = o.other_no_encryption,
  }, false) or {}
  local db <close> = open_db(path, key_choice("join", o, true), "write")
  local bar = progress.new("join")
  other_key.progress = bar:callback()
  local ok, r = pcall(db.join, db, other, other_key)
  bar:finish()
  if not ok then
    -- OTHER's key is missing: say which options give it (the library's
    -- message names OTHER's path first)
    if oplog.is_error(r) and r.code == "key_required" and tostring(r.message):find(other, 1, true) == 1 then
      local e = setmetatable({ code = r.code, message = r.message .. " (give OTHER's key: --other-key-file PATH, "
        .. "--other-passphrase-env VAR or --other-passphrase-fd N)" }, Error)
      e.hinted = true
      error(e, 0)
    end
    error(r, 0)
  end
  import_report(o, r, other)
  return 0
end

local CONFLICT_KEYS = { "entry_id", "op", "kind", "detail" }

function commands.conflicts(args)
  local o = parse("conflicts", args, 2, with_keys({ ["--json"] = { key = "json" } }))
  if o.help then out(HELP.conflicts) return 0 end
  local path = positionals("conflicts", o, { "DB" })
  local db <close> = open_db(path, key_choice("conflicts", o, true), "read")
  local n = 0
  for c in db:conflicts() do
    n = n + 1
    if o.json then
      out(json.encode(json.ordered({ entry_id = c.entry_id, op = c.op, kind = c.kind, detail = c.detail },
        CONFLICT_KEYS)), "\n")
    else
      out(string.format("entry %d op %d %s: %s\n", c.entry_id, c.op, c.kind, c.detail))
    end
  end
  if n == 0 and not o.json then
    io.stderr:write("conflicts: none recorded\n") -- a note, not an error: exit status 0
  end
  return 0
end

------------------------------------------------------------------ run

local function describe(e)
  if type(e) == "table" and e.code and e.message then
    return "oplog: " .. tostring(e.code) .. ": " .. tostring(e.message)
  end
  local mt = getmetatable(e)
  if mt and mt.__tostring then return tostring(e) end
  if type(e) == "string" or type(e) == "number" then return tostring(e) end
  return "(error object is a " .. type(e) .. " value)"
end

-- As lua5.4 SCRIPT ARGS...: argv[first] is the script.
local function run(argv, first)
  local script = argv[first]
  if script == "--help" or script == "-h" then out(HELP.run) return 0 end
  if script == "--" then first = first + 1; script = argv[first] end
  if not script then usage("run: missing SCRIPT (see oplog run --help)") end
  local arg = {}
  for i = 0, #argv do arg[i - first] = argv[i] end
  local chunk, err
  if script == "-" then
    chunk, err = loadfile(nil)
  else
    local f = io.open(script, "r")
    if not f then fail("not_found", "run: cannot open %s", script) end
    f:close()
    chunk, err = loadfile(script)
  end
  if not chunk then fail("invalid_argument", "run: %s", err) end
  _G.arg = arg
  _G.oplog = oplog
  local ok, msg = xpcall(chunk, function(e)
    local text = describe(e)
    -- every message in the "oplog: <code>: <message>" shape; a script's
    -- own error has no code of the library's: "error"
    if not text:match("^oplog: ") then text = "oplog: error: " .. text end
    -- The frames below the script's main chunk are this command's own.
    local tb = debug.traceback(text, 2)
    return (tb:gsub("\n\t%[C%]: in function 'xpcall'\n.*$", ""))
  end, table.unpack(arg, 1, #argv - first))
  if not ok then
    io.stderr:write(msg, "\n")
    return 2
  end
  return 0
end

------------------------------------------------------------------ main

-- argv: the command line indexed from 0 (argv[0] is the program).
function cli.main(argv)
  local ok, status = xpcall(function()
    local cmd = argv[1]
    if cmd == nil then
      usage("missing COMMAND (see oplog --help)")
    elseif cmd == "--help" or cmd == "-h" or cmd == "help" then
      local topic = argv[2]
      if topic and topic ~= "--help" then
        if not HELP[topic] or topic == "" then
          usage("unknown command %q (see oplog --help)", topic)
        end
        out(HELP[topic])
      else
        out(HELP[""])
      end
      return 0
    elseif cmd == "--version" then
      out("oplog ", oplog.VERSION, "\n")
      return 0
    elseif cmd == "run" then
      return run(argv, 2)
    elseif commands[cmd] then
      return commands[cmd](argv)
    elseif cmd:sub(1, 1) == "-" then
      usage("unknown option %s (see oplog --help)", cmd)
    else
      usage("unknown command %q (see oplog --help)", cmd)
    end
  end, function(e)
    -- Errors raised on purpose carry a code; anything else is a bug here
    -- and keeps its traceback.
    if type(e) == "table" and e.code then return e end
    return debug.traceback(describe(e), 2)
  end)
  if ok then return status end
  local text = describe(status)
  if type(status) == "table" and status.code == "key_required" and commands[argv[1]] then
    -- Say how to give the key, which the library cannot know.
    if not status.hinted then
      text = text .. " (give --key-file PATH, --passphrase-env VAR or --passphrase-fd N, or set OPLOG_KEY_FILE)"
    end
  elseif type(status) == "table" and status.code == "target_not_empty" then
    text = text:gsub("pass fresh", "pass --fresh")
  elseif type(status) == "table" and status.code == "wrong_key" and commands[argv[1]]
    and tostring(status.message):find("not encrypted") then
    text = text .. " (give --no-encryption)"
  end
  if not text:match("^oplog: ") then text = "oplog: error: " .. text end
  io.stderr:write(text, "\n")
  return 2
end

cli.HELP = HELP
return cli
