-- Several processes appending to one key of one embedded store at once.
local aeon = require "aeon"
local helpers = require "helpers"

-- Starts `n` race writers in the background and waits for all; returns
-- each writer's output lines.
local function race(uri, key, n, count)
  local dir = helpers.tmpdir()
  local cmds = {}
  for w = 1, n do
    cmds[#cmds + 1] = ("%s spec/support/race_writer.lua %s %s %d w%d > %s/w%d 2>&1 &"):format(
      helpers.HOST, helpers.shell_quote(uri), helpers.shell_quote(key), count, w, dir, w)
  end
  assert(os.execute(table.concat(cmds, " ") .. " wait"))
  local outputs = {}
  for w = 1, n do
    local lines = {}
    for line in io.lines(dir .. "/w" .. w) do lines[#lines + 1] = line end
    outputs[w] = lines
  end
  os.execute("rm -rf " .. dir)
  return outputs
end

describe("4 processes appending to one key with expected revisions #sqlite", function()
  it("grant each expected revision once, and store exactly the appended events", function()
    local uri = helpers.fresh_uri("sqlite")
    local outputs = race(uri, "race", 4, 40)
    local granted, appended, conflicts = {}, 0, 0
    for _, lines in ipairs(outputs) do
      for _, line in ipairs(lines) do
        local kind, a, b = line:match("^(%a+) (%S+) (%S+)$")
        assert.is_not_nil(kind, "unexpected writer output: " .. line)
        if kind == "appended" then
          appended = appended + 1
          assert.is_nil(granted[b], "expected revision " .. b .. " granted twice")
          granted[b] = a
        else
          conflicts = conflicts + 1
          assert.are_not.equal(a, b)
        end
      end
    end
    assert.same(160, appended)
    local store = assert(aeon.open(uri))
    local n, prev = 0, aeon.START
    for e in store:read("race") do
      n = n + 1
      -- Each event's predecessor is exactly the revision its writer expected.
      assert.same(e.revision, granted[prev])
      prev = e.revision
    end
    assert.same(160, n)
    store:close()
  end)
end)

for _, backend in helpers.each_backend() do
  describe("the same idempotency key retried by 6 processes at once #" .. backend, function()
    it("commits once; every other attempt answers unchanged", function()
      local store, uri = helpers.fresh_store(backend)
      local dir = helpers.tmpdir()
      local start_at = os.time() + 2
      local cmds = {}
      for w = 1, 6 do
        cmds[#cmds + 1] = ("%s spec/support/idempotent_writer.lua %s pay/1 order-17 %d > %s/w%d 2>&1 &"):format(
          helpers.HOST, helpers.shell_quote(uri), start_at, dir, w)
      end
      assert(os.execute(table.concat(cmds, " ") .. " wait"))
      local counts = {}
      for w = 1, 6 do
        local out = io.open(dir .. "/w" .. w):read("a")
        counts[out] = (counts[out] or 0) + 1
      end
      assert.same({ ["appended\n"] = 1, ["unchanged\n"] = 5 }, counts)
      assert.same(1, #helpers.collect(store:read("pay/1")))
      store:close()
      os.execute("rm -rf " .. dir)
    end)
  end)
end
