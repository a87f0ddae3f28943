--- counter-basic: the simplest event-sourced app.
--
-- Commands append `incremented` / `decremented` events to `counter/NAME`;
-- the query answers by replaying the counter's whole history every time.
-- Decrementing a counter at 0 appends nothing: counters never go negative.
-- Event data is Aeon's ({ type, name }), so Aeon's TypeScript counter can
-- share the store.
--
--   aeon-host apps/counter-basic.lua increment name=a
--   aeon-host apps/counter-basic.lua counter name=a
local aeon = require "aeon"

local app = aeon.app "counter-basic"

local function counter_key(args)
  local name = args.name
  if name == nil or name == "" then return nil, "name is required" end
  if type(name) ~= "string" and type(name) ~= "number" then
    return nil, "name must be a string"
  end
  return "counter/" .. tostring(name), tostring(name)
end

-- Replays the counter's history into its current value and counts.
local function replay(store, key)
  local counter = { value = 0, increments = 0, decrements = 0 }
  for event in store:read(key) do
    if event.type == "incremented" then
      counter.value, counter.increments = counter.value + 1, counter.increments + 1
    elseif event.type == "decremented" then
      counter.value, counter.decrements = counter.value - 1, counter.decrements + 1
    end
  end
  return counter
end

local function append(store, key, event)
  local result, err = store:append(key, { event })
  if not result then return aeon.store_failure(err) end
  return result
end

app:command("increment", { params = { "name" }, description = "adds 1 to the counter NAME" },
  function(ctx, args)
  local key, name = counter_key(args)
  if not key then return aeon.invalid(name) end
  return append(ctx.store, key, { type = "incremented", data = { type = "incremented", name = name } })
end)

app:command("decrement", { params = { "name" },
  description = "takes 1 from the counter NAME, unless it is at 0" }, function(ctx, args)
  local key, name = counter_key(args)
  if not key then return aeon.invalid(name) end
  if replay(ctx.store, key).value <= 0 then return { type = "unchanged" } end
  return append(ctx.store, key, { type = "decremented", data = { type = "decremented", name = name } })
end)

app:query("counter", { params = { "name" }, description = "the counter NAME, replayed from its events" },
  function(ctx, args)
  local key, name = counter_key(args)
  if not key then return aeon.invalid(name) end
  return replay(ctx.store, key)
end)

return app
