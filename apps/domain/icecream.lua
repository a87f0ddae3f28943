--- The ice cream truck of The Dev Owl's Event Sourcing DIY series, as
-- Aeon's examples/event-sourcing-diy has it. Pure Lua, no I/O: the app runs
-- it with aeon.execute, the specs with aeon.testing.
--
-- Each truck (`truck/N`, also its key) sells two flavours, Vanilla and
-- Strawberry. Restocking adds a positive whole quantity of a flavour, as
-- long as the stock stays a 64-bit integer (at most 2^63-1).
-- Selling a flavour in stock sells one scoop, and when that was the last
-- one the flavour also goes out of stock; selling a flavour with none in
-- stock sells nothing and records that it was not in stock.
--
-- Events carry Aeon's data: the command's fields with the event's type,
-- e.g. `{ type = "FlavourRestocked", truck = "truck/1", flavour = "Vanilla",
-- quantity = 3 }`, so Aeon's TypeScript scripts can share the store.
--
-- The module is the truck aggregate (`initial`, `evolve`, `decide`; its
-- state is the stock per flavour); `in_stock` and `sold` are the
-- projections the queries fold.
local type, tostring, pairs, tointeger, maxinteger = type, tostring, pairs, math.tointeger,
  math.maxinteger
local format = string.format

local icecream = {}

icecream.FLAVOURS = { "Vanilla", "Strawberry" }
local IS_FLAVOUR = { Vanilla = true, Strawberry = true }

local function zero() return { Vanilla = 0, Strawberry = 0 } end

-- Checks of what callers give. Each returns the value, or nil and why not.

function icecream.check_truck(truck)
  if type(truck) ~= "string" or not truck:match("^truck/%d+$") then
    return nil, format("truck must be truck/N, e.g. truck/1 (got %s)", tostring(truck))
  end
  return truck
end

function icecream.check_flavour(flavour)
  if not IS_FLAVOUR[flavour] then
    return nil, format("flavour must be Vanilla or Strawberry (got %s)", tostring(flavour))
  end
  return flavour
end

function icecream.check_quantity(quantity)
  local q = type(quantity) == "number" and tointeger(quantity)
  if not q or q < 1 then
    return nil, format("quantity must be a positive integer (got %s)", tostring(quantity))
  end
  return q
end

-- Commands (Aeon's behavior.ts).

function icecream.restock(truck, flavour, quantity)
  return { type = "RestockFlavour", truck = truck, flavour = flavour, quantity = quantity }
end

function icecream.sell(truck, flavour)
  return { type = "SellFlavour", truck = truck, flavour = flavour }
end

-- Events (Aeon's domain.ts), as decide returns them and the store appends them.

local function event(type, truck, flavour, quantity)
  return { type = type, data = { type = type, truck = truck, flavour = flavour, quantity = quantity } }
end

function icecream.flavour_restocked(truck, flavour, quantity)
  return event("FlavourRestocked", truck, flavour, quantity)
end

function icecream.flavour_sold(truck, flavour) return event("FlavourSold", truck, flavour) end

function icecream.flavour_went_out_of_stock(truck, flavour)
  return event("FlavourWentOutOfStock", truck, flavour)
end

function icecream.flavour_was_not_in_stock(truck, flavour)
  return event("FlavourWasNotInStock", truck, flavour)
end

-- Projections (Aeon's projection.ts): counts per flavour, never changed in
-- place.

local function add(counts, flavour, n)
  if type(flavour) ~= "string" then return counts end
  local out = {}
  for f, c in pairs(counts) do out[f] = c end
  out[flavour] = (out[flavour] or 0) + n
  return out
end

local function flavours_in_stock(counts, e)
  if e.type == "FlavourRestocked" then return add(counts, e.data.flavour, e.data.quantity) end
  if e.type == "FlavourSold" then return add(counts, e.data.flavour, -1) end
  return counts
end

local function sold_flavours(counts, e)
  if e.type == "FlavourSold" then return add(counts, e.data.flavour, 1) end
  return counts
end

--- How many scoops of each flavour a truck has.
icecream.in_stock = { initial = zero(), evolve = flavours_in_stock }

--- How many scoops of each flavour a truck has sold.
icecream.sold = { initial = zero(), evolve = sold_flavours }

-- The truck aggregate.

icecream.initial = zero()
icecream.evolve = flavours_in_stock

-- A command's fields, checked; nil and why not when one is wrong.
local function check(command)
  local ok, why = icecream.check_truck(command.truck)
  if ok then ok, why = icecream.check_flavour(command.flavour) end
  if ok and command.type == "RestockFlavour" then ok, why = icecream.check_quantity(command.quantity) end
  return ok, why
end

--- What a command does to a truck with this stock.
function icecream.decide(stock, command)
  local ok, why = check(command)
  if not ok then return nil, why end
  local truck, flavour = command.truck, command.flavour
  if command.type == "RestockFlavour" then
    local quantity, scoops = tointeger(command.quantity), stock[flavour] or 0
    -- A stock past the largest integer would wrap around to a negative one.
    if scoops > maxinteger - quantity then
      return nil, format("restocking %d %s would take the stock of %d past %d", quantity, flavour,
        scoops, maxinteger)
    end
    return { icecream.flavour_restocked(truck, flavour, quantity) }
  elseif command.type == "SellFlavour" then
    local scoops = stock[flavour] or 0
    if scoops <= 0 then return { icecream.flavour_was_not_in_stock(truck, flavour) } end
    if scoops == 1 then
      return { icecream.flavour_sold(truck, flavour), icecream.flavour_went_out_of_stock(truck, flavour) }
    end
    return { icecream.flavour_sold(truck, flavour) }
  end
  return nil, "unknown ice cream truck command '" .. tostring(command.type) .. "'"
end

return icecream
