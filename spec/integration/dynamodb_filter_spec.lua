-- The DynamoDB FilterExpression compiler selects exactly what the embedded
-- store's filter_match selects (#dynamodb): the same events on both
-- backends, then hundreds of filters, every operator on every kind of
-- attribute with operands of every type, compared event for event through
-- read_all (the index; `key` filtered by DynamoDB) and read (one key;
-- `key` decided before the query).
local aeon = require "aeon"
local helpers = require "helpers"

local f = aeon.filter
local collect = helpers.collect

if not os.getenv("AEON_TEST_DYNAMODB_ENDPOINT") then return end

local null = aeon.null

-- Data of every JSON type, and shapes that make paths absent or not maps.
local DATA = {
  { n = 1 }, { n = 1.5 }, { n = -2 }, { n = 0 }, { n = 3.0 }, { n = "1" }, { n = true }, { n = false },
  { n = null }, { n = { 1 } }, { n = { x = 1 } }, {}, { n = 9007199254740993 }, { n = -0.5 },
  { s = "abc" }, { s = "" }, { s = "ab" }, { s = "\u{e9}t\u{e9}" }, { s = "B" }, { s = "abd" },
  { o = { x = { y = 5 } } }, { o = { x = 5 } }, { o = { x = { y = "5" } } }, { o = {} },
  42, "text", { 1, 2 }, true, null,
}

local KEYS = { "k/1", "k/2", "other" }
local TYPES = { "a", "b", "ab" }

local function fill(store)
  for i, d in ipairs(DATA) do
    local e = { type = TYPES[i % 3 + 1], data = d }
    if i % 4 == 0 then e.correlation_id = "c" .. (i % 3) end
    assert(store:append(KEYS[i % 3 + 1], { e }))
  end
end

local PATHS = {
  { "data", "n" }, { "data", "s" }, { "data", "o", "x", "y" }, { "data", "o", "x" }, { "data", "o" },
  { "data", "missing" }, { "data" }, { "type" }, { "key" }, { "correlation_id" }, { "type", "x" },
}
local VALUES = { 1, 1.5, -2, 0, 3, 5, "1", "5", "ab", "", "abc", "c1", "k/", "k/1", true, false, 1e300, -1e300,
  5e-324, -5e-324, 9007199254740992 }
local OPS = { "eq", "ne", "gt", "gte", "lt", "lte", "prefix" }

local function at(path, cond)
  for i = #path, 1, -1 do cond = { [path[i]] = cond } end
  return cond
end

-- Every filter store.h allows (no prefix of a number, no ordering of a boolean).
local function filters()
  local list = {}
  for _, path in ipairs(PATHS) do
    list[#list + 1] = at(path, f.exists())
    for _, op in ipairs(OPS) do
      for _, v in ipairs(VALUES) do
        local ok = not ((op == "prefix" and type(v) ~= "string") or
          (type(v) == "boolean" and op ~= "eq" and op ~= "ne"))
        if ok then list[#list + 1] = at(path, f[op](v)) end
      end
    end
  end
  list[#list + 1] = f.any_of({ type = f.eq("a") }, { data = { n = f.gt(0) } })
  list[#list + 1] = f.all_of({ key = f.prefix("k/") }, { data = { s = f.exists() } }, { type = f.ne("b") })
  list[#list + 1] = { data = { n = f.any_of(f.lt(0), f.eq("1"), f.eq(true)) } }
  list[#list + 1] = f.any_of({ key = f.eq("other") }, { correlation_id = f.exists() })
  return list
end

-- Positions (in write order) of the events a read yields.
local function positions(store, all, key, filter)
  local at_rev = {}
  for i, e in ipairs(all) do at_rev[e.revision] = i end
  local out = {}
  local iter = key and store:read(key, { filter = filter }) or store:read_all { filter = filter }
  for e in iter do out[#out + 1] = at_rev[e.revision] end
  return out
end

describe("DynamoDB filters select what filter_match selects #dynamodb", function()
  local sqlite, ddb, all_sqlite, all_ddb

  setup(function()
    sqlite = helpers.fresh_store("sqlite")
    ddb = helpers.fresh_store("dynamodb")
    fill(sqlite)
    fill(ddb)
    all_sqlite = collect(sqlite:read_all())
    all_ddb = collect(ddb:read_all())
  end)
  teardown(function()
    sqlite:close()
    ddb:close()
  end)

  it("stores the same events on both", function()
    assert.same(#DATA, #all_ddb)
    for i = 1, #DATA do
      assert.same(all_sqlite[i].data, all_ddb[i].data)
      assert.same(all_sqlite[i].key, all_ddb[i].key)
    end
  end)

  it("for every operator, attribute and operand type, across keys and within one", function()
    local list = filters()
    local mismatches, matched = {}, 0
    for n, filter in ipairs(list) do
      local want = positions(sqlite, all_sqlite, nil, filter)
      local got = positions(ddb, all_ddb, nil, filter)
      if #want > 0 then matched = matched + 1 end
      if not (table.concat(want, ",") == table.concat(got, ",")) then
        mismatches[#mismatches + 1] = ("filter %d %s: sqlite {%s} dynamodb {%s}"):format(n,
          aeon.json.encode(filter), table.concat(want, ","), table.concat(got, ","))
      end
      -- one key's read too, for a third of them (the key decided locally)
      if n % 3 == 0 then
        local key = KEYS[n % 3 + 1]
        local w, g = positions(sqlite, all_sqlite, key, filter), positions(ddb, all_ddb, key, filter)
        if table.concat(w, ",") ~= table.concat(g, ",") then
          mismatches[#mismatches + 1] = ("filter %d on %s %s: sqlite {%s} dynamodb {%s}"):format(n, key,
            aeon.json.encode(filter), table.concat(w, ","), table.concat(g, ","))
        end
      end
    end
    assert.same({}, mismatches)
    assert.is_true(#list > 500)
    assert.is_true(matched > #list // 3) -- the filters do select things
  end)
end)
