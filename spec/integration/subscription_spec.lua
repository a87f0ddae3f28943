-- Subscriptions (API.md section 4), on every backend that has them:
-- patterns, commit order, batches, durable and fenced checkpoints, one
-- consumer per name (the lease; lease_spec.lua has the processes racing),
-- catching up after a restart, waiting, notifications, ephemeral
-- subscriptions and resets. A backend without them gets pending specs.
local aeon = require "aeon"
local helpers = require "helpers"
local process = require "support.process"

local function inc(name) return { type = "incremented", data = { type = "incremented", name = name } } end
local function dec(name) return { type = "decremented", data = { type = "decremented", name = name } } end

local function keys_of(events)
  local out = {}
  for i, e in ipairs(events) do out[i] = e.key .. ":" .. e.type end
  return out
end

for _, backend in helpers.each_backend() do
  describe("subscriptions #" .. backend, function()
    if not helpers.supports(backend, "subscriptions") then
      pending(backend .. " does not support subscriptions yet")
      return
    end

    local store, uri
    before_each(function() store, uri = helpers.fresh_store(backend) end)
    after_each(function() store:close() end)

    it("delivers the matching events in commit order, with '*' patterns", function()
      store:append("counter/a", { inc("a") })
      store:append("truck/1", { { type = "restocked", data = {} } })
      store:append("counter/b", { inc("b"), dec("b") })
      store:append("counter", { inc("x") })
      store:append("counter/a", { dec("a") })
      local sub = assert(store:subscribe("patterns", { key = { "counter/*" }, type = "incremented" }))
      local events = assert(sub:poll(0))
      assert.same({ "counter/a:incremented", "counter/b:incremented" }, keys_of(events))
      assert.same({ type = "incremented", name = "a" }, events[1].data)
      assert.is_true(events[1].revision < events[2].revision)
      assert.same({}, sub:poll(0))

      local all = assert(store:subscribe("all"))
      assert.same(6, #all:poll(0))
      local either = assert(store:subscribe("either", { key = { "truck/*", "counter" } }))
      assert.same({ "truck/1:restocked", "counter:incremented" }, keys_of(either:poll(0)))
    end)

    it("hands out at most `max` events a poll, in order", function()
      for i = 1, 7 do store:append("k" .. (i % 3), { { type = "n", data = { i = i } } }) end
      local sub = assert(store:subscribe("batches"))
      local seen = {}
      for _, want in ipairs { 3, 3, 1, 0 } do
        local events = assert(sub:poll(0, 3))
        assert.same(want, #events)
        for _, e in ipairs(events) do seen[#seen + 1] = e.data.i end
      end
      assert.same({ 1, 2, 3, 4, 5, 6, 7 }, seen)
    end)

    it("catches up after a restart: a new subscription of the same name resumes after the checkpoint", function()
      local revs = {}
      for i = 1, 6 do revs[i] = store:append("k", { { type = "n", data = { i = i } } }).revision end
      local sub = assert(store:subscribe("restart"))
      assert.same(aeon.START, sub:checkpoint())
      local events = sub:poll(0, 4)
      assert.same(4, #events)
      assert.is_true(sub:ack(events[3].revision)) -- event 4 delivered, not acknowledged
      assert.same(revs[3], sub:checkpoint())
      sub:close()
      store:close()

      store = assert(aeon.open(uri))
      local again = assert(store:subscribe("restart"))
      assert.same(revs[3], again:checkpoint())
      local rest = again:poll(0)
      assert.same({ 4, 5, 6 }, { rest[1].data.i, rest[2].data.i, rest[3].data.i })
      -- Acks never move backwards.
      assert.is_true(again:ack(revs[1]))
      assert.same(revs[3], again:checkpoint())
    end)

    it("hands a name to one consumer at a time: a second stands by, then takes over from the checkpoint", function()
      for i = 1, 5 do store:append("k", { { type = "n", data = { i = i } } }) end
      local other = assert(aeon.open(uri))
      local a = assert(store:subscribe("shared"))
      local b = assert(other:subscribe("shared"))
      assert.is_true(a:active())
      assert.is_false(b:active())
      local ea = a:poll(0, 3)
      assert.same({}, b:poll(0, 2))
      assert.is_false(b:ack(ea[3].revision)) -- a standby acks nothing
      assert.is_true(a:ack(ea[3].revision))
      assert.same(ea[3].revision, b:checkpoint())
      a:close() -- gives the lease up: the standby takes over at once
      local rest = b:poll(0)
      assert.is_true(b:active())
      assert.same({ 4, 5 }, { rest[1].data.i, rest[2].data.i })
      other:close()
    end)

    it("refuses a name in use with wait = false, and checks the lease option", function()
      local holder = process.start({ "spec/support/lease_consumer.lua", uri, "busy", "1", "10" })
      assert(process.wait_until(function() return holder:stdout():find("ready\n", 1, true) end, 30),
        holder:stderr())
      local sub, err = store:subscribe("busy", { wait = false, lease = 1 })
      holder:kill("TERM")
      holder:wait(10)
      holder:cleanup()
      assert.is_nil(sub)
      assert.matches('subscription "busy" is in use by another consumer', err)
      assert.has_error(function() store:subscribe("x", { lease = 0.01 }) end,
        "subscribe: option 'lease' must be between 0.1 and 3600 seconds")
      assert.has_error(function() store:subscribe("x", { wait = "no" }) end,
        "subscribe: option 'wait' must be a boolean")
      -- Free again once the holder has gone.
      local again = assert(store:subscribe("busy", { wait = false }))
      assert.is_true(again:active())
      again:close()
    end)

    it("waits for events, and wakes for an append by another process", function()
      local sub = assert(store:subscribe("wait"))
      local core = require "aeon.core"
      local t0 = core.monotonic()
      assert.same({}, sub:poll(0.2))
      assert.is_true(core.monotonic() - t0 >= 0.15)

      local writer = process.start({ "spec/support/counter_writer.lua", uri, "w", 1, 1, "0" })
      local events = assert(sub:poll(20))
      assert.same(0, writer:wait(20))
      writer:cleanup()
      assert.same({ "counter/w1:incremented" }, keys_of(events))
    end)

    it("gives notifications in Aeon's shape", function()
      local r1 = store:append("counter/a", { inc("a") })
      store:append("truck/1", { { type = "restocked", data = {} } })
      local r3 = store:append("counter/b", { dec("b") })
      local sub = assert(store:subscribe("notify", { key = "counter/*" }))
      local n = assert(sub:poll_notification(0))
      assert.same({ { key = "counter/a", type = "incremented" }, { key = "counter/b", type = "decremented" } },
        n.events)
      assert.same(r3.revision, n.revision)
      -- An app reads the events itself, then acks the notification.
      local read = helpers.collect(store:read_all { after = aeon.START, to = n.revision,
        filter = { key = aeon.filter.prefix("counter/") } })
      assert.same({ r1.revision, r3.revision }, helpers.pluck(read, "revision"))
      assert.is_true(sub:ack(n.revision))
      assert.same({}, sub:poll_notification(0).events)
    end)

    it("starts an ephemeral subscription at the end of the store, with no checkpoint stored", function()
      store:append("k", { { type = "old", data = {} } })
      local sub = assert(store:subscribe(nil, { start = aeon.END }))
      assert.same({}, sub:poll(0))
      store:append("k", { { type = "new", data = {} } })
      assert.same({ "k:new" }, keys_of(sub:poll(0)))
      local from_start = assert(store:subscribe(nil))
      assert.same({ "k:old", "k:new" }, keys_of(from_start:poll(0)))
    end)

    it("starts over after reset_subscription", function()
      store:append("k", { { type = "a", data = {} }, { type = "b", data = {} } })
      local sub = assert(store:subscribe("reset"))
      local events = sub:poll(0)
      assert.is_true(sub:ack(events[2].revision))
      sub:close()
      assert.is_true(store:reset_subscription("reset"))
      local again = assert(store:subscribe("reset"))
      assert.same(aeon.START, again:checkpoint())
      assert.same({ "k:a", "k:b" }, keys_of(again:poll(0)))
    end)

    it("raises on programming mistakes and closes with its store", function()
      local sub = assert(store:subscribe("mistakes"))
      assert.has_error(function() sub:ack("soon") end)
      assert.has_error(function() sub:poll(-1) end)
      assert.has_error(function() sub:poll(0, 0) end)
      assert.has_error(function() store:subscribe("x", { keys = "typo" }) end)
      assert.has_error(function() store:subscribe("x", { key = { "" } }) end)
      assert.has_error(function() store:subscribe("x", { start = "yesterday" }) end)
      assert.has_error(function() store:subscribe("") end)
      store:close()
      assert.has_error(function() sub:poll(0) end, "subscription is closed")
      store = assert(aeon.open(uri))
    end)
  end)
end
