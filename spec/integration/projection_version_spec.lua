-- Versioned projections (app:projection `version`, aeon.project,
-- aeon.versions) on every backend with subscriptions and views: a new
-- version built beside the live one under `serve --watch` while a client
-- keeps querying (every answer from one complete build), a build killed
-- with kill -9 and resumed from its checkpoint, and `project --status` and
-- `project --rebuild`.
--
-- The app (support.versioned_tally) keeps one document per key; version
-- 2's handler waits at a gate before the events of k/10, the last 100 of
-- the 1,000: the build stands still there, with 900 events done, until the
-- spec opens the gate.
local aeon = require "aeon"
local helpers = require "helpers"
local process = require "support.process"
local server = require "support.http_server"

local tally = require "support.versioned_tally"

local spit, eventually = server.spit, server.eventually

local KEYS, PER_KEY, TOTAL = tally.KEYS, tally.PER_KEY, tally.TOTAL
local seed, host, status_of = tally.seed, tally.host, tally.status

local function write_app(path, gate, version)
  tally.write(path, gate, version, { wait = true })
end

-- Which complete build an answer comes from: "old" (version 1, in the view
-- "tally") or "new" (version 2, in its own view); anything else fails.
local function classify(status, body, text)
  assert(status == 200, ("answer %s: %s"):format(status, tostring(text)))
  assert(body.docs == KEYS and body.total == TOTAL,
    "an answer from an incomplete view: " .. tostring(text))
  if body.twice == 0 and body.view == "tally" then return "old" end
  if body.twice == KEYS and body.view:match("^tally@v2%.%d+$") then return "new" end
  error("an answer from neither complete build: " .. tostring(text))
end

describe("projection versions (unit)", function()
  it("takes a positive integer version, and a versioned view is kept by one projection", function()
    local app = aeon.app "v"
    local h = function() end
    assert.has_error(function() app:projection("a", { view = "x", version = 0 }, h) end,
      "projection 'a': version must be a positive integer")
    assert.has_error(function() app:projection("a", { view = "x", version = 1.5 }, h) end,
      "projection 'a': version must be a positive integer")
    app:projection("a", { view = "x", version = 2 }, h)
    assert.same(2, app.projections.a.version)
    assert.has_error(function() app:projection("b", { view = "x" }, h) end,
      "projection 'b': view 'x' is also kept by projection 'a'; a view with a version is kept by one projection")
    app:projection("c", { view = "y" }, h)
    app:projection("d", { view = "y" }, h) -- unversioned views may be shared, as before
    assert.same(1, app.projections.d.version)
  end)
end)

