-- One writer of the optimistic-concurrency race: appends `count` events to
-- one key, each with the expected revision it just read, retrying on
-- conflict, and prints one line per outcome:
--   appended REVISION EXPECTED   |   conflict EXPECTED ACTUAL
-- Run as: aeon-host spec/support/race_writer.lua URI KEY COUNT WRITER
local aeon = require "aeon"

local uri, key, count, writer = arg[1], arg[2], tonumber(arg[3]), arg[4]
local store = assert(aeon.open(uri))
local out = io.stdout
out:setvbuf("line")
local done = 0
while done < count do
  local head = assert(store:head(key))
  local r = assert(store:append(key, { { type = "raced", data = { writer = writer, n = done } } },
    { expected_revision = head }))
  if r.type == "appended" then
    out:write("appended ", r.revision, " ", head, "\n")
    done = done + 1
  else
    out:write("conflict ", r.expected_revision, " ", r.actual_revision, "\n")
  end
end
store:close()
