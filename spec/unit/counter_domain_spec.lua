-- The counter domain's rules (apps/domain/counter.lua), with aeon.testing:
-- no store, no build needed.
local testing = require "aeon.testing"
local counter = require "domain.counter"

local given = testing.for_aggregate(counter)
local increment, decrement = counter.increment, counter.decrement
local incremented, decremented = counter.incremented, counter.decremented

describe("counter domain #unit", function()
  it("starts at 0", function()
    given {} .then_state(0)
  end)

  it("increments from any value", function()
    given {} .when(increment "a") .then_events { incremented "a" } .then_state(1)
    given { incremented "a", incremented "a" }
      .when(increment "a")
      .then_events { incremented "a" }
      .then_state(3)
  end)

  it("refuses to increment past 2^63-1 instead of wrapping to -2^63", function()
    assert.same({ nil, "the counter is at its largest value" },
      { counter.decide(math.maxinteger, increment "a") })
    assert.same({ incremented "a" }, counter.decide(math.maxinteger - 1, increment "a"))
  end)

  it("decrements a counter above 0", function()
    given { incremented "a" } .when(decrement "a") .then_events { decremented "a" } .then_state(0)
  end)

  it("decides nothing when decrementing a counter at 0", function()
    given {} .when(decrement "a") .then_nothing() .then_state(0)
    given { incremented "a", decremented "a" } .when(decrement "a") .then_nothing()
  end)

  it("folds increments and decrements into the value", function()
    given { incremented "a", incremented "a", decremented "a", incremented "a" } .then_state(2)
  end)

  it("stores Aeon's event data: { type, name } on counter/NAME", function()
    assert.same({ type = "incremented", data = { type = "incremented", name = "x" } }, incremented "x")
    assert.same({ type = "decremented", data = { type = "decremented", name = "x" } }, decremented "x")
    assert.same("counter/x", counter.key("x"))
  end)

  it("rejects a command it does not know", function()
    given {} .when { type = "reset", name = "a" } .then_rejected "unknown counter command 'reset'"
  end)

  it("checks names", function()
    assert.same("a", counter.check_name("a"))
    assert.same("7", counter.check_name(7))
    assert.same({ nil, "name is required" }, { counter.check_name(nil) })
    assert.same({ nil, "name is required" }, { counter.check_name("") })
    assert.same({ nil, "name must be a string" }, { counter.check_name({}) })
    assert.same({ nil, "name must be a string" }, { counter.check_name(1.5) })
  end)
end)