helpers.describe_backends("projection versions", { "subscriptions", "views" }, function(backend)
  local store, uri, dir, app, gate
  before_each(function()
    store, uri = helpers.fresh_store(backend)
    dir = helpers.tmpdir()
    app, gate = dir .. "/tally.lua", dir .. "/gate"
  end)
  after_each(function()
    store:close()
    os.execute("rm -rf " .. helpers.shell_quote(dir))
  end)

  it("builds a new version beside the live one under --watch; every answer meanwhile is one complete build", function()
    write_app(app, gate, 1)
    local last = seed(store)
    local s = server.start(app, { "--watch", "--workers", "2" }, { store = uri })
    assert.truthy(s.url, s:stderr())
    assert.truthy(eventually(120, function()
      local st, body = s:json("GET", "/queries/total")
      return st == 200 and body.total == TOTAL
    end), "version 1 never caught up")

    write_app(app, gate, 2)
    local seen = { old = 0, new = 0, building = 0 }
    local metrics, status, opened, n = nil, nil, false, 0
    local deadline = server.now() + 300
    while seen.new < 20 and server.now() < deadline do
      n = n + 1
      local path = n % 2 == 0 and ("/queries/total?revision=" .. last) or "/queries/total"
      local st, body, _, text = s:json("GET", path)
      local which = classify(st, body, text)
      seen[which] = seen[which] + 1
      if which == "new" then
        assert.truthy(opened, "version 2 went live before its build had all events")
      elseif not opened and status == nil then
        local lines = s:log_where({ projection = "tally" })
        for _, l in ipairs(lines) do
          if tostring(l.msg):match("^projection tally: building version 2 of view tally") then
            status = status_of(uri, app)
          end
        end
      elseif not opened then
        -- The build stands at the gate: answers are the old build's.
        seen.building = seen.building + 1
        metrics = metrics or s:metric("aeon_projection_build_events",
          'projection="tally",version="2"')
        if seen.building >= 20 and metrics then
          spit(gate, "open\n")
          opened = true
        end
      end
    end
    assert.same(20, seen.new)
    assert.truthy(seen.building >= 20)
    assert.truthy(status.building, "project --status during the build")
    assert.same(2, status.building.version)
    assert.same(1, status.live.version)
    assert.same("tally", status.live.view)
    assert.truthy(metrics >= 0 and metrics <= TOTAL - PER_KEY)
    local done = status_of(uri, app)
    assert.same(2, done.live.version)
    assert.is_nil(done.building)
    assert.same(0, done.live.lag)
    -- The old build goes after its grace; nothing of it is left.
    assert.truthy(eventually(120, function()
      return #store:view("tally"):list() == 0 and store:view("tally"):revision() == aeon.START
        and status_of(uri, app).retired == nil
    end))
    assert.same(0, s:stop())
    local switched = s:log_where({ msg = "projection tally: version 2 of view tally is live " ..
      "(1000 events); version 1 is dropped in 5 s" })
    assert.same(1, #switched)
  end)

  it("resumes a build killed with kill -9 from its checkpoint, and finishes with exact counts", function()
    write_app(app, gate, 1)
    local _, before_gate = seed(store)
    local code, out, err = host(uri, app, "project", "--once")
    assert(code == 0, err)
    assert.same(TOTAL, aeon.json.decode(out).tally.events)

    write_app(app, gate, 2)
    local p = process.start({ "--store", uri, app, "project" })
    -- The build stops at the gate with every event before k/10's done.
    assert.truthy(process.wait_until(function()
      local st = status_of(uri, app)
      return st.building and st.building.revision == before_gate
    end, 120, 0.2), p:stderr())
    p:kill(9)
    assert.same(137, p:wait(30))
    local st = status_of(uri, app)
    assert.same(2, st.building.version)
    assert.same(PER_KEY, st.building.lag)
    assert.same(1, st.live.version)

    spit(gate, "open\n")
    code, out, err = host(uri, app, "project", "--once")
    assert(code == 0, err)
    assert.same(PER_KEY, aeon.json.decode(out).tally.events) -- only what was left
    assert.matches("building version 2 of view tally beside the live version 1, from its " ..
      "checkpoint " .. before_gate, err)
    assert.matches("version 2 of view tally is live", err)
    st = status_of(uri, app)
    assert.same(2, st.live.version)
    assert.is_nil(st.building)
    assert.is_nil(st.retired)
    code, out, err = host(uri, app, "total")
    assert(code == 0, err)
    local body = aeon.json.decode(out)
    assert.same({ total = TOTAL, docs = KEYS, twice = KEYS }, { total = body.total,
      docs = body.docs, twice = body.twice })
    local v = store:view(body.view)
    for k = 1, KEYS do assert.same({ n = PER_KEY, twice = 2 * PER_KEY }, v:get("k/" .. k)) end
    assert.same({}, store:view("tally"):list())
    p:cleanup()
  end)

  it("takes a view no build has written to (a new store) as the declared version's: nothing to build", function()
    write_app(app, gate, 2)
    spit(gate, "open\n")
    local code, _, err = host(uri, app, "project", "--once")
    assert(code == 0, err)
    assert.is_nil(err:find("building", 1, true), err)
    local st = status_of(uri, app)
    assert.same({ 2, "tally" }, { st.live.version, st.live.view })
    assert.is_nil(st.building)
    seed(store)
    local out
    code, out, err = host(uri, app, "total")
    assert(code == 0, err)
    assert.same({ total = TOTAL, docs = KEYS, twice = KEYS, view = "tally" }, aeon.json.decode(out))
    assert.is_nil(err:find("building", 1, true), err)
  end)

  it("project --status says where each build stands; --rebuild builds beside the live one", function()
    write_app(app, gate, 1)
    local last = seed(store)
    local code, _, err = host(uri, app, "project", "--once")
    assert(code == 0, err)
    local st = status_of(uri, app)
    assert.same({ version = 1, view = "tally", revision = last, lag = 0 }, st.live)
    assert.same(1, st.version)
    for i = 1, 5 do assert(store:append("k/1", { { type = "added", data = { i = i } } })) end
    assert.same(5, status_of(uri, app).live.lag)

    local out
    code, out, err = host(uri, app, "project", "--rebuild", "tally")
    assert(code == 0, err)
    assert.same(TOTAL + 5, aeon.json.decode(out).tally.events)
    assert.matches("building version 1 of view tally beside the live version 1, from the " ..
      "first event", err)
    assert.matches("dropped version 1 of view tally %(tally%)", err)
    st = status_of(uri, app)
    assert.same("tally@v1.1", st.live.view)
    assert.same(0, st.live.lag)
    assert.is_nil(st.retired)
    assert.same({}, store:view("tally"):list())
    code, out = host(uri, app, "total")
    assert.same(0, code)
    assert.same(TOTAL + 5, aeon.json.decode(out).total)

    code, _, err = host(uri, app, "project", "--status", "--once")
    assert.same(2, code)
    assert.matches("%-%-status takes neither", err)
  end)
end)
