-- `aeon-host events tail` follows new events live, on every backend with
-- subscriptions.
local aeon = require "aeon"
local helpers = require "helpers"
local process = require "support.process"

helpers.describe_backends("events tail", { "subscriptions" }, function(backend)
  local store, uri
  before_each(function() store, uri = helpers.fresh_store(backend) end)
  after_each(function() store:close() end)

  -- Starts a tail, gives it a head start, appends, and returns what it
  -- printed once it has seen `n` events. A tail follows from the end of
  -- the store as it is when it starts, so one that was not following yet
  -- when the appends came (a busy machine, a sanitized build) sees fewer
  -- than `n` and never exits: it is stopped, and the whole round runs
  -- again with a longer head start. A late start cannot pass for a right
  -- answer; only the time it takes changes.
  local function tail(flags, n, appends)
    local words = { "--store", uri, "events", "tail", "--limit", tostring(n) }
    for _, f in ipairs(flags) do words[#words + 1] = f end
    local head = 0.5
    for _ = 1, 5 do
      local p = process.start(words)
      process.sleep(head)
      appends()
      local code = p:wait(10)
      local out, err = p:stdout(), p:stderr()
      if code == nil then p:kill(9); p:wait(10) end
      p:cleanup()
      if code ~= nil then return code, out, err end
      head = head * 2
    end
    return nil, "", "the tail never saw the appends"
  end

  it("prints new events as events all does, and not the old ones", function()
    store:append("counter/a", { { type = "old", data = {} } })
    local r
    local code, out = tail({}, 2, function()
      store:append("counter/a", { { type = "incremented", data = { name = "a" } } })
      r = store:append("truck/1", { { type = "restocked", data = { n = 3 }, correlation_id = "c-1" } })
    end)
    assert.same(0, code)
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.same(2, #lines)
    assert.matches("^%w+  %S+  counter/a  incremented  {\"name\":\"a\"}$", lines[1])
    assert.same(r.revision, lines[2]:match("^(%w+)"))
    assert.matches("  truck/1  restocked  {\"n\":3}  correlation_id=c%-1$", lines[2])
  end)

  it("filters by key and type patterns, and prints JSON with --json", function()
    local code, out = tail({ "--key", "counter/*", "--type", "incr*", "--json" }, 1, function()
      store:append("truck/1", { { type = "incremented", data = {} } })
      store:append("counter/a", { { type = "decremented", data = {} } })
      store:append("counter/b", { { type = "incremented", data = { name = "b" } } })
    end)
    assert.same(0, code)
    local e = aeon.json.decode(out)
    assert.same({ "counter/b", "incremented", { name = "b" } }, { e.key, e.type, e.data })
  end)

  it("refuses a KEY argument", function()
    local code, _, err = helpers.run_host({ "--store", uri, "events", "tail", "counter/a" })
    assert.same(2, code)
    assert.matches("%-%-key", err)
  end)
end)
