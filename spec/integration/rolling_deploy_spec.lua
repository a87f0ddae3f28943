-- A rolling deploy of a versioned projection (aeon.versions, aeon.project)
-- on every backend with subscriptions and views: real aeon-host processes
-- of two versions of one app serve one store at once, as they do while a
-- deploy replaces the old ones by new ones.
--
-- The app keeps one document per key k/1 .. k/10, { n } in version 1 and
-- { n, twice } in version 2. Version 2's handler fails on the events of
-- k/10, the last 100 of the 1,000, until a gate (a file) is open: the
-- build stands still with 900 events done and tries again after a backoff,
-- so "during the build" is a state the spec waits for, not a time. (It
-- fails rather than waits: a handler waiting inside its batch's
-- transaction would hold the embedded store's write lock.)
local aeon = require "aeon"
local helpers = require "helpers"
local process = require "support.process"
local server = require "support.http_server"

local spit = server.spit

local KEYS, PER_KEY = 10, 100
local TOTAL = KEYS * PER_KEY

local APP = [[
local aeon = require "aeon"
local GATE, VERSION, LEASE = %q, %d, %g
local app = aeon.app "tally"

local function open(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

app:projection("tally", { view = "tally", key = "k/*", version = VERSION, lease = LEASE },
  function(view, event)
    if VERSION > 1 and event.key == "k/10" and not open(GATE) then error("the gate is shut") end
    local doc, rev = view:get(event.key)
    if rev and event.revision <= rev then return end -- a replayed batch (DynamoDB)
    local n = (doc and doc.n or 0) + 1
    local after = { n = n }
    if VERSION > 1 then after.twice = 2 * n end
    assert(view:put(event.key, after, event.revision))
  end)

app:query("total", { params = { "revision" }, views = { "tally" } }, function(ctx, args)
  local view = assert(ctx.store:view("tally"))
  if args.revision then
    local seen = assert(view:revision())
    if tostring(args.revision) > seen then return aeon.not_yet(tostring(args.revision), seen) end
  end
  local total, docs, twice, after = 0, 0, 0, nil
  repeat
    local page = assert(view:list { after = after, limit = 100 })
    for _, d in ipairs(page) do
      docs, total = docs + 1, total + d.doc.n
      if d.doc.twice == 2 * d.doc.n then twice = twice + 1 end
      after = d.id
    end
  until #page < 100
  return { total = total, docs = docs, twice = twice, view = view:name() }
end)

return app
]]

-- TOTAL events, PER_KEY on each key in turn; returns the last revision
-- and the revision of the last event before k/10's.
local function seed(store)
  local last, before_gate
  for k = 1, KEYS do
    for half = 0, 1 do -- 50 at a time: one DynamoDB transaction takes at most 100 items
      local events = {}
      for i = 1, PER_KEY // 2 do events[i] = { type = "added", data = { i = half * 50 + i } } end
      last = assert(store:append("k/" .. k, events)).revision
    end
    if k == KEYS - 1 then before_gate = last end
  end
  return last, before_gate
end

local function host(uri, app, ...)
  return helpers.run_host({ "--store", uri, app, ... })
end

local function status_of(uri, app)
  local code, out, err = host(uri, app, "project", "--status")
  assert(code == 0, err)
  return aeon.json.decode(out).tally
end

local function wait_for(what, fn, ...)
  local procs = { ... }
  local ok = process.wait_until(fn, 180, 0.2)
  if not ok then
    local logs = {}
    for i, p in ipairs(procs) do logs[#logs + 1] = ("process %d:\n%s"):format(i, p:stderr()) end
    error(what .. " never came\n" .. table.concat(logs, "\n"), 2)
  end
end

for _, backend in helpers.each_backend() do
  describe("rolling deploy of a projection version #" .. backend, function()
    if not (helpers.supports(backend, "subscriptions") and helpers.supports(backend, "views")) then
      pending(backend .. " does not support subscriptions and views yet")
      return
    end

    -- Long enough for a batch's events under load, short enough to wait out.
    local lease = backend == "dynamodb" and 5 or 1
    local store, uri, dir, v1, v2, gate, procs
    before_each(function()
      store, uri = helpers.fresh_store(backend)
      dir = helpers.tmpdir()
      v1, v2, gate = dir .. "/tally_v1.lua", dir .. "/tally_v2.lua", dir .. "/gate"
      spit(v1, APP:format(gate, 1, lease))
      spit(v2, APP:format(gate, 2, lease))
      procs = {}
    end)
    after_each(function()
      for _, p in ipairs(procs) do
        p:kill(9)
        p:wait(30)
        p:cleanup()
      end
      store:close()
      os.execute("rm -rf " .. helpers.shell_quote(dir))
    end)

    local function start(app)
      local p = process.start({ "--store", uri, app, "project" })
      procs[#procs + 1] = p
      return p
    end

    local function built_at_version_1()
      local last, before_gate = seed(store)
      local code, _, err = host(uri, v1, "project", "--once")
      assert(code == 0, err)
      return last, before_gate
    end

    it("regression: an old process beside a new one built its own version back after the switch", function()
      built_at_version_1()
      spit(gate, "open\n")
      local old = start(v1)
      local new = start(v2)
      wait_for("version 2 live", function() return status_of(uri, v2).live.version == 2 end,
        old, new)
      -- The old process notices the switch at its next look at the record;
      -- before the fix it then built version 1 beside version 2 and
      -- switched back, and the two kept rebuilding over each other.
      wait_for("the old process noticing the switch", function()
        local log = old:stderr()
        return log:find("version 2 of view tally is live", 1, true)
          or log:find("building version 1", 1, true)
      end, old, new)
      assert.is_nil(old:stderr():find("building version 1", 1, true), old:stderr())
      assert.matches("version 2 of view tally is live, newer than this app's version 1: " ..
        "this process leaves it to the processes of version 2", old:stderr())
      -- New events go to version 2 only, and nothing is built again.
      local last = assert(store:append("k/1", { { type = "added", data = { i = 0 } } })).revision
      wait_for("version 2 seeing the new event", function()
        local st = status_of(uri, v2)
        return st.live.revision >= last
      end, old, new)
      local st = status_of(uri, v2)
      assert.same(2, st.live.version)
      assert.is_nil(st.building)
      local code, out, err = host(uri, v1, "total", "revision=" .. last)
      assert(code == 0, err)
      local body = aeon.json.decode(out)
      assert.same({ total = TOTAL + 1, docs = KEYS, twice = KEYS }, { total = body.total,
        docs = body.docs, twice = body.twice })
      assert.is_nil(old:stderr():find("building", 1, true), old:stderr())
    end)

    it("regression: an old process started during a build dropped it; it now leaves it be and keeps the live version following", function()
      local _, before_gate = built_at_version_1()
      local new = start(v2)
      wait_for("the build at the gate", function()
        local st = status_of(uri, v2)
        return st.building and st.building.revision == before_gate
      end, new)
      local building = status_of(uri, v2).building.view
      -- While version 2 builds, version 1's processes keep the live view
      -- following: a query with the revision of a new event is answered.
      local last = assert(store:append("k/1", { { type = "added", data = { i = 0 } } })).revision
      local code, out, err = host(uri, v1, "project", "--once")
      assert(code == 0, err)
      assert.same(1, aeon.json.decode(out).tally.events)
      local st = status_of(uri, v2)
      assert.truthy(st.building, "the build in progress is gone")
      assert.same(building, st.building.view)
      assert.same(before_gate, st.building.revision)
      assert.same({ 1, "tally", last }, { st.live.version, st.live.view, st.live.revision })
      code, out, err = host(uri, v1, "total", "revision=" .. last)
      assert(code == 0, err)
      assert.same({ total = TOTAL + 1, docs = KEYS, twice = 0, view = "tally" },
        aeon.json.decode(out))

      spit(gate, "open\n")
      wait_for("version 2 live", function() return status_of(uri, v2).live.version == 2 end, new)
      st = status_of(uri, v2)
      assert.same(building, st.live.view)
      code, out, err = host(uri, v2, "total")
      assert(code == 0, err)
      assert.same({ total = TOTAL + 1, docs = KEYS, twice = KEYS, view = building },
        aeon.json.decode(out))
    end)

    it("a second process of the new version stands by while the first builds, and takes the build over when it dies", function()
      local _, before_gate = built_at_version_1()
      local first = start(v2)
      wait_for("the build at the gate", function()
        local st = status_of(uri, v2)
        return st.building and st.building.revision == before_gate
      end, first)
      local building = status_of(uri, v2).building.view
      local second = start(v2)
      wait_for("the second process joining the build", function()
        return second:stderr():find("building version 2 of view tally", 1, true)
      end, first, second)
      assert.matches("from its checkpoint " .. before_gate, second:stderr())
      local st = status_of(uri, v2)
      assert.same({ building, before_gate }, { st.building.view, st.building.revision })
      first:kill(9)
      assert.same(137, first:wait(30))
      spit(gate, "open\n")
      wait_for("version 2 live", function() return status_of(uri, v2).live.version == 2 end,
        second)
      st = status_of(uri, v2)
      assert.same(building, st.live.view)
      assert.matches("version 2 of view tally is live", second:stderr())
      local code, out, err = host(uri, v2, "total")
      assert(code == 0, err)
      assert.same({ total = TOTAL, docs = KEYS, twice = KEYS, view = building },
        aeon.json.decode(out))
    end)
  end)
end
