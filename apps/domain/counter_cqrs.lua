--- domain.counter_cqrs: what the CQRS counter examples share.
--
-- The write side: `increment` and `decrement` commands that run the counter
-- aggregate (domain.counter) through aeon.execute, appending `incremented`
-- / `decremented` events with Aeon's data ({ type, name }) to
-- `counter/NAME`. Counters never go below 0.
--
-- The read side: one document per counter,
-- `{ value, increments, decrements, revision }`, where `revision` is the
-- last event folded into it. `fold` is pure; `project` is a projection
-- handler that keeps such documents in a view; `answer` is what a query
-- says from a document and the revision a caller asked for.
--
-- apps/counter.lua gets the same read model with
--     counter_cqrs.declare_projection(app)
--     app:query("counter", { params = { "name", "revision" }, views = { "counters" } },
--               counter_cqrs.query)
local aeon = require "aeon"
local counter = require "domain.counter"

local tostring = tostring

local M = {}

M.VIEW = "counters"                        -- the view the projection keeps
M.KEY = "counter/*"                        -- the events it follows ...
M.TYPES = { "incremented", "decremented" } -- ... and of which types

M.check_name = counter.check_name -- the name from arguments, or nil and why not
M.key = counter.key                -- the key of a counter's events

--- The `revision` argument of a query, or nil and why it is not one.
function M.check_revision(rev)
  if rev == nil then return nil end
  rev = tostring(rev)
  if rev ~= aeon.START and not aeon.revision_valid(rev) then
    return nil, "revision must be a revision (26 characters of Crockford base32)"
  end
  return rev
end

--- A counter nothing has happened to.
function M.zero() return { value = 0, increments = 0, decrements = 0, revision = aeon.START } end

--- The document after one more event. Events at or below the document's
-- revision are already in it and change nothing, so replays are harmless.
function M.fold(doc, event)
  if event.revision <= doc.revision then return doc end
  local after = { value = doc.value, increments = doc.increments, decrements = doc.decrements,
    revision = event.revision }
  if event.type == "incremented" then
    after.value, after.increments = after.value + 1, after.increments + 1
  elseif event.type == "decremented" then
    after.value, after.decrements = after.value - 1, after.decrements + 1
  end
  return after
end

--- Version 2 of the read model (apps/counter.lua): the same document and
-- `changed_at`, when the last event folded into it was committed.
function M.fold_changed_at(doc, event)
  local after = M.fold(doc, event)
  if after ~= doc then after.changed_at = event.committed_at end
  return after
end

--- A projection handler that folds each event into its counter's
-- document with `fold` (default M.fold).
function M.projector(fold)
  fold = fold or M.fold
  return function(view, event)
    local name = event.key:match("^counter/(.+)$")
    if not name then return end
    local doc = assert(M.get(view, name))
    local after = fold(doc, event)
    if after ~= doc then assert(view:put(name, after, after.revision)) end
  end
end

--- A projection handler: folds the event into its counter's document.
M.project = M.projector()

--- Declares the projection that keeps the `counters` view: version 1, or
-- with `changed_at`, version 2 (the document gains `changed_at`).
function M.declare_projection(app, opts)
  if opts and opts.changed_at then
    app:projection("counters", { view = M.VIEW, key = M.KEY, type = M.TYPES, version = 2,
      description = "keeps { value, increments, decrements, revision, changed_at } per counter" },
      M.projector(M.fold_changed_at))
    return
  end
  app:projection("counters", { view = M.VIEW, key = M.KEY, type = M.TYPES,
    description = "keeps { value, increments, decrements, revision } per counter" }, M.project)
end

--- The counter's document from a view (zero when it has none), or nil and
-- the store's message.
function M.get(view, name)
  local doc, err = view:get(name)
  if doc == nil and err ~= nil then return nil, err end
  return doc or M.zero()
end

--- The `counter` query of counter-cqrs: answers from the view, once the
-- view has seen the revision asked for (aeon.not_yet before).
function M.query(ctx, args)
  local name, why = M.check_name(args.name)
  if not name then return aeon.invalid(why) end
  local rev, rwhy = M.check_revision(args.revision)
  if rwhy then return aeon.invalid(rwhy) end
  local view, err = ctx.store:view(M.VIEW)
  if not view then return aeon.store_failure(err) end
  if rev then
    local seen, serr = view:revision()
    if not seen then return aeon.store_failure(serr) end
    if rev > seen then return aeon.not_yet(rev, seen) end
  end
  local doc, gerr = M.get(view, name)
  if not doc then return aeon.store_failure(gerr) end
  return doc
end

--- Declares `increment` and `decrement` as apps/counter.lua runs them: a
-- counter is a hot spot, so conflicts are retried generously. The write
-- side never reads the read model, which may lag; the aggregate loads the
-- counter from its events. The answer's `revision` is what a query can wait
-- for.
function M.declare_commands(app)
  require("domain.counter_commands").declare(app, { retries = 30 })
end

return M
