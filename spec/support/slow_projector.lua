-- A projection runner for the lease specs whose batches take a while: the
-- projection `slow` (keys slow/*, lease and batch size from the command
-- line) sleeps PAUSE seconds in its handler for each event, prints
-- "handled REVISION" (flushed, so a line is never missing for a handled
-- event) and counts the event in its view. Prints "ready" before it runs;
-- runs until killed.
-- Run as: aeon-host spec/support/slow_projector.lua URI LEASE BATCH PAUSE
local aeon = require "aeon"
local core = require "aeon.core"
local project = require "aeon.project"

local uri = arg[1]
local lease, batch, pause = tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4])

local app = aeon.app "slow"
app:projection("slow", { view = "slow", key = "slow/*", lease = lease, batch = batch },
  function(view, event)
    core.sleep(pause)
    io.stdout:write("handled " .. event.revision .. "\n")
    io.stdout:flush()
    local doc = view:get(event.key) or { n = 0 }
    view:put(event.key, { n = doc.n + 1 }, event.revision)
  end)

local store = assert(aeon.open(uri))
io.stdout:write("ready\n")
io.stdout:flush()
assert(project.run(store, app, { "slow" }, {}))
