-- Projections (aeon.project) on every backend that has subscriptions and
-- views: exactly-once application, catching up after a restart, a raising
-- handler that stops only its projection, rebuilds, processes appending
-- while another projects, and (embedded store) a projector killed with
-- kill -9 mid-stream.
local aeon = require "aeon"
local helpers = require "helpers"
local process = require "support.process"
local project = require "aeon.project"


local function inc(name) return { type = "incremented", data = { type = "incremented", name = name } } end

local function last_revision(store)
  local e = helpers.collect(store:read_all { direction = "backward", limit = 1 })[1]
  return e and e.revision or aeon.START
end

local function quiet() end

-- An app with two projections over the same events: `healthy` counts every
-- event; `fragile` counts too, but raises on an event whose data says
-- poison, until `cure()`.
local function fragile_app()
  local sick = true
  local app = aeon.app "fragile"
  local function count(view, event)
    local doc, rev = view:get("n")
    -- Where view writes are not transactional (DynamoDB), a batch that
    -- failed halfway is replayed over what it already wrote: skip those.
    if rev and event.revision <= rev then return end
    assert(view:put("n", { n = (doc or { n = 0 }).n + 1 }, event.revision))
  end
  app:projection("healthy", { view = "healthy" }, count)
  app:projection("fragile", { view = "fragile" }, function(view, event)
    if sick and event.data.poison then error("poisoned event") end
    count(view, event)
  end)
  return app, function() sick = false end
end

