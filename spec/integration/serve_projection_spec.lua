-- Several `aeon-host serve` processes of one app on one store: each runs
-- the app's projections in the background, and the subscription lease
-- (API.md section 4) lets one of them apply each projection while the
-- others stand by; when it stops, another takes over from the checkpoint.
-- spec/support/tally_app.lua's `tally` adds one per event it is handed,
-- so an event applied twice or lost shows in its counts.
local aeon = require "aeon"
local helpers = require "helpers"
local server = require "support.http_server"

local COUNTERS = 10

local function append_round(store, from, to)
  for i = from, to do
    local name = "s" .. (i % COUNTERS + 1)
    assert(store:append("counter/" .. name,
      { { type = "incremented", data = { type = "incremented", name = name } } }))
  end
end

-- The tally of every counter once it adds up to `total`, or nil.
local function tallies(store, total)
  return server.eventually(120, function()
    local tally, sum, out = store:view("tally"), 0, {}
    for c = 1, COUNTERS do
      local doc = tally:get("counter/s" .. c)
      out[c] = doc and doc.n or 0
      sum = sum + out[c]
    end
    return sum >= total and out
  end)
end

for _, backend in helpers.each_backend() do
  describe("serve processes sharing projections #" .. backend, function()
    it("apply each event once, and hand over when one stops", function()
      local store, uri = helpers.fresh_store(backend)
      local a = server.start("spec/support/tally_app.lua", { "--workers", "1" }, { store = uri })
      local b = server.start("spec/support/tally_app.lua", { "--workers", "1" }, { store = uri })
      append_round(store, 1, 200)
      local first = tallies(store, 200)
      assert.truthy(first, "the projections did not catch up")
      for c = 1, COUNTERS do assert.same(200 // COUNTERS, first[c], "tally of s" .. c) end

      -- One server stops (cleanly: its leases go at once); the other goes
      -- on, holding every projection now.
      assert.same(0, a:stop())
      append_round(store, 201, 300)
      local second = tallies(store, 300)
      assert.truthy(second, "the remaining server did not take the projections over")
      for c = 1, COUNTERS do assert.same(300 // COUNTERS, second[c], "tally of s" .. c) end

      -- A third starts as a standby and takes over when that one stops.
      local c = server.start("spec/support/tally_app.lua", { "--workers", "1" }, { store = uri })
      assert.same(0, b:stop())
      append_round(store, 301, 400)
      local third = tallies(store, 400)
      assert.same(0, c:stop())
      assert.truthy(third, "the standby server did not take the projections over")
      for n = 1, COUNTERS do assert.same(400 // COUNTERS, third[n], "tally of s" .. n) end
      print(("\n  %s: 3 serve processes, 400 events, two handovers: every counter's"
        .. " tally exact"):format(backend))
      store:close()
    end)
  end)
end
