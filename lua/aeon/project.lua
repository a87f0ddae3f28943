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
--       log       function(line) for failures (default: stderr, one line).
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
--     Clears the projection's view, forgets its checkpoint and replays the
--     events from the start (once).
--
-- The command line's `aeon-host APP.lua project` is aeon.cli.project.
local aeon = require "aeon"
local core = require "aeon.core"

local io, os, type, ipairs, pairs, tostring = io, os, type, ipairs, pairs, tostring
local xpcall, pcall, error, setmetatable = xpcall, pcall, error, setmetatable
local traceback, pack, unpack, min, max = debug.traceback, table.pack, table.unpack, math.min, math.max
local sleep, now = core.sleep, core.monotonic

local M = {}

local DEFAULTS = { interval = 0.5, attempts = 3, backoff = { first = 0.1, max = 30 } }
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

-- One projection being run: its subscription, view and progress.
-- The store's last revision, what a run with `once` must reach.
local function last_revision(store)
  local iter, s, c, closer = store:read_all { direction = "backward", limit = 1 }
  if not iter then return nil, s end
  for e in iter, s, c, closer do return e.revision end
  return aeon.START
end

local function open_runner(store, app, p, opts)
  local target
  if opts.once then
    local lerr
    target, lerr = last_revision(store)
    if not target then return nil, lerr end
  end
  local sub, err = store:subscribe(p.subscription,
    { key = p.key, type = p.type, filter = p.filter, lease = p.lease })
  if not sub then return nil, err end
  local view, verr = store:view(p.view)
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
    if outcome == "done" then committed(r, #events, position) end
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
      view = r.p.view }
  end
  return report
end

-- A pending batch is simply dropped: it was never recorded, so the next
-- run polls it again from the checkpoint.
local function close_all(runners)
  for _, r in ipairs(runners) do r.sub:close() end
end

function M.run(store, app, names, opts)
  opts = options(opts)
  names = select_names(app, names)
  local runners = {}
  for _, name in ipairs(names) do
    local r, err = open_runner(store, app, app.projections[name], opts)
    if not r then
      close_all(runners)
      return nil, err
    end
    runners[#runners + 1] = r
  end

  local stop = opts.stop or function() return false end
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
    if #ready == 0 and not next_retry then break end -- once: all done or given up

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
          close_all(runners)
          return nil, ("projection %s: %s"):format(r.p.name, tostring(err))
        end
        schedule_retry(r, opts, "store failed: " .. first_line(err))
      elseif outcome == "idle" and opts.once then
        r.finished = true
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
      if stop() then
        close_all(runners)
        return report_of(runners)
      end
    end
    if #ready == 0 then
      -- Everyone is backing off: sleep until the first may try again.
      local pause = max(0, next_retry - now())
      if not opts.once then pause = min(pause, opts.interval) end
      sleep(pause)
      if stop() then break end
    end
  end
  close_all(runners)
  return report_of(runners)
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
  local o = { once = true, attempts = 1 }
  for k, v in pairs(opts or {}) do o[k] = v end
  return M.run(store, app, names, o)
end

function M.rebuild(store, app, name, opts)
  local p = app.projections[name]
  if not p then error(("app %s has no projection '%s'"):format(app.name, tostring(name)), 2) end
  local view, err = store:view(p.view)
  if not view then return nil, err end
  -- Clearing and forgetting commit together where the store can.
  local ok, cerr = atomically(store, store:supports("transactions"), true, function()
    local cleared, err = view:clear()
    if not cleared then return nil, err end
    return store:reset_subscription(p.subscription)
  end)
  if not ok then return nil, cerr end
  local o = { once = true }
  for k, v in pairs(opts or {}) do o[k] = v end
  return M.run(store, app, { name }, o)
end

return M
