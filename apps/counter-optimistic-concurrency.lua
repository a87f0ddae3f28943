--- counter-optimistic-concurrency: optimistic concurrency, made visible.
--
-- Each command reads the counter's history up to its head, decides, and
-- appends with that head as the expected revision. When another writer
-- appended in between, the store refuses the append and the command reports
-- the conflict (exit status 1, HTTP 409) instead of retrying, so callers see
-- optimistic concurrency at work and may try again. apps/counter.lua retries
-- for them.
--
--   aeon-host apps/counter-optimistic-concurrency.lua increment name=a
--   aeon-host apps/counter-optimistic-concurrency.lua decrement a
--   aeon-host apps/counter-optimistic-concurrency.lua counter a
local aeon = require "aeon"
local counter = require "domain.counter"
local counter_commands = require "domain.counter_commands"

local app = aeon.app "counter-optimistic-concurrency"

local OPTIONS = { on_conflict = "report" }

counter_commands.declare(app, OPTIONS)

app:query("counter", { params = { "name" }, description = "the counter NAME, replayed from its events" },
  function(ctx, args)
  local name, why = counter.check_name(args.name)
  if not name then return aeon.invalid(why) end
  local value, err = aeon.load(ctx.store, counter, counter.key(name))
  if value == nil then return nil, err end
  return { value = value }
end)

return app
