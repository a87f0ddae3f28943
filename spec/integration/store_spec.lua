-- The store contract (API.md sections 2-4), run against every backend.
local aeon = require "aeon"
local helpers = require "helpers"

local f = aeon.filter
local collect, pluck = helpers.collect, helpers.pluck

local function ev(type, data) return { type = type, data = data } end

for _, backend in helpers.each_backend() do
  describe("store #" .. backend, function()
    local store

    before_each(function() store = helpers.fresh_store(backend) end)
    after_each(function() store:close() end)

    describe("append", function()
      it("commits events and answers with the count and the last revision", function()
        local r = assert(store:append("counter/a", { ev("incremented", { n = 1 }), ev("incremented", { n = 2 }) }))
        assert.same("appended", r.type)
        assert.same(2, r.count)
        assert.is_true(aeon.revision_valid(r.revision))
        assert.same(r.revision, store:head("counter/a"))
        local events = collect(store:read("counter/a"))
        assert.same({ 1, 2 }, { events[1].data.n, events[2].data.n })
        assert.same(r.revision, events[2].revision)
      end)

      it("gives every event a revision above the key's head", function()
        local revs = {}
        for i = 1, 20 do
          revs[i] = assert(store:append("k", { ev("e", { i = i }) })).revision
        end
        for i = 2, 20 do assert.is_true(revs[i] > revs[i - 1]) end
      end)

      it("answers unchanged for no events and commits nothing", function()
        assert.same({ type = "unchanged" }, store:append("k", {}))
        assert.same(aeon.START, store:head("k"))
      end)

      it("fills in the event fields", function()
        store:append("k", { { type = "t", data = { a = 1 }, correlation_id = "c-1" } })
        local e = collect(store:read("k"))[1]
        assert.same("k", e.key)
        assert.same("t", e.type)
        assert.same("c-1", e.correlation_id)
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", e.committed_at)
      end)

      it("leaves correlation_id nil when none was given, and data {} when no data", function()
        store:append("k", { { type = "t" } })
        local e = collect(store:read("k"))[1]
        assert.is_nil(e.correlation_id)
        assert.same({}, e.data)
      end)
    end)

    describe("expected_revision", function()
      it("START appends only to an empty key", function()
        local r = store:append("k", { ev("a", {}) }, { expected_revision = aeon.START })
        assert.same("appended", r.type)
        local again = store:append("k", { ev("b", {}) }, { expected_revision = aeon.START })
        assert.same({ type = "conflict", expected_revision = aeon.START, actual_revision = r.revision }, again)
        assert.same(1, #collect(store:read("k")))
      end)

      it("a revision appends only when it is the head", function()
        local r1 = store:append("k", { ev("a", {}) })
        local r2 = store:append("k", { ev("b", {}) }, { expected_revision = r1.revision })
        assert.same("appended", r2.type)
        local stale = store:append("k", { ev("c", {}) }, { expected_revision = r1.revision })
        assert.same("conflict", stale.type)
        assert.same(r1.revision, stale.expected_revision)
        assert.same(r2.revision, stale.actual_revision)
        assert.same({ "a", "b" }, pluck(collect(store:read("k")), "type"))
      end)

      it("a revision on an empty key conflicts with START as the actual head", function()
        local r = store:append("fresh", { ev("a", {}) }, { expected_revision = "01ARZ3NDEKTSV4RRFFQ69G5FAV" })
        assert.same("conflict", r.type)
        assert.same(aeon.START, r.actual_revision)
        assert.same(aeon.START, store:head("fresh"))
      end)

      it("is checked per key", function()
        store:append("other", { ev("a", {}) })
        local r = store:append("k", { ev("a", {}) }, { expected_revision = aeon.START })
        assert.same("appended", r.type)
      end)
    end)

    describe("idempotency_key", function()
      it("commits a repeated append once and answers unchanged", function()
        local first = store:append("k", { ev("a", {}) }, { idempotency_key = "req-1" })
        assert.same("appended", first.type)
        local again = store:append("k", { ev("a", {}) }, { idempotency_key = "req-1" })
        assert.same({ type = "unchanged" }, again)
        assert.same(1, #collect(store:read("k")))
        local other = store:append("k", { ev("a", {}) }, { idempotency_key = "req-2" })
        assert.same("appended", other.type)
        assert.same(2, #collect(store:read("k")))
      end)
    end)

    describe("append_many", function()
      it("commits several keys together", function()
        local r = store:append_many {
          { key = "a", events = { ev("x", {}) }, expected_revision = aeon.START },
          { key = "b", events = { ev("y", {}), ev("z", {}) } },
        }
        assert.same("appended", r.type)
        assert.same(3, r.count)
        assert.same(1, #collect(store:read("a")))
        assert.same(2, #collect(store:read("b")))
      end)

      it("checks the expected revision of a key given no events", function()
        local head = store:append("b", { ev("y", {}) }).revision
        local r = store:append_many {
          { key = "a", events = { ev("x", {}) } },
          { key = "b", events = {}, expected_revision = aeon.START },
        }
        assert.same("conflict", r.type)
        assert.same("b", r.key)
        assert.same(head, r.actual_revision)
        assert.same(aeon.START, store:head("a"))
        local ok = store:append_many {
          { key = "a", events = { ev("x", {}) } },
          { key = "b", events = {}, expected_revision = head },
        }
        assert.same("appended", ok.type)
        assert.same(1, ok.count)
        assert.same(head, store:head("b"))
      end)

      it("commits nothing when one check fails, and names the key", function()
        store:append("b", { ev("y", {}) })
        local r = store:append_many {
          { key = "a", events = { ev("x", {}) }, expected_revision = aeon.START },
          { key = "b", events = { ev("y", {}) }, expected_revision = aeon.START },
        }
        assert.same("conflict", r.type)
        assert.same("b", r.key)
        assert.same(aeon.START, r.expected_revision)
        assert.same(store:head("b"), r.actual_revision)
        assert.same(aeon.START, store:head("a"))
        assert.same(1, #collect(store:read("b")))
      end)
    end)

    describe("read", function()
      local revs
      before_each(function()
        revs = {}
        for i = 1, 6 do
          revs[i] = store:append("s", { ev(i % 2 == 0 and "even" or "odd", { i = i }) }).revision
        end
        store:append("other", { ev("odd", { i = 100 }) })
      end)

      local function is(opts) return pluck(pluck(collect(store:read("s", opts)), "data"), "i") end

      it("reads a key forward and backward", function()
        assert.same({ 1, 2, 3, 4, 5, 6 }, is())
        assert.same({ 6, 5, 4, 3, 2, 1 }, is { direction = "backward" })
      end)

      it("honours inclusive and exclusive bounds", function()
        assert.same({ 2, 3, 4, 5, 6 }, is { from = revs[2] })
        assert.same({ 3, 4, 5, 6 }, is { after = revs[2] })
        assert.same({ 1, 2, 3, 4 }, is { to = revs[4] })
        assert.same({ 1, 2, 3 }, is { before = revs[4] })
        assert.same({ 3, 4 }, is { after = revs[2], before = revs[5] })
        assert.same({ 4, 3 }, is { after = revs[2], before = revs[5], direction = "backward", limit = 2 })
        assert.same({}, is { from = revs[5], to = revs[2] })
        assert.same({ 1, 2, 3, 4, 5, 6 }, is { from = aeon.START, to = aeon.END })
        assert.same({}, is { after = aeon.END })
      end)

      it("limits the events read", function()
        assert.same({ 1, 2 }, is { limit = 2 })
        assert.same({ 6, 5, 4 }, is { limit = 3, direction = "backward" })
        assert.same({}, is { limit = 0 })
      end)

      it("counts only matching events against the limit", function()
        assert.same({ 2, 4 }, is { filter = { type = f.eq("even") }, limit = 2 })
        assert.same({ 5, 3 }, is { filter = { type = f.eq("odd") }, limit = 2, direction = "backward" })
      end)

      it("reads every key in revision order with read_all", function()
        local all = collect(store:read_all())
        assert.same(7, #all)
        for i = 2, #all do assert.is_true(all[i].revision > all[i - 1].revision) end
        assert.same("other", all[7].key)
        local back = collect(store:read_all { direction = "backward", limit = 2 })
        assert.same({ "other", "s" }, pluck(back, "key"))
        assert.same({ 4, 5 }, pluck(pluck(collect(store:read_all { after = revs[3], limit = 2 }), "data"), "i"))
      end)

      it("stops early when the loop breaks, and keeps the store usable", function()
        for e in store:read("s") do
          if e.data.i == 2 then break end
        end
        assert.same(6, #collect(store:read("s")))
      end)

      it("pages through a stream longer than a page", function()
        local per = helpers.backend(backend).batch_events
        local batch = {}
        for i = 1, per do batch[i] = ev("bulk", { i = i }) end
        for _ = 1, 1000 // per do assert(store:append("long", batch)) end
        local n, last = 0, nil
        for e in store:read("long") do
          n = n + 1
          if last then assert.is_true(e.revision > last) end
          last = e.revision
        end
        assert.same(1000, n)
        assert.same(999, #collect(store:read("long", { after = collect(store:read("long", { limit = 1 }))[1].revision })))
      end)
    end)

    describe("filters", function()
      before_each(function()
        store:append("truck/1", {
          ev("FlavourRestocked", { flavour = "Vanilla", quantity = 3 }),
          ev("FlavourSold", { flavour = "Vanilla" }),
          ev("FlavourRestocked", { flavour = "Strawberry", quantity = 1.5, meta = { source = "depot", n = 7 } }),
        })
        store:append("truck/2", { ev("FlavourSold", { flavour = "Strawberry" }) })
        store:append("van/1", { { type = "FlavourSold", data = { flavour = "Vanilla" }, correlation_id = "c1" } })
      end)

      local function keys_types(filter)
        local out = {}
        for e in store:read_all { filter = filter } do out[#out + 1] = e.key .. ":" .. e.type end
        return out
      end

      it("matches key prefixes and exact types", function()
        assert.same({ "truck/1:FlavourSold", "truck/2:FlavourSold" },
          keys_types { key = f.prefix("truck/"), type = f.eq("FlavourSold") })
      end)

      it("matches data attributes and nested paths", function()
        assert.same({ "truck/1:FlavourRestocked" }, keys_types { data = { flavour = f.eq("Vanilla"), quantity = f.gte(3) } })
        assert.same({ "truck/1:FlavourRestocked" }, keys_types { data = { meta = { source = f.eq("depot") } } })
        assert.same({ "truck/1:FlavourRestocked" }, keys_types { data = { meta = { n = f.gt(6.5) } } })
      end)

      it("compares numbers across integers and floats", function()
        assert.same(2, #keys_types { data = { quantity = f.lt(4) } })
        assert.same(1, #keys_types { data = { quantity = f.eq(1.5) } })
        assert.same(1, #keys_types { data = { quantity = f.eq(3.0) } })
        assert.same(1, #keys_types { data = { quantity = f.lte(1.5) } })
      end)

      it("is false for absent attributes and mismatched types", function()
        assert.same({}, keys_types { data = { quantity = f.eq("3") } })
        assert.same({}, keys_types { data = { missing = f.lt(100) } })
        assert.same({}, keys_types { data = { flavour = f.gt(5) } })
      end)

      it("ne matches present attributes that differ", function()
        assert.same({ "truck/1:FlavourRestocked", "truck/2:FlavourSold" },
          keys_types { data = { flavour = f.ne("Vanilla") } })
      end)

      it("exists, any_of and all_of", function()
        assert.same(2, #keys_types { data = { quantity = f.exists() } })
        assert.same({ "van/1:FlavourSold" }, keys_types { correlation_id = f.exists() })
        assert.same(3, #keys_types(f.any_of({ key = f.eq("truck/2") }, { data = { quantity = f.exists() } })))
        assert.same({ "truck/1:FlavourSold" },
          keys_types(f.all_of({ key = f.eq("truck/1") }, { type = f.eq("FlavourSold") })))
        assert.same({ "truck/1:FlavourRestocked", "truck/1:FlavourSold", "truck/1:FlavourRestocked" },
          keys_types { key = f.any_of(f.eq("truck/1"), f.eq("nope")) })
      end)

      it("applies to a single key's read", function()
        local got = pluck(collect(store:read("truck/1", { filter = { type = f.eq("FlavourRestocked") } })), "type")
        assert.same({ "FlavourRestocked", "FlavourRestocked" }, got)
      end)
    end)

    describe("event data", function()
      local function roundtrip(data)
        store:append("data", { ev("d", data) })
        local events = collect(store:read("data", { direction = "backward", limit = 1 }))
        return events[1].data
      end

      it("keeps integers exact to 2^63-1", function()
        local d = roundtrip { big = 9007199254740993, max = math.maxinteger, min = math.mininteger, neg = -42, zero = 0 }
        assert.same(9007199254740993, d.big)
        assert.same(math.maxinteger, d.max)
        assert.same(math.mininteger, d.min)
        assert.same(-42, d.neg)
        assert.same("integer", math.type(d.big))
        assert.same("integer", math.type(d.zero))
      end)

      it("keeps floats at full precision, and floats as floats", function()
        -- DynamoDB holds magnitudes from 1e-130 to 9.99e125 (API.md section 3).
        local huge, tiny = helpers.backend(backend).float_max, helpers.backend(backend).float_min
        local d = roundtrip { tenth = 0.1, third = 1 / 3, huge = huge, tiny = tiny, one = 1.0, neg = -2.5e-10 }
        assert.same(0.1, d.tenth)
        assert.same(1 / 3, d.third)
        assert.same(huge, d.huge)
        assert.same(tiny, d.tiny)
        assert.same("float", math.type(d.one))
        assert.same(-2.5e-10, d.neg)
      end)

      if helpers.backend(backend).bounded_numbers then
        it("refuses numbers DynamoDB cannot hold, naming them, and commits nothing", function()
          for _, bad in ipairs { { x = 1e300 }, { x = -1e127 }, { x = 5e-324 }, { deep = { 1, { y = 1e-131 } } } } do
            local r, err = store:append("range", { ev("b", bad) })
            assert.is_nil(r)
            assert.matches("DynamoDB", err)
            assert.matches("/", err) -- the JSON Pointer of the value
          end
          assert.same(aeon.START, store:head("range"))
        end)
      end

      it("keeps strings, booleans, arrays, nesting and empty tables", function()
        local value = {
          s = "héllo \"wörld\"\n\t\0 ✓ 𝄞", empty = "", yes = true, no = false,
          list = { 1, "two", { three = 3 }, { 4 } }, nested = { a = { b = { c = {} } } }, blank = {},
        }
        assert.same(value, roundtrip(value))
      end)

      it("keeps JSON null inside arrays as aeon.null", function()
        local d = roundtrip { list = { 1, aeon.null, 3 } }
        assert.same(3, #d.list)
        assert.same(aeon.null, d.list[2])
      end)

      it("accepts data that is not a table", function()
        assert.same(42, roundtrip(42))
        assert.same("text", roundtrip("text"))
      end)

      it("refuses values JSON cannot hold exactly, and commits nothing", function()
        for _, bad in ipairs { { x = 0 / 0 }, { x = math.huge }, { x = -math.huge }, { [1] = 1, [3] = 3 },
          { 1, x = 2 }, { f = print }, { s = "\255\254" } } do
          assert.has_error(function() store:append("bad", { ev("b", bad) }) end)
        end
        assert.same(aeon.START, store:head("bad"))
      end)

      it("refuses an oversize event with nil and a message, and commits nothing", function()
        local r, err = store:append("big", { ev("ok", { n = 1 }), ev("b", { blob = string.rep("x", 5 * 1024 * 1024) }) })
        assert.is_nil(r)
        assert.matches("limit", err)
        assert.same(aeon.START, store:head("big"))
      end)

      it("names where the bad value is", function()
        local ok, err = pcall(store.append, store, "bad", { ev("b", { items = { { price = 0 / 0 } } }) })
        assert.is_false(ok)
        assert.matches("items%[1%]%.price", err)
        assert.matches("NaN", err)
      end)
    end)

    describe("snapshots", function()
      it("stores and loads the newest snapshot", function()
        assert.is_nil(store:snapshot("k"))
        local r1 = store:append("k", { ev("a", {}) }).revision
        local r2 = store:append("k", { ev("a", {}) }).revision
        assert.is_true(store:save_snapshot("k", r2, { value = 2, big = math.maxinteger }))
        assert.same({ revision = r2, state = { value = 2, big = math.maxinteger } }, store:snapshot("k"))
        assert.is_false(store:save_snapshot("k", r1, { value = 1 }))
        assert.same(2, store:snapshot("k").state.value)
      end)
    end)

    describe("bad arguments", function()
      it("raise for programming mistakes", function()
        assert.has_error(function() store:append(42, {}) end)
        assert.has_error(function() store:append("", { ev("a", {}) }) end)
        assert.has_error(function() store:append("a\0b", { ev("a", {}) }) end)
        assert.has_error(function() store:append("k\255", { ev("a", {}) }) end)
        assert.has_error(function() store:append("k", { { data = {} } }) end)
        assert.has_error(function() store:append("k", { { type = 7 } }) end)
        assert.has_error(function() store:append("k", { { type = "a", correlationId = "x" } }) end)
        assert.has_error(function() store:append("k", "not a table") end)
        assert.has_error(function() store:append("k", { ev("a", {}) }, { expected = aeon.START }) end)
        assert.has_error(function() store:append("k", { ev("a", {}) }, { expected_revision = "nope" }) end)
        assert.has_error(function() store:read("k", { limit = -1 }) end)
        assert.has_error(function() store:read("k", { from = "x" }) end)
        assert.has_error(function() store:read("k", { from = aeon.START, after = aeon.START }) end)
        assert.has_error(function() store:read("k", { direction = "sideways" }) end)
        assert.has_error(function() store:read("k", { filter = { colour = f.eq("red") } }) end)
        assert.has_error(function() store:read("k", { filter = { type = f.gt(true) } }) end)
        assert.has_error(function() store:read("k", { filter = { type = { op = "like", value = "x" } } }) end)
        assert.has_error(function() store:head(nil) end)
        assert.has_error(function() store:save_snapshot("k", "not-a-revision", {}) end)
        assert.same(0, #collect(store:read_all()))
      end)

      it("raise on a closed store", function()
        store:close()
        assert.has_error(function() store:head("k") end, "store is closed")
        store = helpers.fresh_store(backend)
      end)

      it("closes with <close> and stays closed", function()
        local uri = helpers.fresh_uri(backend)
        local escaped
        do
          local s <close> = assert(aeon.open(uri))
          escaped = s
        end
        assert.has_error(function() escaped:head("k") end, "store is closed")
      end)
    end)
  end)
end

describe("aeon.open", function()
  it("answers nil and a message for a store it cannot open", function()
    local s, err = aeon.open("sqlite:/nonexistent-dir/x/y.db")
    assert.is_nil(s)
    assert.is_string(err)
    local s2, err2 = aeon.open("nosuchscheme:x")
    assert.is_nil(s2)
    assert.matches("URI", err2)
  end)

  it("opens memory: stores that vanish when closed", function()
    local s = assert(aeon.open("memory:"))
    s:append("k", { { type = "t" } })
    assert.is_true(aeon.revision_valid(s:head("k")))
    s:close()
    local s2 = assert(aeon.open("memory:"))
    assert.same(aeon.START, s2:head("k"))
    s2:close()
  end)
end)
