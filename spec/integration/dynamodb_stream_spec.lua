-- DynamoDB subscriptions follow the events table's stream (#dynamodb): an
-- event that commits late - written the way Aeon's TypeScript writer
-- does, with a revision below one already delivered and without the
-- store-wide head item - is still delivered, by a running subscription and
-- by a new one resuming from the shard positions its checkpoint stored.
local aeon = require "aeon"
local helpers = require "helpers"

local json = aeon.json

local endpoint = os.getenv("AEON_TEST_DYNAMODB_ENDPOINT")
if not endpoint then return end

local aws = helpers.aws

--- Commits one event to `key` at `revision` as Aeon's client does: the
-- event, the key's head (conditional) and the slice marker in one
-- transaction; the store head {pk="slice", sk="last"} is left alone.
local function aeon_append(name, key, revision, n)
  local items = {
    { Put = { TableName = name, Item = {
      key = { S = key }, revision = { S = revision }, slice = { S = revision:sub(1, 5) },
      committedAt = { S = "2026-01-01T00:00:00.000Z" }, type = { S = "late" },
      correlationId = { NULL = true }, data = { M = { n = { N = tostring(n) } } } } } },
    { Put = { TableName = name .. "-metadata",
      Item = { pk = { S = key }, sk = { S = "head" }, revision = { S = revision } },
      ConditionExpression = "attribute_not_exists(pk)" } },
    { Put = { TableName = name .. "-metadata",
      Item = { pk = { S = "slice" }, sk = { S = revision:sub(1, 5) } } } },
  }
  aws({ "transact-write-items", "--transact-items", json.encode(items) })
end

--- A revision just below `rev` (its time, the lowest randomness).
local function below(rev) return rev:sub(1, 10) .. ("0"):rep(16) end

local function ns_of(events)
  local out = {}
  for i, e in ipairs(events) do out[i] = e.data.n end
  return out
end

describe("dynamodb subscriptions #dynamodb", function()
  if not helpers.has_aws_cli() then
    pending("the aws CLI is not installed")
    return
  end

  local store, uri, name
  before_each(function() store, uri, name = helpers.fresh_store("dynamodb") end)
  after_each(function() store:close() end)

  it("deliver an event that commits late, below a revision already delivered", function()
    store:append("a", { { type = "n", data = { n = 1 } } })
    local second = store:append("b", { { type = "n", data = { n = 2 } } }).revision
    local sub = assert(store:subscribe("late"))
    assert.same({ 1, 2 }, ns_of(assert(sub:poll(0))))
    assert.same({}, sub:poll(0)) -- caught up: following the stream now

    aeon_append(name, "late/1", below(second), 3)
    local events = assert(sub:poll(1))
    assert.same({ 3 }, ns_of(events))
    assert.same(below(second), events[1].revision)
    assert.same("late/1", events[1].key)
    assert.same({}, sub:poll(0))

    -- Ordinary appends keep coming, once each.
    store:append("a", { { type = "n", data = { n = 4 } } })
    assert.same({ 4 }, ns_of(assert(sub:poll(1))))
    sub:close()
  end)

  it("resume from the stored shard positions, so a late commit after a restart is delivered", function()
    store:append("a", { { type = "n", data = { n = 1 } } })
    local second = store:append("b", { { type = "n", data = { n = 2 } } }).revision
    local sub = assert(store:subscribe("resume"))
    assert.same({ 1, 2 }, ns_of(assert(sub:poll(0))))
    local _, position = sub:poll(0)
    assert.is_true(sub:ack(position))
    sub:close()

    aeon_append(name, "late/2", below(second), 3)
    store:append("c", { { type = "n", data = { n = 4 } } })
    local again = assert(store:subscribe("resume"))
    assert.same({ 3, 4 }, ns_of(assert(again:poll(0))))
    local events, pos = again:poll(0)
    assert.same({}, events)
    assert.is_true(again:ack(pos))
    again:close()

    -- Nothing comes twice to the next one.
    local third = assert(store:subscribe("resume"))
    assert.same({}, third:poll(0))
    third:close()
  end)
end)
