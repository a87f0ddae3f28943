--- aeon.aggregate: runs commands through aggregates, with optimistic
-- concurrency, retries and snapshots.
--
-- An aggregate is pure Lua with no I/O:
--
--     local counter = {
--       initial = 0,
--       evolve = function(value, event) ... return value end,
--       decide = function(value, command) return { events } end,   -- or nil, reason
--     }
--
-- `evolve` gets each committed event as the store gives it
-- (`{ key, revision, type, data, correlation_id, committed_at }`) and returns
-- the next state. `decide` returns the events to append, in the store's form
-- (`{ type = ..., data = ... }`), `{}` for nothing to do, or `nil, reason` to
-- refuse the command.
--
--     result, state, events = aggregate.execute(store, agg, key, command [, opts])
--
--  1. loads the key's state: the newest snapshot (when `opts.snapshot_every`
--     is set, or `opts.snapshots` is true) and only the events after it,
--     else the whole history, folded with `evolve`;
--  2. calls `decide(state, command)`;
--  3. appends what it decided with `expected_revision` set to the last
--     revision it read (`aeon.START` for a new key);
--  4. on a conflict, reports it when `opts.on_conflict == "report"`; else
--     backs off (exponential, full jitter) and goes back to 1, at most
--     `opts.retries` times (default 10), then reports it;
--  5. after an append, saves a snapshot at the appended revision once
--     `opts.snapshot_every` events have accumulated since the last one. A
--     snapshot that fails to save goes into `opts.stats`, never an error:
--     the events are committed and the next command tries again.
--
-- It returns
--
--   * `result, state, events` when it succeeds: `result` is the store's
--     append result (`{ type = "appended", count = n, revision = rev }`), or
--     `{ type = "unchanged" }` when `decide` returned no events; `state` is
--     the state after the new events (folded as `{ key, type, data,
--     correlation_id }`, without revisions, before they are appended);
--     `events` is what `decide` returned;
--   * `nil, err` otherwise, `err` from `aeon.reject` (decide's reason),
--     `aeon.conflict` or `aeon.store_failure`;
--
-- so a handler can end with `return aeon.execute(...)`.
--
-- Options: `retries`, `on_conflict` ("retry" or "report"), `snapshot_every`,
-- `stats` (a table the runner adds to: `attempts`, `conflicts`,
-- `events_read`, `snapshot` (the revision of the snapshot it loaded),
-- `snapshot_saved`, `snapshot_error`), and `sleep` (a function of seconds,
-- for specs that check the backoff without waiting).
--
--     state, revision, since = aggregate.load(store, agg, key [, opts])
--
-- folds a key's state without deciding anything (queries use it; anything
-- with `initial` and `evolve` will do). `revision` is the last revision it
-- read, `since` how many events it folded after the snapshot.
-- `opts.snapshots = true` starts from the newest snapshot; `opts.stats` as
-- above. Returns `nil, err` when the store fails.
local aeon = require "aeon"
local core = require "aeon.core"

local type, pairs, next, pcall, error, tostring, select = type, pairs, next, pcall, error, tostring, select
local random, min, math_type = math.random, math.min, math.type

local M = {}

--- Backoff between conflicting attempts, in seconds: the n-th wait is
-- random in [0, min(max, first * 2^(n-1))).
M.BACKOFF = { first = 0.002, max = 0.25 }

M.RETRIES = 10

local KNOWN_OPTIONS = { retries = true, on_conflict = true, snapshot_every = true, stats = true,
  sleep = true, snapshots = true }

-- `initial` may be a table that a careless `evolve` changes in place; each
-- load starts from its own copy so one command cannot leak into the next.
local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  return out
end

local function check_aggregate(agg, what)
  if type(agg) ~= "table" then error(what .. " must be a table", 3) end
  if agg.initial == nil then error(what .. " needs an initial state", 3) end
  if type(agg.evolve) ~= "function" then error(what .. " needs an evolve function", 3) end
end

local function check_options(opts)
  if opts == nil then return {} end
  if type(opts) ~= "table" then error("options must be a table", 3) end
  for k in pairs(opts) do
    if not KNOWN_OPTIONS[k] then error("unknown option '" .. tostring(k) .. "'", 3) end
  end
  local r = opts.retries
  if r ~= nil and (math_type(r) ~= "integer" or r < 0) then
    error("option 'retries' must be a non-negative integer", 3)
  end
  local every = opts.snapshot_every
  if every ~= nil and (math_type(every) ~= "integer" or every < 1) then
    error("option 'snapshot_every' must be a positive integer", 3)
  end
  local oc = opts.on_conflict
  if oc ~= nil and oc ~= "retry" and oc ~= "report" then
    error("option 'on_conflict' must be \"retry\" or \"report\"", 3)
  end
  return opts
end

