--- counter-cqrs-lazy: the counter with a read model brought up to date by
-- the query itself (pull).
--
-- No projection runs. The query reads the counter's document from the
-- `counters-lazy` view, folds in the counter's events committed after the
-- document's revision, stores the result (conditional on revision, so a
-- slower concurrent query cannot overwrite a newer document) and answers
-- with it: each answer reflects every event of the counter committed
-- before the query, and costs only the events since the last one. This is
-- Aeon's counter-cqrs-lazy.
--
-- `revision=REV` (a revision a command on this counter returned) answers
-- "not yet" (exit status 1) while the counter has no event at REV, which
-- after the catch-up means REV has not committed.
--
--   aeon-host apps/counter-cqrs-lazy.lua increment name=a
--   aeon-host apps/counter-cqrs-lazy.lua counter name=a
--     {"value":1,"increments":1,"decrements":0,"revision":"01K..."}
local aeon = require "aeon"
local counter = require "domain.counter_cqrs"

local VIEW = "counters-lazy"

local app = aeon.app "counter-cqrs-lazy"

counter.declare_commands(app)

app:query("counter", { params = { "name", "revision" } }, function(ctx, args)
  local name, why = counter.check_name(args.name)
  if not name then return aeon.invalid(why) end
  local rev, rwhy = counter.check_revision(args.revision)
  if rwhy then return aeon.invalid(rwhy) end
  local view, err = ctx.store:view(VIEW)
  if not view then return aeon.store_failure(err) end
  local doc, gerr = counter.get(view, name)
  if not doc then return aeon.store_failure(gerr) end

  local before = doc.revision
  for event in ctx.store:read(counter.key(name), { after = before }) do
    doc = counter.fold(doc, event)
  end
  if doc.revision > before then
    -- false: a concurrent query stored a newer document; this answer is
    -- still right as of this read.
    local _, perr = view:put(name, doc, doc.revision)
    if perr then return aeon.store_failure(perr) end
  end

  if rev and rev > doc.revision then return aeon.not_yet(rev, doc.revision) end
  return doc
end)

return app
