-- Views (API.md section 4) on every backend that has them, and the
-- transactions that let a projection commit view writes with its
-- checkpoint, where the backend has those. Backends without them get
-- pending specs.
local aeon = require "aeon"
local helpers = require "helpers"

for _, backend in helpers.each_backend() do
  describe("views #" .. backend, function()
    if not helpers.supports(backend, "views") then
      pending(backend .. " does not support views yet")
      return
    end

    local store, uri, revs
    before_each(function()
      store, uri = helpers.fresh_store(backend)
      revs = {}
      for i = 1, 3 do revs[i] = store:append("k", { { type = "n", data = { i = i } } }).revision end
    end)
    after_each(function() store:close() end)

    it("gets nothing from an empty view, and has seen nothing", function()
      local v = assert(store:view("counters"))
      assert.is_nil(v:get("a"))
      assert.same(aeon.START, v:revision())
      assert.same("counters", v:name())
    end)

    it("puts documents exactly, conditional on revision", function()
      local v = store:view("counters")
      local doc = { value = 1, ratio = 0.1, tags = { "x", "y" }, empty = {}, nested = { n = 2 ^ 53 } }
      assert.is_true(v:put("a", doc, revs[2]))
      local got, rev = v:get("a")
      assert.same(doc, got)
      assert.same(revs[2], rev)
      assert.is_false(v:put("a", { value = 0 }, revs[1]))  -- older: kept the newer
      assert.same(1, v:get("a").value)
      assert.is_true(v:put("a", { value = 2 }, revs[2]))   -- equal: overwrites
      assert.is_true(v:put("a", { value = 3 }, revs[3]))   -- newer
      assert.same({ value = 3 }, (v:get("a")))
      -- Views are separate.
      assert.is_nil(store:view("other"):get("a"))
    end)

    it("tracks the revision it has seen, never backwards, and clears", function()
      local v, other = store:view("counters"), store:view("other")
      assert.is_true(v:advance(revs[2]))
      v:advance(revs[1])
      assert.same(revs[2], v:revision())
      other:put("a", {}, revs[1])
      v:put("a", {}, revs[1])
      assert.is_true(v:clear())
      assert.is_nil(v:get("a"))
      assert.same(aeon.START, v:revision())
      assert.is_not_nil(other:get("a"))
    end)

    it("refuses what JSON cannot hold and raises on mistakes", function()
      local v = store:view("counters")
      assert.has_error(function() v:put("a", { bad = 0 / 0 }, revs[1]) end)
      assert.has_error(function() v:put("a", {}, "not a revision") end)
      assert.has_error(function() v:put("", {}, revs[1]) end)
      assert.has_error(function() v:advance(aeon.START) end)
      assert.has_error(function() store:view("") end)
      store:close()
      assert.has_error(function() v:get("a") end, "store is closed")
      store = assert(aeon.open(uri))
    end)
  end)

  describe("transactions #" .. backend, function()
    if not helpers.supports(backend, "transactions") then
      pending(backend .. " does not support transactions (view writes are conditional on revision)")
      return
    end

    local store, uri, rev
    before_each(function()
      store, uri = helpers.fresh_store(backend)
      rev = store:append("k", { { type = "n", data = {} } }).revision
    end)
    after_each(function() store:close() end)

    it("commits view writes, a checkpoint and appends together", function()
      local sub = store:subscribe("txn")
      sub:poll(0)
      local other = assert(aeon.open(uri))
      assert.is_true(store:begin())
      store:view("v"):put("a", { n = 1 }, rev)
      store:view("v"):advance(rev)
      assert.is_true(sub:ack(rev))
      local r = store:append("k", { { type = "m", data = {} } })
      assert.is_nil(other:view("v"):get("a")) -- not before the commit
      assert.is_true(store:commit())
      assert.same({ n = 1 }, (other:view("v"):get("a")))
      assert.same(rev, other:view("v"):revision())
      assert.same(rev, other:subscribe("txn"):checkpoint())
      assert.same(r.revision, other:head("k"))
      other:close()
    end)

    it("rolls all of it back", function()
      local sub = store:subscribe("txn")
      sub:poll(0)
      assert.is_true(store:begin())
      store:view("v"):put("a", { n = 1 }, rev)
      sub:ack(rev)
      store:append("k", { { type = "m", data = {} } })
      store:rollback()
      assert.is_nil(store:view("v"):get("a"))
      assert.same(aeon.START, sub:checkpoint())
      assert.same(rev, store:head("k"))
      -- The subscription knows its ack was undone: acking again works.
      assert.is_true(sub:ack(rev))
      assert.same(rev, store:subscribe("txn"):checkpoint())
    end)

    it("raises on a nested begin and on a commit with none open", function()
      assert.is_true(store:begin())
      assert.has_error(function() store:begin() end)
      store:rollback()
      assert.has_error(function() store:commit() end)
      local sub = store:subscribe("x")
      store:begin()
      assert.has_error(function() sub:poll(1) end) -- waiting would hold the write lock
      store:rollback()
    end)
  end)
end
