--- icecream: the ice cream truck of the Event Sourcing DIY series, as Aeon
-- has it (examples/event-sourcing-diy), with one key per truck.
--
-- Commands decide through the truck aggregate (apps/domain/icecream.lua)
-- with optimistic concurrency and retries; queries fold the truck's events
-- on the spot, as the series does, with no stored read model. `history`
-- without a truck reads every truck's events in global order.
--
--   aeon-host apps/icecream.lua restock truck/1 Vanilla 3
--   aeon-host apps/icecream.lua sell truck/1 Vanilla
--     {"count":1,"events":["FlavourSold"],"revision":"01K...","stock":2,"type":"appended"}
--   aeon-host apps/icecream.lua stock truck/1 Vanilla      -> 2
--   aeon-host apps/icecream.lua sold truck/1 Vanilla       -> 1
--   aeon-host apps/icecream.lua history truck/1            -> that truck's events
--   aeon-host apps/icecream.lua history                    -> every truck's events
--
-- Evolving events: the truck's first version recorded a restock as
-- `StockAdded` with `{ flavour, amount }`. Those events stay in the store
-- as they were written; the upcaster below reads each one as the
-- `FlavourRestocked` of today (`{ type, truck, flavour, quantity }`), so
-- the aggregate, the queries and `history` only ever see the current
-- shape, and `aeon-host apps/icecream.lua events read truck/1` prints them
-- upcast (`aeon-host events read truck/1` prints them as stored).
local aeon = require "aeon"
local icecream = require "domain.icecream"

local ipairs, pcall, tostring = ipairs, pcall, tostring

local app = aeon.app "icecream"

-- StockAdded { flavour, amount } (the first version) -> FlavourRestocked.
app:upcast("StockAdded", function(event)
  local old = event.data or {}
  event.type = "FlavourRestocked"
  event.data = { type = "FlavourRestocked", truck = event.key, flavour = old.flavour,
    quantity = old.amount }
  return event
end)

-- Checks the arguments a handler names, in order; returns their values,
-- or nil and a usage error.
local CHECKS = { truck = icecream.check_truck, flavour = icecream.check_flavour,
  quantity = icecream.check_quantity }

local function arguments(usage, args, ...)
  local values = {}
  for i, name in ipairs { ... } do
    local v, why = CHECKS[name](args[name])
    if v == nil then return aeon.invalid("usage: " .. usage .. ": " .. why) end
    values[i] = v
  end
  return values
end

-- A command's answer: the append result, the types of the events it
-- appended and the flavour's stock after them.
local function answer(flavour, result, stock, events)
  if not result then return nil, stock end
  local types = {}
  for i, e in ipairs(events) do types[i] = e.type end
  result.events, result.stock = types, stock[flavour]
  return result
end

app:command("restock", { params = { "truck", "flavour", "quantity" },
  description = "adds QUANTITY scoops of FLAVOUR (Vanilla, Strawberry) to TRUCK (truck/N)" },
  function(ctx, args)
  local a, err = arguments("restock TRUCK FLAVOUR QUANTITY", args, "truck", "flavour", "quantity")
  if not a then return nil, err end
  local truck, flavour, quantity = a[1], a[2], a[3]
  return answer(flavour, aeon.execute(ctx.store, icecream, truck, icecream.restock(truck, flavour, quantity)))
end)

app:command("sell", { params = { "truck", "flavour" },
  description = "sells one scoop of FLAVOUR from TRUCK, if it has one" }, function(ctx, args)
  local a, err = arguments("sell TRUCK FLAVOUR", args, "truck", "flavour")
  if not a then return nil, err end
  local truck, flavour = a[1], a[2]
  return answer(flavour, aeon.execute(ctx.store, icecream, truck, icecream.sell(truck, flavour)))
end)

-- A query answering one flavour's count from a projection of the truck.
local function count_query(usage, projection)
  return function(ctx, args)
    local a, err = arguments(usage, args, "truck", "flavour")
    if not a then return nil, err end
    local counts, lerr = aeon.load(ctx.store, projection, a[1])
    if counts == nil then return nil, lerr end
    return counts[a[2]]
  end
end

app:query("stock", { params = { "truck", "flavour" }, description = "scoops of FLAVOUR TRUCK has" },
  count_query("stock TRUCK FLAVOUR", icecream.in_stock))
app:query("sold", { params = { "truck", "flavour" }, description = "scoops of FLAVOUR TRUCK has sold" },
  count_query("sold TRUCK FLAVOUR", icecream.sold))

-- Collects a read's events; a store failure mid-read is the store's, not
-- the app's.
local function collect(iter, s, c, cursor)
  if not iter then return aeon.store_failure(s) end
  local _ <close> = cursor
  local events = {}
  local ok, err = pcall(function()
    for e in iter, s, c do events[#events + 1] = e end
  end)
  if not ok then return aeon.store_failure(tostring(err)) end
  return events
end

app:query("history", { params = { "truck" },
  description = "TRUCK's events; without TRUCK, every truck's in commit order" }, function(ctx, args)
  if args.truck == nil then
    return collect(ctx.store:read_all { filter = { key = aeon.filter.prefix("truck/") } })
  end
  local a, err = arguments("history [TRUCK]", args, "truck")
  if not a then return nil, err end
  return collect(ctx.store:read(a[1]))
end)

return app
