-- A backend that leaves the subscription, view or transaction slots of
-- store.h empty answers nil and "<backend> does not support X yet" from
-- the bindings, never crashes; the host's commands report it as a store
-- failure. Runs for each backend that opens but lacks a feature (the
-- DynamoDB backend until it fills them in).
local aeon = require "aeon"
local helpers = require "helpers"

local FEATURES = {
  subscriptions = function(store) return store:subscribe("x") end,
  views = function(store) return store:view("x") end,
  transactions = function(store) return store:begin() end,
}

for _, backend in helpers.each_backend() do
  describe("a backend without a feature #" .. backend, function()
    local missing, lacks = {}, {}
    for feature in pairs(FEATURES) do
      if not helpers.supports(backend, feature) then
        missing[#missing + 1], lacks[feature] = feature, true
      end
    end
    table.sort(missing)
    local opens = aeon.open(helpers.fresh_uri(backend))
    if opens then opens:close() end
    if #missing == 0 then return end -- nothing to check
    if not opens then
      pending(backend .. " cannot be opened in this build")
      return
    end

    for _, feature in ipairs(missing) do
      it("answers nil and a message for " .. feature, function()
        local store = helpers.fresh_store(backend)
        local ok, err = FEATURES[feature](store)
        assert.is_nil(ok)
        assert.same(backend .. " does not support " .. feature .. " yet", err)
        store:close()
      end)
    end

    if lacks.subscriptions then
      it("makes project and events tail fail as store failures (exit 3)", function()
        local _, uri = helpers.fresh_store(backend)
        local code, _, err = helpers.run_host({ "--store", uri, "apps/counter-cqrs.lua", "project", "--once" })
        assert.same(3, code)
        assert.matches("does not support", err)
        code = helpers.run_host({ "--store", uri, "events", "tail", "--limit", "1" })
        assert.same(3, code)
      end)
    end
  end)
end
