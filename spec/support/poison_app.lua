-- An app for the CLI spec of a failing handler: `healthy` counts every
-- event, `fragile` raises on one whose data says poison.
local aeon = require "aeon"

local app = aeon.app "poison"

local function count(view, event)
  local doc = view:get("n") or { n = 0 }
  assert(view:put("n", { n = doc.n + 1 }, event.revision))
end

app:projection("healthy", { view = "poison-healthy" }, count)
app:projection("fragile", { view = "poison-fragile" }, function(view, event)
  if event.data.poison then error("poisoned event") end
  count(view, event)
end)

return app
