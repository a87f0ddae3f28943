--- aeon.testing: given/when/then for aggregates and projections, in busted.
--
--     local testing = require "aeon.testing"
--     local given = testing.for_aggregate(counter.aggregate)
--
--     it("never goes below 0", function()
--       given {}
--         .when { type = "decrement", name = "a" }
--         .then_nothing()
--     end)
--
--     given { incremented "a" } .when(decrement "a") .then_events { decremented "a" }
--     given { ... } .when(command) .then_rejected "quantity must be"   -- a Lua pattern
--     given { ... } .when(command) .then_events { ... } .then_state(1)  -- chains
--
--     local given = testing.for_projection(icecream.in_stock)
--     given { restocked("truck/1", "Vanilla", 2) } .then_state { Vanilla = 2, Strawberry = 0 }
--
-- `given` takes events in the form `decide` returns (`{ type, data }`); each
-- is folded as the store would hand it over, with a `key` (opts.key, default
-- "test/1"), an increasing `revision` and a `committed_at`. An aggregate or
-- projection is anything with `initial` and `evolve` (and `decide` for
-- `when`); nothing here touches a store, so these specs need no build.
-- Failures are luassert failures, with the state and what was decided in
-- the message.
local assert = require "luassert"

local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error
local format, math_type, sort, concat = string.format, math.type, table.sort, table.concat

local M = {}

local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  return out
end

-- A readable one-line rendering for failure messages.
local function show(v, depth)
  depth = depth or 0
  if type(v) == "string" then return format("%q", v) end
  if type(v) ~= "table" then return tostring(v) end
  if depth > 4 then return "{...}" end
  local parts, n = {}, #v
  for i = 1, n do parts[#parts + 1] = show(v[i], depth + 1) end
  local keys = {}
  for k in pairs(v) do
    if not (math_type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. " = " .. show(v[k], depth + 1) end
  return "{ " .. concat(parts, ", ") .. " }"
end
M.show = show

local function committed(key, i, e)
  if type(e) ~= "table" or type(e.type) ~= "string" then
    error(format("given: event %d needs a type (got %s)", i, show(e)), 0)
  end
  return { key = e.key or key, revision = e.revision or format("%026d", i), type = e.type,
    data = e.data, correlation_id = e.correlation_id,
    committed_at = e.committed_at or format("2026-01-01T00:00:%02d.%03dZ", i // 1000 % 60, i % 1000) }
end

local function evolve(subject, state, event)
  local next_state = subject.evolve(state, event)
  if next_state == nil then
    error(format("evolve returned nil for a '%s' event (forgot to return the state?)", event.type), 0)
  end
  return next_state
end

local function outcome(subject, key, state, history, command)
  local events, reason = subject.decide(copy(state), command)
  local context = format("given state %s, when %s", show(state), show(command))
  local o = {}

  local function decided(what)
    assert.is_not_nil(events, format("%s: expected %s, but the command was rejected: %s",
      context, what, tostring(type(reason) == "table" and reason.message or reason)))
    assert.is_table(events, context .. ": decide must return a list of events")
  end

  --- The command decided exactly these events.
  function o.then_events(expected)
    decided("events " .. show(expected))
    assert.same(expected, events, context .. ": decided " .. show(events))
    return o
  end

  --- The command decided no events and was not rejected.
  function o.then_nothing()
    decided("no events")
    assert.same({}, events, context .. ": expected no events, decided " .. show(events))
    return o
  end

  --- The command was rejected; its reason matches `pattern` (a Lua pattern)
  -- when one is given.
  function o.then_rejected(pattern)
    assert.is_nil(events, context .. ": expected a rejection, but decided " .. show(events))
    local why = type(reason) == "table" and reason.message or reason
    assert.is_string(why, context .. ": a rejection needs a reason")
    if pattern then
      assert.is_truthy(why:find(pattern),
        format("%s: rejected with %q, which does not match %q", context, why, pattern))
    end
    return o
  end

  --- The state after the decided events.
  function o.then_state(expected)
    decided("a state")
    local s = copy(state)
    for i, e in ipairs(events) do s = evolve(subject, s, committed(key, #history + i, e)) end
    assert.same(expected, s, context .. ": state after " .. show(events))
    return o
  end

  return o
end

local function scenario(subject, opts, with_decide)
  if type(subject) ~= "table" or subject.initial == nil or type(subject.evolve) ~= "function" then
    error("needs a table with initial and evolve", 3)
  end
  if with_decide and type(subject.decide) ~= "function" then
    error("an aggregate needs a decide function", 3)
  end
  local key = opts and opts.key or "test/1"
  return function(history)
    if type(history) ~= "table" then error("given needs a list of events", 2) end
    local state = copy(subject.initial)
    for i, e in ipairs(history) do state = evolve(subject, state, committed(key, i, e)) end
    local s = { state = state }
    --- The state the given events fold into.
    function s.then_state(expected)
      assert.same(expected, state, "state after " .. show(history))
      return s
    end
    if with_decide then
      function s.when(command) return outcome(subject, key, state, history, command) end
    end
    return s
  end
end

--- Returns `given` for an aggregate: given(events).when(command).then_...
function M.for_aggregate(aggregate, opts) return scenario(aggregate, opts, true) end

--- Returns `given` for a projection: given(events).then_state(expected)
function M.for_projection(projection, opts) return scenario(projection, opts, false) end

return M
