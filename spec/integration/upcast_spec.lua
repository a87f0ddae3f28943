-- Upcasters (app:upcast) on every backend: events of an older shape,
-- appended as they were once written, are handed out in the current shape
-- by every read the host makes for an app - the aggregate runner (also
-- after a snapshot), projections, ctx.store:read and read_all in handlers,
-- and `aeon-host APP.lua events read|all` - while the stored events stay as
-- they were written. A loop of upcasters is an error naming it.
local aeon = require "aeon"
local helpers = require "helpers"
local project = require "aeon.project"

-- The app, as a file the command line can load too. Its first version
-- appended `added { n }`; the second renamed the type to `Added` and the
-- field to `amount`; the third added `unit`. The upcasters take an event of
-- any version to the third's shape, in the order declared.
local APP = [[
local aeon = require "aeon"
local app = aeon.app "tally"

app:upcast("added", function(event)          -- version 1 -> 2: the type
  event.type = "Added"
  return event
end)
app:upcast("Added", function(event)          -- version 2 shape: n -> amount
  local d = event.data
  if d.amount == nil then event.data = { amount = d.n, unit = d.unit } end
  return event
end)
app:upcast("Added", function(event)          -- version 3: a unit, "each" before
  if event.data.unit == nil then event.data.unit = "each" end
  return event
end)

local tally = {
  initial = 0,
  evolve = function(total, event)
    assert(event.type == "Added" and event.data.unit == "each",
      "an event in an old shape reached evolve: " .. event.type)
    return total + event.data.amount
  end,
  decide = function(_, command)
    return { { type = "Added", data = { amount = command.amount, unit = "each" } } }
  end,
}

app:command("add", { params = { "key", "amount" } }, function(ctx, args)
  local result, total = aeon.execute(ctx.store, tally, args.key,
    { amount = math.tointeger(args.amount) }, { snapshot_every = 2 })
  if not result then return nil, total end
  return { total = total, revision = result.revision }
end)

app:query("total", { params = { "key" } }, function(ctx, args)
  local total, err = aeon.load(ctx.store, tally, args.key, { snapshots = true })
  if total == nil then return nil, err end
  return total
end)

-- What a handler's reads see: "TYPE UNIT AMOUNT" per event.
local function seen(iter, s, c, cursor)
  local out = {}
  for e in iter, s, c, cursor do
    out[#out + 1] = ("%s %s %d"):format(e.type, e.data.unit, e.data.amount)
  end
  return out
end

app:query("read", { params = { "key" } }, function(ctx, args)
  return seen(ctx.store:read(args.key))
end)
app:query("read_all", {}, function(ctx) return seen(ctx.store:read_all()) end)

-- Leaves its loop at the first event: the cursor is closed all the same.
app:query("first", { params = { "key" } }, function(ctx, args)
  for e in ctx.store:read(args.key) do return e.type .. " " .. e.data.unit end
end)

app:projection("totals", { view = "totals", key = "tally/*" }, function(view, event)
  local doc, rev = view:get(event.key)
  if rev and event.revision <= rev then return end
  assert(event.type == "Added" and event.data.unit == "each", "an old shape reached the projection")
  assert(view:put(event.key, { total = (doc and doc.total or 0) + event.data.amount, unit = "each" },
    event.revision))
end)

return app
]]

local function load_app(dir)
  local path = dir .. "/tally.lua"
  local f = assert(io.open(path, "w"))
  f:write(APP)
  f:close()
  return assert(dofile(path)), path
end

-- The three shapes, as each version appended them.
local V1 = function(n) return { type = "added", data = { n = n } } end
local V2 = function(n) return { type = "Added", data = { amount = n } } end

for _, backend in helpers.each_backend() do
  describe("upcasters #" .. backend, function()
    local store, uri, app, path

    before_each(function()
      store, uri = helpers.fresh_store(backend)
      app, path = load_app(helpers.tmpdir())
      assert(store:append("tally/a", { V1(2), V2(3) }))
      assert(store:append("tally/b", { V1(10) }))
    end)
    after_each(function() store:close() end)

    -- Whether the backend runs projections; marks the spec pending if not.
    local function projects()
      if helpers.supports(backend, "subscriptions") and helpers.supports(backend, "views") then
        return true
      end
      pending(backend .. " has no subscriptions and views")
      return false
    end

    local function call(name, args)
      return app:call(name, { store = store, app = app }, args or {})
    end

    -- The events of `key` as stored, read through a handle of its own.
    local function raw(key)
      local s = assert(aeon.open(uri))
      local out = {}
      for e in s:read(key) do out[#out + 1] = { type = e.type, data = e.data } end
      s:close()
      return out
    end

    it("hands the aggregate runner current-shape events, also after a snapshot", function()
      local outcome, answer = call("add", { key = "tally/a", amount = "1" })
      assert.same("ok", outcome, answer and answer.message)
      assert.same(6, answer.total)                     -- 2 + 3 + 1, the old two upcast
      -- Four events since none was snapshotted: the runner saved one at its append.
      local snap = assert(store:snapshot("tally/a"))
      assert.same(answer.revision, snap.revision)
      -- An old-shape event after the snapshot is upcast too.
      assert(store:append("tally/a", { V1(4) }))
      assert.same({ "ok", 10 }, { call("total", { key = "tally/a" }) })
      outcome, answer = call("add", { key = "tally/a", amount = "5" })
      assert.same("ok", outcome, answer and answer.message)
      assert.same(15, answer.total)
    end)

    it("hands ctx.store:read and read_all current-shape events, and a loop that breaks closes its cursor", function()
      assert.same({ "ok", { "Added each 2", "Added each 3" } }, { call("read", { key = "tally/a" }) })
      assert.same({ "ok", { "Added each 2", "Added each 3", "Added each 10" } }, { call("read_all") })
      assert.same({ "ok", "Added each" }, { call("first", { key = "tally/a" }) })
      -- The read the loop left is closed: the store takes the next append.
      local outcome, answer = call("add", { key = "tally/a", amount = "1" })
      assert.same("ok", outcome, answer and answer.message)
      assert.same(6, answer.total)
    end)

    it("hands projections current-shape events", function()
      if not projects() then return end
      local report = assert(project.run(store, app, nil, { once = true, log = function() end }))
      assert.same(3, report.totals.events)
      assert.is_nil(report.totals.failed)
      local view = store:view("totals")
      assert.same({ total = 5, unit = "each" }, (view:get("tally/a")))
      assert.same({ total = 10, unit = "each" }, (view:get("tally/b")))
    end)

    it("fails a projection's event whose upcasters loop, keeping the checkpoint before it", function()
      if not projects() then return end
      local looping = aeon.app "looping"
      looping:upcast("added", function(e) e.type = "old"; return e end)
      looping:upcast("old", function(e) e.type = "added"; return e end)
      local n = 0
      looping:projection("count", { view = "count" }, function() n = n + 1 end)
      local report = project.run(store, looping, nil,
        { once = true, log = function() end, backoff = { first = 0.01, max = 0.01 } })
      assert.same(0, n)
      assert.same(0, report.count.events)
      local failed = report.count.failed
      assert.matches("upcasters loop: added -> old -> added", failed.message, 1, true)
      assert.same({ "tally/a", "added" }, { failed.key, failed.type })   -- named as stored
      assert.same(aeon.START, report.count.revision)                     -- nothing passed over
    end)

    it("never rewrites the stored events", function()
      assert.same("ok", (call("add", { key = "tally/a", amount = "1" })))
      call("read_all")
      assert.same({ { type = "added", data = { n = 2 } }, { type = "Added", data = { amount = 3 } },
        { type = "Added", data = { amount = 1, unit = "each" } } }, raw("tally/a"))
    end)

    it("prints upcast events from `APP.lua events read` and `events all`, stored ones without the app", function()
      local env = { env = { AEON_STORE = uri } }
      local function lines(code, out, err)
        assert.same(0, code, err)
        local got = {}
        for line in out:gmatch("[^\n]+") do
          local e = aeon.json.decode(line)
          got[#got + 1] = { e.type, e.data }
        end
        return got
      end
      local function added(n) return { "Added", { amount = n, unit = "each" } } end
      assert.same({ added(2), added(3) },
        lines(helpers.run_host({ path, "events", "read", "tally/a", "--json" }, env)))
      assert.same({ added(2), added(3), added(10) },
        lines(helpers.run_host({ path, "events", "all", "--json" }, env)))
      assert.same({ { "added", { n = 2 } }, { "Added", { amount = 3 } } },
        lines(helpers.run_host({ "events", "read", "tally/a", "--json" }, env)))
    end)
  end)
end

describe("upcaster chains #unit", function()
  local function event(t, data) return { key = "k/1", revision = "1", type = t, data = data or {} } end

  it("runs one type's upcasters in the order declared, then the new type's", function()
    local app = aeon.app "chain"
    local order = {}
    app:upcast("a", function(e) order[#order + 1] = "a1"; e.data.a1 = true; return e end)
    app:upcast("a", function(e) order[#order + 1] = "a2"; e.type = "b"; return e end)
    app:upcast("a", function(e) order[#order + 1] = "a3"; return e end) -- after a type change: skipped
    app:upcast("b", function(e) order[#order + 1] = "b1"; e.data.b1 = e.data.a1; return e end)
    local e = app:upcast_event(event("a"))
    assert.same({ "a1", "a2", "b1" }, order)
    assert.same({ type = "b", a1 = true, b1 = true }, { type = e.type, a1 = e.data.a1, b1 = e.data.b1 })
    local other = event("c")
    assert.equal(other, app:upcast_event(other))                      -- no upcasters: as it is
  end)

  it("refuses a loop of types, naming it, and an upcaster that returns no event", function()
    local app = aeon.app "loop"
    app:upcast("a", function(e) e.type = "b"; return e end)
    app:upcast("b", function(e) e.type = "a"; return e end)
    local ok, err = pcall(app.upcast_event, app, event("a"))
    assert.is_false(ok)
    assert.matches("upcasters loop: a -> b -> a", err, 1, true)
    app:upcast("c", function() end)
    ok, err = pcall(app.upcast_event, app, event("c"))
    assert.is_false(ok)
    assert.matches("upcaster 1 of 'c' must return an event", err, 1, true)
    app:upcast("d", function(e) return { type = "d", key = "other", revision = e.revision } end)
    ok, err = pcall(app.upcast_event, app, event("d"))
    assert.is_false(ok)
    assert.matches("changed the event's key or revision", err, 1, true)
  end)

  it("makes a loop in a handler's read a script error, not a wrong answer", function()
    local store = assert(aeon.open("memory:"))
    assert(store:append("k/1", { { type = "a", data = {} } }))
    local app = aeon.app "loop"
    app:upcast("a", function(e) e.type = "b"; return e end)
    app:upcast("b", function(e) e.type = "a"; return e end)
    app:query("types", function(ctx)
      local out = {}
      for e in ctx.store:read("k/1") do out[#out + 1] = e.type end
      return out
    end)
    local outcome, err = app:call("types", { store = store }, {})
    store:close()
    assert.same("script", outcome)
    assert.matches("upcasters loop: a -> b -> a", err.message, 1, true)
  end)
end)
