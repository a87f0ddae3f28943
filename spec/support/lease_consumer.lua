-- A consumer of one subscription name for the lease specs: subscribes,
-- then polls, handles and acks until it is killed, printing "ready" once
-- subscribed, "handled REVISION" for each event it handles (flushed before
-- the batch is acked, so a line is never missing for a handled event) and
-- "acked POSITION" after each ack that stored its checkpoint.
-- PAUSE seconds pass between handling a batch and acking it, as if the
-- handling took that long.
-- Run as: aeon-host spec/support/lease_consumer.lua URI NAME LEASE MAX [PAUSE]
local aeon = require "aeon"
local core = require "aeon.core"

local uri, name = arg[1], arg[2]
local lease, max, pause = tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5] or "0")
local store = assert(aeon.open(uri))
local sub = assert(store:subscribe(name, { lease = lease }))
io.stdout:write("ready\n")
io.stdout:flush()
while true do
  local events, position = assert(sub:poll(0.2, max))
  if #events > 0 then
    local lines = {}
    for i, e in ipairs(events) do lines[i] = "handled " .. e.revision .. "\n" end
    io.stdout:write(table.concat(lines))
    io.stdout:flush()
    if pause > 0 then core.sleep(pause) end
  end
  local acked, err = false, nil
  if position ~= aeon.START then acked, err = sub:ack(position) end
  assert(acked ~= nil, err)
  if acked and #events > 0 then
    io.stdout:write("acked " .. position .. "\n")
    io.stdout:flush()
  end
end
