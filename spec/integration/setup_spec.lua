-- The setup scripts say why they failed: the underlying tool's own message
-- reaches the user, not only "it failed".
local helpers = require "helpers"

local q = helpers.shell_quote

local function have(cmd) return os.execute("command -v " .. cmd .. " >/dev/null 2>&1") end

describe("setup scripts #setup", function()
  it("dynamodb-local.sh fetch prints npm's error (it hid it behind 'npm pack failed')", function()
    if not have("npm") then pending("no npm here"); return end
    local dir = helpers.tmpdir()
    -- A registry on a loopback port nothing listens on, and no retries.
    local p = io.popen(("AEON_DDB_CACHE=%s npm_config_registry=http://127.0.0.1:9/ " ..
      "npm_config_fetch_retries=0 npm_config_cache=%s sh scripts/dynamodb-local.sh fetch 2>&1; echo rc=$?")
      :format(q(dir .. "/cache"), q(dir .. "/npm")))
    local out = p:read("a")
    p:close()
    os.execute("rm -rf " .. q(dir))
    assert.matches("rc=1\n$", out)
    -- Debian 12's npm says "npm ERR!", newer ones "npm error".
    assert.matches("npm: npm [Ee][Rr][Rr].-ECONNREFUSED", out)
    assert.matches("registry http://127%.0%.0%.1:9/", out)
  end)
end)
