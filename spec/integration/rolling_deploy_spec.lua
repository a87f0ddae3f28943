-- A rolling deploy of a versioned projection (aeon.versions, aeon.project)
-- on every backend with subscriptions and views: real aeon-host processes
-- of two versions of one app serve one store at once, as they do while a
-- deploy replaces the old ones by new ones.
--
-- The app (support.versioned_tally) keeps one document per key; version
-- 2's handler fails on the events of k/10, the last 100 of the 1,000,
-- until a gate is open: the build stands still with 900 events done and
-- tries again after a backoff. (It fails rather than waits: a handler
-- waiting inside its batch's transaction would hold the embedded store's
-- write lock, and these specs append during the build.)
local aeon = require "aeon"
local helpers = require "helpers"
local process = require "support.process"
local server = require "support.http_server"

local tally = require "support.versioned_tally"

local spit = server.spit

local KEYS, TOTAL = tally.KEYS, tally.TOTAL
local seed, host, status_of = tally.seed, tally.host, tally.status

local function wait_for(what, fn, ...)
  local procs = { ... }
  local ok = process.wait_until(fn, 180, 0.2)
  if not ok then
    local logs = {}
    for i, p in ipairs(procs) do logs[#logs + 1] = ("process %d:\n%s"):format(i, p:stderr()) end
    error(what .. " never came\n" .. table.concat(logs, "\n"), 2)
  end
end

helpers.describe_backends("rolling deploy of a projection version", { "subscriptions", "views" }, function(backend)
  -- Long enough for a batch's events under load, short enough to wait out.
  local lease = backend == "dynamodb" and 5 or 1
  local store, uri, dir, v1, v2, gate, procs
  before_each(function()
    store, uri = helpers.fresh_store(backend)
    dir = helpers.tmpdir()
    v1, v2, gate = dir .. "/tally_v1.lua", dir .. "/tally_v2.lua", dir .. "/gate"
    tally.write(v1, gate, 1, { lease = lease })
    tally.write(v2, gate, 2, { lease = lease })
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

  -- Waits for version 2's build to stand at the gate; its view's name.
  local function at_the_gate(before_gate, p)
    wait_for("the build at the gate", function()
      local st = status_of(uri, v2)
      return st.building and st.building.revision == before_gate
    end, p)
    return status_of(uri, v2).building.view
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
    local building = at_the_gate(before_gate, new)
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
    local building = at_the_gate(before_gate, first)
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
