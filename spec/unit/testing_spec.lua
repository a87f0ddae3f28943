-- aeon.testing itself: each expectation passes when it holds and fails, with
-- a message that says why, when it does not.
local testing = require "aeon.testing"

-- A tiny aggregate: a bank account that refuses overdrafts, amounts that
-- are not positive whole numbers, and a balance past 2^63-1 (which would
-- wrap around to a negative one).
local account = {
  initial = { balance = 0 },
  evolve = function(s, e)
    if e.type == "deposited" then return { balance = s.balance + e.data.amount } end
    if e.type == "withdrawn" then return { balance = s.balance - e.data.amount } end
    return s
  end,
  decide = function(s, c)
    if c.type == "deposit" or c.type == "withdraw" then
      if math.type(c.amount) ~= "integer" or c.amount < 1 then
        return nil, "amount must be a positive integer"
      end
    end
    if c.type == "deposit" then
      if s.balance > math.maxinteger - c.amount then return nil, "the balance would overflow" end
      return { { type = "deposited", data = { amount = c.amount } } }
    end
    if c.type == "withdraw" then
      if c.amount > s.balance then return nil, "insufficient funds: balance " .. s.balance end
      return { { type = "withdrawn", data = { amount = c.amount } } }
    end
    if c.type == "look" then return {} end
  end,
}

local function deposited(n) return { type = "deposited", data = { amount = n } } end
local function withdrawn(n) return { type = "withdrawn", data = { amount = n } } end

local given = testing.for_aggregate(account)

-- Runs f, which must fail; returns the failure's message.
local function failure(f)
  local ok, err = pcall(f)
  assert.is_false(ok, "expected the expectation to fail")
  return tostring(type(err) == "table" and (err.message or err[1]) or err)
end

describe("aeon.testing #unit", function()
  it("passes expectations that hold", function()
    given { deposited(10) } .when { type = "withdraw", amount = 4 }
      .then_events { withdrawn(4) } .then_state { balance = 6 }
    given {} .when { type = "withdraw", amount = 1 } .then_rejected "insufficient funds"
    given {} .when { type = "withdraw", amount = 1 } .then_rejected()
    given { deposited(1) } .when { type = "look" } .then_nothing()
    given { deposited(2), withdrawn(1) } .then_state { balance = 1 }
  end)

  it("the example account refuses amounts that would wrap its balance or are not whole", function()
    given { deposited(math.maxinteger) } .when { type = "deposit", amount = 1 }
      .then_rejected "would overflow"
    given { deposited(5) } .when { type = "withdraw", amount = -3 } .then_rejected "positive integer"
    given {} .when { type = "deposit", amount = 0.5 } .then_rejected "positive integer"
  end)

  it("fails then_events when other events were decided", function()
    local msg = failure(function()
      given {} .when { type = "deposit", amount = 5 } .then_events { deposited(6) }
    end)
    assert.matches("decided { { data = { amount = 5 }, type = \"deposited\" } }", msg, 1, true)
  end)

  it("fails then_events and then_nothing when the command was rejected, naming the reason", function()
    local msg = failure(function()
      given {} .when { type = "withdraw", amount = 3 } .then_events { withdrawn(3) }
    end)
    assert.matches("rejected: insufficient funds: balance 0", msg, 1, true)
    failure(function() given {} .when { type = "withdraw", amount = 3 } .then_nothing() end)
  end)

  it("fails then_nothing when events were decided", function()
    local msg = failure(function() given {} .when { type = "deposit", amount = 1 } .then_nothing() end)
    assert.matches("expected no events", msg, 1, true)
  end)

  it("fails then_rejected when the command was accepted, or for another reason", function()
    failure(function() given {} .when { type = "deposit", amount = 1 } .then_rejected() end)
    local msg = failure(function()
      given {} .when { type = "withdraw", amount = 1 } .then_rejected "account closed"
    end)
    assert.matches("does not match", msg, 1, true)
  end)

  it("fails then_state on another state, given or after the command", function()
    failure(function() given { deposited(2) } .then_state { balance = 3 } end)
    failure(function() given {} .when { type = "deposit", amount = 1 } .then_state { balance = 2 } end)
  end)

  it("hands evolve committed events with key, revision and committed_at", function()
    local seen = {}
    local spy = { initial = 0, evolve = function(n, e) seen[#seen + 1] = e; return n + 1 end }
    testing.for_projection(spy, { key = "k/1" }) { { type = "a" }, { type = "b", data = { x = 1 } } }
      .then_state(2)
    assert.same("k/1", seen[1].key)
    assert.same({ x = 1 }, seen[2].data)
    assert.same(26, #seen[1].revision)
    assert.is_true(seen[1].revision < seen[2].revision)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT", seen[1].committed_at)
  end)

  it("starts every scenario from a fresh initial state, even if evolve changes it in place", function()
    local sloppy = { initial = { n = 0 }, evolve = function(s) s.n = s.n + 1; return s end }
    local g = testing.for_projection(sloppy)
    g { { type = "x" }, { type = "x" } } .then_state { n = 2 }
    g { { type = "x" } } .then_state { n = 1 }
    assert.same({ n = 0 }, sloppy.initial)
  end)

  it("says so when evolve forgets to return the state, or an event has no type", function()
    local forgetful = { initial = 0, evolve = function() end }
    local msg = failure(function() testing.for_projection(forgetful) { { type = "x" } } end)
    assert.matches("evolve returned nil for a 'x' event", msg, 1, true)
    msg = failure(function() given { { data = {} } } end)
    assert.matches("event 1 needs a type", msg, 1, true)
    assert.has_error(function() testing.for_aggregate({ initial = 0, evolve = account.evolve }) end)
  end)
  -- An older version of the account appended `credited { sum }`; the
  -- app's upcaster reads it as today's `deposited { amount }`.
  local function upcasting_app()
    local app = require("aeon.app").new "bank"
    app:upcast("credited", function(e)
      e.type, e.data = "deposited", { amount = e.data.sum }
      return e
    end)
    return app
  end

  it("upcasts the given events with the app's upcasters (opts.app), for aggregates", function()
    local g = testing.for_aggregate(account, { app = upcasting_app() })
    local history = { { type = "credited", data = { sum = 5 } } }
    g(history) .then_state { balance = 5 }
    g(history) .when { type = "withdraw", amount = 5 } .then_events {
      { type = "withdrawn", data = { amount = 5 } } } .then_state { balance = 0 }
    g(history) .when { type = "withdraw", amount = 6 } .then_rejected "balance 5"
    -- The given events are the test's: upcasting works on copies.
    assert.same({ type = "credited", data = { sum = 5 } }, history[1])
    -- Without the app, the old event means nothing to evolve.
    given(history) .then_state { balance = 0 }
  end)

  it("upcasts the given events for projections, and refuses an app that is not one", function()
    local seen = {}
    local spy = { initial = 0, evolve = function(n, e)
      seen[#seen + 1] = e.type
      return n + e.data.amount
    end }
    testing.for_projection(spy, { app = upcasting_app() }) {
      { type = "credited", data = { sum = 2 } }, { type = "deposited", data = { amount = 3 } } }
      .then_state(5)
    assert.same({ "deposited", "deposited" }, seen)
    assert.has_error(function() testing.for_projection(spy, { app = {} }) end,
      "option 'app' must be an app built by aeon.app")
  end)
end)
