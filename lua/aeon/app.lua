--- aeon.app: what an app is, and how the host calls into it.
--
-- An app file returns the app it builds while it loads:
--
--     local app = aeon.app "counter"
--     app:command("increment", { params = { "name" } }, function(ctx, args) ... end)
--     app:query("counter", { params = { "name" }, views = { "counters" } },
--               function(ctx, args) ... end)
--     app:projection("counters", { view = "counters", key = "counter/*" },
--                    function(view, event, ctx) ... end)
--     return app
--
-- `params` names the positional arguments the command line may give. A
-- handler gets `ctx` (`ctx.store`, the open store) and `args` (a table), and
-- returns its answer (any JSON value but null), or an error from
-- aeon.reject, aeon.invalid, aeon.not_yet, aeon.conflict or
-- aeon.store_failure (`return aeon.reject(msg)`; `return nil,
-- aeon.reject(msg)` means the same). Answering nil alone is a script error.
--
-- A query's `views` names the read models it answers from. Asked from the
-- command line without a `revision` argument, such a query first brings
-- the projections that keep those views up to date with every event
-- committed before it (aeon.project.catch_up); with `revision=REV` it
-- answers from the views as they are, and says aeon.not_yet(REV) while
-- they have not seen REV.
--
-- A projection keeps a view (a read model, API.md section 4) from the
-- events it follows: the host hands each matching event, in commit order,
-- to handler(view, event, ctx) (aeon.project runs them).
--
-- An upcaster turns an event of an older shape into the current one:
--
--     app:upcast("incremented", function(event) ... return event end)
--
-- Every read the host makes for the app hands out upcast events (the
-- aggregate runner through ctx.store, projections, ctx.store:read and
-- read_all, `events read` with the app given); the stored events are never
-- rewritten. See App:upcast for the order they run in.
local errors = require "aeon.errors" -- not aeon itself, which requires this module
local versions = require "aeon.versions"

local type, pairs, ipairs, next, setmetatable, error = type, pairs, ipairs, next, setmetatable, error
local tostring, xpcall, pcall, traceback, pack = tostring, xpcall, pcall, debug.traceback,
  table.pack

local M = {}

local App = {}
App.__index = App

function M.new(name)
  if type(name) ~= "string" or name == "" then error("aeon.app needs a name", 2) end
  return setmetatable({ name = name, handlers = {}, handler_order = {}, projections = {},
    projection_order = {}, upcasters = {}, wrapped = setmetatable({}, { __mode = "k" }) }, App)
end

--- True when v is an app built by aeon.app.
function M.is_app(v) return getmetatable(v) == App end

local function names_list(v, what, level)
  if type(v) == "string" then v = { v } end
  if type(v) ~= "table" then error(what .. " must be a name or a list of names", level + 1) end
  for _, n in ipairs(v) do
    if type(n) ~= "string" or n == "" then
      error(what .. " must be non-empty strings", level + 1)
    end
  end
  return v
end

