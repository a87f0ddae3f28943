-- Apps explain themselves (issue 13): `APP.lua --help`, `APP.lua NAME
-- --help`, `--help` on every subcommand, and declared parameters checked
-- the same way on the command line and over HTTP. The real aeon-host, the
-- real server on a free loopback port.
local aeon = require "aeon"
local helpers = require "helpers"
local server = require "support.http_server"

local run = helpers.run_host

local function count_events(uri)
  local s = assert(aeon.open(uri))
  local n = #helpers.collect(s:read_all())
  s:close()
  return n
end

describe("help and declared parameters #cli", function()
  local uri, env
  before_each(function() uri, env = helpers.fresh_env("sqlite") end)

  it("APP.lua --help lists commands, queries and projections with parameters and descriptions", function()
    local code, out, err = run({ "apps/counter.lua", "--help" }, { env = env })
    assert.same(0, code)
    assert.same("", err)
    assert.matches("app counter", out, 1, true)
    assert.matches("commands:\n  decrement NAME\n      takes 1 from the counter NAME", out, 1, true)
    assert.matches("  increment NAME\n      adds 1 to the counter NAME", out, 1, true)
    assert.matches("queries:\n  counter NAME REVISION\n      the counter NAME; with REVISION", out, 1, true)
    assert.matches("projections:\n  counters  (view counters; keys counter/*; types incremented, " ..
      "decremented; version 2)", out, 1, true)
    assert.matches("keeps { value, increments, decrements, revision, changed_at } per counter", out,
      1, true)
    code, out = run({ "apps/icecream.lua", "-h" }, { env = env })
    assert.same(0, code)
    assert.matches("restock TRUCK FLAVOUR QUANTITY\n      adds QUANTITY scoops", out, 1, true)
    assert.is_nil(out:find("projections:", 1, true))
    assert.same(0, count_events(uri))
  end)

  it("APP.lua NAME --help shows one command, query or projection", function()
    local code, out = run({ "apps/icecream.lua", "restock", "--help" }, { env = env })
    assert.same(0, code)
    assert.matches("usage: aeon-host [--store URI] apps/icecream.lua restock TRUCK FLAVOUR QUANTITY",
      out, 1, true)
    assert.matches("parameters: truck, flavour, quantity", out, 1, true)
    assert.matches("POST /commands/restock", out, 1, true)
    code, out = run({ "apps/counter.lua", "counter", "--help" }, { env = env })
    assert.same(0, code)
    assert.matches("query of app counter", out, 1, true)
    assert.matches("GET /queries/counter", out, 1, true)
    assert.matches("reads the views counters", out, 1, true)
    code, out = run({ "apps/counter.lua", "counters", "--help" }, { env = env })
    assert.same(0, code)
    assert.matches("projection counters of app counter", out, 1, true)
    assert.matches("project counters", out, 1, true)
    assert.same(0, count_events(uri))
  end)

  it("every subcommand takes --help, does nothing else and exits 0", function()
    for _, words in ipairs {
      { "events", "--help" }, { "events", "read", "--help" }, { "events", "all", "--help" },
      { "events", "tail", "--help" }, { "events", "read", "k", "--limit", "1", "--help" },
      { "store", "--help" }, { "store", "info", "--help" },
      { "serve", "--help" }, { "serve", "apps/counter.lua", "--help" },
      { "apps/counter.lua", "project", "--help" }, { "apps/counter.lua", "project", "--once", "-h" },
    } do
      local code, out, err = run(words, { env = env })
      assert.same(0, code, table.concat(words, " ") .. ": " .. err)
      assert.same("", err)
      assert.matches("usage", out)
    end
    -- none of them opened the store
    assert.is_nil(io.open(uri:match("^sqlite:(.*)$")))
  end)

  it("an undeclared parameter is refused alike on the command line (2) and over HTTP (400)", function()
    local code, out, err = run({ "apps/counter-basic.lua", "increment", "name=a", "bogus=1" }, { env = env })
    assert.same(2, code)
    assert.same("", out)
    assert.same("aeon-host: command 'increment' takes name, not 'bogus'\n", err)
    code, _, err = run({ "apps/counter-basic.lua", "counter", "name=a", "revision=0" }, { env = env })
    assert.same(2, code)
    assert.same("aeon-host: query 'counter' takes name, not 'revision'\n", err)

    local s = server.start("apps/counter-basic.lua", {}, { store = uri })
    local status, body = s:json("POST", "/commands/increment", { json = { name = "a", bogus = 1 } })
    assert.same(400, status)
    assert.same("command 'increment' takes name, not 'bogus'", body.error)
    status, body = s:json("GET", "/queries/counter?name=a&zz=1&aa=2")
    assert.same(400, status)
    assert.same("query 'counter' takes name, not 'aa', 'zz'", body.error)
    status = s:json("POST", "/commands/increment", { json = { name = "a" } })
    assert.same(200, status)
    assert.same(0, s:stop())
    assert.same(1, count_events(uri))
  end)
end)
