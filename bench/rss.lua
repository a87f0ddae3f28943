--- bench/rss.lua: memory of the host, run by aeon-host itself (for
-- bench/run.lua):
--
--   aeon-host bench/rss.lua DB N              replaying a long stream
--   aeon-host bench/rss.lua copy SOURCE TARGET    one `store copy`
--
-- Prints `idle <KiB>`: the resident set with aeon loaded (and the store
-- open, or the command line loaded), before the work; then `peak <KiB>`:
-- the high-water mark after folding the fixture's N events with aeon.load,
-- or after the copy (whose JSON line comes between the two).
local aeon = require "aeon"

local function status(field)
  local f = assert(io.open("/proc/self/status"))
  local text = f:read("a")
  f:close()
  return math.tointeger(tonumber(text:match(field .. ":%s*(%d+)")))
end

if arg[1] == "copy" then
  local cli = require "aeon.cli"
  require "aeon.cli.copy"
  collectgarbage()
  io.write(("idle %d\n"):format(status("VmRSS")))
  local code = cli.main({ [0] = "aeon-host", "store", "copy", arg[2], arg[3] })
  assert(code == 0, "store copy exited " .. tostring(code))
  io.write(("peak %d\n"):format(status("VmHWM")))
  return
end

package.path = "apps/?.lua;" .. package.path
local counter = require "domain.counter"
local db, n = arg[1], math.tointeger(tonumber(arg[2]))
local store <close> = assert(aeon.open("sqlite:" .. db))
collectgarbage()
io.write(("idle %d\n"):format(status("VmRSS")))
local value = assert(aeon.load(store, counter, "counter/replay"))
assert(value == n, "replayed " .. tostring(value) .. " events")
io.write(("peak %d\n"):format(status("VmHWM")))
