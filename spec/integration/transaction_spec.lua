-- Transactions belong to the handler run. A command, query or projection
-- handler that began a transaction and ended without committing it (by
-- returning, raising, or being stopped by its budget) used to leave it open
-- on its worker: every later append there answered "appended" and was never
-- committed, and every other writer got "database is locked". Now the host
-- rolls it back before answering, the answer is an error, and nothing is
-- carried into the next request. store:transaction(fn) is the safe form.
local aeon = require "aeon"
local helpers = require "helpers"
local server = require "support.http_server"

local APP = "spec/support/txn_app.lua"

-- Events of key `key` read through a fresh handle.
local function stored(uri, key)
  local store = assert(aeon.open(uri))
  local n = 0
  for _ in store:read(key) do n = n + 1 end
  store:close()
  return n
end

local function noted(n) return { type = "noted", data = { n = n } } end

for _, backend in helpers.each_backend() do
  describe("store:transaction #" .. backend, function()
    local store, uri
    before_each(function() store, uri = helpers.fresh_store(backend) end)
    after_each(function() store:close() end)

    if not helpers.supports(backend, "transactions") then
      it("says the backend has no transactions, and runs nothing", function()
        local ran = false
        local ok, err = store:transaction(function() ran = true end)
        assert.is_nil(ok)
        assert.same(backend .. " does not support transactions yet", err)
        assert.is_false(ran)
        assert.is_false(store:in_transaction())
      end)
      return
    end

    it("commits what the function wrote when it returns, and hands back its results", function()
      local ok, a, b = store:transaction(function(tx)
        assert.equal(store, tx)
        assert.is_true(tx:in_transaction())
        tx:append("k", { noted(1) })
        tx:append("k", { noted(2) })
        return "a", "b"
      end)
      assert.same({ true, "a", "b" }, { ok, a, b })
      assert.is_false(store:in_transaction())
      assert.same(2, stored(uri, "k"))
    end)

    it("rolls back when the function raises, and raises the same error", function()
      local thrown = setmetatable({}, { __tostring = function() return "thrown" end })
      local ok, e = pcall(store.transaction, store, function(tx)
        tx:append("k", { noted(1) })
        error(thrown)
      end)
      assert.is_false(ok)
      assert.equal(thrown, e)
      assert.is_false(store:in_transaction())
      assert.same(0, stored(uri, "k"))
      -- The store goes on as before.
      assert.same("appended", store:append("k", { noted(2) }).type)
      assert.same(1, stored(uri, "k"))
    end)

    it("refuses begin, commit, rollback and a nested transaction inside the function", function()
      for _, f in ipairs {
        function(tx) tx:begin() end,
        function(tx) tx:commit() end,
        function(tx) tx:rollback() end,
        function(tx) tx:transaction(function() end) end,
      } do
        local ok, e = pcall(store.transaction, store, function(tx)
          tx:append("k", { noted(1) })
          f(tx)
        end)
        assert.is_false(ok)
        assert.matches("store:transaction", tostring(e))
      end
      assert.same(0, stored(uri, "k"))
      assert.is_false(store:in_transaction())
    end)

    it("is refused while begin's transaction is open", function()
      assert(store:begin())
      assert.is_true(store:in_transaction())
      assert.has_error(function() store:transaction(function() end) end)
      store:rollback()
      assert.is_false(store:in_transaction())
    end)
  end)
end

