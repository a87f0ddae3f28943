--- bench/rss.lua: memory of the host replaying a long stream, run by
-- aeon-host itself (`aeon-host bench/rss.lua DB N`, for bench/run.lua).
--
-- Prints `idle <KiB>`: the resident set with aeon loaded and the store
-- open, before reading; then `peak <KiB>`: the high-water mark after
-- folding the fixture's N events with aeon.load.
local aeon = require "aeon"
package.path = "apps/?.lua;" .. package.path
local counter = require "domain.counter"

local function status(field)
  local f = assert(io.open("/proc/self/status"))
  local text = f:read("a")
  f:close()
  return math.tointeger(tonumber(text:match(field .. ":%s*(%d+)")))
end

local db, n = arg[1], math.tointeger(tonumber(arg[2]))
local store <close> = assert(aeon.open("sqlite:" .. db))
collectgarbage()
io.write(("idle %d\n"):format(status("VmRSS")))
local value = assert(aeon.load(store, counter, "counter/replay"))
assert(value == n, "replayed " .. tostring(value) .. " events")
io.write(("peak %d\n"):format(status("VmHWM")))
