-- counter-cqrs and counter-cqrs-lazy through the aeon-host command line,
-- and the `project` subcommand, on every backend with views and
-- subscriptions.
local aeon = require "aeon"
local helpers = require "helpers"

local json = aeon.json

helpers.describe_backends("counter-cqrs on the command line", { "subscriptions", "views" }, function(backend)
  local uri, env
  before_each(function() uri, env = helpers.fresh_env(backend) end)

  local function host(app, ...) return helpers.run_app("apps/" .. app .. ".lua", env, ...) end

  it("answers a revision once the projection has seen it, and 'not yet' before", function()
    local code, r = host("counter-cqrs", "increment", "name=a")
    assert.same(0, code)
    assert.same("appended", r.type)
    assert.is_true(aeon.revision_valid(r.revision))

    local ncode, answer, err = host("counter-cqrs", "counter", "name=a", "revision=" .. r.revision)
    assert.same(1, ncode)
    assert.is_nil(answer)
    assert.same("aeon-host: not yet: the read model has not seen revision " .. r.revision ..
      " (it has seen no events yet)\n", err)

    local pcode, report = host("counter-cqrs", "project", "--once")
    assert.same(0, pcode)
    assert.same(1, report.counters.events)
    assert.same(r.revision, report.counters.revision)

    local c = select(2, host("counter-cqrs", "counter", "a", r.revision))
    assert.same({ value = 1, increments = 1, decrements = 0, revision = r.revision }, c)
  end)

  it("reflects every event committed before a query without a revision", function()
    host("counter-cqrs", "increment", "name=b")
    host("counter-cqrs", "increment", "name=b")
    local _, d = host("counter-cqrs", "decrement", "name=b")
    assert.same("appended", d.type)
    local code, c = host("counter-cqrs", "counter", "name=b")
    assert.same(0, code)
    assert.same({ 1, 2, 1, d.revision }, { c.value, c.increments, c.decrements, c.revision })
    -- Counters never go below 0.
    host("counter-cqrs", "decrement", "name=b")
    assert.same({ type = "unchanged", value = 0 }, select(2, host("counter-cqrs", "decrement", "name=b")))
    assert.same(0, select(2, host("counter-cqrs", "counter", "name=b")).value)
    -- A counter nothing happened to.
    assert.same({ value = 0, increments = 0, decrements = 0, revision = aeon.START },
      select(2, host("counter-cqrs", "counter", "name=nobody")))
  end)

  it("refuses a malformed revision or a missing name as usage errors", function()
    assert.same(2, (host("counter-cqrs", "counter", "name=a", "revision=tomorrow")))
    assert.same(2, (host("counter-cqrs", "counter")))
  end)

  it("rebuilds its view with project --rebuild", function()
    host("counter-cqrs", "increment", "name=a")
    host("counter-cqrs", "increment", "name=a")
    local code, report = host("counter-cqrs", "project", "--once")
    assert.same(0, code)
    code, report = host("counter-cqrs", "project", "--rebuild", "counters")
    assert.same(0, code)
    assert.same(2, report.counters.events)
    assert.same(2, select(2, host("counter-cqrs", "counter", "name=a")).value)
  end)

  it("says what is wrong with a project command line", function()
    local code, _, err = host("counter-cqrs", "project", "--rebuild", "nope")
    assert.same(2, code)
    assert.matches("has no projection 'nope'", err)
    code, _, err = host("counter-basic", "project", "--once")
    assert.same(2, code)
    assert.matches("declares no projections", err)
    code, _, err = host("counter-cqrs", "project", "--sideways")
    assert.same(2, code)
  end)

  it("exits 4 with one line naming the event when a handler fails", function()
    local store = assert(aeon.open(uri))
    local r = store:append("k", { { type = "n", data = { poison = true } } })
    store:close()
    local code, out, err = helpers.run_host({ "--store", uri, "spec/support/poison_app.lua", "project", "--once" })
    assert.same(4, code)
    local report = json.decode(out)
    assert.same(r.revision, report.fragile.failed.revision)
    assert.same(1, report.healthy.events)
    local lines = {}
    for l in err:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.is_true(#lines >= 1)
    assert.matches("^aeon%-host: projection fragile: handler failed on event " .. r.revision ..
      " %(key k, type n%): .*poisoned", lines[1])
  end)

  it("counter-cqrs-lazy brings its view up to date in the query", function()
    local _, r1 = host("counter-cqrs-lazy", "increment", "name=a")
    local code, c = host("counter-cqrs-lazy", "counter", "name=a", "revision=" .. r1.revision)
    assert.same(0, code)
    assert.same({ value = 1, increments = 1, decrements = 0, revision = r1.revision }, c)
    local _, r2 = host("counter-cqrs-lazy", "increment", "name=a")
    host("counter-cqrs-lazy", "decrement", "name=a")
    c = select(2, host("counter-cqrs-lazy", "counter", "name=a"))
    assert.same({ 1, 2, 1 }, { c.value, c.increments, c.decrements })
    -- Its view keeps the document, so the next query folds only what is new.
    local store = assert(aeon.open(uri))
    local doc, rev = store:view("counters-lazy"):get("a")
    assert.same(c, doc)
    assert.same(c.revision, rev)
    store:close()
    -- A revision no event has reached yet is "not yet".
    local ncode, _, err = host("counter-cqrs-lazy", "counter", "name=a",
      "revision=7ZZZZZZZZZZZZZZZZZZZZZZZZZ")
    assert.same(1, ncode)
    assert.matches("not yet", err)
    assert.is_string(r2.revision)
  end)

  it("revision= of another counter's command: the lazy model answers as of it at once, " ..
     "where it answered 'not yet' for ever", function()
    local _, ra = host("counter-cqrs-lazy", "increment", "name=a")
    local _, rb = host("counter-cqrs-lazy", "increment", "name=b")
    local code, c, err = host("counter-cqrs-lazy", "counter", "name=a", "revision=" .. rb.revision)
    assert.same(0, code, err)
    assert.same({ value = 1, increments = 1, decrements = 0, revision = ra.revision }, c)
    code, c = host("counter-cqrs-lazy", "counter", "name=never", "revision=" .. rb.revision)
    assert.same(0, code)
    assert.same({ value = 0, increments = 0, decrements = 0, revision = aeon.START }, c)
  end)

  it("revision= on the push model waits for its projection, whichever counter it was on", function()
    host("counter-cqrs", "increment", "name=a")
    local _, rb = host("counter-cqrs", "increment", "name=b")
    local code, _, err = host("counter-cqrs", "counter", "name=a", "revision=" .. rb.revision)
    assert.same(1, code)
    assert.matches("not yet", err)
    assert.same(0, (host("counter-cqrs", "project", "--once")))
    local c
    code, c = host("counter-cqrs", "counter", "name=a", "revision=" .. rb.revision)
    assert.same(0, code)
    assert.same(1, c.value)
  end)
end)