describe("a handler that leaves a transaction open #sqlite", function()
  describe("over HTTP", function()
    it("no longer makes later appends on its worker acknowledged but never stored", function()
      -- One worker, so every request after the leak runs where it leaked.
      local s = server.start(APP, { "--workers", "1", "--max-instructions", "2000000",
        "--max-time", "10" })
      assert.truthy(s.url, s:stderr())
      local uri = s.store
      local acknowledged, outside, requests = 0, 0, 0
      local ROUNDS, APPENDS = 3, 10
      for round = 1, ROUNDS do
        for _, leak in ipairs { "leak_return", "leak_raise", "leak_spin", "leak_stubborn" } do
          local status, body = s:json("POST", "/commands/" .. leak, { json = { name = "leaked" } })
          requests = requests + 1
          assert.same(500, status, leak .. " answered " .. tostring(status))
          if leak == "leak_return" then
            assert.matches("left a transaction open", body.error)
          end
          for _ = 1, APPENDS do
            local st, b = s:json("POST", "/commands/append", { json = { name = "ok" } })
            requests = requests + 1
            assert.same(200, st)
            assert.same("appended", b.type)
            acknowledged = acknowledged + 1
          end
          -- Another writer is not locked out.
          if round == 1 then
            local other = assert(aeon.open(uri))
            local r, err = other:append("t/outside", { noted(0) })
            other:close()
            assert.is_table(r, err)
            outside = outside + 1
          end
        end
        local status, body = s:json("GET", "/queries/leak_query?name=ok")
        requests = requests + 1
        assert.same(500, status)
        assert.matches("left a transaction open", body.error)
      end
      local left_open = 0
      for _, l in ipairs(s:log()) do
        if tostring(l.error):find("left a transaction open", 1, true) then left_open = left_open + 1 end
      end
      assert.same(0, s:stop())
      -- After a clean shutdown, read with a fresh handle: every acknowledged
      -- append is in the file, nothing a leaking handler wrote is.
      assert.same(ROUNDS * 4 * APPENDS, acknowledged)
      assert.same(acknowledged, stored(uri, "t/ok"))
      assert.same(outside, stored(uri, "t/outside"))
      assert.same(0, stored(uri, "t/leaked"))
      assert.is_true(left_open >= ROUNDS * 2, "the log names the open transaction")
      assert.is_true(requests > acknowledged)
    end)

    it("commits store:transaction's writes together, or none when it raises", function()
      local s = server.start(APP, { "--workers", "2" })
      assert.truthy(s.url, s:stderr())
      for _ = 1, 5 do
        local status, body = s:json("POST", "/commands/atomic", { json = { name = "a" } })
        assert.same(200, status)
        assert.same({ committed = 2 }, body)
        status = s:json("POST", "/commands/atomic", { json = { name = "b", fail = true } })
        assert.same(500, status)
      end
      local uri = s.store
      assert.same(0, s:stop())
      assert.same(10, stored(uri, "t/a"))
      assert.same(0, stored(uri, "t/b"))
    end)
  end)

  describe("from the command line", function()
    local uri, env
    before_each(function() uri, env = helpers.fresh_env("sqlite") end)

    it("is a script error, not a success, and what it wrote is not stored", function()
      for _, leak in ipairs { "leak_return", "leak_raise", "leak_query" } do
        local code, out, err = helpers.run_host({ APP, leak, "name=a" }, { env = env })
        assert.same(4, code, leak .. ": " .. err)
        assert.same("", out)
        assert.matches("left a transaction open", err)
        assert.same(0, stored(uri, "t/a"))
      end
      local code = helpers.run_host({ APP, "append", "name=a" }, { env = env })
      assert.same(0, code)
      assert.same(1, stored(uri, "t/a"))
    end)

    it("is a script error when a plain script ends with one open", function()
      local code, _, err = helpers.run_host({ "spec/support/txn_script.lua", uri })
      assert.same(4, code)
      assert.matches("transaction open", err)
      assert.same(0, stored(uri, "t/script"))
    end)

    it("commits store:transaction's writes together, or none when it raises", function()
      local code, out = helpers.run_host({ APP, "atomic", "name=a" }, { env = env })
      assert.same(0, code)
      assert.same('{"committed":2}\n', out)
      local err
      code, _, err = helpers.run_host({ APP, "atomic", "name=b", "fail=true" }, { env = env })
      assert.same(4, code)
      assert.matches("refused after two appends", err)
      assert.same(2, stored(uri, "t/a"))
      assert.same(0, stored(uri, "t/b"))
    end)
  end)

  describe("in a projection handler", function()
    -- A handler that rolls back or commits the batch's transaction itself
    -- used to let the rest of the batch and its checkpoint commit without
    -- the events before it: the checkpoint passed events the view never got.
    for _, meddle in ipairs { "rollback", "commit" } do
      it("cannot end its batch's transaction (" .. meddle .. "): every event the checkpoint passed is in the view", function()
        local uri = helpers.fresh_uri("sqlite")
        local store = assert(aeon.open(uri))
        local EVENTS = 10
        for i = 1, EVENTS do
          store:append("t/p", { { type = "noted", data = { n = i, [meddle] = i == 4 or nil } } })
        end
        store:close()
        local code, _, err = helpers.run_host({ "--store", uri, APP, "project", "--once" })
        assert.same(4, code, err)
        store = assert(aeon.open(uri))
        local sub = assert(store:subscribe("projection/meddler/meddler"))
        local checkpoint = sub:checkpoint()
        sub:close()
        local view = store:view("meddler")
        local passed = 0
        for e in store:read("t/p") do
          if e.revision <= checkpoint then
            passed = passed + 1
            assert.is_table(view:get(e.revision), "event " .. e.data.n .. " is behind the checkpoint but not in the view")
          end
        end
        store:close()
        assert.same(3, passed)
      end)
    end
  end)
end)
