--- The counter domain, as Aeon's examples/counter has it, shared by the
-- counter apps. Pure Lua, no I/O: the apps run it with aeon.execute, the
-- specs with aeon.testing.
--
-- Counters start at 0 and never go negative: incrementing is always
-- allowed; decrementing a counter at 0 decides nothing (no event, no
-- error). A counter NAME lives on the key `counter/NAME`; its events carry
-- Aeon's data, `{ type = "incremented" | "decremented", name = NAME }`, so
-- Aeon's TypeScript counters and these apps can share one store.
--
-- The module is the aggregate (`initial`, `evolve`, `decide`) and also
-- builds its commands and events.
local type, tostring, math_type, maxinteger = type, tostring, math.type, math.maxinteger

local counter = { initial = 0 }

--- The key a counter's events live on.
function counter.key(name) return "counter/" .. name end

--- A counter's name as given by a caller: a non-empty string (an integer
-- is taken as its decimal text). Returns the name, or nil and why not.
function counter.check_name(name)
  if math_type(name) == "integer" then name = tostring(name) end
  if name == nil or name == "" then return nil, "name is required" end
  if type(name) ~= "string" then return nil, "name must be a string" end
  return name
end

-- Commands.
function counter.increment(name) return { type = "increment", name = name } end
function counter.decrement(name) return { type = "decrement", name = name } end

-- Events, as decide returns them and the store appends them.
function counter.incremented(name)
  return { type = "incremented", data = { type = "incremented", name = name } }
end

function counter.decremented(name)
  return { type = "decremented", data = { type = "decremented", name = name } }
end

--- The counter's value after one more event.
function counter.evolve(value, event)
  if event.type == "incremented" then return value + 1 end
  if event.type == "decremented" then return value - 1 end
  return value
end

--- What a command does to a counter of this value.
function counter.decide(value, command)
  if command.type == "increment" then
    -- One more than the largest integer would wrap around to the smallest.
    if value >= maxinteger then return nil, "the counter is at its largest value" end
    return { counter.incremented(command.name) }
  elseif command.type == "decrement" then
    if value > 0 then return { counter.decremented(command.name) } end
    return {}
  end
  return nil, "unknown counter command '" .. tostring(command.type) .. "'"
end

return counter
