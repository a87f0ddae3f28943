-- aeon-host new DIR makes an app whose specs pass out of the box, and
-- aeon-host test runs them from anywhere (busted on Lua 5.4 with the aeon
-- library found, whatever the current directory).
local helpers = require "helpers"

local q = helpers.shell_quote

-- Runs aeon-host from `/` (far from this repository); returns exit status
-- and everything it printed. ASan's preload (make sanitize) stays out: the
-- app's HTTP spec starts curl, which hangs with it.
local function host(words)
  local cmd = { "cd / && env -u LD_PRELOAD -u AEON_HOST", q(helpers.abspath(helpers.HOST)) }
  for _, w in ipairs(words) do cmd[#cmd + 1] = q(w) end
  local p = io.popen(table.concat(cmd, " ") .. " 2>&1; echo \"rc=$?\"")
  local out = p:read("a")
  p:close()
  local code = tonumber(out:match("rc=(%d+)\n$"))
  return code, out:gsub("rc=%d+\n$", "")
end

describe("aeon-host new and test #cli", function()
  local dir
  before_each(function() dir = helpers.tmpdir() .. "/shop" end)
  after_each(function() os.execute("rm -rf " .. q(dir:match("^(.*)/shop$"))) end)

  it("makes an app whose specs pass, run from another directory", function()
    local code, out = host { "new", dir }
    assert.same(0, code, out)
    for _, f in ipairs { "app.lua", "domain/account.lua", "spec/account_spec.lua",
      "spec/balances_spec.lua", "spec/app_spec.lua", "README.md" } do
      assert.truthy(io.open(dir .. "/" .. f), f)
    end
    code, out = host { "test", dir }
    assert.same(0, code, out)
    local passed = tonumber(out:match("\n(%d+) passed, 0 failed\n$"))
    assert.truthy(passed, out)
    assert.is_true(passed >= 8, out)
  end)

  it("exits 1 and counts a failing spec in its last line", function()
    assert.same(0, (host { "new", dir }))
    helpers.spit(dir .. "/spec/broken_spec.lua",
      'describe("x", function() it("fails", function() assert.same(1, 2) end) end)\n')
    local code, out = host { "test", dir }
    assert.same(1, code, out)
    assert.matches("\n%d+ passed, 1 failed\n$", out)
  end)

  it("writes nothing over an existing app", function()
    assert.same(0, (host { "new", dir }))
    helpers.spit(dir .. "/app.lua", "-- mine\n")
    local code, out = host { "new", dir }
    assert.same(2, code)
    assert.matches("app%.lua exists; nothing written", out)
    f = assert(io.open(dir .. "/app.lua"))
    assert.same("-- mine\n", f:read("a"))
    f:close()
  end)
end)
