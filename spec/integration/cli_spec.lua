-- The aeon-host command line (API.md section 1) on the embedded store.
local aeon = require "aeon"
local helpers = require "helpers"

local run = helpers.run_host

describe("aeon-host #cli", function()
  local uri, env
  before_each(function() uri, env = helpers.fresh_env("sqlite") end)

  it("prints help and version", function()
    local code, out = run({ "--help" })
    assert.same(0, code)
    assert.matches("usage:", out)
    code, out = run({ "--version" })
    assert.same(0, code)
    assert.matches("^aeon%-host %d+%.%d+%.%d+", out)
  end)

  it("exits 2 on usage errors", function()
    local code, _, err = run({})
    assert.same(2, code)
    assert.matches("nothing to run", err)
    code, _, err = run({ "--bogus" })
    assert.same(2, code)
    assert.matches("unknown option", err)
    code = run({ "events", "read" }, { env = env })
    assert.same(2, code)
    code = run({ "events", "read", "k", "--limit", "x" }, { env = env })
    assert.same(2, code)
    code, _, err = run({ "events", "read", "k", "--from", "nope" }, { env = env })
    assert.same(2, code)
    assert.matches("revision", err)
  end)

  it("exits 3 when the store cannot be opened", function()
    local code, _, err = run({ "--store", "sqlite:/nonexistent/dir/x.db", "events", "all" })
    assert.same(3, code)
    assert.matches("aeon%-host: ", err)
    assert.same(1, select(2, err:gsub("\n", "")))
  end)

  it("exits 1 for `return nil, aeon.reject(msg)`, which printed null and exited 0", function()
    local code, out, err = run({ "spec/fixtures/http-app.lua", "reject_second" }, { env = env })
    assert.same(1, code)
    assert.same("", out)
    assert.same("aeon-host: sold out\n", err)
    code, out, err = run({ "spec/fixtures/http-app.lua", "reject" }, { env = env })
    assert.same(1, code)
    assert.same("aeon-host: not today\n", err)
  end)

  it("exits 4 for a handler answering nil or nothing, which printed null and exited 0", function()
    for _, name in ipairs { "answer_nil", "answer_nothing" } do
      local code, out, err = run({ "spec/fixtures/http-app.lua", name }, { env = env })
      assert.same(4, code)
      assert.same("", out)
      assert.matches("command '" .. name .. "' answered nil", err)
      assert.matches("aeon%.reject", err)
    end
  end)

  it("runs a plain script with arg set and aeon available", function()
    local path = helpers.temp_file("script.lua", [[
      local aeon = require "aeon"
      local store = assert(aeon.open(os.getenv("AEON_STORE")))
      store:append(arg[1], { { type = "hello", data = { n = tonumber(arg[2]) } } })
      print(arg[0] ~= nil, store:head(arg[1]) ~= aeon.START)
    ]])
    local code, out = run({ path, "greetings", "7" }, { env = env })
    assert.same(0, code)
    assert.same("true\ttrue\n", out)
    local s = assert(aeon.open(uri))
    assert.same(7, helpers.collect(s:read("greetings"))[1].data.n)
    s:close()
  end)

  it("exits 4 with one clear line on a script error", function()
    local path = helpers.temp_file("broken.lua", "local x = nil\nreturn x.field\n")
    local code, _, err = run({ path }, { env = env })
    assert.same(4, code)
    assert.matches("broken%.lua:2:", err)
    assert.same(1, select(2, err:gsub("\n", "")))
    helpers.spit(path, "this is not lua\n")
    code, _, err = run({ path }, { env = env })
    assert.same(4, code)
    assert.matches("broken%.lua:1:", err)
  end)

  describe("events", function()
    before_each(function()
      local s = assert(aeon.open(uri))
      s:append("counter/a", { { type = "incremented", data = { n = 1 } }, { type = "incremented", data = { n = 2 } } })
      s:append("counter/b", { { type = "decremented", data = { big = 9007199254740993 } } })
      s:close()
    end)

    it("reads one key's history, revisions increasing", function()
      local code, out = run({ "events", "read", "counter/a" }, { env = env })
      assert.same(0, code)
      local revs = {}
      for rev, ty in out:gmatch("(%w+)  %S+  (%S+)  [^\n]*\n") do
        revs[#revs + 1] = rev
        assert.same("incremented", ty)
      end
      assert.same(2, #revs)
      assert.is_true(revs[2] > revs[1])
    end)

    it("prints one JSON object per line with --json, exactly", function()
      local code, out = run({ "events", "all", "--json" }, { env = env })
      assert.same(0, code)
      local lines = {}
      for line in out:gmatch("[^\n]+") do lines[#lines + 1] = assert(aeon.json.decode(line)) end
      assert.same(3, #lines)
      assert.same("counter/b", lines[3].key)
      assert.same(9007199254740993, lines[3].data.big)
      assert.matches('"big":9007199254740993', out)
    end)

    it("honours --limit, --backward and bounds", function()
      local _, out = run({ "events", "all", "--json", "--backward", "--limit", "1" }, { env = env })
      assert.same("counter/b", aeon.json.decode(out:match("[^\n]+")).key)
      local _, all = run({ "events", "read", "counter/a", "--json" }, { env = env })
      local first = aeon.json.decode(all:match("[^\n]+")).revision
      local _, after = run({ "events", "read", "counter/a", "--json", "--after", first }, { env = env })
      assert.same(2, aeon.json.decode(after:match("[^\n]+")).data.n)
    end)
  end)
end)
