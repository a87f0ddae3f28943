--- counter-cqrs: the counter with a read model kept by a projection (push).
--
-- Commands append `incremented` / `decremented` events (as counter-basic
-- does). The `counters` projection follows `counter/*` and keeps one
-- document per counter, `{ value, increments, decrements, revision }`, in
-- the `counters` view; the query answers from that view without reading
-- any events. This is Aeon's counter-cqrs, with the host running the
-- projection instead of a Lambda behind EventBridge.
--
-- Eventual consistency is explicit: a command answers with the revision it
-- committed, and a query given that revision answers only once the view
-- has seen it, else "not yet" (exit status 1 here, HTTP 202 with
-- Retry-After when served). A query without a revision, from the command
-- line, first catches the projection up (the app's `views` declaration
-- asks for that), so it reflects every event committed before it.
--
--   aeon-host apps/counter-cqrs.lua increment name=a
--     {"count":1,"revision":"01K...","type":"appended"}
--   aeon-host apps/counter-cqrs.lua counter name=a revision=01K...
--     aeon-host: not yet: the read model has not seen revision 01K... (exit 1)
--   aeon-host apps/counter-cqrs.lua project --once     # or: project, to keep following
--   aeon-host apps/counter-cqrs.lua counter name=a revision=01K...
--     {"decrements":0,"increments":1,"revision":"01K...","value":1}
local aeon = require "aeon"
local counter = require "domain.counter_cqrs"

local app = aeon.app "counter-cqrs"

counter.declare_commands(app)
counter.declare_projection(app)

app:query("counter", { params = { "name", "revision" }, views = { counter.VIEW },
  description = "the counter NAME; with REVISION, once the view has seen it" }, counter.query)

return app
