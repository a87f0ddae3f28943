-- A writer for the projection specs: appends `increments` `incremented`
-- events to each of the counters PREFIX1 .. PREFIX<counters>, a round of
-- one event per counter at a time, pausing `pause` seconds between rounds,
-- then exits 0. Event data is the counter apps' ({ type, name }).
-- Run as: aeon-host spec/support/counter_writer.lua URI PREFIX COUNTERS INCREMENTS [PAUSE]
local aeon = require "aeon"
local core = require "aeon.core"

local uri, prefix = arg[1], arg[2]
local counters, increments = tonumber(arg[3]), tonumber(arg[4])
local pause = tonumber(arg[5] or "0")
local store = assert(aeon.open(uri))
for _ = 1, increments do
  for c = 1, counters do
    local name = prefix .. c
    assert(store:append("counter/" .. name,
      { { type = "incremented", data = { type = "incremented", name = name } } }))
  end
  if pause > 0 then core.sleep(pause) end
end
store:close()
