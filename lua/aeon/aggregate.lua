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
-- `cache` (below), `stats` (a table the runner adds to: `attempts`,
-- `conflicts`, `events_read`, `snapshot` (the revision of the snapshot it
-- loaded), `cached` (that of the kept state it started from), `stale`,
-- `snapshot_saved`, `snapshot_error`), and `sleep` (a function of seconds,
-- for specs that check the backoff without waiting).
--
-- `opts.cache = true` keeps, in this process, per store handle and key, the
-- state a command ended with and its revision: an in-memory snapshot. The
-- next command on the key decides on it without reading anything, and
-- appends with the kept revision as the expected one: one request where a
-- command otherwise reads the snapshot and the events after it, then
-- appends. When another writer got in first the append conflicts, and the
-- command loads (the kept state and the events after it) and decides again
-- at once: that is not counted as a conflict or a retry (`stats.stale`
-- counts it). A decision to append nothing, or a refusal, is checked
-- against the key's head before it is answered, so the answers are the
-- same as without the cache. The state is kept as JSON text (as a stored
-- snapshot is), so nothing done to a state handed out changes the kept
-- copy; a state JSON cannot hold is not kept. At most `M.CACHE_KEYS` keys
-- per handle are kept; past that the cache starts afresh.
--
--     state, revision, since = aggregate.load(store, agg, key [, opts])
--
-- folds a key's state without deciding anything (queries use it; anything
-- with `initial` and `evolve` will do). `revision` is the last revision it
-- read, `since` how many events it folded after the snapshot.
-- `opts.snapshots = true` starts from the newest snapshot, `opts.cache` from
-- the kept state (and keeps the one it ends with); `opts.stats` as above.
-- Returns `nil, err` when the store fails.
local errors = require "aeon.errors" -- not aeon itself, which requires this module
local core = require "aeon.core"

local type, pairs, next, pcall, error, tostring, select = type, pairs, next, pcall, error, tostring, select
local random, min, math_type = math.random, math.min, math.type

local M = {}

--- Backoff between conflicting attempts, in seconds: the n-th wait is
-- random in [0, min(max, first * 2^(n-1))).
M.BACKOFF = { first = 0.002, max = 0.25 }

M.RETRIES = 10

local KNOWN_OPTIONS = { retries = true, on_conflict = true, snapshot_every = true, stats = true,
  sleep = true, snapshots = true, cache = true }

M.CACHE_KEYS = 10000

local json_encode, json_decode = core.json_encode, core.json_decode

-- The kept states: store handle -> { n = keys kept, keys = { [key] = {
-- revision, state (JSON text, or the value itself when not a table),
-- encoded, since (events past the newest stored snapshot) } } }. Weak, so a
-- store handle that goes away takes its states with it.
local caches = setmetatable({}, { __mode = "k" })

local function kept(store, key)
  local c = caches[store]
  return c and c.keys[key]
end

local function keep(store, key, state, revision, since)
  local c = caches[store]
  if not c then
    c = { n = 0, keys = {} }
    caches[store] = c
  end
  local encoded, text = type(state) == "table", state
  if encoded then
    local ok
    ok, text = pcall(json_encode, state)
    if not ok then
      if c.keys[key] then c.keys[key], c.n = nil, c.n - 1 end
      return
    end
  end
  if not c.keys[key] then
    if c.n >= M.CACHE_KEYS then c.keys, c.n = {}, 0 end
    c.n = c.n + 1
  end
  c.keys[key] = { revision = revision, state = text, encoded = encoded, since = since }
end

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
  local revision, n = after or core.START, 0
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

