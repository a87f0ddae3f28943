--- bench/copy_rss.lua: memory of `store copy`, run by aeon-host itself
-- (`aeon-host bench/copy_rss.lua SOURCE TARGET`, for bench/run.lua).
--
-- Prints `idle <KiB>`, the resident set with the command line loaded,
-- then `peak <KiB>`, the high-water mark once the copy is done, and the
-- copy's own JSON line.
local cli = require "aeon.cli"

local function status(field)
  local f = assert(io.open("/proc/self/status"))
  local text = f:read("a")
  f:close()
  return math.tointeger(tonumber(text:match(field .. ":%s*(%d+)")))
end

require "aeon.cli.copy"
collectgarbage()
io.write(("idle %d\n"):format(status("VmRSS")))
local code = cli.main({ [0] = "aeon-host", "store", "copy", arg[1], arg[2] })
assert(code == 0, "store copy exited " .. tostring(code))
io.write(("peak %d\n"):format(status("VmHWM")))
