-- Views (API.md section 4) on every backend that has them, and the
-- transactions that let a projection commit view writes with its
-- checkpoint, where the backend has those. Backends without them get
-- pending specs.
local aeon = require "aeon"
local helpers = require "helpers"

helpers.describe_backends("views", { "views" }, function(backend)
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

  it("clears in bounded steps: clear{ limit = N } takes at most N, and says when all are gone", function()
    local v, other = store:view("counters"), store:view("other")
    for i = 1, 60 do assert.is_true(v:put(("d%02d"):format(i), { n = i }, revs[1])) end
    v:advance(revs[2])
    other:put("a", {}, revs[1])
    local steps, left = 0, 60
    while true do
      steps = steps + 1
      local done = v:clear { limit = 7 }
      local now = #v:list { limit = 1000 }
      assert.is_true(left - now <= 7)                      -- at most 7 per call
      left = now
      if done then break end
      assert.is_true(steps < 60, "clear never finished")
    end
    assert.same(0, left)
    assert.is_true(steps >= 9)                             -- 60 documents, 7 at a time
    assert.same(aeon.START, v:revision())
    assert.is_not_nil(other:get("a"))
    assert.is_true(v:clear { limit = 7 })                  -- nothing left: done at once
    assert.has_error(function() v:clear { limit = 0 } end,
      "view clear: limit must be an integer from 1 to 100000")
    assert.has_error(function() v:clear { limt = 1 } end)
  end)

  it("lists documents in id order, page by page, each with its revision", function()
    local v = store:view("counters")
    local ids = {}
    for i = 1, 23 do
      local id = ("c%02d"):format(24 - i)   -- put in reverse order
      ids[#ids + 1] = id
      assert.is_true(v:put(id, { n = 24 - i }, revs[1 + i % 3]))
    end
    table.sort(ids)
    store:view("other"):put("c00", { n = 0 }, revs[1])   -- another view's: not listed
    local seen, after = {}, nil
    repeat
      local page = v:list { after = after, limit = 10 }
      assert.is_true(#page <= 10)
      for _, d in ipairs(page) do
        seen[#seen + 1] = d.id
        assert.same(tonumber(d.id:sub(2)), d.doc.n)
        assert.same(select(2, v:get(d.id)), d.revision)
      end
      after = page[#page] and page[#page].id
    until #page < 10
    assert.same(ids, seen)
    assert.same(23, #v:list { limit = 1000 })
    assert.same({}, store:view("big"):list())   -- an empty view: an empty list
    assert.same({}, v:list { after = "c23" })
    assert.same("c05", v:list { after = "c04", limit = 1 }[1].id)
    assert.has_error(function() v:list { limit = 0 } end, "view list: limit must be an integer from 1 to 1000")
    assert.has_error(function() v:list { after = "" } end)
    assert.has_error(function() v:list { from = "a" } end, "view list: unknown option 'from'")
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

helpers.describe_backends("transactions",
  { "transactions", why = "view writes are conditional on revision" }, function(backend)
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