local function register(app, kind, name, spec, handler)
  if type(spec) == "function" then spec, handler = {}, spec end
  if type(name) ~= "string" or name == "" then error(kind .. " needs a name", 3) end
  if type(handler) ~= "function" then error(kind .. " '" .. name .. "' needs a handler function", 3) end
  if app.handlers[name] then error("'" .. name .. "' is already defined in app " .. app.name, 3) end
  spec = spec or {}
  for _, p in ipairs(spec.params or {}) do
    if type(p) ~= "string" then error(kind .. " '" .. name .. "': params must be names", 3) end
  end
  local views = spec.views and names_list(spec.views, kind .. " '" .. name .. "': views", 3)
  app.handlers[name] = { kind = kind, name = name, params = spec.params, handler = handler,
    description = spec.description, views = views }
  app.handler_order[#app.handler_order + 1] = name
end

function App:command(name, spec, handler) register(self, "command", name, spec, handler) end
function App:query(name, spec, handler) register(self, "query", name, spec, handler) end

local PROJECTION_FIELDS = {
  view = true, key = true, type = true, filter = true, batch = true, description = true,
  lease = true,
  version = true,
}

--- Declares a projection. `spec`:
--   view    the view it keeps (required);
--   key     a key pattern or a list of them ('*' is a wildcard), default all;
--   type    an event type pattern or a list of them, default all;
--   filter  an aeon.filter table events must also match;
--   batch   events handled per transaction, default 100;
--   lease   seconds of the subscription's lease (API.md section 4), default
--           10: a projector that stops renewing (killed) is taken over by
--           another after this long; a batch must be handled within two
--           thirds of it.
--   version the version of the view's logic, a positive integer (default
--           1). A store whose view was built by another version gets the
--           new one built beside it, from the first event, and switched to
--           once caught up (aeon.project, aeon.versions). A view with a
--           version is kept by that one projection.
-- handler(view, event, ctx) gets the view handle, the committed event and
-- `ctx` (`ctx.store`, `ctx.app`, `ctx.projection`). It should be
-- idempotent per document (skip an event whose revision is not above the
-- document's): on the embedded store a batch commits with its checkpoint,
-- but on DynamoDB a batch may be replayed after a crash.
-- A projection is known by its name and view: apps that declare the same
-- pair share its checkpoint, so it runs once for all of them.
function App:projection(name, spec, handler)
  if type(name) ~= "string" or name == "" then error("projection needs a name", 2) end
  if type(spec) ~= "table" then error("projection '" .. name .. "' needs a spec table", 2) end
  if type(handler) ~= "function" then
    error("projection '" .. name .. "' needs a handler function", 2)
  end
  if self.projections[name] then
    error("projection '" .. name .. "' is already defined in app " .. self.name, 2)
  end
  local what = "projection '" .. name .. "': "
  for k in pairs(spec) do
    if not PROJECTION_FIELDS[k] then error(what .. "unknown field '" .. tostring(k) .. "'", 2) end
  end
  if type(spec.view) ~= "string" or spec.view == "" then error(what .. "needs a view name", 2) end
  local batch = spec.batch or 100
  if math.type(batch) ~= "integer" or batch < 1 then
    error(what .. "batch must be a positive integer", 2)
  end
  if spec.lease ~= nil and (type(spec.lease) ~= "number" or spec.lease < 0.1 or spec.lease > 3600) then
    error(what .. "lease must be a number of seconds between 0.1 and 3600", 2)
  end
  local version = spec.version or 1
  if math.type(version) ~= "integer" or version < 1 then
    error(what .. "version must be a positive integer", 2)
  end
  -- A build switches once its projection has caught up: one projection
  -- per versioned view keeps that one condition.
  for _, other in pairs(self.projections) do
    if other.view == spec.view and (spec.version or other.declared_version) then
      error(("%sview '%s' is also kept by projection '%s'; a view with a version is kept " ..
        "by one projection"):format(what, spec.view, other.name), 2)
    end
  end
  self.projections[name] = {
    name = name,
    lease = spec.lease,
    view = spec.view,
    version = version,
    declared_version = spec.version ~= nil,
    key = spec.key and names_list(spec.key, what .. "key", 2),
    type = spec.type and names_list(spec.type, what .. "type", 2),
    filter = spec.filter,
    batch = batch,
    handler = handler,
    description = spec.description,
    subscription = "projection/" .. spec.view .. "/" .. name,
  }
  self.projection_order[#self.projection_order + 1] = name
end

--- Declares an upcaster for events of type `event_type`: fn(event) gets
-- the event as stored (`{ key, revision, type, data, correlation_id,
-- committed_at }`, a copy of its own) and returns it in a newer shape; it
-- may change `type` and `data`, not `key` or `revision`. It runs on every
-- event of its type, so it must hand an event already in the new shape
-- back unchanged.
--
-- Several upcasters of one type run in the order declared, each on what
-- the one before returned. One that changes the type ends its type's
-- chain: the event goes on through the new type's upcasters, from its
-- first. A chain that comes back to a type it already passed is a loop,
-- and upcasting such an event raises (naming the types), as does an
-- upcaster that returns anything but an event.
function App:upcast(event_type, fn)
  if type(event_type) ~= "string" or event_type == "" then
    error("upcast needs an event type", 2)
  end
  if type(fn) ~= "function" then
    error("upcast of '" .. event_type .. "' needs a function", 2)
  end
  local list = self.upcasters[event_type]
  if not list then
    list = {}
    self.upcasters[event_type] = list
  end
  list[#list + 1] = fn
end

--- True when the app declares upcasters.
function App:has_upcasters() return next(self.upcasters) ~= nil end

--- The event in its current shape: `event` run through the upcasters
-- (App:upcast). Returns `event` itself when its type has none.
function App:upcast_event(event)
  local list = self.upcasters[event.type]
  if not list then return event end
  local key, revision = event.key, event.revision
  local seen, path = {}, {}
  while list do
    local t = event.type
    if seen[t] then
      path[#path + 1] = t
      error(("upcasters loop: %s"):format(table.concat(path, " -> ")), 0)
    end
    seen[t], path[#path + 1] = true, t
    for i = 1, #list do
      local out = list[i](event)
      if type(out) ~= "table" or type(out.type) ~= "string" or out.type == "" then
        error(("upcaster %d of '%s' must return an event with a type (got %s)"):format(
          i, t, type(out) == "table" and "no type" or type(out)), 0)
      end
      if out.key ~= key or out.revision ~= revision then
        error(("upcaster %d of '%s' changed the event's key or revision"):format(i, t), 0)
      end
      event = out
      if event.type ~= t then break end
    end
    list = event.type ~= t and self.upcasters[event.type] or nil
  end
  return event
end

-- A read's iterator, yielding upcast events. The store's own iterator
-- goes on from the last raw event, whatever the loop passes back; the
-- cursor (the to-be-closed fourth value) is the store's, so a loop that
-- breaks closes it as before.
local function upcast_read(app, iter, s, c, cursor)
  if not iter then return iter, s, c, cursor end
  local last = c
  return function()
    local e = iter(s, last)
    if e == nil then return nil end
    last = e
    return app:upcast_event(e)
  end, nil, nil, cursor
end

--- True when the app's handlers see the store through App:store's stand-in:
-- it has upcasters, or projections (whose views queries read at their
-- live version).
function App:wraps_store() return self:has_upcasters() or next(self.projections) ~= nil end

--- The store as the app's handlers see it: `store` itself when the app has
-- no upcasters and no projections, else a stand-in whose read and
-- read_all hand out upcast events, whose view(NAME) for a view the app's
-- projections keep opens its live version (aeon.versions: looked up on
-- every call, so a switch is seen at once), and whose other methods are
-- the store's. One stand-in per store handle, so what is kept per handle
-- (aeon.execute's cache) is kept.
function App:store(store)
  if store == nil or not self:wraps_store() then return store end
  local w = self.wrapped[store]
  if w then return w end
  local app, methods = self, {}
  if self:has_upcasters() then
    methods.read = function(_, ...) return upcast_read(app, store:read(...)) end
    methods.read_all = function(_, ...) return upcast_read(app, store:read_all(...)) end
  end
  local projected = {}
  for _, p in pairs(self.projections) do projected[p.view] = true end
  methods.view = function(_, name, ...)
    if not projected[name] then return store:view(name, ...) end
    local live, err = versions.live(store, name)
    if not live then return nil, err end
    return store:view(live, ...)
  end
  w = setmetatable({}, {
    __index = function(_, k)
      local m = methods[k]
      if m == nil then
        local v = store[k]
        if type(v) ~= "function" then return v end
        m = function(_, ...) return v(store, ...) end
        methods[k] = m
      end
      return m
    end,
    __name = "aeon.store (as the app reads it)",
  })
  self.wrapped[store] = w
  return w
end

--- The app's projections, in the order they were declared.
function App:projection_names()
  return { table.unpack(self.projection_order) }
end

--- Looks up a command or query by name.
function App:lookup(name) return self.handlers[name] end

--- Names of the app's commands and queries, sorted, for help texts.
function App:names(kind)
  local out = {}
  for name, h in pairs(self.handlers) do
    if not kind or h.kind == kind then out[#out + 1] = name end
  end
  table.sort(out)
  return out
end

--- Names of the app's commands and queries (or those of one kind), in the
-- order the app declared them.
function App:declared(kind)
  local out = {}
  for _, name in ipairs(self.handler_order) do
    if not kind or self.handlers[name].kind == kind then out[#out + 1] = name end
  end
  return out
end

-- What each kind of outcome means to the command line and to HTTP.
M.OUTCOMES = {
  ok       = { exit = 0, http = 200 },
  rejected = { exit = 1, http = 422 },
  conflict = { exit = 1, http = 409 },
  not_yet  = { exit = 1, http = 202 },
  invalid  = { exit = 2, http = 400 },
  unknown  = { exit = 2, http = 404 },
  store    = { exit = 3, http = 503 },
  script   = { exit = 4, http = 500 },
}

-- The first argument a handler with declared params does not take, as a
-- message saying which it takes; nil when every one is declared. The
-- command line and HTTP both come through here (App:call).
local function unknown_argument(h, args)
  if not h.params then return nil end
  local known = {}
  for _, p in ipairs(h.params) do known[p] = true end
  local bad = {}
  for k in pairs(args) do
    if not known[k] then bad[#bad + 1] = tostring(k) end
  end
  if #bad == 0 then return nil end
  table.sort(bad)
  return ("%s '%s' takes %s, not '%s'"):format(h.kind, h.name,
    #h.params > 0 and table.concat(h.params, ", ") or "no arguments", table.concat(bad, "', '"))
end

-- Runs a handler: outcome, value as App:call returns them.
local function run(h, ctx, args)
  local tb
  local r = pack(xpcall(h.handler, function(e)
    tb = traceback(tostring(e), 2)
    return e
  end, ctx, args))
  local ok, value = r[1], r[2]
  if not ok then
    if errors.is_error(value) then return value.kind, value end
    local m = type(value) == "table" and value.message or value
    m = (type(m) == "string" or type(m) == "number") and tostring(m) or tostring(value)
    return "script", { message = m, traceback = tb }
  end
  if errors.is_error(value) then return value.kind, value end
  if value == nil then
    -- `return aeon.reject(msg)` answers nil, err; `return nil,
    -- aeon.reject(msg)` answers nil, nil, err: both are the rejection.
    local err
    for i = 3, r.n do
      if r[i] ~= nil then err = r[i]; break end
    end
    if err == nil then
      return "script", { message = ("%s '%s' answered nil: return its answer, or an error " ..
        "such as `return aeon.reject(msg)`"):format(h.kind, h.name) }
    end
    if errors.is_error(err) then return err.kind, err end
    -- A plain table keeps its fields; its message, or a generic text, is
    -- the message (never "table: 0x...").
    local e = {}
    if type(err) == "table" then
      for k, v in pairs(err) do e[k] = v end
    end
    local m = type(err) == "table" and err.message or err
    e.message = (type(m) == "string" or type(m) == "number") and tostring(m)
      or ("the %s was refused"):format(h.kind)
    return "rejected", e
  end
  return "ok", value
end

-- Whether `store` (ctx.store: a store handle, or whatever a test put
-- there) has a transaction open.
local function in_transaction(store)
  return type(store) == "userdata" and type(store.in_transaction) == "function"
    and store:in_transaction()
end

-- Whether `store` found its data damaged (store:damaged()).
local function damaged(store)
  return type(store) == "userdata" and type(store.damaged) == "function" and store:damaged()
end

--- What a run on a damaged store is told, at least.
M.DAMAGED = "the store file is damaged: run `aeon-host store check`"

--- What a handler run that ended with a transaction open is told.
M.LEFT_OPEN = "left a transaction open: it was rolled back, and nothing written in it is stored"

--- Calls a command or query. Returns `outcome, value` where outcome is a key
-- of M.OUTCOMES; value is the answer for "ok", else an error table with a
-- `message` (and, for "script", a `traceback`). Never raises. An argument
-- the handler does not declare in its params is "invalid" (exit 2, HTTP
-- 400), and the handler is not called.
--
-- The transaction of ctx.store belongs to the run: one the handler began
-- and did not end (it returned, raised or was stopped) is rolled back here,
-- and the outcome is "script" with `transaction_left_open` set, whatever
-- the handler answered, so nothing it wrote in it is reported as done.
-- A run during which the store found its data damaged is "store" (exit 3,
-- HTTP 503).
function App:call(name, ctx, args)
  local h = self.handlers[name]
  if not h then
    return "unknown", { message = ("unknown command or query '%s' (app %s has: %s)"):format(
      tostring(name), self.name, table.concat(self:names(), ", ")) }
  end
  local unknown = unknown_argument(h, args)
  if unknown then return "invalid", { kind = "invalid", message = unknown } end
  local store = type(ctx) == "table" and ctx.store or nil
  local outer = in_transaction(store)
  if store ~= nil and self:wraps_store() then
    local own = {}
    for k, v in pairs(ctx) do own[k] = v end
    own.store, ctx = self:store(store), own
  end
  local outcome, value = run(h, ctx, args)
  local left_open = not outer and in_transaction(store)
  -- pcall: a store:transaction its function never returned from (it
  -- yielded away) refuses; the host's own end of the run rolls it back.
  if left_open then pcall(store.rollback, store) end
  -- A damaged store fails the run as the store's failure (exit 3, HTTP
  -- 503), whatever the handler made of the errors it got.
  if damaged(store) then
    local text = outcome ~= "ok" and type(value) == "table" and tostring(value.message) or ""
    return "store", { kind = "store", message = text:find(M.DAMAGED, 1, true) and text
      or M.DAMAGED }
  end
  if left_open then
    local message, tb = ("%s '%s' %s"):format(h.kind, h.name, M.LEFT_OPEN), nil
    if outcome ~= "ok" then
      message, tb = message .. "; it ended with: " .. tostring(value.message), value.traceback
    end
    return "script", { message = message, traceback = tb, transaction_left_open = true }
  end
  return outcome, value
end

return M
