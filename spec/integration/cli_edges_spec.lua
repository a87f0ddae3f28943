-- The command line at its edges (issue 19): arguments that conflict, words
-- that look like options, missing files, exit statuses and the messages
-- that go with them. Each case runs the real aeon-host on the embedded store.
local aeon = require "aeon"
local helpers = require "helpers"

local run = helpers.run_host

local COUNTER = "apps/counter-basic.lua"

local function events_of(uri, key)
  local s = assert(aeon.open(uri))
  local events = helpers.collect(s:read(key))
  s:close()
  return events
end

local function all_events(uri)
  local s = assert(aeon.open(uri))
  local events = helpers.collect(s:read_all())
  s:close()
  return events
end

-- One line on stderr, and no file of the host's own library named in it.
local function assert_one_clean_line(err)
  assert.same(1, select(2, err:gsub("\n", "")), err)
  assert.is_nil(err:find("lua/aeon/", 1, true), err)
  assert.is_nil(err:find("%.lua:%d+:"), err)
end

describe("aeon-host at its edges #cli", function()
  local uri, env
  before_each(function() uri, env = helpers.fresh_env("sqlite") end)

  describe("a parameter given twice, or too many positional words", function()
    it("is a usage error naming the conflict, not a positional that replaces name=", function()
      local code, out, err = run({ COUNTER, "increment", "name=a", "extra" }, { env = env })
      assert.same(2, code)
      assert.same("", out)
      assert.matches("name", err)
      assert.matches("name=a", err, 1, true)
      assert.matches("extra", err, 1, true)
      assert_one_clean_line(err)
      code, _, err = run({ COUNTER, "increment", "extra", "name=a" }, { env = env })
      assert.same(2, code)
      assert.matches("name", err)
      assert.same({}, all_events(uri))
    end)

    it("is a usage error for more positional words than parameters", function()
      local code, _, err = run({ COUNTER, "increment", "a", "b" }, { env = env })
      assert.same(2, code)
      assert.matches("1 positional", err, 1, true)
      assert.matches("'b'", err, 1, true)
      assert_one_clean_line(err)
      assert.same({}, all_events(uri))
    end)

    it("still takes one word per parameter, by name or by position", function()
      assert.same(0, (run({ COUNTER, "increment", "a" }, { env = env })))
      assert.same(0, (run({ COUNTER, "increment", "name=b" }, { env = env })))
      assert.same(1, #events_of(uri, "counter/a"))
      assert.same(1, #events_of(uri, "counter/b"))
    end)
  end)

  describe("a word that looks like an option", function()
    it("--help after a command prints that command's help and appends nothing", function()
      for _, words in ipairs {
        { COUNTER, "increment", "--help" },
        { COUNTER, "increment", "name=a", "--help" },
        { COUNTER, "increment", "-h" },
      } do
        local code, out, err = run(words, { env = env })
        assert.same(0, code)
        assert.same("", err)
        assert.matches("increment", out)
        assert.matches("NAME", out)
      end
      assert.same({}, all_events(uri))
    end)

    it("is never a value: another option is a usage error, name=--help is a value", function()
      local code, out, err = run({ COUNTER, "increment", "--name" }, { env = env })
      assert.same(2, code)
      assert.same("", out)
      assert.matches("--name", err, 1, true)
      assert_one_clean_line(err)
      assert.same({}, all_events(uri))
      code = run({ COUNTER, "increment", "name=--help" }, { env = env })
      assert.same(0, code)
      assert.same(1, #events_of(uri, "counter/--help"))
    end)

    it("-- ends the options: what follows is taken as it is", function()
      local code = run({ COUNTER, "increment", "--", "--help" }, { env = env })
      assert.same(0, code)
      assert.same(1, #events_of(uri, "counter/--help"))
    end)
  end)

  describe("the global options, read by the same parser", function()
    it("takes --store URI and --store=URI before the subcommand; a missing URI is exit 2", function()
      local code, out = run({ "--store=" .. uri, COUNTER, "increment", "a" })
      assert.same(0, code)
      assert.matches('"appended"', out, 1, true)
      code, out = run({ "--store", uri, "events", "read", "counter/a" })
      assert.same(0, code)
      assert.matches("incremented", out, 1, true)
      local err
      code, out, err = run({ "--store" })
      assert.same(2, code)
      assert.same("", out)
      assert.matches("option --store needs a value", err, 1, true)
      code, out = run({ "--store", uri, "-h" })
      assert.same(0, code)
      assert.matches("^usage:", out)
    end)
  end)

  describe("serve", function()
    it("with no FILE is a usage error, not a file named serve", function()
      local code, out, err = run({ "serve" }, { env = env })
      assert.same(2, code)
      assert.same("", out)
      assert.matches("serve needs an app FILE.lua", err, 1, true)
      assert_one_clean_line(err)
      -- A file named serve in the current directory is not run.
      local dir = helpers.tmpdir()
      local f = assert(io.open(dir .. "/serve", "w"))
      f:write("io.stdout:write('ran serve')\n")
      f:close()
      local host = helpers.HOST:sub(1, 1) == "/" and helpers.HOST or os.getenv("PWD") .. "/" .. helpers.HOST
      local p = io.popen("cd " .. dir .. " && " .. helpers.shell_quote(host) .. " serve 2>&1; echo \" rc=$?\"")
      local text = p:read("a")
      p:close()
      assert.is_nil(text:find("ran serve", 1, true), text)
      assert.matches("serve needs an app FILE.lua", text, 1, true)
      assert.matches(" rc=2\n$", text)
    end)
  end)

  describe("serve on a port in use", function()
    it("says so and exits 3 before any worker or projection has loaded the app", function()
      local socket = require "socket"
      local taken = assert(socket.bind("127.0.0.1", 0))
      local _, port = taken:getsockname()
      local dir = helpers.tmpdir()
      local marks = dir .. "/loads"
      local path = dir .. "/app.lua"
      local f = assert(io.open(path, "w"))
      f:write(([[
        local out = assert(io.open(%q, "a"))
        out:write("loaded\n")
        out:close()
        local app = require("aeon").app "marked"
        app:query("q", function() return 1 end)
        app:projection("p", { view = "v" }, function() end)
        return app
      ]]):format(marks))
      f:close()
      local code, out, err = run({ "serve", path, "--listen", "127.0.0.1:" .. port, "--workers", "2" },
        { env = env })
      taken:close()
      assert.same(3, code)
      assert.same("", out)
      assert.same("aeon-host: 127.0.0.1:" .. port .. " is already in use\n", err)
      -- Loaded once, by the command line itself: no probe, worker or
      -- projection state was made.
      local m = assert(io.open(marks))
      local n = select(2, m:read("a"):gsub("loaded", ""))
      m:close()
      assert.same(1, n)
    end)
  end)

  describe("the example apps' numbers stay in range", function()
    it("icecream refuses a restock that would wrap the stock, and appends nothing", function()
      local ICE = "apps/icecream.lua"
      assert.same(0, (run({ ICE, "restock", "truck/1", "Vanilla", "3" }, { env = env })))
      local code, out, err = run({ ICE, "restock", "truck/1", "Vanilla", "9223372036854775807" },
        { env = env })
      assert.same(1, code)
      assert.same("", out)
      assert.matches("past 9223372036854775807", err)
      assert.same(1, #events_of(uri, "truck/1"))
      code, out = run({ ICE, "stock", "truck/1", "Vanilla" }, { env = env })
      assert.same(0, code)
      assert.same("3\n", out)
      -- up to the largest integer is fine
      code = run({ ICE, "restock", "truck/1", "Vanilla", "9223372036854775804" }, { env = env })
      assert.same(0, code)
      code, out = run({ ICE, "stock", "truck/1", "Vanilla" }, { env = env })
      assert.same("9223372036854775807\n", out)
    end)
  end)

  describe("exit statuses and messages", function()
    it("a key the store refuses is a usage error (2) without the host's paths", function()
      for _, key in ipairs { "", "counter/\255" } do
        local code, out, err = run({ "events", "read", key }, { env = env })
        assert.same(2, code)
        assert.same("", out)
        assert.matches("key", err)
        assert_one_clean_line(err)
      end
      local code, _, err = run({ "events", "tail", "--key", "", "--limit", "1" }, { env = env })
      assert.same(2, code)
      assert_one_clean_line(err)
    end)

    it("a read that meets a damaged page is a store failure (3)", function()
      local path = uri:match("^sqlite:(.*)$")
      local s = assert(aeon.open(uri))
      for i = 1, 100 do
        local batch = {}
        for j = 1, 10 do batch[j] = { type = "t", data = { pad = ("x"):rep(500), i = i, j = j } } end
        assert(s:append("k/" .. i, batch))
      end
      s:close()
      local f = assert(io.open(path, "r+b"))
      local size = f:seek("end")
      -- Overwrite pages in the back half: the schema (page 1) stays readable,
      -- so the store opens and the read meets the damage.
      for off = size // 2, size - 2000, 4096 * 5 do
        f:seek("set", off)
        f:write(("\255"):rep(2000))
      end
      f:close()
      local code, _, err = run({ "events", "all" }, { env = env })
      assert.same(3, code)
      assert.matches("malformed", err)
      assert_one_clean_line(err)
    end)

    it("a handler's answer JSON cannot hold is a script error (4) naming the handler", function()
      local path = helpers.temp_file("fn.lua", [[
        local app = require("aeon").app "fn"
        app:query("give", function() return { f = function() end } end)
        return app
      ]])
      local code, out, err = run({ path, "give" }, { env = env })
      assert.same(4, code)
      assert.same("", out)
      assert.matches("give", err)
      assert.matches("JSON", err)
      assert_one_clean_line(err)
    end)

    it("usage 2, store failure 3, script error 4, as the README says", function()
      assert.same(2, (run({ COUNTER, "nope" }, { env = env })))
      assert.same(2, (run({ "events", "read", "k", "--limit", "-1" }, { env = env })))
      assert.same(3, (run({ "--store", "sqlite:/nonexistent/dir/x.db", COUNTER, "increment", "a" })))
      local path = helpers.temp_file("boom.lua", [[
        local app = require("aeon").app "boom"
        app:command("go", function() error("boom") end)
        return app
      ]])
      local code, _, err = run({ path, "go" }, { env = env })
      assert.same(4, code)
      assert.matches("boom%.lua:2: boom", err)
    end)
  end)
end)