-- Returns the state, the last revision read and how many events past the
-- newest stored snapshot it is; or nil, err.
local function load(store, agg, key, use_snapshots, stats, cache)
  local state, after, since = nil, nil, 0
  local k = cache and kept(store, key)
  if k then
    state, after, since = k.state, k.revision, k.since
    if k.encoded then state = json_decode(state) end
    if stats then stats.cached = after end
  else
    state = copy(agg.initial)
    if use_snapshots then
      local snap, err = store:snapshot(key)
      if snap == nil and err ~= nil then return errors.store_failure(err) end
      if snap then state, after = snap.state, snap.revision end
      if stats then stats.snapshot = after end
    end
  end
  local revision, n
  state, revision, n = fold(store, agg, key, state, after, stats)
  if state == nil then return errors.store_failure(revision) end
  since = since + n
  -- Kept before anyone sees it (decide may change it in place), when it
  -- is news: the next command need not fold again, even if this one is
  -- refused.
  if cache and (not k or n > 0) then keep(store, key, state, revision, since) end
  return state, revision, since
end

function M.load(store, agg, key, opts)
  check_aggregate(agg, "aggregate")
  opts = check_options(opts)
  return load(store, agg, key, opts.snapshots or opts.snapshot_every ~= nil, opts.stats, opts.cache)
end

-- What decide answered, checked: the events, or nil and the error to return.
local function decision(agg, state, command)
  local events, reason = agg.decide(state, command)
  if events == nil then
    if reason == nil then error("decide returned nil without a reason", 0) end
    if errors.is_error(reason) then return nil, reason end
    return nil, select(2, errors.reject(reason))
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

-- True when the snapshot was saved.
local function save_snapshot(store, key, revision, state, stats)
  local saved, err = store:save_snapshot(key, revision, state)
  if stats then
    if saved == nil then
      stats.snapshot_error = err
    elseif saved then
      stats.snapshot_saved = revision
    end
  end
  return saved == true
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
  local stats, every, cache = opts.stats, opts.snapshot_every, opts.cache
  local use_snapshots = opts.snapshots or every ~= nil
  local retries = opts.on_conflict == "report" and 0 or (opts.retries or M.RETRIES)
  local sleep = opts.sleep or core.sleep
  local attempt, fresh = 0, false
  while true do
    attempt = attempt + 1
    count(stats, "attempts", 1)
    local state, head, since
    -- A first attempt with a kept state decides on it without reading:
    -- the append's expected revision, or the head when nothing is to be
    -- appended, tells whether another writer got in first.
    local k = cache and not fresh and kept(store, key)
    fresh = true
    if k then
      state, head, since = k.state, k.revision, k.since
      if k.encoded then state = json_decode(state) end
      if stats then stats.cached = head end
    else
      state, head, since = load(store, agg, key, use_snapshots, stats, cache)
      if state == nil then return nil, head end
    end
    local events, err = decision(agg, state, command)
    if k and (not events or next(events) == nil) then
      local now, herr = store:head(key)
      if now == nil then return errors.store_failure(herr) end
      if now ~= head then goto stale end
    end
    if not events then return nil, err end
    if next(events) == nil then return { type = "unchanged" }, state, events end

    do
      local next_state = apply(agg, state, key, events)
      local result, aerr = store:append(key, events, { expected_revision = head })
      if not result then return errors.store_failure(aerr) end
      if result.type == "appended" then
        state, since = next_state, since + #events
        if every and since >= every and save_snapshot(store, key, result.revision, state, stats) then
          since = 0
        end
        if cache then keep(store, key, state, result.revision, since) end
        return result, state, events
      end
      if result.type ~= "conflict" then
        return errors.store_failure("unexpected append result '" .. tostring(result.type) .. "'")
      end
      if not k then
        count(stats, "conflicts", 1)
        if attempt > retries then
          local _, cerr = errors.conflict(result)
          if attempt > 1 then cerr.message = ("%s (after %d attempts)"):format(cerr.message, attempt) end
          cerr.attempts = attempt
          return nil, cerr
        end
        backoff(attempt, sleep)
        goto again
      end
    end
    ::stale::
    -- The kept state was behind the store: load at once, as if this attempt
    -- had not been made; it is no conflict of the caller's.
    count(stats, "stale", 1)
    attempt = attempt - 1
    ::again::
  end
end

return M
