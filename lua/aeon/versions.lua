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
--
-- Several processes may serve one store with different versions of an
-- app (a rolling deploy). Every change of a record is made under the
-- record's lock (M.update): the lease of the subscription
-- "aeon.versions/VIEW", which nothing polls, taken with `wait = false` and
-- given up at once. A process that dies holding it holds it one lease
-- (M.LOCK_LEASE) at most. So two processes never both start a build, and
-- no write undoes another made meanwhile. Who does what with a view is
-- M.decide's rule: only a version newer than every one the record names
-- starts a build; the processes of the newest version build, switch and
-- drop; older ones keep their own version following while it is live and
-- leave the view alone once it is not.
local type, pairs, floor, math_type, tostring = type, pairs, math.floor, math.type, tostring
local sleep = require("aeon.core").sleep

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

M.LOCK_LEASE = 10 -- seconds a dead holder keeps a record's lock
local LOCK_RETRY = 0.05 -- seconds between tries while another process renews it

--- The newest version the record names: the one being built, else the
-- live one. Only a newer one may start a build.
function M.target(record)
  return record.building and record.building.version or record.live.version
end

--- What a process whose app declares version `declared` does with a view
-- whose record is `record` (`force`: a rebuild is asked for):
--   "start"  build its version beside the live one (newer than every
--            version the record names, or forced at the newest);
--   "build"  go on with the build in progress, of its version (beside
--            other processes of that version: one holds the build's
--            subscription, the others stand by and take over if it dies);
--   "live"   keep the live build following: its version is live, the
--            newest or an older one while a newer one builds (so queries
--            keep being answered with new events until the switch);
--   "idle"   a newer version is live: leave the view to its processes;
--   "refused" a rebuild asked for by an app older than the record's.
-- Returns the decision and the physical view it works on.
function M.decide(record, declared, force)
  local target = M.target(record)
  if declared > target or (force and declared == target) then return "start" end
  if force then return "refused" end
  if declared == target and record.building then return "build", record.building.view end
  if record.live.version == declared then return "live", record.live.view end
  return "idle"
end

-- Takes the record's lock: the lock subscription, or nil and a message.
local function lock(store, view)
  while true do
    local sub, err = store:subscribe("aeon.versions/" .. view,
      { lease = M.LOCK_LEASE, wait = false })
    if sub then return sub end
    if not tostring(err):find("in use by another consumer", 1, true) then return nil, err end
    sleep(LOCK_RETRY)
  end
end

--- Changes the record of `view` under its lock: change(record) gets the
-- record as stored now (as M.read gives it) and returns true to store what
-- it made of it, false to leave it, or nil and a message. Returns true, or
-- nil and a message (the store failed, or change's). A change should be
-- short: other processes wait for the lock meanwhile.
function M.update(store, view, projections, change)
  local sub, err = lock(store, view)
  if not sub then return nil, err end
  local record, ok, cerr
  record, cerr = M.read(store, view, projections)
  if record then
    local fine, result, message = pcall(change, record)
    if not fine then
      sub:close()
      error(result, 0)
    end
    ok, cerr = result, message
  end
  if ok then
    -- Still ours: a lock held past its lease may have gone to another.
    local held, herr = sub:renew()
    if held then
      ok, cerr = M.write(store, view, record)
    else
      ok, cerr = nil, herr or ("the lock of view " .. view .. "'s versions was taken over")
    end
  end
  sub:close()
  if ok == nil then return nil, cerr end
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
