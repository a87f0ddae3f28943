-- The DynamoDB backend under injected faults (#dynamodb): build/support/
-- faultproxy throttles, answers 500, resets connections before and after
-- forwarding (DynamoDB committed, the answer is lost) and delays, for a
-- share of requests. Every append still commits exactly once, revisions
-- still increase, and reads and heads still answer.
local aeon = require "aeon"
local helpers = require "helpers"

local collect, pluck = helpers.collect, helpers.pluck

local endpoint = os.getenv("AEON_TEST_DYNAMODB_ENDPOINT")
if not endpoint then return end

local support = os.getenv("AEON_SUPPORT") or "build/support"

--- Starts faultproxy at `rate`; returns its endpoint and a stop function
-- that returns its counts line.
local function start_faults(rate, seed)
  local dir = helpers.tmpdir()
  local upstream = assert(endpoint:match(":(%d+)/?$"))
  local p = io.popen(("%s/faultproxy 0 %s %s %d >%s/out 2>&1 & echo $!"):format(support, upstream,
    rate, seed, dir))
  local pid = assert(tonumber(p:read("l")))
  p:close()
  local port
  for _ = 1, 200 do
    local f = io.open(dir .. "/out")
    if f then
      port = f:read("a"):match("listening (%d+)")
      f:close()
    end
    if port then break end
    require("aeon.core").sleep(0.05)
  end
  assert(port, "faultproxy did not start")
  return "http://127.0.0.1:" .. port, function()
    os.execute("kill " .. pid)
    require("aeon.core").sleep(0.2)
    local f = io.open(dir .. "/out")
    local out = f and f:read("a") or ""
    if f then f:close() end
    os.execute("rm -rf " .. dir)
    return out
  end
end

describe("dynamodb under injected faults #dynamodb", function()
  it("commits every append exactly once through throttling, 500s, resets and delays", function()
    if not io.open(support .. "/faultproxy") then return pending("`make test` builds " .. support .. "/faultproxy") end
    local store, uri = helpers.fresh_store("dynamodb")
    local proxy, stop = start_faults(0.3, 7)
    local through = assert(aeon.open(uri, { endpoint = proxy }))
    local revs = {}
    for i = 1, 30 do
      local opts = i % 2 == 0 and { idempotency_key = "fault-" .. i } or nil
      local r, err = through:append("k", { { type = "n", data = { i = i } } }, opts)
      assert(r, err)
      assert.same("appended", r.type)
      revs[i] = r.revision
      if i > 1 then assert.is_true(revs[i] > revs[i - 1]) end
    end
    assert.same(revs[30], through:head("k"))
    assert.same(30, #collect(through:read("k")))
    through:close()
    local counts = stop()
    -- the faults did happen, answers lost after DynamoDB committed included
    local faults = 0
    for kind, n in counts:gmatch("([%w-]+)=(%d+)") do
      if kind ~= "passed" and kind ~= "delay" then faults = faults + tonumber(n) end
    end
    assert.is_true(faults >= 5, counts)
    assert.is_true(tonumber(counts:match("reset%-after=(%d+)")) > 0, counts)
    local events = collect(store:read("k"))
    assert.same(30, #events)
    assert.same(revs, pluck(events, "revision"))
    for i, e in ipairs(events) do assert.same(i, e.data.i) end
    store:close()
  end)
end)
