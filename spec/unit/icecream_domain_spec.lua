-- The ice cream truck's rules (apps/domain/icecream.lua), with aeon.testing:
-- no store, no build needed.
local testing = require "aeon.testing"
local icecream = require "domain.icecream"

local given = testing.for_aggregate(icecream, { key = "truck/1" })
local T = "truck/1"
local restock, sell = icecream.restock, icecream.sell
local restocked, sold = icecream.flavour_restocked, icecream.flavour_sold
local went_out, not_in_stock = icecream.flavour_went_out_of_stock, icecream.flavour_was_not_in_stock

describe("ice cream truck domain #unit", function()
  describe("restocking", function()
    it("records the flavour and quantity restocked", function()
      given {}
        .when(restock(T, "Vanilla", 3))
        .then_events { restocked(T, "Vanilla", 3) }
        .then_state { Vanilla = 3, Strawberry = 0 }
    end)

    it("adds to the stock already there", function()
      given { restocked(T, "Strawberry", 2) }
        .when(restock(T, "Strawberry", 5))
        .then_state { Vanilla = 0, Strawberry = 7 }
    end)

    it("refuses a restock that would take the stock past 2^63-1, which wrapped it negative", function()
      given { restocked(T, "Vanilla", 3) }
        .when(restock(T, "Vanilla", math.maxinteger))
        .then_rejected "past 9223372036854775807"
      given { restocked(T, "Vanilla", math.maxinteger - 1) }
        .when(restock(T, "Vanilla", 1))
        .then_events { restocked(T, "Vanilla", 1) }
        .then_state { Vanilla = math.maxinteger, Strawberry = 0 }
      given { restocked(T, "Vanilla", math.maxinteger) } .when(restock(T, "Vanilla", 1)) .then_rejected "past"
      given { restocked(T, "Vanilla", math.maxinteger) }
        .when(restock(T, "Strawberry", math.maxinteger))
        .then_events { restocked(T, "Strawberry", math.maxinteger) }
    end)

    it("needs a positive integer quantity", function()
      for _, q in ipairs { 0, -1, 1.5, "3", false, math.huge } do
        given {} .when(restock(T, "Vanilla", q)) .then_rejected "quantity must be a positive integer"
      end
      given {} .when(restock(T, "Vanilla", nil)) .then_rejected "quantity must be a positive integer"
    end)

    it("takes a float quantity with an integer value as that integer", function()
      given {} .when(restock(T, "Vanilla", 2.0)) .then_events { restocked(T, "Vanilla", 2) }
      assert.same("integer", math.type(icecream.check_quantity(2.0)))
    end)

    it("knows only Vanilla and Strawberry, on trucks truck/N", function()
      given {} .when(restock(T, "Chocolate", 1)) .then_rejected "flavour must be Vanilla or Strawberry"
      given {} .when(restock("truck/x", "Vanilla", 1)) .then_rejected "truck must be truck/N"
      given {} .when(restock("lorry/1", "Vanilla", 1)) .then_rejected "truck must be truck/N"
      given {} .when(sell("truck/1/2", "Vanilla")) .then_rejected "truck must be truck/N"
      given {} .when(sell(T, "vanilla")) .then_rejected "flavour must be"
    end)
  end)

  describe("selling", function()
    it("sells one scoop of a flavour in stock", function()
      given { restocked(T, "Vanilla", 3) }
        .when(sell(T, "Vanilla"))
        .then_events { sold(T, "Vanilla") }
        .then_state { Vanilla = 2, Strawberry = 0 }
    end)

    it("sells the last scoop and the flavour goes out of stock", function()
      given { restocked(T, "Vanilla", 2), sold(T, "Vanilla") }
        .when(sell(T, "Vanilla"))
        .then_events { sold(T, "Vanilla"), went_out(T, "Vanilla") }
        .then_state { Vanilla = 0, Strawberry = 0 }
    end)

    it("sells nothing when the flavour is not in stock", function()
      given {} .when(sell(T, "Strawberry")) .then_events { not_in_stock(T, "Strawberry") }
      given { restocked(T, "Vanilla", 1), sold(T, "Vanilla"), went_out(T, "Vanilla") }
        .when(sell(T, "Vanilla"))
        .then_events { not_in_stock(T, "Vanilla") }
        .then_state { Vanilla = 0, Strawberry = 0 }
    end)

    it("keeps each flavour's stock apart", function()
      given { restocked(T, "Strawberry", 1) } .when(sell(T, "Vanilla")) .then_events { not_in_stock(T, "Vanilla") }
    end)
  end)

  it("shapes event data as Aeon's domain.ts does", function()
    assert.same({ type = "FlavourRestocked",
      data = { type = "FlavourRestocked", truck = T, flavour = "Vanilla", quantity = 3 } },
      restocked(T, "Vanilla", 3))
    assert.same({ type = "FlavourSold", data = { type = "FlavourSold", truck = T, flavour = "Vanilla" } },
      sold(T, "Vanilla"))
    assert.same({ type = "FlavourWentOutOfStock",
      data = { type = "FlavourWentOutOfStock", truck = T, flavour = "Vanilla" } }, went_out(T, "Vanilla"))
    assert.same({ type = "FlavourWasNotInStock",
      data = { type = "FlavourWasNotInStock", truck = T, flavour = "Vanilla" } }, not_in_stock(T, "Vanilla"))
  end)

  describe("projections", function()
    local history = { restocked(T, "Vanilla", 2), sold(T, "Vanilla"), sold(T, "Vanilla"),
      went_out(T, "Vanilla"), not_in_stock(T, "Vanilla"), restocked(T, "Strawberry", 4),
      sold(T, "Strawberry") }

    it("in_stock counts what is left of each flavour", function()
      testing.for_projection(icecream.in_stock)(history) .then_state { Vanilla = 0, Strawberry = 3 }
      testing.for_projection(icecream.in_stock) {} .then_state { Vanilla = 0, Strawberry = 0 }
    end)

    it("sold counts the scoops sold of each flavour", function()
      testing.for_projection(icecream.sold)(history) .then_state { Vanilla = 2, Strawberry = 1 }
    end)

    it("ignore events of other kinds", function()
      testing.for_projection(icecream.sold) { { type = "TruckPainted", data = { colour = "pink" } } }
        .then_state { Vanilla = 0, Strawberry = 0 }
    end)
  end)
end)
