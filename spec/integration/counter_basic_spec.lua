-- apps/counter-basic.lua through the command line.
local aeon = require "aeon"
local helpers = require "helpers"

describe("apps/counter-basic.lua #cli", function()
  local uri, env
  before_each(function() uri, env = helpers.fresh_env("sqlite") end)

  local function host(...) return helpers.run_app("apps/counter-basic.lua", env, ...) end

  it("counts increments and decrements", function()
    assert.same(0, (host("increment", "name=a")))
    assert.same(0, (host("increment", "a")))
    local code, counter = host("counter", "name=a")
    assert.same(0, code)
    assert.same({ value = 2, increments = 2, decrements = 0 }, counter)
    assert.same(0, (host("decrement", "name=a")))
    assert.same({ value = 1, increments = 2, decrements = 1 }, select(2, host("counter", "name=a")))
  end)

  it("appends nothing when decrementing a counter at 0", function()
    local code, result = host("decrement", "name=z")
    assert.same(0, code)
    assert.same({ type = "unchanged" }, result)
    local s = assert(aeon.open(uri))
    assert.same(aeon.START, s:head("counter/z"))
    s:close()
  end)

  it("stores Aeon's event shape on counter/NAME", function()
    host("increment", "name=shape")
    local s = assert(aeon.open(uri))
    local e = helpers.collect(s:read("counter/shape"))[1]
    assert.same("incremented", e.type)
    assert.same({ type = "incremented", name = "shape" }, e.data)
    s:close()
  end)

  it("rejects bad calls with usage errors", function()
    local code, _, err = host("increment")
    assert.same(2, code)
    assert.matches("name is required", err)
    code, _, err = host("explode")
    assert.same(2, code)
    assert.matches("no command or query 'explode'", err)
    code, _, err = host("increment", "colour=red")
    assert.same(2, code)
    code = host("increment", "a", "b")
    assert.same(2, code)
  end)
end)
