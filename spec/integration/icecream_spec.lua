-- apps/icecream.lua through the command line, on every backend.
local aeon = require "aeon"
local helpers = require "helpers"

local pluck = helpers.pluck

for _, backend in helpers.each_backend() do
  describe("apps/icecream.lua #cli #" .. backend, function()
    local uri, env
    before_each(function() uri, env = helpers.fresh_env(backend) end)

    local function host(...) return helpers.run_app("apps/icecream.lua", env, ...) end

    local function ok(...)
      local code, answer, err = host(...)
      assert.same(0, code, err)
      return answer
    end

    local function with_store(f) helpers.with_store(uri, f) end

    it("restock 2 Vanilla, sell three times: sold, sold and out of stock, not in stock", function()
      local r = ok("restock", "truck/1", "Vanilla", "2")
      assert.same({ "FlavourRestocked" }, r.events)
      assert.same(2, r.stock)
      assert.same({ "FlavourSold" }, ok("sell", "truck/1", "Vanilla").events)
      assert.same({ "FlavourSold", "FlavourWentOutOfStock" }, ok("sell", "truck/1", "Vanilla").events)
      r = ok("sell", "truck/1", "Vanilla")
      assert.same({ "FlavourWasNotInStock" }, r.events)
      assert.same(0, r.stock)

      assert.same({ "FlavourRestocked", "FlavourSold", "FlavourSold", "FlavourWentOutOfStock",
        "FlavourWasNotInStock" }, pluck(ok("history", "truck/1"), "type"))
      assert.same(0, ok("stock", "truck/1", "Vanilla"))
      assert.same(2, ok("sold", "truck/1", "Vanilla"))
      assert.same(0, ok("stock", "truck/1", "Strawberry"))
      assert.same(0, ok("sold", "truck/1", "Strawberry"))
    end)

    it("stores Aeon's event data on the truck's key", function()
      ok("restock", "truck/7", "Strawberry", "3")
      ok("sell", "truck/7", "Strawberry")
      with_store(function(store)
        local events = helpers.collect(store:read("truck/7"))
        assert.same({ type = "FlavourRestocked", truck = "truck/7", flavour = "Strawberry", quantity = 3 },
          events[1].data)
        assert.same({ type = "FlavourSold", truck = "truck/7", flavour = "Strawberry" }, events[2].data)
      end)
    end)

    it("takes name=value arguments too", function()
      ok("restock", "truck=truck/3", "flavour=Vanilla", "quantity=4")
      assert.same(4, ok("stock", "flavour=Vanilla", "truck=truck/3"))
    end)

    it("shows the history of every truck in global order, and of trucks only", function()
      ok("restock", "truck/1", "Vanilla", "1")
      ok("restock", "truck/2", "Strawberry", "1")
      with_store(function(store) store:append("counter/x", { { type = "incremented", data = {} } }) end)
      ok("sell", "truck/1", "Vanilla")
      ok("sell", "truck/2", "Vanilla")
      local all = ok("history")
      assert.same({ "truck/1", "truck/2", "truck/1", "truck/1", "truck/2" }, pluck(all, "key"))
      assert.same({ "FlavourRestocked", "FlavourRestocked", "FlavourSold", "FlavourWentOutOfStock",
        "FlavourWasNotInStock" }, pluck(all, "type"))
      for i = 2, #all do assert.is_true(all[i - 1].revision < all[i].revision) end
      assert.same({ "truck/2", "truck/2" }, pluck(ok("history", "truck/2"), "key"))
    end)

    it("refuses a bad truck, flavour or quantity with a usage error, and appends nothing", function()
      local bad = {
        { { "restock", "truck/1", "Vanilla", "0" }, "quantity must be a positive integer" },
        { { "restock", "truck/1", "Vanilla", "-2" }, "quantity must be a positive integer" },
        { { "restock", "truck/1", "Vanilla", "1.5" }, "quantity must be a positive integer" },
        { { "restock", "truck/1", "Vanilla", "lots" }, "quantity must be a positive integer" },
        { { "restock", "truck/1", "Vanilla" }, "quantity must be a positive integer" },
        { { "restock", "truck/1", "Chocolate", "1" }, "flavour must be Vanilla or Strawberry" },
        { { "restock", "lorry/1", "Vanilla", "1" }, "truck must be truck/N" },
        { { "sell", "truck/one", "Vanilla" }, "truck must be truck/N" },
        { { "sell", "truck/1" }, "flavour must be Vanilla or Strawberry" },
        { { "sell" }, "truck must be truck/N" },
        { { "stock", "truck/1", "Mint" }, "flavour must be" },
        { { "history", "van/1" }, "truck must be truck/N" },
        { { "sell", "truck/1", "Vanilla", "extra" }, "takes 2 positional" },
      }
      for _, case in ipairs(bad) do
        local code, _, err = host(table.unpack(case[1]))
        local call = table.concat(case[1], " ")
        assert.same(2, code, call)
        assert.matches(case[2], err, 1, true, call)
        assert.same(1, select(2, err:gsub("\n", "")), call .. ": one line on stderr")
      end
      local _, _, err = host("restock", "truck/1", "Vanilla", "0")
      assert.matches("^aeon%-host: usage: restock TRUCK FLAVOUR QUANTITY: ", err)
      with_store(function(store) assert.same(0, #helpers.collect(store:read_all())) end)
    end)
    it("reads the first version's StockAdded events as FlavourRestocked (upcast), leaving them stored as written", function()
      with_store(function(store)
        assert(store:append("truck/1", { { type = "StockAdded", data = { flavour = "Vanilla", amount = 2 } } }))
      end)
      assert.same(2, ok("stock", "truck/1", "Vanilla"))
      local r = ok("sell", "truck/1", "Vanilla")
      assert.same({ "FlavourSold" }, r.events)
      assert.same(1, r.stock)
      local h = ok("history", "truck/1")
      assert.same({ "FlavourRestocked", "FlavourSold" }, pluck(h, "type"))
      assert.same({ type = "FlavourRestocked", truck = "truck/1", flavour = "Vanilla", quantity = 2 },
        h[1].data)
      local code, out, err = helpers.run_host({ "apps/icecream.lua", "events", "read", "truck/1", "--json" },
        { env = env })
      assert.same(0, code, err)
      assert.same("FlavourRestocked", aeon.json.decode(out:match("[^\n]+")).type)
      with_store(function(store)
        local stored = helpers.collect(store:read("truck/1"))
        assert.same({ "StockAdded", "FlavourSold" }, pluck(stored, "type"))
        assert.same({ flavour = "Vanilla", amount = 2 }, stored[1].data)
      end)
    end)

    it("decides on upcast StockAdded events under aeon.testing with the app's upcasters", function()
      local testing = require "aeon.testing"
      local icecream = require "domain.icecream"
      local app = assert(loadfile("apps/icecream.lua"))()
      testing.for_aggregate(icecream, { key = "truck/1", app = app }) {
        { type = "StockAdded", data = { flavour = "Strawberry", amount = 1 } } }
        .when(icecream.sell("truck/1", "Strawberry"))
        .then_events { icecream.flavour_sold("truck/1", "Strawberry"),
          icecream.flavour_went_out_of_stock("truck/1", "Strawberry") }
    end)
  end)
end
