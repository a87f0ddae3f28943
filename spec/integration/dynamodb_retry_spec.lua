-- A retried append after a connection dropped mid-request commits exactly
-- once (issue 3, "must show"). spec/support/drop_proxy.lua stands between
-- the store and DynamoDB Local: it forwards the append, lets DynamoDB
-- commit it, and loses the answer; the store sends the same request again
-- (same ClientRequestToken, same revisions), and DynamoDB answers it from
-- the first commit instead of committing twice.
local aeon = require "aeon"
local helpers = require "helpers"

local collect = helpers.collect

local endpoint = os.getenv("AEON_TEST_DYNAMODB_ENDPOINT")
if not endpoint then return end

local upstream_port = assert(endpoint:match(":(%d+)/?$"), "endpoint has no port")

--- Starts the proxy (`script`, default spec/support/drop_proxy.lua);
-- returns its endpoint, a function reading its log, and a function stopping
-- it. When it does not start, the error carries what it printed.
local function start_proxy(mode, drops, script)
  local dir = helpers.tmpdir()
  local port_file, log_file = dir .. "/port", dir .. "/log"
  local p = io.popen(("(lua5.4 %s %s %s %d %s %s >%s/out 2>&1; echo $? >%s/rc) & echo $!")
    :format(script or "spec/support/drop_proxy.lua", upstream_port, mode, drops, port_file,
      log_file, dir, dir))
  local pid = assert(tonumber(p:read("l")))
  p:close()
  local slurp = helpers.slurp
  local port
  for _ = 1, 200 do
    port = (slurp(port_file) or ""):match("%d+")
    if port or slurp(dir .. "/rc") then break end
    require("aeon.core").sleep(0.05)
  end
  if not port then
    local out = slurp(dir .. "/out") or ""
    os.execute("kill " .. pid .. " 2>/dev/null")
    os.execute("rm -rf " .. dir)
    error("the proxy did not start: " .. (out ~= "" and out or "it printed nothing"), 2)
  end
  local function log()
    local lines = {}
    local f = io.open(log_file)
    if f then
      for line in f:lines() do lines[#lines + 1] = line end
      f:close()
    end
    return lines
  end
  local function stop()
    os.execute("kill " .. pid .. " 2>/dev/null")
    os.execute("rm -rf " .. dir)
  end
  return "http://127.0.0.1:" .. port, log, stop
end

local function count(lines, wanted)
  local n = 0
  for _, l in ipairs(lines) do if l == wanted then n = n + 1 end end
  return n
end

describe("the drop proxy #dynamodb", function()
  it("says why it did not start (its error was never shown)", function()
    local ok, err = pcall(start_proxy, "drop", 1, "spec/support/no_such_proxy.lua")
    assert.is_false(ok)
    assert.matches("the proxy did not start: .*cannot open spec/support/no_such_proxy%.lua", err)
  end)
end)

describe("a retried append after a dropped connection #dynamodb", function()
  local store, uri, proxy, log, stop

  before_each(function() store, uri = helpers.fresh_store("dynamodb") end)
  after_each(function()
    if stop then stop() end
    stop = nil
    store:close()
  end)

  it("commits exactly once when the answer is lost on a fresh connection", function()
    proxy, log, stop = start_proxy("drop", 1)
    local through = assert(aeon.open(uri, { endpoint = proxy }))
    -- The append is this handle's first request: a fresh connection, closed
    -- by the proxy after DynamoDB committed; the store's own retry resends.
    local r = assert(through:append("k", { { type = "once", data = { n = 1 } } }))
    through:close()
    assert.same("appended", r.type)
    assert.same({ "dropped TransactWriteItems", "forwarded TransactWriteItems" }, log())
    local events = collect(store:read("k"))
    assert.same(1, #events)
    assert.same(r.revision, events[1].revision)
    assert.same(r.revision, store:head("k"))
  end)

  it("commits exactly once when a kept-alive connection drops, with an idempotency key", function()
    proxy, log, stop = start_proxy("drop", 1)
    local through = assert(aeon.open(uri, { endpoint = proxy }))
    assert.same(aeon.START, through:head("k")) -- the connection is now kept alive
    local r = assert(through:append("k", { { type = "once" } }, { idempotency_key = "req-9" }))
    assert.same("appended", r.type)
    assert.same(1, count(log(), "dropped TransactWriteItems"))
    assert.same(1, count(log(), "forwarded TransactWriteItems"))
    -- the caller's own repeat, later: unchanged
    assert.same({ type = "unchanged" }, through:append("k", { { type = "once" } }, { idempotency_key = "req-9" }))
    through:close()
    assert.same(1, #collect(store:read("k")))
  end)

  it("commits exactly once when the answer is cut halfway, for append_many too", function()
    proxy, log, stop = start_proxy("half", 2)
    local through = assert(aeon.open(uri, { endpoint = proxy }))
    local r = assert(through:append("k", { { type = "a" }, { type = "b" } }, { expected_revision = aeon.START }))
    assert.same("appended", r.type)
    local m = assert(through:append_many {
      { key = "x", events = { { type = "x1" } }, expected_revision = aeon.START },
      { key = "k", events = { { type = "c" } }, expected_revision = r.revision },
    })
    through:close()
    assert.same("appended", m.type)
    assert.same(2, count(log(), "dropped TransactWriteItems"))
    assert.same({ "a", "b", "c" }, helpers.pluck(collect(store:read("k")), "type"))
    assert.same({ "x1" }, helpers.pluck(collect(store:read("x")), "type"))
  end)
end)
