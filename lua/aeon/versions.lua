--- aeon.versions: which build of each projected view is live.
--
-- A projection may declare a version of its logic (app:projection,
-- `version = N`, default 1). Each build of a view is kept in a view of its
-- own, beside the others: the first, version 1, in the view of the
-- declared name itself (so a store built before versions existed needs
-- nothing new), every later one in "NAME@vVERSION.GENERATION" (the
-- generation counts the view's builds, so a rebuild of the same version
-- gets a fresh view too). Each build's projections have their own
-- subscriptions, hence their own checkpoints:
-- "projection/NAME@v2.1/PROJECTION"; a crashed build resumes from them.
--
-- Which build is live is one document per view in the view VERSIONS
-- ("aeon.versions"), its id the view's name:
--
--   { generation = 1,                                    -- builds so far
--     live = { version = 2, view = "counters@v2.1", projections = { "counters" } },
--     building = { version = 3, view = ..., projections = ..., events = 1200,
--                  started = UNIX TIME },                -- or absent
--     retired = { { version = 1, view = "counters", projections = ... } } }
--                                                        -- to drop, or absent
--
-- Writing that document is the switch: one atomic put on either backend.
-- A view without one is at version 1 in the view of its own name. Queries
-- resolve a view's name through it on every call (App:store), so an answer
-- reads one complete build: the old one until the switch, the new one after.
local type, pairs, floor, math_type = type, pairs, math.floor, math.type

local M = {}

M.VERSIONS = "aeon.versions"

-- Every put of a record carries the lowest revision: an equal revision
-- overwrites (view:put), so each write replaces the document.
local ANY = ("0"):rep(26)

--- The view a new build (version, generation) of `view` is made in.
function M.physical(view, version, generation)
  return ("%s@v%d.%d"):format(view, version, generation)
end

--- The subscription of projection `name` in the build kept in `physical`.
function M.subscription(physical, name)
  return "projection/" .. physical .. "/" .. name
end

--- The record of `view` (see above): the stored one, or, for a view that
-- has none, version 1 in the view itself kept by `projections` (marked
-- `fresh`, which is not stored). Nil and a message when the store fails.
function M.read(store, view, projections)
  local catalog, err = store:view(M.VERSIONS)
  if not catalog then return nil, err end
  local doc, gerr = catalog:get(view)
  if doc == nil and gerr ~= nil then return nil, gerr end
  if type(doc) ~= "table" or type(doc.live) ~= "table" or math_type(doc.live.version) ~= "integer"
    or type(doc.live.view) ~= "string" then
    return { generation = 0, live = { version = 1, view = view, projections = projections or {} },
      fresh = true }
  end
  return doc
end

--- Stores `record` as the record of `view`: true, or nil and why.
function M.write(store, view, record)
  local catalog, err = store:view(M.VERSIONS)
  if not catalog then return nil, err end
  record.fresh = nil
  local ok, perr = catalog:put(view, record, ANY)
  if ok == nil then return nil, perr end
  return true
end

--- The name of the view queries read for `view`: its live build's.
function M.live(store, view)
  local record, err = M.read(store, view)
  if not record then return nil, err end
  return record.live.view
end

--- How a build is coming along: `lag` events committed after `position`
-- (counted up to `limit`, default 10,000; `more` when there are more), the
-- head's revision and an ETA in seconds at `rate` events a second (nil:
-- none yet; past the count a lower bound, as the lag is).
function M.progress(store, position, rate, limit)
  limit = limit or 10000
  local lag, head = 0, nil
  for event in store:read_all { after = position, limit = limit + 1 } do
    lag, head = lag + 1, event.revision
  end
  local more = lag > limit
  if more then
    lag = limit
    for event in store:read_all { direction = "backward", limit = 1 } do head = event.revision end
  end
  local eta = rate and rate > 0 and floor(lag / rate * 10 + 0.5) / 10 or nil
  return { lag = lag, more = more or nil, head = head or position, eta = eta }
end

return M
