-- The DynamoDB backend's own contract (#dynamodb): Aeon's table layout read
-- back raw with the AWS CLI's plain Scan/Query/GetItem, items written the
-- way Aeon writes them read by the store across slices, the Aeon config
-- URI, what is refused before anything is sent, paging past pages without
-- matches, filters too large for DynamoDB, deploy/destroy, and the C checks
-- that need a fake clock.
local aeon = require "aeon"
local helpers = require "helpers"

local f = aeon.filter
local json = aeon.json
local collect, pluck = helpers.collect, helpers.pluck

local endpoint = os.getenv("AEON_TEST_DYNAMODB_ENDPOINT")
if not endpoint then return end

local aws, has_cli = helpers.aws, helpers.has_aws_cli

local function names_of(item)
  local names = {}
  for k in pairs(item) do names[#names + 1] = k end
  table.sort(names)
  return names
end

local ISO = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"

describe("dynamodb backend #dynamodb", function()
  local store, uri, name

  before_each(function() store, uri, name = helpers.fresh_store("dynamodb") end)
  after_each(function() store:close() end)

  describe("Aeon's layout", function()
    it("writes events, heads, slice markers and snapshots as plain items Aeon reads", function()
      if not has_cli() then return pending("no AWS CLI") end
      local data = { n = 1, s = "x", b = true, z = aeon.null, l = { 1, "two" }, m = { k = "v" },
        f = 1.5, one = 1.0, e = {} }
      local r1 = assert(store:append("counter/a", {
        { type = "incremented", data = data, correlation_id = "c-1" },
        { type = "reset" },
      }))
      local last = r1.revision
      assert.is_true(store:save_snapshot("counter/a", last, { value = 2 }))

      -- events: a Scan of the table, nothing but Aeon's attributes and our
      -- dataFloats and more (the events of the same append after it)
      local items = aws({ "scan", "--table-name", name, "--consistent-read" }).Items
      table.sort(items, function(a, b) return a.revision.S < b.revision.S end)
      assert.same(2, #items)
      local e1, e2 = items[1], items[2]
      assert.same({ "committedAt", "correlationId", "data", "dataFloats", "key", "more", "revision",
        "slice", "type" }, names_of(e1))
      assert.same({ N = "1" }, e1.more)
      assert.same({ "committedAt", "correlationId", "data", "key", "revision", "slice", "type" }, names_of(e2))
      assert.same({ S = "counter/a" }, e1.key)
      assert.same(last, e2.revision.S)
      assert.is_true(e1.revision.S < e2.revision.S)
      assert.same(e1.revision.S:sub(1, 5), e1.slice.S)
      assert.matches(ISO, e1.committedAt.S)
      assert.same({ S = "incremented" }, e1.type)
      assert.same({ S = "c-1" }, e1.correlationId)
      assert.same({ NULL = true }, e2.correlationId)
      -- data marshalled as util-dynamodb does: M, S, N, BOOL, NULL, L
      assert.same({ M = {
        n = { N = "1" }, s = { S = "x" }, b = { BOOL = true }, z = { NULL = true },
        l = { L = { { N = "1" }, { S = "two" } } }, m = { M = { k = { S = "v" } } },
        f = { N = "1.5" }, one = { N = "1" }, e = { M = {} },
      } }, e1.data)
      assert.same({ L = { { S = "/one" } } }, e1.dataFloats) -- 1.0 must read back as a float
      assert.same({ M = {} }, e2.data)

      -- the head: a consistent GetItem of {pk=KEY, sk="head"}
      local head = aws({ "get-item", "--table-name", name .. "-metadata", "--consistent-read",
        "--key", json.encode { pk = { S = "counter/a" }, sk = { S = "head" } } }).Item
      assert.same({ pk = { S = "counter/a" }, sk = { S = "head" }, revision = { S = last } }, head)

      -- slice markers {pk="slice", sk=SLICE}, and beside them the store head
      -- (sk "last" sorts above every slice: Aeon's listing, sk BETWEEN
      -- "00000" AND "7ZZZZ", never sees it)
      local slices = aws({ "query", "--table-name", name .. "-metadata", "--consistent-read",
        "--key-condition-expression", "pk = :p",
        "--expression-attribute-values", json.encode { [":p"] = { S = "slice" } } }).Items
      assert.same({ { pk = { S = "slice" }, sk = { S = last:sub(1, 5) } },
        { pk = { S = "slice" }, sk = { S = "last" }, revision = { S = last } } }, slices)
      local by_slice = aws({ "query", "--table-name", name, "--index-name", "by-revision",
        "--key-condition-expression", "slice = :s",
        "--expression-attribute-values", json.encode { [":s"] = { S = last:sub(1, 5) } } }).Items
      assert.same({ e1.revision.S, last }, { by_slice[1].revision.S, by_slice[2].revision.S })

      -- snapshots beside the head
      local snap = aws({ "get-item", "--table-name", name .. "-metadata",
        "--key", json.encode { pk = { S = "counter/a" }, sk = { S = "snapshot" } } }).Item
      assert.same({ pk = { S = "counter/a" }, sk = { S = "snapshot" }, revision = { S = last },
        state = { M = { value = { N = "2" } } } }, snap)
    end)

    it("deploys the tables Aeon's construct makes", function()
      if not has_cli() then return pending("no AWS CLI") end
      local t = aws({ "describe-table", "--table-name", name }).Table
      assert.same({ { AttributeName = "key", KeyType = "HASH" }, { AttributeName = "revision", KeyType = "RANGE" } },
        t.KeySchema)
      assert.same("by-revision", t.GlobalSecondaryIndexes[1].IndexName)
      assert.same({ { AttributeName = "slice", KeyType = "HASH" }, { AttributeName = "revision", KeyType = "RANGE" } },
        t.GlobalSecondaryIndexes[1].KeySchema)
      assert.same("ALL", t.GlobalSecondaryIndexes[1].Projection.ProjectionType)
      assert.same({ StreamEnabled = true, StreamViewType = "NEW_IMAGE" }, t.StreamSpecification)
      assert.same("PAY_PER_REQUEST", t.BillingModeSummary.BillingMode)
      local info = assert(store:admin("info"))
      assert.is_true(info.exists)
      assert.same({ "events", "metadata", "views" }, pluck(info.tables, "role"))
      assert.same({ name, name .. "-metadata", name .. "-views" }, pluck(info.tables, "name"))
      assert.same({ "pk", "sk" }, info.tables[2].key)
      assert.same("NEW_IMAGE", info.tables[2].stream)
      assert.same({ "pk", "sk" }, info.tables[3].key)
      -- deploying again changes nothing
      local again = assert(store:admin("deploy"))
      assert.same({ false, false, false }, pluck(again.tables, "created"))
    end)

    it("reads what Aeon wrote: several slices, in order both ways, with bounds and filters", function()
      if not has_cli() then return pending("no AWS CLI") end
      -- Events as Aeon's TypeScript client writes them (no dataFloats;
      -- numbers as JavaScript writes them), in two slices from 2016.
      local function put(key, rev, type, data, corr)
        return { PutRequest = { Item = {
          key = { S = key }, revision = { S = rev }, slice = { S = rev:sub(1, 5) },
          committedAt = { S = "2016-07-30T22:36:16.385Z" }, type = { S = type },
          correlationId = corr and { S = corr } or { NULL = true }, data = data } } }
      end
      local revs = { "01ARZ3NDEKTSV4RRFFQ69G5FAA", "01ARZ3NDEKTSV4RRFFQ69G5FAB", "01ARZ3NDEKTSV4RRFFQ69G5FAC",
        "01BX5ZZKBKACTAV9WEVGEMMVRZ" }
      local req = {
        [name] = {
          put("aeon/1", revs[1], "Added", { M = { n = { N = "3" } } }, "corr"),
          put("aeon/2", revs[2], "Added", { M = { n = { N = "2.5" } } }),
          put("aeon/1", revs[3], "Removed", { M = {} }),
          put("aeon/2", revs[4], "Added", { M = { n = { N = "10" }, tags = { L = { { S = "a" } } } } }),
        },
        [name .. "-metadata"] = {
          { PutRequest = { Item = { pk = { S = "slice" }, sk = { S = "01ARZ" } } } },
          { PutRequest = { Item = { pk = { S = "slice" }, sk = { S = "01BX5" } } } },
          { PutRequest = { Item = { pk = { S = "aeon/1" }, sk = { S = "head" }, revision = { S = revs[3] } } } },
          { PutRequest = { Item = { pk = { S = "aeon/2" }, sk = { S = "head" }, revision = { S = revs[4] } } } },
        },
      }
      aws({ "batch-write-item", "--request-items", json.encode(req) })
      local now = assert(store:append("mine", { { type = "Added", data = { n = 1 } } })).revision

      local all = collect(store:read_all())
      assert.same({ revs[1], revs[2], revs[3], revs[4], now }, pluck(all, "revision"))
      assert.same({ n = 3 }, all[1].data)
      assert.same("integer", math.type(all[1].data.n)) -- JavaScript's 3 is an integer here
      assert.same(2.5, all[2].data.n)
      assert.same("corr", all[1].correlation_id)
      assert.is_nil(all[2].correlation_id)
      assert.same({ n = 10, tags = { "a" } }, all[4].data)
      assert.same("2016-07-30T22:36:16.385Z", all[1].committed_at)

      assert.same({ now, revs[4], revs[3], revs[2], revs[1] }, pluck(collect(store:read_all { direction = "backward" }), "revision"))
      assert.same({ revs[3], revs[4] }, pluck(collect(store:read_all { after = revs[2], limit = 2 }), "revision"))
      assert.same({ revs[4], revs[3] }, pluck(collect(store:read_all { before = now, direction = "backward", limit = 2 }), "revision"))
      assert.same({ revs[2], revs[3] }, pluck(collect(store:read_all { from = revs[2], to = revs[3] }), "revision"))
      assert.same({ revs[1], revs[2], revs[4] },
        pluck(collect(store:read_all { filter = { key = f.prefix("aeon/"), type = f.eq("Added") } }), "revision"))
      assert.same({ revs[4] }, pluck(collect(store:read_all { filter = { data = { n = f.gt(3) } }, to = revs[4] }), "revision"))

      assert.same({ "Added", "Removed" }, pluck(collect(store:read("aeon/1")), "type"))
      assert.same(revs[3], store:head("aeon/1"))
      local r = assert(store:append("aeon/1", { { type = "Added" } }, { expected_revision = revs[3] }))
      assert.same("appended", r.type)
      assert.is_true(r.revision > revs[3])
    end)
  end)

  describe("the Aeon config URI", function()
    it("opens the same tables as dynamodb:NAME", function()
      store:append("k", { { type = "a" } })
      local cfg = json.encode { name = name, eventsTable = name, metadataTable = name .. "-metadata",
        revisionIndex = "by-revision" }
      local other = assert(aeon.open(cfg))
      assert.same(store:head("k"), other:head("k"))
      assert.same({ "a" }, pluck(collect(other:read_all()), "type"))
      assert(other:append("k", { { type = "b" } }))
      assert.same({ "a", "b" }, pluck(collect(store:read("k")), "type"))
      local info = assert(other:admin("info"))
      assert.same({ "events", "metadata" }, pluck(info.tables, "role"))
      assert.matches("no viewsTable", info.views)
      other:close()
    end)

    it("says it does not support views when the config names no views table (supports said yes)", function()
      local cfg = json.encode { name = name, eventsTable = name, metadataTable = name .. "-metadata",
        revisionIndex = "by-revision" }
      local other = assert(aeon.open(cfg))
      assert.is_false(other:supports("views"))
      assert.is_true(other:supports("subscriptions"))
      local _, err = other:view("v"):get("x")
      assert.matches("no views table", err)
      other:close()
      local with = assert(aeon.open(json.encode { name = name, eventsTable = name,
        metadataTable = name .. "-metadata", revisionIndex = "by-revision", viewsTable = name .. "-views" }))
      assert.is_true(with:supports("views"))
      with:close()
      assert.is_true(store:supports("views"))
    end)

    it("deploys and reads tables of other names and another index name", function()
      local base = helpers.unique("cfg")
      local cfg = json.encode { name = "Orders", eventsTable = base .. "-events", metadataTable = base .. "-meta",
        revisionIndex = "rev-index" }
      local s = assert(aeon.open(cfg))
      local d = assert(s:admin("deploy"))
      assert.same({ base .. "-events", base .. "-meta" }, pluck(d.tables, "name"))
      assert.same("rev-index", d.tables[1].index.name)
      assert(s:append("x", { { type = "a" } }))
      assert(s:append("y", { { type = "b" } }))
      assert.same({ "a", "b" }, pluck(collect(s:read_all()), "type"))
      assert.same({ "b" }, pluck(collect(s:read_all { filter = { key = f.eq("y") } }), "type"))
      assert(s:admin("destroy"))
      s:close()
    end)

    it("refuses a config that is not Aeon's", function()
      local s, err = aeon.open('{"name":"x","eventsTable":"abc"}')
      assert.is_nil(s)
      assert.matches("metadataTable", err)
    end)
  end)

  describe("limits, refused before anything is sent", function()
    it("refuses appends that cannot fit one transaction", function()
      -- 100 items: the events, the key's head, the store head, a slice marker
      local many = {}
      for i = 1, 98 do many[i] = { type = "e", data = { i = i } } end
      local r, err = store:append("k", many)
      assert.is_nil(r)
      assert.matches("at most 100", err)
      assert.matches("at most 97 events", err)
      table.remove(many)
      assert.same(97, assert(store:append("k", many)).count)
      local half = {}
      for i = 1, 49 do half[i] = { type = "e" } end
      local m, merr = store:append_many { { key = "a", events = half }, { key = "b", events = half } }
      assert.is_nil(m)
      assert.matches("102 transaction items", merr)
      assert.same(aeon.START, store:head("a"))
    end)

    it("refuses an event over 400 KB, naming it", function()
      local r, err = store:append("big", { { type = "ok" }, { type = "huge", data = { s = ("x"):rep(410 * 1024) } } })
      assert.is_nil(r)
      assert.matches("event 2 of key \"big\"", err)
      assert.matches("400 KB", err)
      assert.same(aeon.START, store:head("big"))
      local s, serr = store:save_snapshot("big", "01ARZ3NDEKTSV4RRFFQ69G5FAV", { s = ("x"):rep(410 * 1024) })
      assert.is_nil(s)
      assert.matches("400 KB", serr)
      -- just under the limit is fine
      assert(store:append("big", { { type = "ok", data = { s = ("x"):rep(399 * 1024) } } }))
    end)

    it("refuses keys DynamoDB cannot hold", function()
      local r, err = store:append(("k"):rep(2049), { { type = "e" } })
      assert.is_nil(r)
      assert.matches("2048", err)
    end)
  end)

  describe("reads", function()
    it("keeps paging through pages without a match until limit matches are found", function()
      for b = 1, 6 do
        local batch = {}
        for i = 1, 50 do
          local n = (b - 1) * 50 + i
          batch[i] = { type = (n == 2 or n == 299) and "rare" or "common", data = { n = n } }
        end
        assert(store:append("long", batch))
      end
      local rare = { filter = { type = f.eq("rare") } }
      assert.same({ 2, 299 }, pluck(pluck(collect(store:read("long", rare)), "data"), "n"))
      rare.limit, rare.direction = 1, "backward"
      assert.same({ 299 }, pluck(pluck(collect(store:read("long", rare)), "data"), "n"))
      assert.same({ 2, 299 }, pluck(pluck(collect(store:read_all { filter = { type = f.eq("rare") } }), "data"), "n"))
      assert.same(300, #collect(store:read_all()))
    end)

    it("evaluates filters too large for a FilterExpression itself, with the same result", function()
      for i = 1, 20 do store:append("k", { { type = "e", data = { i = i } } }) end
      local alternatives = {}
      for i = 1, 350 do alternatives[i] = { data = { i = f.eq(i % 2 == 0 and i or -i) } } end
      local got = pluck(pluck(collect(store:read("k", { filter = f.any_of(table.unpack(alternatives)) })), "data"), "i")
      assert.same({ 2, 4, 6, 8, 10, 12, 14, 16, 18, 20 }, got)
      local limited = collect(store:read_all { filter = f.any_of(table.unpack(alternatives)), limit = 3, direction = "backward" })
      assert.same({ 20, 18, 16 }, pluck(pluck(limited, "data"), "i"))
    end)

    it("sends no query for a filter nothing can match", function()
      store:append("k", { { type = "e" } })
      assert.same({}, collect(store:read("k", { filter = { key = f.eq("other") } })))
      assert.same({}, collect(store:read("k", { filter = { type = f.gt(3) } })))
    end)
  end)

  describe("admin", function()
    it("destroys the tables, says to deploy when they are missing, and deploys again", function()
      store:append("k", { { type = "e" } })
      local d = assert(store:admin("destroy"))
      assert.same({ true, true, true }, pluck(d.tables, "deleted"))
      local info = assert(store:admin("info"))
      assert.is_false(info.exists)
      assert.same({ "missing", "missing", "missing" }, pluck(info.tables, "status"))
      local r, err = store:append("k", { { type = "e" } })
      assert.is_nil(r)
      assert.matches("store deploy", err)
      local h, herr = store:head("k")
      assert.is_nil(h)
      assert.matches("missing", herr)
      assert.same({ true, true, true }, pluck(assert(store:admin("deploy")).tables, "created"))
      assert.same(aeon.START, store:head("k"))
    end)

    it("refuses to deploy over a table of another layout", function()
      if not has_cli() then return pending("no AWS CLI") end
      local other = helpers.unique("lay")
      aws({ "create-table", "--table-name", other, "--billing-mode", "PAY_PER_REQUEST",
        "--attribute-definitions", "AttributeName=id,AttributeType=S",
        "--key-schema", "AttributeName=id,KeyType=HASH" })
      local s = assert(aeon.open("dynamodb:" .. other))
      local r, err = s:admin("deploy")
      assert.is_nil(r)
      assert.matches("not an Aeon events table", err)
      s:close()
    end)
  end)

  it("works from the command line: store deploy, the counter apps, events read, store destroy #cli", function()
    local env = { AEON_STORE = "dynamodb:" .. helpers.unique("cli") }
    local function host(...)
      local code, out, err = helpers.run_host({ ... }, { env = env })
      assert.same(0, code, err)
      return out
    end
    local deployed = json.decode(host("store", "deploy"))
    assert.same({ true, true, true }, pluck(deployed.tables, "created"))
    assert.same(1, json.decode(host("apps/counter.lua", "increment", "name=a")).value)
    assert.same("appended", json.decode(host("apps/counter-basic.lua", "increment", "name=a")).type)
    assert.same(2, json.decode(host("apps/counter-basic.lua", "counter", "name=a")).value)
    local lines = {}
    for line in host("events", "read", "counter/a", "--json"):gmatch("[^\n]+") do lines[#lines + 1] = json.decode(line) end
    assert.same({ "incremented", "incremented" }, pluck(lines, "type"))
    assert.same({ type = "incremented", name = "a" }, lines[1].data)
    assert.same(2, #collect(host("events", "all"):gmatch("[^\n]+")))
    assert.is_true(json.decode(host("store", "info")).exists)
    assert.same({ true, true, true }, pluck(json.decode(host("store", "destroy")).tables, "deleted"))
    local code, _, err = helpers.run_host({ "events", "read", "counter/a" }, { env = env })
    assert.same(3, code)
    assert.matches("store deploy", err)
  end)

  it("passes the C checks that need a fake clock (build/test/dynamodb_test)", function()
    local exe = "build/test/dynamodb_test"
    if not io.open(exe) then return pending("run make ctest first") end
    local p = io.popen("AWS_ENDPOINT_URL=" .. helpers.shell_quote(endpoint) .. " " .. exe .. " 2>&1")
    local out = p:read("a")
    p:close()
    assert.matches("%d+ passed, 0 failed", out)
    assert.not_matches("skipped", out)
  end)
end)
