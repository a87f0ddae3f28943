-- The aggregate runner (aeon.aggregate): load, decide, append with the
-- expected revision, retry or report conflicts, snapshots. Every backend.
local aeon = require "aeon"
local aggregate = require "aeon.aggregate"
local helpers = require "helpers"
local stores = require "support.stores"
local counter = require "domain.counter"

local collect, pluck = helpers.collect, helpers.pluck
local increment, decrement = counter.increment, counter.decrement

-- A sleep that only records how long it was asked to wait.
local function recorder()
  local waits = {}
  return waits, function(s) waits[#waits + 1] = s end
end

for _, backend in helpers.each_backend() do
  describe("aggregate runner #" .. backend, function()
    local store, uri

    before_each(function() store, uri = helpers.fresh_store(backend) end)
    after_each(function() store:close() end)

    local function events_of(key) return collect(store:read(key)) end

    describe("execute", function()
      it("appends what decide returns and answers with the result, the new state and the events", function()
        local result, value, events = aeon.execute(store, counter, "counter/a", increment "a")
        assert.same("appended", result.type)
        assert.same(1, result.count)
        assert.same(store:head("counter/a"), result.revision)
        assert.same(1, value)
        assert.same({ counter.incremented "a" }, events)
        assert.same(2, select(2, aeon.execute(store, counter, "counter/a", increment "a")))
        local stored = events_of("counter/a")
        assert.same({ "incremented", "incremented" }, pluck(stored, "type"))
        assert.same({ type = "incremented", name = "a" }, stored[2].data)
      end)

      it("appends nothing and answers unchanged when decide returns no events", function()
        local result, value, events = aeon.execute(store, counter, "counter/z", decrement "z")
        assert.same({ type = "unchanged" }, result)
        assert.same(0, value)
        assert.same({}, events)
        assert.same(aeon.START, store:head("counter/z"))
      end)

      it("returns a rejection with decide's reason, and appends nothing", function()
        local result, err = aeon.execute(store, counter, "counter/a", { type = "reset", name = "a" })
        assert.is_nil(result)
        assert.is_true(aeon.is_error(err))
        assert.same("rejected", err.kind)
        assert.same("unknown counter command 'reset'", err.message)
        assert.same(aeon.START, store:head("counter/a"))
      end)

      it("passes on an aeon error that decide gives as its reason", function()
        local strict = { initial = 0, evolve = counter.evolve,
          decide = function() return nil, select(2, aeon.invalid("bad command")) end }
        local _, err = aeon.execute(store, strict, "k", {})
        assert.same("invalid", err.kind)
        assert.same("bad command", err.message)
      end)

      it("hands evolve the committed events, in order", function()
        store:append("log", { { type = "a", data = { n = 1 } }, { type = "b", data = { n = 2 } } })
        local seen = {}
        local spy = { initial = {}, evolve = function(s, e) seen[#seen + 1] = e; return s end,
          decide = function() return {} end }
        aeon.execute(store, spy, "log", {})
        assert.same({ "a", "b" }, pluck(seen, "type"))
        assert.same({ "log", "log" }, pluck(seen, "key"))
        assert.same(pluck(events_of("log"), "revision"), pluck(seen, "revision"))
        assert.is_string(seen[1].committed_at)
      end)

      it("expects the head it read: aeon.START for a new key, else its last revision", function()
        local expected = {}
        local spy = stores.proxy(store, { append = function(_, key, events, opts)
          expected[#expected + 1] = opts.expected_revision
          return store:append(key, events, opts)
        end })
        local r1 = aeon.execute(spy, counter, "counter/a", increment "a")
        aeon.execute(spy, counter, "counter/a", increment "a")
        assert.same({ aeon.START, r1.revision }, expected)
      end)

      it("starts each command from a fresh copy of a table initial state", function()
        local sloppy = { initial = { n = 0 },
          evolve = function(s) s.n = s.n + 1; return s end,
          decide = function() return { { type = "x" } } end }
        assert.same({ n = 1 }, select(2, aeon.execute(store, sloppy, "s/1", {})))
        assert.same({ n = 1 }, select(2, aeon.execute(store, sloppy, "s/2", {})))
        assert.same({ n = 0 }, sloppy.initial)
      end)

      it("reports a store failure as one, from append or from a read that breaks", function()
        local full = stores.proxy(store, { append = function() return nil, "disk full" end })
        local result, err = aeon.execute(full, counter, "counter/a", increment "a")
        assert.is_nil(result)
        assert.same("store", err.kind)
        assert.same("disk full", err.message)

        store:append("counter/a", { counter.incremented "a" })
        local broken = stores.proxy(store, { read = function()
          return function() error("connection reset", 0) end
        end })
        result, err = aeon.execute(broken, counter, "counter/a", increment "a")
        assert.is_nil(result)
        assert.same("store", err.kind)
        assert.matches("connection reset", err.message)
        assert.same(1, #events_of("counter/a"))
      end)

      it("raises for programming mistakes", function()
        assert.has_error(function() aeon.execute(store, { evolve = counter.evolve, decide = counter.decide }, "k", {}) end)
        assert.has_error(function() aeon.execute(store, counter, 42, increment "a") end)
        assert.has_error(function() aeon.execute(store, counter, "k", increment "a", { retires = 3 }) end)
        assert.has_error(function() aeon.execute(store, counter, "k", increment "a", { snapshot_every = 0 }) end)
        assert.has_error(function() aeon.execute(store, counter, "k", increment "a", { on_conflict = "ignore" }) end)
        local single = { initial = 0, evolve = counter.evolve,
          decide = function() return { type = "incremented" } end }
        assert.has_error(function() aeon.execute(store, single, "k", {}) end,
          "decide must return a list of events (wrap a single event in { })")
        local forgetful = { initial = 0, evolve = function() end, decide = function() return { { type = "x" } } end }
        assert.has_error(function() aeon.execute(store, forgetful, "k", {}) end,
          "evolve returned nil for a 'x' event (forgot to return the state?)")
        assert.same(0, #collect(store:read_all()))
      end)
    end)

    describe("conflicts", function()
      local other
      before_each(function() other = assert(aeon.open(uri)) end)
      after_each(function() other:close() end)

      it("reloads and decides again when another writer appended in between", function()
        local racing = stores.interfering(store, other, counter.incremented "a")
        local waits, sleep = recorder()
        local stats = {}
        local result, value = aeon.execute(racing, counter, "counter/a", increment "a",
          { stats = stats, sleep = sleep })
        assert.same("appended", result.type)
        assert.same(2, value)                   -- decided on top of the other writer's event
        assert.same(2, stats.attempts)
        assert.same(1, stats.conflicts)
        assert.same(1, racing.interfered)
        assert.same(2, #events_of("counter/a"))
        assert.same(1, #waits)
        assert.is_true(waits[1] >= 0 and waits[1] < aggregate.BACKOFF.first)
      end)

      it("gives up after opts.retries retries, backing off with jitter within the cap", function()
        local racing = stores.interfering(store, other, counter.incremented "a", math.huge)
        local waits, sleep = recorder()
        local stats = {}
        local result, err = aeon.execute(racing, counter, "counter/a", increment "a",
          { retries = 3, stats = stats, sleep = sleep })
        assert.is_nil(result)
        assert.same("conflict", err.kind)
        assert.same(4, err.attempts)
        assert.matches("after 4 attempts", err.message)
        assert.same(4, stats.conflicts)
        assert.same(3, #waits)
        for i, w in ipairs(waits) do
          assert.is_true(w >= 0 and w < aggregate.BACKOFF.first * 2 ^ (i - 1), "wait " .. i .. " out of range")
        end
        assert.same(4, #events_of("counter/a"))  -- only the other writer's
      end)

      it("reports the conflict without retrying when asked", function()
        local racing = stores.interfering(store, other, counter.incremented "a")
        local decided = 0
        local counting = setmetatable({ decide = function(...) decided = decided + 1; return counter.decide(...) end },
          { __index = counter })
        local waits, sleep = recorder()
        local result, err = aeon.execute(racing, counting, "counter/a", increment "a",
          { on_conflict = "report", sleep = sleep })
        assert.is_nil(result)
        assert.same("conflict", err.kind)
        assert.same(aeon.START, err.expected_revision)
        assert.same(store:head("counter/a"), err.actual_revision)
        assert.same(1, decided)
        assert.same(0, #waits)
        assert.same(1, #events_of("counter/a"))
      end)
    end)

    describe("snapshots", function()
      local function snapshot_revision(key)
        local s = store:snapshot(key)
        return s and s.revision
      end

      it("are saved once snapshot_every events accumulated since the last one", function()
        local revs, snaps = {}, {}
        for i = 1, 7 do
          local r = aeon.execute(store, counter, "counter/s", increment "s", { snapshot_every = 3 })
          revs[i] = r.revision
          snaps[i] = snapshot_revision("counter/s") or false
        end
        assert.same({ false, false, revs[3], revs[3], revs[3], revs[6], revs[6] }, snaps)
        assert.same({ revision = revs[6], state = 6 }, store:snapshot("counter/s"))
      end)

      it("count the events a command appends at once towards the cadence", function()
        local burst = { initial = 0, evolve = counter.evolve,
          decide = function(_, n)
            local out = {}
            for i = 1, n do out[i] = counter.incremented "b" end
            return out
          end }
        local stats = {}
        aeon.execute(store, burst, "counter/b", 2, { snapshot_every = 5, stats = stats })
        assert.is_nil(store:snapshot("counter/b"))
        local r = aeon.execute(store, burst, "counter/b", 4, { snapshot_every = 5, stats = stats })
        assert.same({ revision = r.revision, state = 6 }, store:snapshot("counter/b"))
        assert.same(r.revision, stats.snapshot_saved)
      end)

      it("let a command read only the events after the newest snapshot", function()
        local opts = function(stats) return { snapshot_every = 4, stats = stats } end
        for _ = 1, 6 do aeon.execute(store, counter, "counter/r", increment "r", opts()) end
        local snap = store:snapshot("counter/r")
        assert.same(4, snap.state)

        local stats = {}
        local _, value = aeon.execute(store, counter, "counter/r", increment "r", opts(stats))
        assert.same(7, value)
        assert.same(2, stats.events_read)       -- events 5 and 6, not 1 to 6
        assert.same(snap.revision, stats.snapshot)

        -- The state really comes from the snapshot: doctor it and see.
        assert.is_true(store:save_snapshot("counter/r", store:head("counter/r"), 100))
        stats = {}
        _, value = aeon.execute(store, counter, "counter/r", increment "r", opts(stats))
        assert.same(101, value)
        assert.same(0, stats.events_read)
      end)

      it("are neither read nor saved without snapshot_every", function()
        for _ = 1, 3 do aeon.execute(store, counter, "counter/n", increment "n", { snapshot_every = 2 }) end
        assert.is_not_nil(store:snapshot("counter/n"))
        local stats = {}
        aeon.execute(store, counter, "counter/n", increment "n", { stats = stats })
        assert.same(3, stats.events_read)
        assert.is_nil(stats.snapshot)
      end)

      it("that fail to save leave the command's success alone", function()
        local flaky = stores.proxy(store, { save_snapshot = function() return nil, "throttled" end })
        local stats = {}
        local result = aeon.execute(flaky, counter, "counter/f", increment "f", { snapshot_every = 1, stats = stats })
        assert.same("appended", result.type)
        assert.same("throttled", stats.snapshot_error)
        assert.is_nil(store:snapshot("counter/f"))
      end)
    end)

    describe("load", function()
      it("folds a key's state without deciding, from the snapshot when asked", function()
        for _ = 1, 5 do aeon.execute(store, counter, "counter/l", increment "l", { snapshot_every = 3 }) end
        local value, revision, since = aeon.load(store, counter, "counter/l")
        assert.same({ 5, store:head("counter/l"), 5 }, { value, revision, since })
        local stats = {}
        value, revision, since = aeon.load(store, counter, "counter/l", { snapshots = true, stats = stats })
        assert.same({ 5, store:head("counter/l"), 2 }, { value, revision, since })
        assert.same(2, stats.events_read)
        assert.same({ 0, aeon.START, 0 }, { aeon.load(store, counter, "counter/none") })
      end)
    end)
  end)
end
