-- Looking into a store from the command line: `events all --key --type`,
-- `events keys` and `views`, on every backend.
local helpers = require "helpers"

local run = helpers.run_host

local function lines(text)
  local out = {}
  for l in text:gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

for _, backend in helpers.each_backend() do
  describe("aeon-host events, inspecting #" .. backend, function()
    local store, uri
    local revs = {}
    setup(function()
      store, uri = helpers.fresh_store(backend)
      local function add(key, ty)
        local r = assert(store:append(key, { { type = ty, data = { k = key } } }))
        revs[#revs + 1] = r.revision
      end
      add("truck/1", "FlavourRestocked")
      add("truck/2", "FlavourRestocked")
      add("truck/1", "FlavourSold")
      add("counter/a", "incremented")
      add("truck/1", "FlavourSold")
      add("trucker/9", "FlavourSold")
    end)
    teardown(function()
      if backend == "dynamodb" then store:admin("destroy") end
      store:close()
    end)

    it("events all --key and --type keep only matching events, in revision order", function()
      local code, out, err = run { "--store", uri, "events", "all", "--key", "truck/*", "--type", "*Sold" }
      assert.same(0, code, err)
      local got = lines(out)
      assert.same(2, #got)
      assert.matches("^" .. revs[3] .. "  .*  truck/1  FlavourSold  ", got[1])
      assert.matches("^" .. revs[5] .. "  .*  truck/1  FlavourSold  ", got[2])
      -- An exact key, an exact type, a pattern with * inside, and --limit.
      code, out = run { "--store", uri, "events", "all", "--key", "truck/2" }
      assert.same(0, code)
      assert.same(1, #lines(out))
      code, out = run { "--store", uri, "events", "all", "--type", "incremented", "--json" }
      assert.same(0, code)
      assert.matches('"key":"counter/a"', out)
      assert.same(1, #lines(out))
      code, out = run { "--store", uri, "events", "all", "--key", "t*/1", "--limit", "2" }
      assert.same(0, code)
      got = lines(out)
      assert.same(2, #got)
      assert.matches("^" .. revs[1], got[1])
      assert.matches("^" .. revs[3], got[2])
    end)

    it("views NAME lists a view's documents in id order; views NAME ID prints one", function()
      if not helpers.supports(backend, "views") then return end
      local v = store:view("trucks")
      assert.is_true(v:put("truck/2", { sold = 1 }, revs[2]))
      assert.is_true(v:put("truck/1", { sold = 2 }, revs[5]))
      local code, out, err = run { "--store", uri, "views", "trucks" }
      assert.same(0, code, err)
      assert.same({
        "truck/1  " .. revs[5] .. '  {"sold":2}',
        "truck/2  " .. revs[2] .. '  {"sold":1}',
      }, lines(out))
      code, out = run { "--store", uri, "views", "trucks", "--after", "truck/1", "--json" }
      assert.same(0, code)
      assert.same({ '{"doc":{"sold":1},"id":"truck/2","revision":"' .. revs[2] .. '"}' }, lines(out))
      code, out = run { "--store", uri, "views", "trucks", "--limit", "1" }
      assert.same(1, #lines(out))
      code, out = run { "--store", uri, "views", "trucks", "truck/1" }
      assert.same({ 0, '{"sold":2}\n' }, { code, out })
      code, out, err = run { "--store", uri, "views", "trucks", "truck/9" }
      assert.same({ 1, "", "aeon-host: view trucks has no document truck/9\n" }, { code, out, err })
      assert.same(2, (run { "--store", uri, "views" }))
      code, out = run { "--store", uri, "views", "--help" }
      assert.same(0, code)
      assert.matches("views NAME %[%-%-after ID%]", out)
      assert.same(2, (run { "--store", uri, "views", "trucks", "--limit", "x" }))
    end)

    it("events keys lists every key with its head and event count", function()
      local code, out, err = run { "--store", uri, "events", "keys" }
      assert.same(0, code, err)
      assert.same({
        "counter/a  " .. revs[4] .. "  1",
        "truck/1  " .. revs[5] .. "  3",
        "truck/2  " .. revs[2] .. "  1",
        "trucker/9  " .. revs[6] .. "  1",
      }, lines(out))
      code, out = run { "--store", uri, "events", "keys", "truck/*", "--json" }
      assert.same(0, code)
      assert.same({
        '{"events":3,"head":"' .. revs[5] .. '","key":"truck/1"}',
        '{"events":1,"head":"' .. revs[2] .. '","key":"truck/2"}',
      }, lines(out))
      code, out = run { "--store", uri, "events", "keys", "nothing/*" }
      assert.same({ 0, "" }, { code, out })
      assert.same(2, (run { "--store", uri, "events", "keys", "a", "b" }))
    end)
  end)
end
