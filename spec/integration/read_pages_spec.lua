-- Reads that cross many pages hand out every event exactly once and in
-- order, on every backend: one key's events forward, backward, with a limit
-- and with a type filter, and read_all over two keys. The reads run in
-- `aeon-host events` with pages forced small (AEON_DYNAMODB_PAGE_ITEMS=7:
-- 43 Query pages for 300 events, each fetched ahead while the one before
-- is handed out); the embedded store's pages are 256 rows, which 300
-- events cross. The same reads in this process, with pages as large as the
-- backend makes them, give the same answers.
local helpers = require "helpers"
local aeon = require "aeon"

local A, B = 300, 100 -- events on pages/a and pages/b

-- `aeon-host --store URI events ...` with small pages: the events it
-- printed, decoded.
local function host_read(uri, words)
  local argv = { "--store", uri, "events" }
  for _, w in ipairs(words) do argv[#argv + 1] = w end
  argv[#argv + 1] = "--json"
  local code, out, err = helpers.run_host(argv, { env = { AEON_DYNAMODB_PAGE_ITEMS = "7" } })
  assert(code == 0, err)
  local events = {}
  for line in out:gmatch("[^\n]+") do events[#events + 1] = assert(aeon.json.decode(line)) end
  return events
end

-- The same read in this process.
local function own_read(store, key, opts)
  local list = {}
  local iter, s, c, closer
  if key then iter, s, c, closer = store:read(key, opts) else iter, s, c, closer = store:read_all(opts) end
  for e in iter, s, c, closer do list[#list + 1] = e end
  return list
end

-- Checks that `events` are `want` in number, with strictly rising (or
-- falling) revisions, and, for one key, data.i running from `first` by
-- `step`: none lost, none twice, none out of place.
local function check(events, want, backward, first, step)
  assert.equal(want, #events)
  for i = 2, #events do
    local a, b = events[i - 1].revision, events[i].revision
    if backward then assert.is_true(a > b) else assert.is_true(a < b) end
  end
  if first then
    for i, e in ipairs(events) do assert.equal(first + (i - 1) * step, e.data.i) end
  end
end

for _, backend in helpers.each_backend() do
  describe("reads across many pages #" .. backend, function()
    local store, uri

    setup(function()
      store, uri = helpers.fresh_store(backend)
      local per = helpers.backend(backend).batch_events < 50 and helpers.backend(backend).batch_events or 50
      local next_i = { a = 0, b = 0 }
      -- pages/a and pages/b interleaved; every third event of pages/a is
      -- "odd", the rest "even", so a type filter skips inside pages.
      for _, k in ipairs({ "a", "a", "b", "a", "a", "b", "a", "a" }) do
        local events = {}
        for _ = 1, per do
          local i = next_i[k]
          events[#events + 1] = { type = (k == "a" and i % 3 == 0) and "odd" or "even", data = { i = i } }
          next_i[k] = i + 1
        end
        assert.equal("appended", assert(store:append("pages/" .. k, events)).type)
      end
      assert.same({ a = A, b = B }, next_i)
    end)

    teardown(function()
      if helpers.backend(backend).deploy then store:admin("destroy") end
      store:close()
    end)

    it("hands out a key's events once each, in order, forward and backward", function()
      local forward = host_read(uri, { "read", "pages/a" })
      check(forward, A, false, 0, 1)
      check(host_read(uri, { "read", "pages/a", "--backward" }), A, true, A - 1, -1)
      assert.same(helpers.pluck(own_read(store, "pages/a"), "revision"), helpers.pluck(forward, "revision"))
    end)

    it("stops at a limit that falls inside a page, and goes on after a revision", function()
      local all = own_read(store, "pages/a")
      check(host_read(uri, { "read", "pages/a", "--limit", "10" }), 10, false, 0, 1)
      check(host_read(uri, { "read", "pages/a", "--after", all[150].revision, "--limit", "80" }), 80, false, 150, 1)
    end)

    it("filters across pages, some of them with no match", function()
      local odd = host_read(uri, { "all", "--type", "odd" })
      check(odd, A // 3, false, 0, 3)
      assert.same(helpers.pluck(own_read(store, nil, { filter = { type = aeon.filter.eq("odd") } }), "revision"),
        helpers.pluck(odd, "revision"))
    end)

    it("reads every key's events once each, in revision order", function()
      local every = host_read(uri, { "all" })
      check(every, A + B, false)
      local seen = {}
      for _, e in ipairs(every) do
        local id = e.key .. "#" .. e.data.i
        assert.is_nil(seen[id])
        seen[id] = true
      end
      assert.same(helpers.pluck(own_read(store, nil), "revision"), helpers.pluck(every, "revision"))
    end)
  end)
end