helpers.describe_backends("projections", { "subscriptions", "views" }, function(backend)
  local store, uri
  before_each(function() store, uri = helpers.fresh_store(backend) end)
  after_each(function() store:close() end)

  it("applies each event once, and catches up after a restart from its checkpoint", function()
    local app = dofile("apps/counter-cqrs.lua")
    for _ = 1, 3 do store:append("counter/a", { inc("a") }) end
    store:append("counter/b", { inc("b") })
    local report = assert(project.run(store, app, nil, { once = true }))
    assert.same(4, report.counters.events)
    assert.same(0, assert(project.run(store, app, nil, { once = true })).counters.events)

    -- A new process (a new handle, a new subscription) resumes after the
    -- checkpoint: only the new events are applied.
    store:close()
    store = assert(aeon.open(uri))
    store:append("counter/a", { inc("a"), { type = "decremented", data = { type = "decremented", name = "a" } } })
    store:append("truck/1", { { type = "restocked", data = {} } })
    report = assert(project.run(store, app, "counters", { once = true }))
    assert.same(2, report.counters.events)
    local view = store:view("counters")
    local a = view:get("a")
    assert.same({ 3, 4, 1 }, { a.value, a.increments, a.decrements })
    assert.same(1, view:get("b").value)
    -- The view has seen the a's last event, and on the embedded store
    -- everything scanned past it too.
    assert.is_true(view:revision() >= a.revision)
    if helpers.backend(backend).exact_positions then
      assert.same(last_revision(store), view:revision())
    end
  end)

  it("stops only the projection whose handler raises, keeping its checkpoint before the event", function()
    local app, cure = fragile_app()
    local revs = {}
    for i = 1, 5 do
      revs[i] = store:append("k", { { type = "n", data = { i = i, poison = i == 4 } } }).revision
    end
    local lines = {}
    local report = assert(project.run(store, app, nil, { once = true, attempts = 2,
      backoff = { first = 0.01, max = 0.01 }, log = function(l) lines[#lines + 1] = l end }))
    assert.same(5, report.healthy.events)
    assert.is_nil(report.healthy.failed)
    assert.same(3, report.fragile.events)
    assert.same(revs[4], report.fragile.failed.revision)
    assert.same(5, store:view("healthy"):get("n").n)
    assert.same(3, store:view("fragile"):get("n").n)
    assert.same(revs[3], store:view("fragile"):revision())
    local sub = store:subscribe("projection/fragile/fragile")
    assert.same(revs[3], sub:checkpoint())
    sub:close()
    -- One line per try, naming the event.
    assert.same(2, #lines)
    for _, l in ipairs(lines) do
      assert.matches("projection fragile: handler failed on event " .. revs[4] .. " %(key k, type n%)", l)
      assert.matches("poisoned event", l)
      assert.is_nil(l:find("\n"))
    end

    -- Fixed, it goes on from the failing event, counting nothing twice.
    cure()
    report = assert(project.run(store, app, nil, { once = true, log = quiet }))
    assert.same(2, report.fragile.events)
    assert.same(0, report.healthy.events)
    assert.same(5, store:view("fragile"):get("n").n)
  end)

  it("retries a failing handler with backoff while running, and recovers", function()
    local app = aeon.app "flaky"
    local tries = 0
    app:projection("flaky", { view = "flaky" }, function(view, event)
      tries = tries + 1
      if tries <= 2 then error("not yet ready") end
      view:put(event.key, { ok = true }, event.revision)
    end)
    store:append("k", { { type = "n", data = {} } })
    local lines = {}
    local report = assert(project.run(store, app, nil, {
      backoff = { first = 0.02, max = 0.05 }, interval = 0.05,
      log = function(l) lines[#lines + 1] = l end,
      stop = function() return store:view("flaky"):get("k") ~= nil end,
    }))
    assert.same(1, report.flaky.events)
    assert.same(2, #lines)
    assert.matches("retrying in 0.02 s", lines[1])
    assert.matches("retrying in 0.04 s", lines[2])
  end)

  it("rebuilds a view from the first event", function()
    local app = dofile("apps/counter-cqrs.lua")
    for _ = 1, 4 do store:append("counter/a", { inc("a") }) end
    assert(project.run(store, app, nil, { once = true }))
    local view = store:view("counters")
    -- Damage it: a wrong document with the newest revision sticks.
    view:put("a", { value = 99, increments = 99, decrements = 0, revision = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ" },
      "7ZZZZZZZZZZZZZZZZZZZZZZZZZ")
    view:put("ghost", { value = 1 }, last_revision(store))
    local report = assert(project.rebuild(store, app, "counters", { log = quiet, grace = 0 }))
    assert.same(4, report.counters.events)
    -- Built beside the damaged one, which is dropped once the new one is live.
    assert.is_nil(view:get("a"))
    view = app:store(store):view("counters")
    assert.same("counters@v1.1", view:name())
    assert.same(4, view:get("a").value)
    assert.is_nil(view:get("ghost"))
    assert.is_true(view:revision() >= view:get("a").revision)
  end)

  it("keeps every count exact while two processes append and a third projects", function()
    local projector = process.start({ "--store", uri, "apps/counter-cqrs.lua", "project" })
    local w1 = process.start({ "spec/support/counter_writer.lua", uri, "s", 5, 30, "0.005" })
    local w2 = process.start({ "spec/support/counter_writer.lua", uri, "s", 5, 30, "0.005" })
    assert.same(0, w1:wait(300))
    assert.same(0, w2:wait(300))
    local last = last_revision(store)
    local view = store:view("counters")
    assert.truthy(process.wait_until(function() return view:revision() >= last end, 30),
      "the projector did not catch up: " .. projector:stderr())
    projector:kill("TERM")
    assert.same(128 + 15, projector:wait(10))
    for c = 1, 5 do
      local doc = view:get("s" .. c)
      assert.same({ 60, 60, 0 }, { doc.value, doc.increments, doc.decrements })
    end
    assert.is_nil(projector:stderr():find("failed"))
    for _, p in ipairs { projector, w1, w2 } do p:cleanup() end
  end)

  it("applies each event once with two projectors racing for the same batches", function()
    local w = process.start({ "spec/support/counter_writer.lua", uri, "r", 4, 40, "0.002" })
    local p1 = process.start({ "--store", uri, "apps/counter-cqrs.lua", "project" })
    local p2 = process.start({ "--store", uri, "apps/counter-cqrs.lua", "project" })
    assert.same(0, w:wait(300))
    local last = last_revision(store)
    local view = store:view("counters")
    assert.truthy(process.wait_until(function() return view:revision() >= last end, 30))
    p1:kill("TERM")
    p2:kill("TERM")
    p1:wait(10)
    p2:wait(10)
    for c = 1, 4 do assert.same(40, view:get("r" .. c).value) end
    for _, p in ipairs { p1, p2, w } do p:cleanup() end
  end)
end)

-- The projector runs counter-cqrs's projection and `tally`, which is not
-- idempotent: only batches committed with their checkpoint keep it exact.
describe("a projector killed with kill -9 #sqlite", function()
  it("neither loses nor double-counts: 40 counters x 50 increments, three kills, then project --once", function()
    local uri = helpers.fresh_uri("sqlite")
    local store = assert(aeon.open(uri))
    local writer = process.start({ "spec/support/counter_writer.lua", uri, "k", 40, 50, "0.08" })
    local progress = {}
    local view = store:view("counters")
    -- The first projector has events to work on.
    assert.truthy(process.wait_until(function() return last_revision(store) > aeon.START end, 60))
    for round = 1, 3 do
      -- Each kill comes a random while after the projector has committed a
      -- batch of its own, so even a slow start on a busy machine is killed
      -- mid-work (a projector the writer has outrun simply finds more to do).
      local before = view:revision()
      local p = process.start({ "--store", uri, "spec/support/tally_app.lua", "project" })
      process.wait_until(function()
        local r = view:revision()
        return r > before or r >= last_revision(store) -- work done, or none left
      end, 60)
      process.sleep(0.2 * math.random())
      p:kill(9)
      assert.same(128 + 9, p:wait(10))
      p:cleanup()
      progress[round] = view:revision()
    end
    -- The projector got work done before each kill.
    assert.is_true(progress[1] > aeon.START)
    assert.is_true(progress[3] >= progress[1])
    assert.same(0, writer:wait(300))
    writer:cleanup()

    local code, out, err = helpers.run_host({ "--store", uri, "spec/support/tally_app.lua", "project", "--once" })
    assert.same(0, code, err)
    assert.matches('"counters"', out)
    local tally = store:view("tally")
    for c = 1, 40 do
      local doc = view:get("k" .. c)
      assert.same({ 50, 50 }, { doc.value, doc.increments }, "counter k" .. c)
      assert.same(50, tally:get("counter/k" .. c).n, "tally of counter/k" .. c)
    end
    assert.same(last_revision(store), view:revision())
    store:close()
  end)
end)
