-- A writer for the crash-safety spec: appends batches of 1-5 events to a few
-- keys, half of them with the expected revision it just read, and after
-- every acknowledged append writes one line to its log:
--   ack WRITER BATCH SIZE REVISION
-- It runs until killed. Run as: aeon-host crash_writer.lua URI WRITER LOG
local aeon = require "aeon"

local uri, writer, logpath = arg[1], arg[2], arg[3]
local store = assert(aeon.open(uri))
local log = assert(io.open(logpath, "a"))
log:setvbuf("line")
math.randomseed(os.time() + tonumber(writer:match("%d+")))

local batch = 0
while true do
  batch = batch + 1
  local key = "crash/" .. math.random(1, 6)
  local size = math.random(1, 5)
  local events = {}
  for i = 1, size do
    events[i] = { type = "written", data = { writer = writer, batch = batch, size = size, i = i,
      pad = string.rep("x", math.random(0, 2000)) } }
  end
  local opts
  if math.random() < 0.5 then opts = { expected_revision = store:head(key) } end
  local r, err = store:append(key, events, opts)
  if not r then error(err) end
  if r.type == "appended" then
    log:write(("ack %s %d %d %s\n"):format(writer, batch, size, r.revision))
  end
end
