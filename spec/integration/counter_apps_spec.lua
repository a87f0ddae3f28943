-- The counter apps: apps/counter-optimistic-concurrency.lua,
-- apps/counter-snapshot.lua and apps/counter.lua, through the command line
-- and, to provoke conflicts deterministically, through App:call with a store
-- where another writer always gets in first. Every backend.
local aeon = require "aeon"
local appmod = require "aeon.app"
local helpers = require "helpers"
local stores = require "support.stores"
local counter = require "domain.counter"

local collect, pluck = helpers.collect, helpers.pluck

-- Runs `n` shell loops at once, each running `aeon-host APP increment
-- name=NAME` `count` times; returns the exit status of every command, and
-- each loop's stderr.
local function race(env, app, name, n, count)
  local dir = helpers.tmpdir()
  local envs = {}
  for k, v in pairs(env) do envs[#envs + 1] = k .. "=" .. helpers.shell_quote(v) end
  local cmd = ("%s %s %s increment name=%s >/dev/null"):format(table.concat(envs, " "),
    helpers.shell_quote(helpers.HOST), helpers.shell_quote(app), helpers.shell_quote(name))
  local loops = {}
  for w = 1, n do
    loops[#loops + 1] = ("(i=0; while [ $i -lt %d ]; do i=$((i+1)); %s 2>>%s/err%d; echo $?; done > %s/out%d) &")
      :format(count, cmd, dir, w, dir, w)
  end
  assert(os.execute(table.concat(loops, " ") .. " wait"))
  local codes, errs = {}, {}
  for w = 1, n do
    for line in io.lines(dir .. "/out" .. w) do codes[#codes + 1] = tonumber(line) end
    local f = io.open(dir .. "/err" .. w)
    errs[w] = f and f:read("a") or ""
    if f then f:close() end
  end
  os.execute("rm -rf " .. dir)
  return codes, errs
end

-- How many commands exited with each status, and that as text.
local function tally(codes)
  local t = {}
  for _, c in ipairs(codes) do t[c] = (t[c] or 0) + 1 end
  local parts = {}
  for c, n in pairs(t) do parts[#parts + 1] = ("exit %d: %d"):format(c, n) end
  table.sort(parts)
  return t, table.concat(parts, ", ")
end

for _, backend in helpers.each_backend() do
  describe("counter apps #cli #" .. backend, function()
    local uri, env
    before_each(function() uri, env = helpers.fresh_env(backend) end)

    local function host(app, ...) return helpers.run_app(app, env, ...) end

    local function with_store(f) helpers.with_store(uri, f) end

    for _, app in ipairs { "apps/counter.lua", "apps/counter-optimistic-concurrency.lua",
      "apps/counter-snapshot.lua" } do
      describe(app, function()
        it("counts, never goes below 0, and answers with the value", function()
          local code, r = host(app, "increment", "name=a")
          assert.same(0, code)
          assert.same("appended", r.type)
          assert.same(1, r.value)
          assert.same(2, select(2, host(app, "increment", "a")).value)
          assert.same(1, select(2, host(app, "decrement", "a")).value)
          assert.same(0, select(2, host(app, "decrement", "a")).value)
          code, r = host(app, "decrement", "a")
          assert.same(0, code)
          assert.same({ type = "unchanged", value = 0 }, r)
          assert.same(0, select(2, host(app, "counter", "a")).value)
          assert.same(1, select(2, host(app, "increment", "b")).value)
          with_store(function(store)
            assert.same({ "incremented", "incremented", "decremented", "decremented" },
              pluck(collect(store:read("counter/a")), "type"))
            assert.same({ type = "decremented", name = "a" }, collect(store:read("counter/a"))[4].data)
          end)
        end)

        it("refuses a missing name with a usage error", function()
          local code, _, err = host(app, "increment")
          assert.same(2, code)
          assert.matches("name is required", err)
        end)
      end)
    end

    describe("on a conflict", function()
      -- Calls an app's command with a store where another writer appends to
      -- the counter before each of the command's appends.
      local function call_racing(path, times)
        local app = dofile(path)
        local store, other = assert(aeon.open(uri)), assert(aeon.open(uri))
        local racing = stores.interfering(store, other, counter.incremented "a", times)
        local outcome, value = app:call("increment", { store = racing, app = app }, { name = "a" })
        local n = #collect(store:read("counter/a"))
        store:close()
        other:close()
        return outcome, value, n, racing.interfered
      end

      it("counter-optimistic-concurrency reports it: exit status 1, HTTP 409, nothing appended", function()
        local outcome, err, stored = call_racing("apps/counter-optimistic-concurrency.lua", 1)
        assert.same("conflict", outcome)
        assert.matches("^conflict: expected revision 0 but the head is ", err.message)
        assert.same(1, appmod.OUTCOMES[outcome].exit)
        assert.same(409, appmod.OUTCOMES[outcome].http)
        assert.same(1, stored)                  -- the other writer's event only
      end)

      it("counter-snapshot reports it too", function()
        local outcome, _, stored = call_racing("apps/counter-snapshot.lua", 1)
        assert.same("conflict", outcome)
        assert.same(1, stored)
      end)

      it("counter retries and lands on top of the other writers", function()
        local outcome, r, stored, interfered = call_racing("apps/counter.lua", 3)
        assert.same("ok", outcome)
        assert.same("appended", r.type)
        assert.same(4, r.value)
        assert.same(4, stored)
        assert.same(3, interfered)
      end)
    end)

    describe("apps/counter-snapshot.lua", function()
      it("snapshots every 10 events and replays only the events after the snapshot", function()
        for i = 1, 25 do assert.same(0, (host("apps/counter-snapshot.lua", "increment", "s")), "increment " .. i) end
        local code, r = host("apps/counter-snapshot.lua", "counter", "s")
        assert.same(0, code)
        with_store(function(store)
          local revisions = pluck(collect(store:read("counter/s")), "revision")
          assert.same({ revision = revisions[20], state = 20 }, store:snapshot("counter/s"))
          assert.same({ value = 25, snapshot = revisions[20], replayed = 5 }, r)
        end)
      end)
    end)

    it("racing writers of counter-optimistic-concurrency each succeed or report a conflict #race", function()
      local codes, errs = race(env, "apps/counter-optimistic-concurrency.lua", "oc", 3, 15)
      local t, text = tally(codes)
      assert.same(45, #codes)
      assert.same(45, (t[0] or 0) + (t[1] or 0), text)
      for w, err in ipairs(errs) do
        for line in err:gmatch("[^\n]+") do
          assert.matches("^aeon%-host: conflict: expected revision", line, nil, nil, "writer " .. w)
        end
      end
      with_store(function(store) assert.same(t[0], #collect(store:read("counter/oc"))) end)
    end)

    it("4 processes incrementing one counter 150 times each through apps/counter.lua lose nothing #heavy", function()
      local codes, errs = race(env, "apps/counter.lua", "busy", 4, 150)
      assert.same(600, #codes)
      local t, text = tally(codes)
      assert.same({ [0] = 600 }, t, text .. "\n" .. table.concat(errs))
      local code, r = host("apps/counter.lua", "counter", "busy")
      assert.same(0, code)
      assert.same(600, r.value)
      assert.same(600, r.increments) -- from the read model the projection keeps
      assert.is_true(aeon.revision_valid(r.revision))
      with_store(function(store)
        local events = collect(store:read("counter/busy"))
        assert.same(600, #events)
        for _, e in ipairs(events) do assert.same({ type = "incremented", name = "busy" }, e.data) end
        assert.is_true(store:snapshot("counter/busy").state <= 600)
      end)
    end)
  end)
end
