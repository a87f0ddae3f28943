-- An app for the kill -9 spec: the counter-cqrs read model, plus `tally`,
-- a projection that is deliberately not idempotent (it adds one per event
-- it is handed, with no revision check), so a batch applied twice or lost
-- would show in its count. Only the transaction that commits the view
-- writes with the checkpoint keeps it exact.
package.path = "apps/?.lua;" .. package.path
local aeon = require "aeon"
local counter = require "domain.counter_cqrs"

local app = aeon.app "tally"

counter.declare_projection(app)

app:projection("tally", { view = "tally", key = "counter/*" }, function(view, event)
  local doc = view:get(event.key) or { n = 0 }
  assert(view:put(event.key, { n = doc.n + 1 }, event.revision))
end)

return app
