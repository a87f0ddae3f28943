--- counter-snapshot: snapshots, so a long history is not replayed each time.
--
-- After an append, once 10 events have accumulated since the last snapshot,
-- the command saves the counter's value as a snapshot at the revision it
-- appended. Commands and the query start from the newest snapshot and read
-- only the events after it; the query says which snapshot it used and how
-- many events it replayed on top. Conflicts are reported (exit status 1,
-- HTTP 409), as in counter-optimistic-concurrency.
--
--   aeon-host apps/counter-snapshot.lua increment name=a
--   aeon-host apps/counter-snapshot.lua counter a
--     {"replayed":5,"snapshot":"01K...","value":25}
local aeon = require "aeon"
local counter = require "domain.counter"
local counter_commands = require "domain.counter_commands"

local app = aeon.app "counter-snapshot"

local SNAPSHOT_EVERY = 10
local OPTIONS = { snapshot_every = SNAPSHOT_EVERY, on_conflict = "report" }

counter_commands.declare(app, OPTIONS)

app:query("counter", { params = { "name" }, description = "the counter NAME, from its newest snapshot and the events after it" },
  function(ctx, args)
  local name, why = counter.check_name(args.name)
  if not name then return aeon.invalid(why) end
  local stats = {}
  local value, err = aeon.load(ctx.store, counter, counter.key(name), { snapshots = true, stats = stats })
  if value == nil then return nil, err end
  return { value = value, snapshot = stats.snapshot, replayed = stats.events_read }
end)

return app
