--- aeon.cli.worker: the Lua side of every state the HTTP server makes, one
-- per worker thread and one per projection thread (host/server/worker.c
-- calls `boot(config, role)`; API.md section 5).
--
-- `boot` loads the app afresh and opens that thread's own store
-- connection. Its `handle` answers one request with an HTTP status, a JSON
-- body and a Retry-After in seconds (0: none); its `project` runs one
-- projection until the server stops. aeon-host's main state starts the
-- server from aeon.cli.serve.
--
-- aeon.host exists only inside aeon-host; this module is not loadable from
-- plain lua5.4.
local aeon = require "aeon"
local appmod = require "aeon.app"
local runner = require "aeon.project"
local host = require "aeon.host"
local options = require "aeon.cli.options"
local versions = require "aeon.versions"

local type, pairs, ipairs, tostring, tonumber, pcall, error = type, pairs, ipairs, tostring,
  tonumber, pcall, error
local json_encode, json_decode = aeon.json.encode, aeon.json.decode

local M = {}

local function load_app(path)
  local chunk, err = loadfile(path)
  if not chunk then error(err, 0) end
  _G.arg = { [0] = path }
  local app = chunk()
  if not appmod.is_app(app) then error(path .. " does not return an app", 0) end
  return app
end

-- The files behind the modules that loading the app brought in, for
-- --watch: the app file and whatever it required.
local function loaded_files(path, before)
  local files, seen = { path }, { [path] = true }
  for name in pairs(package.loaded) do
    if not before[name] and type(name) == "string" then
      local file = package.searchpath(name, package.path)
      if file and not seen[file] then
        seen[file] = true
        files[#files + 1] = file
      end
    end
  end
  return files
end

-- The store failures (nil, message) met by the request being handled, so
-- that a handler that hands one on, returned or raised, is answered 503
-- rather than taken for a rejection or a script error.
local failures = {}

local function store_failure_in(message)
  if type(message) ~= "string" then return nil end
  for _, f in ipairs(failures) do
    if message:find(f, 1, true) then return f end
  end
  return nil
end

-- Counts appends and conflicts for /metrics and notes store failures. The
-- store is a userdata the app may hand to anything, so it stays itself; its
-- methods (this state's own metatable, shared by every store of the state)
-- are wrapped instead, once.
local instrumented = false
local function instrument(store)
  local mt = getmetatable(store)
  local methods = type(mt) == "table" and mt.__index
  if instrumented or type(methods) ~= "table" then return end
  instrumented = true
  local function count(r)
    if type(r) == "table" then
      if r.type == "appended" then host.appended(r.count or 0)
      elseif r.type == "conflict" then host.conflict() end
    end
  end
  -- The store's errors name their caller's line; through a wrapper that
  -- would be this file, so the wrapper hands the error on as the caller's.
  local here = "^" .. debug.getinfo(1, "S").short_src:gsub("%p", "%%%0") .. ":%d+: "
  local function wrap(name, method)
    return function(...)
      local res = table.pack(pcall(method, ...))
      if not res[1] then
        local r = res[2]
        if type(r) == "string" then error((r:gsub(here, "", 1)), 2) end
        error(r, 0)
      end
      if res[2] == nil and type(res[3]) == "string" and res[3] ~= "" then
        failures[#failures + 1] = res[3]
      end
      if name == "append" or name == "append_many" then count(res[2]) end
      return table.unpack(res, 2, res.n)
    end
  end
  local names = {}
  for name, f in pairs(methods) do
    if type(f) == "function" and name ~= "close" then names[#names + 1] = name end
  end
  for _, name in ipairs(names) do methods[name] = wrap(name, methods[name]) end
end

-- The served store belongs to the worker: a handler may not close it (and
-- one closed another way, through its metatable, is opened again before
-- the next request).
local served
local function guard_close(store)
  local methods = getmetatable(store).__index
  local close = methods.close
  methods.close = function(self, ...)
    if self == served then error("the server's store cannot be closed by a handler", 2) end
    return close(self, ...)
  end
end

local function answer(status, fields, request_id, retry_after)
  fields.request_id = request_id
  local ok, text = pcall(json_encode, fields)
  if not ok then
    text = json_encode({ error = tostring(fields.error or fields.message), request_id = request_id })
  end
  return status, text, retry_after or 0
end

local function failure(status, message, request_id, retry_after)
  return answer(status, { error = message }, request_id, retry_after)
end

-- True when a string of v, or a key, holds a NUL byte: no handler or store
-- can take one, so the request is refused as malformed.
local function holds_nul(v)
  if type(v) == "string" then return v:find("\0", 1, true) ~= nil end
  if type(v) ~= "table" then return false end
  for k, x in pairs(v) do
    if holds_nul(k) or holds_nul(x) then return true end
  end
  return false
end

-- A command's body: a JSON object of arguments (empty means none).
local function command_args(body)
  if body:match("^%s*$") then return {} end
  local v, err = json_decode(body)
  if v == nil and err then return nil, err end
  if type(v) ~= "table" or v[1] ~= nil then
    return nil, "the body must be a JSON object of arguments, like {\"name\": \"a\"}"
  end
  if holds_nul(v) then return nil, "a string in the body holds a NUL byte (\\u0000)" end
  return v
end

-- An error value as text for the client: its message, or a generic text;
-- never an address like "table: 0x...".
local function message_of(v, generic)
  if type(v) == "string" or type(v) == "number" then return tostring(v) end
  if type(v) == "table" and (type(v.message) == "string" or type(v.message) == "number") then
    return tostring(v.message)
  end
  return generic
end

-- The request handler of `app`; open() gives the store each request uses
-- (nil, message while it cannot be had: answered 503).
local function handler(app, open)
  local OUTCOMES = appmod.OUTCOMES
  return function(kind, name, body, params, request_id)
    local h = app:lookup(name)
    if not h or h.kind ~= kind then
      local msg = ("app %s has no %s '%s'"):format(app.name, kind, name)
      if h then
        msg = msg .. (h.kind == "query" and (" ('%s' is a query: GET /queries/%s)")
          or (" ('%s' is a command: POST /commands/%s)")):format(name, name)
      end
      return failure(404, msg, request_id)
    end
    local args
    if kind == "command" then
      local err
      args, err = command_args(body)
      if not args then return failure(400, err, request_id) end
    else
      args = {}
      for k, v in pairs(params) do args[k] = options.parse_value(v) end
      if holds_nul(args) then
        return failure(400, "a parameter holds a NUL byte (\\u0000)", request_id)
      end
    end

    local store, serr = open()
    if not store then
      host.log("error", "store failure", { request_id = request_id, [kind] = name, error = serr })
      return failure(503, "the store is unavailable; try again", request_id, 1)
    end
    failures = {}
    local ctx = { store = store, app = app, source = "http", request_id = request_id }
    -- In a coroutine so that a handler that will not stop can be left
    -- behind: the budget hook yields out of it (see host/server/worker.c).
    local co = coroutine.create(function() return app:call(name, ctx, args) end)
    local ok, outcome, value = coroutine.resume(co)
    if coroutine.status(co) ~= "dead" then
      coroutine.close(co)
      host.log("error", "script error", { request_id = request_id, [kind] = name,
        error = "the handler was abandoned: it yielded, or ran on past its budget" })
      return failure(500, "internal error: the handler failed (see the server log)", request_id)
    end
    if not ok then
      local text = message_of(outcome, "(error object is not a string)")
      outcome, value = "script", { message = text, traceback = debug.traceback(co, text) }
    end
    -- A store failure handed on (return ctx.store:append(...), or assert(...)).
    local failed = (outcome == "rejected" or outcome == "script") and type(value) == "table" and
      not value.transaction_left_open and store_failure_in(value.message)
    if failed then outcome, value = "store", { message = failed } end
    if outcome == "ok" then
      local ok, text = pcall(json_encode, value == nil and aeon.null or value)
      if ok then return 200, text, 0 end
      host.log("error", "script error", { request_id = request_id, [kind] = name,
        error = "the answer cannot be sent as JSON: " .. tostring(text) })
      return failure(500, "internal error: the handler failed (see the server log)", request_id)
    end

    if outcome == "script" then
      host.log("error", "script error", { request_id = request_id, [kind] = name,
        error = value.message, traceback = value.traceback })
      if value.transaction_left_open then
        return failure(500, "internal error: the handler " .. appmod.LEFT_OPEN, request_id)
      end
      return failure(500, "internal error: the handler failed (see the server log)", request_id)
    elseif outcome == "store" then
      host.log("error", "store failure", { request_id = request_id, [kind] = name,
        error = value.message })
      return failure(503, "the store is unavailable; try again", request_id, 1)
    elseif outcome == "not_yet" then
      return answer(202, { message = value.message, revision = value.revision }, request_id, 1)
    end
    local fields = {}
    for k, v in pairs(type(value) == "table" and value or {}) do
      if type(k) == "string" and k ~= "kind" and k ~= "message" and k ~= "traceback" then
        fields[k] = v
      end
    end
    fields.error = message_of(value, "the " .. kind .. " was refused")
    local o = OUTCOMES[outcome]
    return answer(o and o.http or 500, fields, request_id)
  end
end

-- Seconds since the Unix epoch of an ISO-8601 UTC time with milliseconds
-- ("2026-11-26T20:29:24.016Z"), by the days-from-civil algorithm.
local function epoch(iso)
  local y, mo, d, h, mi, sec = iso:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):([%d.]+)Z$")
  if not y then return nil end
  y, mo = tonumber(y), tonumber(mo)
  if mo <= 2 then y = y - 1 end
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * (mo + (mo > 2 and -3 or 9)) + 2) // 5 + tonumber(d) - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec)
end
M.epoch = epoch

-- How far behind a projection is, for /metrics: the events committed after
-- the revision its view has seen (counted up to LAG_LIMIT), and the age of
-- the oldest of them. Measured at most once a second, on the build the
-- projection is making (aeon.versions): the live one, or a new version
-- being built beside it.
local LAG_LIMIT = 10000
local function lag_meter(store, app, name)
  local p = app.projections[name]
  local last = nil
  return function()
    local t = host.now()
    if last and t - last < 1 then return end
    last = t
    local record = versions.read(store, p.view, { name })
    if not record then return end
    local view = store:view(record.building and record.building.view or record.live.view)
    local seen = view and view:revision()
    if not seen then return end
    local n, oldest = 0, nil
    for event in store:read_all { after = seen, limit = LAG_LIMIT } do
      n = n + 1
      oldest = oldest or event.committed_at
    end
    local age = oldest and epoch(oldest)
    host.projection_lag(name, n, age and math.max(0, t - age) or 0)
  end
end

-- Runs one projection in this thread until the server stops: aeon.project
-- commits what it has and returns once stop() is true. Its failure and
-- progress lines go to the structured log, a build's progress to /metrics;
-- between batches it measures its lag.
local function project(store, app, name)
  local measure = lag_meter(store, app, name)
  local report, err = runner.run(store, app, { name }, {
    once = false,
    stop = function()
      if host.stopping() then return true end
      local ok, merr = pcall(measure)
      if not ok then host.log("warn", "cannot measure projection lag", { projection = name,
        error = tostring(merr) }) end
      return false
    end,
    log = function(line, level) host.log(level or "error", line, { projection = name }) end,
    on_progress = function(pname, info)
      host.projection_build(pname, info.done and 0 or info.version, info.events, info.lag,
        info.eta or -1)
    end,
  })
  if not report then error(err, 0) end
  return report
end

--- Loads the app into this (fresh) state and, for "request" and
-- "projection", opens the store. Returns what the server needs: the app's
-- name, commands, queries, projections and files, and `handle` or
-- `project`. Raises when the app or the store does not load.
function M.boot(config, role)
  -- One app must not take the whole server down, nor slip its budget: no
  -- os.exit, and no way to remove or replace the host's hook (which every
  -- coroutine inherits), from the first line of the app on.
  os.exit = function() error("os.exit is not available to an app being served", 2) end
  debug.sethook = function() error("debug.sethook is not available to an app being served", 2) end
  local before = {}
  for name in pairs(package.loaded) do before[name] = true end
  local app = load_app(config.app)
  local info = {
    name = app.name,
    commands = app:names("command"),
    queries = app:names("query"),
    projections = app:projection_names(),
    files = loaded_files(config.app, before),
  }
  if role == "probe" then return info end

  local store, err = aeon.open(config.store)
  if not store then error("cannot open the store: " .. tostring(err), 0) end
  instrument(store)

  if role == "request" then
    served = store
    guard_close(store)
    -- The store as the next request finds it: opened again if a handler
    -- closed it; while it cannot be, the worker says so in /health.
    local function open()
      if tostring(store) ~= "aeon.store (closed)" then return store end
      local fresh, oerr = aeon.open(config.store)
      if not fresh then
        host.worker_broken("cannot reopen the store: " .. tostring(oerr))
        return nil, oerr
      end
      host.log("warn", "a handler closed the store; opened it again")
      store, served = fresh, fresh
      host.worker_broken(nil)
      return store
    end
    info.handle = handler(app, open)
  elseif role == "projection" then
    info.project = function(name) return project(store, app, name) end
  end
  return info
end

--- For aeon.cli.lambda, which answers the same requests from Lambda's
-- events: loading the app, the request handler and its error answers.
M.load_app, M.handler, M.failure = load_app, handler, failure

return M
