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
-- `revision=REV` (a revision any command returned, on this counter or
-- another) asks for an answer that reflects every event up to REV. After
-- the catch-up the document reflects every event of the counter committed
-- so far, so it answers at once once REV is committed; it says "not yet"
-- (exit status 1) only while no event at or after REV is in the store.
--
--   aeon-host apps/counter-cqrs-lazy.lua increment name=a
--   aeon-host apps/counter-cqrs-lazy.lua counter name=a
--     {"decrements":0,"increments":1,"revision":"01K...","value":1}
local aeon = require "aeon"
local counter = require "domain.counter_cqrs"

local pcall, tostring = pcall, tostring

local VIEW = "counters-lazy"

local app = aeon.app "counter-cqrs-lazy"

counter.declare_commands(app)

-- Whether the store has committed revision `rev`: some event, of any key,
-- is at or after it. nil and a message when the store fails.
local function committed(store, rev)
  local iter, s, c, cursor = store:read_all { from = rev, limit = 1 }
  if not iter then return nil, s end
  local _ <close> = cursor
  local ok, found = pcall(function()
    for _ in iter, s, c do return true end
    return false
  end)
  if not ok then return nil, tostring(found) end
  return found
end

app:query("counter", { params = { "name", "revision" },
  description = "the counter NAME, its view brought up to date first; with REVISION, once it is committed" },
  function(ctx, args)
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

  if rev and rev > doc.revision then
    local reached, rerr = committed(ctx.store, rev)
    if reached == nil then return aeon.store_failure(rerr) end
    if not reached then return aeon.not_yet(rev, doc.revision) end
  end
  return doc
end)

return app
