--- aeon.project: runs an app's projections, the host's projection runner.
--
-- A projection (aeon.app, app:projection) follows the store through a
-- durable subscription named after it and keeps a view with its handler.
-- The runner polls the subscription and hands each batch of events to the
-- handler, then records the batch: it advances the view's seen revision
-- and acks the subscription. On a store with transactions (the embedded
-- one) the handler's view writes and that record commit in one
-- transaction, so a runner killed mid-batch neither loses nor
-- double-applies an event; elsewhere (DynamoDB) view writes are
-- conditional on revision, so replaying a batch is harmless. Several
-- runners of the same projection may run at once (several `serve` or
-- `project` processes of one app): one holds the subscription's lease and
-- applies the batches, the others stand by and take over from the
-- checkpoint when it stops (API.md section 4, subscriptions). The holder
-- renews the lease between the events of a batch too, so one that handles
-- a batch for longer than the lease keeps it (else a standby would take
-- over and handle that batch again), and stops handling at once if it
-- ever finds the lease gone. With `once`, a standby waits until the holder has reached every event
-- committed when the run began, or takes over if the holder is gone.
--
-- A handler that raises stops its projection only: the events before the
-- failing one are committed, the checkpoint stays just before it, one line
-- naming the event goes to the log, and the batch is tried again after a
-- backoff (0.1 s doubling up to 30 s). With `once`, a projection gives up
-- after `attempts` tries and the others go on.
--
-- The entry points:
--
--   report, err = project.run(store, app, names, opts)
--     Runs the projections named by `names` (one name, a list, or nil for
--     all of the app's) on an open store. opts:
--       once      process what is committed now, then return (default false:
--                 keep following until stop() says so);
--       stop      function() -> true to return; checked between batches and
--                 at least every `interval` seconds;
--       interval  seconds a poll waits for new events (default 0.5);
--       attempts  tries per failing batch with `once` (default 3);
--       backoff   { first = 0.1, max = 30 } seconds between tries;
--       log       function(line, level) for failures (level nil) and progress
--                 (level "info") (default: stderr, one line each);
--       grace     seconds between a switch and the drop of the old build
--                 (default 5); with `once` the run waits them out, unless
--                 `drop` is false (catch_up), which leaves the drop to the
--                 next run;
--       progress_every  seconds between progress lines of a build (default 5);
--       on_progress function(name, info) with a build's progress, where
--                 info = { version, events, lag, more, eta, done }.
--     Returns a report { [name] = { events = n, revision = r, failed =
--     { revision, key, type, message } | nil } }, or nil and a message when
--     the store fails with `once` (without it, store failures are logged
--     and retried like handler failures).
--
--   The HTTP server runs it from its projection thread, in that thread's
--   own Lua state with its own store handle, until it shuts down:
--       project.run(store, app, nil, { stop = function() return stopping end })
--
--   report, err = project.catch_up(store, app, views)
--     Brings the projections that keep any of `views` (nil: all) up to
--     every event committed before the call: what the command line does
--     before answering a query that reads them without a revision.
--
--   report, err = project.rebuild(store, app, name, opts)
--     Builds the projection's view anew beside the live one, from the
--     first event, and switches to it once caught up (once): the same path
--     a version change takes.
--
-- Versions (aeon.versions). A projection declares the version of its
-- logic (app:projection, `version = N`, default 1); the store records
-- which build of each view is live. When the run starts and the live
-- build's version is not the declared one, the runner builds the declared
-- version into a new view beside the live one, from the first event, with
-- its own subscription (so a crash resumes the build where its checkpoint
-- is). Queries keep reading the live build (App:store resolves the view's
-- name on every call) until the new one has caught up with the head; then
-- one write of the view's record makes it live, and the old build is
-- dropped in the background, `grace` seconds later (a query that resolved
-- the old build just before the switch may still be reading it). While it
-- builds, progress (events done, lag, ETA) goes to the log every
-- `progress_every` seconds and to opts.on_progress(name, info); a running
-- runner reads the record again every few seconds, so a switch made
-- elsewhere (`project --rebuild` beside a server) moves it to the new view.
-- Processes of several versions may run at once (a rolling deploy):
-- versions.decide says which starts, runs, follows or leaves each view,
-- and every change of a record is made under its lock (versions.update).
--
-- The command line's `aeon-host APP.lua project` is aeon.cli.project.
local aeon = require "aeon"
local core = require "aeon.core"
local versions = require "aeon.versions"

local io, os, type, ipairs, pairs, tostring = io, os, type, ipairs, pairs, tostring
local xpcall, pcall, error, setmetatable = xpcall, pcall, error, setmetatable
local traceback, pack, unpack, min, max = debug.traceback, table.pack, table.unpack, math.min, math.max
local sleep, now = core.sleep, core.monotonic

local M = {}

local DEFAULTS = { interval = 0.5, attempts = 3, backoff = { first = 0.1, max = 30 }, grace = 5,
  progress_every = 5 }
local RECHECK = 2 -- seconds between reads of a view's record while running
local DROP_STEP = 500 -- documents of an old build deleted per step of the runner's loop
local BUSY_POLL = 0.05 -- seconds each poll waits when several projections share the loop
local STANDBY_POLL = 0.1 -- ... and at least, with `once`, while another runner holds one

local function default_log(line)
  io.stderr:write("aeon-host: ", line, "\n")
  io.stderr:flush()
end

-- The first line of an error, without the traceback.
local function first_line(e)
  local msg = aeon.is_error(e) and e.message or tostring(e)
  return (msg:match("^[^\n]*"))
end

local function slice(list, from, to)
  return { unpack(list, from, to or #list) }
end

-- The store's last revision: what a run with `once` must reach, and what
-- a build must pass to have caught up.
local function last_revision(store)
  local iter, s, c, closer = store:read_all { direction = "backward", limit = 1 }
  if not iter then return nil, s end
  for e in iter, s, c, closer do return e.revision end
  return aeon.START
end

-- One projection being run: its subscription, view and progress.
local function open_runner(store, app, p, opts, view_name)
  local target
  if opts.once then
    local lerr
    target, lerr = last_revision(store)
    if not target then return nil, lerr end
  end
  local sub, err = store:subscribe(versions.subscription(view_name, p.name),
    { key = p.key, type = p.type, filter = p.filter, lease = p.lease })
  if not sub then return nil, err end
  local view, verr = store:view(view_name)
  if not view then
    sub:close()
    return nil, verr
  end
  local position, cerr = sub:checkpoint()
  if not position then
    sub:close()
    return nil, cerr
  end
  return {
    p = p,
    store = store,
    sub = sub,
    view = view,
    txn = store:supports("transactions"),
    ctx = { store = app:store(store), app = app, projection = p.name },
    app = app,
    position = position,       -- recorded (acked) up to here
    target = target,           -- once: the store's last revision at the start
    standby = false,           -- another runner holds the subscription
    pending = nil,             -- a batch polled but not yet committed
    pending_position = nil,    -- ... and the position it reaches
    events = 0,                -- events committed by this run
    tries = 0,                 -- failed tries of the pending batch
    delay = opts.backoff.first,
    retry_at = nil,            -- monotonic time of the next try
    failed = nil,              -- the last failure, for the report
    finished = false,          -- once: caught up, or out of attempts
    log = opts.log,
    started = now(),           -- for a build's rate
    caught = false,            -- a build: has caught up with the head
  }
end

-- Runs fn() in one store:transaction where the store has them, committed
-- when fn's first result is `keep` and rolled back otherwise. Returns fn's
-- results, or nil, message when the commit fails. The transaction is the
-- runner's: a handler inside it that tries to begin, commit or roll back
-- raises, and that is its failure like any other.
local ROLL_BACK = setmetatable({}, { __tostring = function() return "rolled back" end })
local function atomically(store, txn, keep, fn)
  if not txn then return fn() end
  local results
  local ok, committed, err = pcall(store.transaction, store, function()
    results = pack(fn())
    if results[1] ~= keep then error(ROLL_BACK, 0) end
  end)
  if not ok then
    if committed ~= ROLL_BACK then error(committed, 0) end
  elseif not committed then
    return nil, err
  end
  return unpack(results, 1, results.n)
end

-- Hands events to the handler and records `position`, in one transaction
-- where the store has them. Returns "done", "stale" (another runner got
-- there first, or took the subscription's lease over; nothing was
-- recorded), "failed", index, message (the handler raised on
-- events[index]), or nil, message (the store failed). Before each event
-- the lease is renewed when a third of it has gone, so a batch that takes
-- longer than the lease keeps it; once lost, no further event is handled.
local function apply(r, events, position)
  local p = r.p
  local tb
  local function on_error(e)
    tb = traceback(first_line(e), 2)
    return e
  end
  return atomically(r.store, r.txn, "done", function()
    for i, event in ipairs(events) do
      local held, herr = r.sub:renew()
      if held == nil then return nil, herr end
      if not held then return "stale" end
      -- The handler gets the event upcast (aeon.app, App:upcast); an
      -- upcaster that raises fails the event as its handler would.
      local ok, e = xpcall(function()
        return p.handler(r.view, r.app:upcast_event(event), r.ctx)
      end, on_error)
      if not ok then
        if os.getenv("AEON_DEBUG") and tb then io.stderr:write(tb, "\n") end
        return "failed", i, first_line(e)
      end
    end
    if position ~= aeon.START then
      local ok, err = r.view:advance(position)
      if not ok then return nil, err end
      local acked, aerr = r.sub:ack(position)
      if acked == nil then return nil, aerr end
      if not acked then return "stale" end
    end
    return "done"
  end)
end

local function committed(r, n, position)
  r.events = r.events + n
  if position > r.position then r.position = position end
end

local function schedule_retry(r, opts, what)
  r.tries = r.tries + 1
  if opts.once and r.tries >= opts.attempts then
    r.finished = true
    r.log(("projection %s: %s; giving up after %d tries"):format(r.p.name, what, r.tries))
    return
  end
  r.log(("projection %s: %s; retrying in %g s"):format(r.p.name, what, r.delay))
  r.retry_at = now() + r.delay
  r.delay = min(r.delay * 2, opts.backoff.max)
end

-- One step of a projection: poll a batch (waiting up to `wait` seconds)
-- unless one is pending, apply it, deal with the outcome. Returns
-- "progress", "idle", "standby" (another runner holds the subscription)
-- or "failed"; or nil, message when the store failed.
local function step(r, opts, wait)
  if not r.pending then
    -- A build has caught up once it has passed what was the head before a
    -- poll (or a poll finds nothing): under a steady load polls never come
    -- back empty.
    if r.group and r.group.build then
      local head, herr = last_revision(r.store)
      if not head then return nil, herr end
      r.head = head
    end
    local events, position = r.sub:poll(wait, r.p.batch)
    if not events then return nil, position end
    r.standby = not r.sub:active()
    if r.standby then return "standby" end
    if #events == 0 then
      -- Nothing for us, but the scan may have passed other events: record
      -- that, so restarts and view:revision() move on too.
      if position > r.position then
        local outcome, err = apply(r, events, position)
        if outcome == nil then return nil, err end
        if outcome == "done" then committed(r, 0, position) end
      end
      return "idle"
    end
    r.pending, r.pending_position = events, position
  end

  local events, position = r.pending, r.pending_position
  local outcome, i, msg = apply(r, events, position)
  if outcome == "done" or outcome == "stale" then
    if outcome == "done" then
      committed(r, #events, position)
      if r.head and r.position >= r.head then r.caught = true end
    end
    r.pending, r.pending_position = nil, nil
    r.tries, r.delay, r.retry_at, r.failed = 0, opts.backoff.first, nil, nil
    return "progress"
  elseif outcome == nil then
    return nil, i
  end

  -- The handler raised on events[i]: commit what came before it, so the
  -- checkpoint stays right before the failing event, and retry from there.
  local bad = events[i]
  if i > 1 then
    local before = slice(events, 1, i - 1)
    local prefix = apply(r, before, before[#before].revision)
    if prefix == "done" then
      committed(r, #before, before[#before].revision)
      r.pending = slice(events, i)
    elseif prefix == "stale" then
      r.pending, r.pending_position = nil, nil
      return "progress"
    end
  end
  r.failed = { revision = bad.revision, key = bad.key, type = bad.type, message = msg }
  schedule_retry(r, opts, ("handler failed on event %s (key %s, type %s): %s"):format(
    bad.revision, bad.key, bad.type, msg))
  return "failed"
end

local function options(opts)
  opts = opts or {}
  local o = {}
  for k, v in pairs(DEFAULTS) do o[k] = v end
  for k, v in pairs(opts) do o[k] = v end
  o.backoff = { first = (opts.backoff or {}).first or DEFAULTS.backoff.first,
                max = (opts.backoff or {}).max or DEFAULTS.backoff.max }
  o.log = opts.log or default_log
  return o
end

local function select_names(app, names)
  if names == nil then return app:projection_names() end
  if type(names) == "string" then names = { names } end
  for _, n in ipairs(names) do
    if not app.projections[n] then
      error(("app %s has no projection '%s'"):format(app.name, tostring(n)), 3)
    end
  end
  return names
end

local function report_of(runners)
  local report = {}
  for _, r in ipairs(runners) do
    report[r.p.name] = { events = r.events, revision = r.position, failed = r.failed,
      view = r.p.view, version = r.p.version }
  end
  return report
end

-- A pending batch is simply dropped: it was never recorded, so the next
-- run polls it again from the checkpoint.
local function close_all(runners)
  for _, r in ipairs(runners) do r.sub:close() end
end

-- Drops a build that no query reads: its documents and seen revision,
-- then its projections' checkpoints; a drop cut short is simply done again
-- (each step is). With `limit`, at most that many documents go (a step of
-- a background drop): false while some are left.
local function drop(store, entry, limit)
  local view, err = store:view(entry.view)
  if not view then return nil, err end
  local cleared, cerr = view:clear(limit and { limit = limit } or nil)
  if cleared == nil then return nil, cerr end
  if not cleared then return false end
  for _, name in ipairs(entry.projections or {}) do
    local reset, rerr = store:reset_subscription(versions.subscription(entry.view, name))
    if not reset then return nil, rerr end
  end
  return true
end

-- The app's projections that keep `view`, in declared order.
local function keeping(app, view)
  local names = {}
  for _, name in ipairs(app:projection_names()) do
    if app.projections[name].view == view then names[#names + 1] = name end
  end
  return names
end

-- A view no build has written to yet (a new store) is the declared
-- version's from the start: nothing to build beside it. True when that
-- is so of `record` (a record not stored yet), which then says so.
local function claim_fresh(store, record, view, declared)
  local v, verr = store:view(view)
  if not v then return nil, verr end
  local seen, serr = v:revision()
  if not seen then return nil, serr end
  local docs, lerr = v:list { limit = 1 }
  if not docs then return nil, lerr end
  if seen ~= aeon.START or #docs > 0 then return false end
  record.live.version = declared
  return true
end

-- Starts a build of `declared` in `record`: a new view (the generation
-- is new, but a crash may have left something under its name before the
-- record named it: cleared). A build in progress of an older version is
-- retired, dropped after the grace like an old live build: its processes
-- may write to it until they see the record.
local function start_build(store, record, view, names, declared)
  local generation = (record.generation or 0) + 1
  local entry = { version = declared, view = versions.physical(view, declared, generation),
    projections = names, events = 0, started = os.time() }
  local ok, derr = drop(store, entry)
  if not ok then return nil, derr end
  if record.building then
    record.retired = record.retired or {}
    record.retired[#record.retired + 1] = record.building
  end
  record.generation, record.building = generation, entry
  return true
end

-- Decides what a run does with `view` (versions.decide): go on with its
-- live build, with the build in progress, start one, or leave the view
-- to the processes of a newer version. Every change of the record is
-- made under its lock. Returns the group { view, names, declared, record,
-- mode, target, build, steward, drops }, or nil and a message.
local function plan(store, app, view, names, force)
  local declared = app.projections[names[1]].version
  local record, mode, target
  local ok, err = versions.update(store, view, names, function(rec)
    record = rec
    local changed = false
    if rec.fresh and declared ~= 1 and not force then
      local cerr
      changed, cerr = claim_fresh(store, rec, view, declared)
      if changed == nil then return nil, cerr end
    end
    mode, target = versions.decide(rec, declared, force)
    if mode ~= "start" then return changed end
    local sok, serr = start_build(store, rec, view, names, declared)
    if not sok then return nil, serr end
    mode, target = "build", rec.building.view
    return true
  end)
  if not ok then return nil, err end
  if mode == "refused" then
    return nil, ("projection %s: version %d of view %s is newer than this app's version %d: " ..
      "rebuild it with an app of version %d"):format(table.concat(names, ", "),
      versions.target(record), view, declared, versions.target(record))
  end
  local steward = declared == versions.target(record)
  local drops = {}
  if steward then
    for _, entry in ipairs(record.retired or {}) do drops[#drops + 1] = { entry = entry } end
  end
  return { view = view, names = names, declared = declared, record = record, mode = mode,
    target = target, build = mode == "build", steward = steward, drops = drops, checked = now() }
end

-- A build's progress: events done (over its resumes), lag, ETA.
local function progress(g)
  local r = g.runners[1]
  local b = g.record.building
  local elapsed = now() - r.started
  local info = versions.progress(r.store, r.position, elapsed > 0 and r.events / elapsed or nil)
  info.version, info.events, info.view = b.version, (b.events or 0) + r.events, b.view
  return info
end

-- A progress line: the log's "info" level.
local function note(opts, line) opts.log(line, "info") end

-- Opens the group's runners; nil and a message when the store fails.
local function open_group(store, app, g, opts)
  g.runners = {}
  local who, record = table.concat(g.names, ", "), g.record
  if g.mode == "idle" then
    local newest = versions.target(record)
    note(opts, ("projection %s: version %d of view %s is %s, newer than this app's version %d: " ..
      "this process leaves it to the processes of version %d"):format(who, newest, g.view,
      record.live.version == newest and "live" or "being built", g.declared, newest))
    return g
  end
  if g.mode == "live" and not g.steward then
    note(opts, ("projection %s: version %d of view %s is being built; this process keeps its " ..
      "version %d live until the switch"):format(who, versions.target(record), g.view,
      g.declared))
  end
  for _, name in ipairs(g.names) do
    local r, err = open_runner(store, app, app.projections[name], opts, g.target)
    if not r then
      for _, o in ipairs(g.runners) do o.sub:close() end
      return nil, err
    end
    r.group = g
    g.runners[#g.runners + 1] = r
  end
  if g.build then
    local b = g.record.building
    local info = progress(g)
    note(opts, ("projection %s: building version %d of view %s beside the live version %d, " ..
      "from %s; lag %d%s events"):format(table.concat(g.names, ", "), b.version, g.view,
      g.record.live.version, g.runners[1].position == aeon.START and "the first event" or
        ("its checkpoint %s (%d events done)"):format(g.runners[1].position, b.events or 0),
      info.lag, info.more and "+" or ""))
    if opts.on_progress then
      for _, name in ipairs(g.names) do opts.on_progress(name, info) end
    end
    g.reported = now()
  end
  return g
end

local function report_progress(g, opts)
  local info = progress(g)
  note(opts, ("projection %s: building version %d of view %s: %d events done, lag %d%s events%s")
    :format(table.concat(g.names, ", "), info.version, g.view, info.events, info.lag,
      info.more and "+" or "", info.eta and (", ETA %g s"):format(info.eta) or ""))
  if opts.on_progress then
    for _, name in ipairs(g.names) do opts.on_progress(name, info) end
  end
  return info
end

-- The switch: one write of the view's record makes the build live; the
-- old build is dropped once the grace is over.
local function switch(store, g, opts)
  -- Only the build's holder switches, and only while it is named in the
  -- record as stored now: another process may have moved it on, and then
  -- the next recheck follows it instead.
  for _, r in ipairs(g.runners) do
    local held, herr = r.sub:renew()
    if held == nil then return nil, herr end
    if not held then return true end
  end
  local info = progress(g)
  local b, old
  local ok, err = versions.update(store, g.view, g.names, function(record)
    if not (record.building and record.building.view == g.target) then return false end
    g.record = record
    b, old = record.building, record.live
    record.live = { version = b.version, view = b.view, projections = b.projections }
    record.building = nil
    record.retired = record.retired or {}
    record.retired[#record.retired + 1] = old
    return true
  end)
  if not ok then return nil, err end
  if not b then
    g.checked = -math.huge -- moved on elsewhere: follow it at once
    return true
  end
  g.build, g.mode = false, "live"
  g.drops[#g.drops + 1] = { entry = old, at = now() + opts.grace }
  note(opts, ("projection %s: version %d of view %s is live (%d events); version %d is dropped " ..
    "in %g s"):format(table.concat(g.names, ", "), b.version, g.view, info.events, old.version,
    opts.grace))
  if opts.on_progress then
    info.done, info.lag, info.eta = true, 0, 0
    for _, name in ipairs(g.names) do opts.on_progress(name, info) end
  end
  return true
end

-- Drops the group's retired builds whose grace is over (`all`: waiting it
-- out), and takes each out of the record once dropped.
local function drop_retired(store, g, opts, all)
  local keep = {}
  for _, d in ipairs(g.drops) do
    d.at = d.at or (now() + opts.grace)
    if all and d.at > now() then sleep(d.at - now()) end
    local gone, err = true, nil
    if d.at <= now() then
      repeat
        gone, err = drop(store, d.entry, DROP_STEP)
        if gone == nil then return nil, err end
      until gone or not all
    end
    if d.at <= now() and gone then
      local ok
      ok, err = versions.update(store, g.view, g.names, function(record)
        local left = {}
        for _, e in ipairs(record.retired or {}) do
          if e.view ~= d.entry.view then left[#left + 1] = e end
        end
        record.retired = #left > 0 and left or nil
        g.record.retired = record.retired
        return true
      end)
      if not ok then return nil, err end
      note(opts, ("projection %s: dropped version %d of view %s (%s)"):format(
        table.concat(g.names, ", "), d.entry.version, g.view, d.entry.view))
    else
      keep[#keep + 1] = d
    end
  end
  g.drops = keep
  return true
end

-- True when what the group does with its view (versions.decide) is no
-- longer what the record as stored now calls for (a build started,
-- switched or superseded elsewhere): the group plans again.
local function moved(store, g)
  local record, err = versions.read(store, g.view, g.names)
  if not record then return nil, err end
  local mode, target = versions.decide(record, g.declared, false)
  return mode ~= g.mode or target ~= g.target
    or (g.declared == versions.target(record)) ~= g.steward
end

function M.run(store, app, names, opts)
  opts = options(opts)
  names = select_names(app, names)
  -- One group per view, with the projections of `names` that keep it.
  local groups, by_view = {}, {}
  for _, name in ipairs(names) do
    local view = app.projections[name].view
    if not by_view[view] then
      by_view[view] = { view = view, names = {} }
      groups[#groups + 1] = by_view[view]
    end
    local list = by_view[view].names
    list[#list + 1] = name
  end
  local runners = {}
  local function gather()
    runners = {}
    for _, g in ipairs(groups) do
      for _, r in ipairs(g.runners) do runners[#runners + 1] = r end
    end
  end
  local function close_groups()
    for _, g in ipairs(groups) do
      if g.runners then close_all(g.runners) end
    end
  end
  for i, want in ipairs(groups) do
    local g, err = plan(store, app, want.view, want.names, opts.force and opts.force[want.view])
    if g then g, err = open_group(store, app, g, opts) end
    if not g then
      close_groups()
      return nil, err
    end
    groups[i] = g
  end
  gather()

  local stop = opts.stop or function() return false end
  -- What a run does besides stepping its runners: switch a build that
  -- caught up, drop retired builds, follow a record changed elsewhere,
  -- report a build's progress. Returns nil, message when the store fails.
  local function housekeep()
    for i, g in ipairs(groups) do
      if g.build then
        local caught = true
        for _, r in ipairs(g.runners) do caught = caught and r.caught and not r.failed end
        if caught then
          local ok, err = switch(store, g, opts)
          if not ok then return nil, err end
        elseif now() - g.reported >= opts.progress_every and not g.runners[1].standby then
          -- The build's holder reports; a standby has nothing to say.
          g.reported = now()
          local info = report_progress(g, opts)
          local ok, werr = versions.update(store, g.view, g.names, function(record)
            if not (record.building and record.building.view == g.target) then return false end
            record.building.events = info.events
            return true
          end)
          if not ok then return nil, werr end
        end
      end
      if #g.drops > 0 and not opts.once then
        local ok, err = drop_retired(store, g, opts)
        if not ok then return nil, err end
      end
      if not opts.once and now() - g.checked >= RECHECK then
        g.checked = now()
        local changed, err = moved(store, g)
        if changed == nil then return nil, err end
        if changed then
          close_all(g.runners)
          local fresh, perr = plan(store, app, g.view, g.names, false)
          if fresh then fresh, perr = open_group(store, app, fresh, opts) end
          if not fresh then return nil, perr end
          groups[i] = fresh
          gather()
        end
      end
    end
    return true
  end

  local function finish()
    close_groups()
    if opts.once and opts.drop ~= false then
      for _, g in ipairs(groups) do
        local ok, err = drop_retired(store, g, opts, true)
        if not ok then return nil, err end
      end
    end
    local report = report_of(runners)
    for _, g in ipairs(groups) do
      if g.mode == "idle" then
        for _, name in ipairs(g.names) do
          report[name] = { events = 0, view = g.view, version = g.declared,
            newer = versions.target(g.record) }
        end
      end
    end
    return report
  end

  while true do
    -- Who can work now, and when the next one in backoff may.
    local ready, next_retry = {}, nil
    local t = now()
    for _, r in ipairs(runners) do
      if r.finished then
        -- out of this run
      elseif r.retry_at and r.retry_at > t then
        next_retry = next_retry and min(next_retry, r.retry_at) or r.retry_at
      else
        ready[#ready + 1] = r
      end
    end
    -- Once: all done or given up. Otherwise a run whose groups all leave
    -- their views to newer versions goes on looking at their records.
    if #ready == 0 and not next_retry and opts.once then break end

    for _, r in ipairs(ready) do
      local wait = 0
      if not opts.once then
        wait = #ready == 1 and opts.interval or BUSY_POLL
        if next_retry then wait = min(wait, max(0, next_retry - now())) end
      elseif r.standby then
        wait = STANDBY_POLL
      end
      local outcome, err = step(r, opts, wait)
      if outcome == nil then
        if opts.once then
          close_groups()
          return nil, ("projection %s: %s"):format(r.p.name, tostring(err))
        end
        schedule_retry(r, opts, "store failed: " .. first_line(err))
      elseif outcome == "idle" then
        r.caught = true
        if opts.once then r.finished = true end
      elseif outcome == "standby" and opts.once then
        -- The holder's checkpoint says how far the view is.
        local checkpoint, cerr = r.sub:checkpoint()
        if not checkpoint then
          close_all(runners)
          return nil, ("projection %s: %s"):format(r.p.name, tostring(cerr))
        end
        if checkpoint >= r.target then
          r.finished = true
          if checkpoint > r.position then r.position = checkpoint end
        end
      end
      if stop() then return finish() end
    end
    local ok, herr = housekeep()
    if not ok then
      if opts.once then
        close_groups()
        return nil, herr
      end
      opts.log("projection store failed: " .. first_line(herr))
    end
    if #ready == 0 then
      -- Everyone is backing off: sleep until the first may try again.
      local pause = next_retry and max(0, next_retry - now()) or opts.interval
      if not opts.once then pause = min(pause, opts.interval) end
      sleep(pause)
      if stop() then break end
    end
  end
  return finish()
end

--- The projections that keep any of `views`.
local function feeding(app, views)
  local wanted = {}
  for _, v in ipairs(views or {}) do wanted[v] = true end
  local names = {}
  for _, name in ipairs(app:projection_names()) do
    if views == nil or wanted[app.projections[name].view] then names[#names + 1] = name end
  end
  return names
end

function M.catch_up(store, app, views, opts)
  local names = feeding(app, views)
  if #names == 0 then return {} end
  -- A query must not wait out a switch's grace: the next run drops the
  -- old build.
  local o = { once = true, attempts = 1, drop = false }
  for k, v in pairs(opts or {}) do o[k] = v end
  return M.run(store, app, names, o)
end

function M.rebuild(store, app, name, opts)
  local p = app.projections[name]
  if not p then error(("app %s has no projection '%s'"):format(app.name, tostring(name)), 2) end
  local o = { once = true }
  for k, v in pairs(opts or {}) do o[k] = v end
  o.force = { [p.view] = true }
  return M.run(store, app, keeping(app, p.view), o)
end

--- Where each of the app's projections stands: { [name] = { view,
-- version (declared), live = { version, view, revision, lag, more },
-- building = { version, view, revision, events, lag, more, eta } | nil,
-- retired = { views } | nil } }, or nil and a message. `lag` counts the
-- events committed after the build's seen revision, up to 10,000 (`more`:
-- there are more); a build's ETA is at its average pace since it started.
function M.status(store, app)
  local out = {}
  for _, name in ipairs(app:projection_names()) do
    local p = app.projections[name]
    local record, err = versions.read(store, p.view, { name })
    if not record then return nil, err end
    local function state(entry)
      local view, verr = store:view(entry.view)
      if not view then return nil, verr end
      local seen, serr = view:revision()
      if not seen then return nil, serr end
      local info = { version = entry.version, view = entry.view, revision = seen }
      local elapsed = entry.started and os.time() - entry.started
      local rate = entry.events and elapsed and elapsed > 0 and entry.events / elapsed or nil
      local pr = versions.progress(store, seen, rate)
      info.lag, info.more = pr.lag, pr.more
      if entry.events then info.events, info.eta = entry.events, pr.eta end
      return info
    end
    local live, lerr = state(record.live)
    if not live then return nil, lerr end
    local s = { view = p.view, version = p.version, live = live }
    if record.building then
      local b, berr = state(record.building)
      if not b then return nil, berr end
      s.building = b
    end
    for _, e in ipairs(record.retired or {}) do
      s.retired = s.retired or {}
      s.retired[#s.retired + 1] = e.view
    end
    out[name] = s
  end
  return out
end

return M
