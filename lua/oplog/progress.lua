-- oplog.progress: the progress bar the `oplog` command draws on stderr for
-- long work (verify, replay, dump). It needs the `oplog.tty` helpers that
-- only the `oplog` binary provides; elsewhere, or when stderr is not a
-- terminal, progress.new returns a bar that draws nothing.
local progress = {}

local ok_tty, tty = pcall(require, "oplog.tty")
if not ok_tty then tty = nil end

local INTERVAL = 0.1 -- seconds between redraws: at most ~10 a second

local function clock(s)
  s = math.floor(s + 0.5)
  if s >= 3600 then
    return string.format("%d:%02d:%02d", s // 3600, s % 3600 // 60, s % 60)
  end
  return string.format("%d:%02d", s // 60, s % 60)
end

local function rate_text(r)
  if r >= 1e6 then return string.format("%.1fM/s", r / 1e6) end
  if r >= 1e4 then return string.format("%.0fk/s", r / 1e3) end
  if r >= 1e3 then return string.format("%.1fk/s", r / 1e3) end
  return string.format("%.0f/s", r)
end

-- true when file descriptor fd is a terminal (false without oplog.tty).
function progress.isatty(fd)
  return tty ~= nil and tty.isatty(fd)
end

local Bar = {}
Bar.__index = Bar

-- The text of one frame, without the leading "\r": exposed for tests.
function progress.frame(label, done, total, elapsed, width)
  local rate = elapsed > 0 and done / elapsed or 0
  local eta
  if total and total > 0 and done > 0 and done < total and rate > 0 then
    eta = "ETA " .. clock((total - done) / rate)
  elseif total and done >= total then
    eta = "done " .. clock(elapsed)
  else
    eta = "ETA -:--"
  end
  local counts, pct
  if total and total > 0 then
    counts = string.format("%d/%d", done, total)
    pct = string.format("%3d%%", math.min(100, done * 100 // total))
  else
    counts, pct = string.format("%d", done), "    "
  end
  local tail = string.format(" %s %s %s %s", pct, counts, rate_text(rate), eta)
  local room = width - #label - #tail - 4
  local bar = ""
  if room >= 10 then
    room = math.min(room, 40)
    local fill = 0
    if total and total > 0 then fill = math.min(room, done * room // total) end
    bar = " [" .. string.rep("#", fill) .. string.rep("-", room - fill) .. "]"
  end
  return label .. bar .. tail
end

-- Draws only when stderr is a terminal (and `when` is not false). env, for
-- tests, replaces the terminal: { now = clock(), write = fn(text),
-- width = columns }; a bar with env always draws.
function progress.new(label, when, env)
  local on = when ~= false and (env ~= nil or (tty ~= nil and tty.isatty(2)))
  local self = setmetatable({ label = label, on = on }, Bar)
  if on then
    self.now = env and env.now or tty.now
    self.write = env and env.write or function(text)
      io.stderr:write(text)
      io.stderr:flush()
    end
    self.width = env and env.width or tty.width(2)
    self.start = self.now()
    self.last = -math.huge
  end
  return self
end

-- Suitable as the `progress` option of db:verify and db:replay.
function Bar:update(done, total)
  if not self.on then return end
  local now = self.now()
  if now - self.last < INTERVAL and done < (total or math.huge) then return end
  self.last = now
  self.write("\r" .. progress.frame(self.label, done, total, now - self.start, self.width)
    .. "\27[K")
  self.drawn = true
end

function Bar:callback()
  return function(done, total) self:update(done, total) end
end

-- Erases the bar so that what follows starts on a clean line.
function Bar:finish()
  if self.on and self.drawn then
    self.write("\r\27[K")
  end
end

return progress