local function evolve(agg, state, event)
  local next_state = agg.evolve(state, event)
  if next_state == nil then
    error("evolve returned nil for a '" .. tostring(event.type) .. "' event (forgot to return the state?)", 0)
  end
  return next_state
end

local function count(stats, field, n)
  if stats then stats[field] = (stats[field] or 0) + n end
end

-- Folds the key's events after `after` (all of them when nil) into state.
-- Returns state, last revision read, events read; or nil, message.
local function fold(store, agg, key, state, after, stats)
  local iter, s, c, cursor = store:read(key, after and { after = after } or nil)
  if not iter then return nil, s end
  local _ <close> = cursor
  local revision, n = after or aeon.START, 0
  while true do
    -- A read that fails half-way raises from the iterator; that is the
    -- store failing, not the app.
    local ok, event = pcall(iter, s, c)
    if not ok then return nil, tostring(event) end
    if event == nil then break end
    c = event
    state = evolve(agg, state, event)
    revision, n = event.revision, n + 1
  end
  count(stats, "events_read", n)
  return state, revision, n
end

local function load(store, agg, key, use_snapshots, stats)
  local state, after = copy(agg.initial), nil
  if use_snapshots then
    local snap, err = store:snapshot(key)
    if snap == nil and err ~= nil then return aeon.store_failure(err) end
    if snap then state, after = snap.state, snap.revision end
    if stats then stats.snapshot = after end
  end
  local revision, n
  state, revision, n = fold(store, agg, key, state, after, stats)
  if state == nil then return aeon.store_failure(revision) end
  return state, revision, n
end

function M.load(store, agg, key, opts)
  check_aggregate(agg, "aggregate")
  opts = check_options(opts)
  return load(store, agg, key, opts.snapshots or opts.snapshot_every ~= nil, opts.stats)
end

-- What decide answered, checked: the events, or nil and the error to return.
local function decision(agg, state, command)
  local events, reason = agg.decide(state, command)
  if events == nil then
    if reason == nil then error("decide returned nil without a reason", 0) end
    if aeon.is_error(reason) then return nil, reason end
    return nil, select(2, aeon.reject(reason))
  end
  if type(events) ~= "table" or (events.type ~= nil and events[1] == nil) then
    error("decide must return a list of events (wrap a single event in { })", 0)
  end
  return events
end

-- The state after the decided events, folded before appending them so that
-- an evolve that fails on them fails before anything is committed. They
-- have no revision yet.
local function apply(agg, state, key, events)
  for i = 1, #events do
    local e = events[i]
    state = evolve(agg, state, { key = key, type = e.type, data = e.data, correlation_id = e.correlation_id })
  end
  return state
end

local function save_snapshot(store, key, revision, state, stats)
  local saved, err = store:save_snapshot(key, revision, state)
  if not stats then return end
  if saved == nil then
    stats.snapshot_error = err
  elseif saved then
    stats.snapshot_saved = revision
  end
end

local function backoff(attempt, sleep)
  local b = M.BACKOFF
  sleep(random() * min(b.max, b.first * 2 ^ (attempt - 1)))
end

function M.execute(store, agg, key, command, opts)
  check_aggregate(agg, "aggregate")
  if type(agg.decide) ~= "function" then error("aggregate needs a decide function", 2) end
  if type(key) ~= "string" then error("key must be a string", 2) end
  opts = check_options(opts)
  local stats, every = opts.stats, opts.snapshot_every
  local use_snapshots = opts.snapshots or every ~= nil
  local retries = opts.on_conflict == "report" and 0 or (opts.retries or M.RETRIES)
  local sleep = opts.sleep or core.sleep
  local attempt = 0
  while true do
    attempt = attempt + 1
    count(stats, "attempts", 1)
    local state, head, since = load(store, agg, key, use_snapshots, stats)
    if state == nil then return nil, head end
    local events, err = decision(agg, state, command)
    if not events then return nil, err end
    if next(events) == nil then return { type = "unchanged" }, state, events end

    local next_state = apply(agg, state, key, events)
    local result, aerr = store:append(key, events, { expected_revision = head })
    if not result then return aeon.store_failure(aerr) end
    if result.type == "appended" then
      state = next_state
      if every and since + #events >= every then
        save_snapshot(store, key, result.revision, state, stats)
      end
      return result, state, events
    end
    if result.type ~= "conflict" then
      return aeon.store_failure("unexpected append result '" .. tostring(result.type) .. "'")
    end
    count(stats, "conflicts", 1)
    if attempt > retries then
      local _, cerr = aeon.conflict(result)
      if attempt > 1 then cerr.message = ("%s (after %d attempts)"):format(cerr.message, attempt) end
      cerr.attempts = attempt
      return nil, cerr
    end
    backoff(attempt, sleep)
  end
end

return M
