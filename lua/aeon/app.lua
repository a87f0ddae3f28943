--- aeon.app: what an app is, and how the host calls into it.
--
-- An app file returns the app it builds while it loads:
--
--     local app = aeon.app "counter"
--     app:command("increment", { params = { "name" } }, function(ctx, args) ... end)
--     app:query("counter", { params = { "name" } }, function(ctx, args) ... end)
--     return app
--
-- `params` names the positional arguments the command line may give. A
-- handler gets `ctx` (`ctx.store`, the open store) and `args` (a table), and
-- returns its answer (any JSON value), or nil and an error from aeon.reject,
-- aeon.invalid, aeon.not_yet, aeon.conflict or aeon.store_failure.
local aeon = require "aeon"

local type, pairs, ipairs, setmetatable, error = type, pairs, ipairs, setmetatable, error
local tostring, xpcall, traceback = tostring, xpcall, debug.traceback

local M = {}

local App = {}
App.__index = App

function M.new(name)
  if type(name) ~= "string" or name == "" then error("aeon.app needs a name", 2) end
  return setmetatable({ name = name, handlers = {}, projections = {} }, App)
end

--- True when v is an app built by aeon.app.
function M.is_app(v) return getmetatable(v) == App end

local function register(app, kind, name, spec, handler)
  if type(spec) == "function" then spec, handler = {}, spec end
  if type(name) ~= "string" or name == "" then error(kind .. " needs a name", 3) end
  if type(handler) ~= "function" then error(kind .. " '" .. name .. "' needs a handler function", 3) end
  if app.handlers[name] then error("'" .. name .. "' is already defined in app " .. app.name, 3) end
  spec = spec or {}
  for _, p in ipairs(spec.params or {}) do
    if type(p) ~= "string" then error(kind .. " '" .. name .. "': params must be names", 3) end
  end
  app.handlers[name] = { kind = kind, name = name, params = spec.params, handler = handler,
    description = spec.description }
end

function App:command(name, spec, handler) register(self, "command", name, spec, handler) end
function App:query(name, spec, handler) register(self, "query", name, spec, handler) end

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

--- Calls a command or query. Returns `outcome, value` where outcome is a key
-- of M.OUTCOMES; value is the answer for "ok", else an error table with a
-- `message` (and, for "script", a `traceback`). Never raises.
function App:call(name, ctx, args)
  local h = self.handlers[name]
  if not h then
    return "unknown", { message = ("unknown command or query '%s' (app %s has: %s)"):format(
      tostring(name), self.name, table.concat(self:names(), ", ")) }
  end
  local tb
  local ok, value, err = xpcall(h.handler, function(e)
    tb = traceback(tostring(e), 2)
    return e
  end, ctx, args)
  if not ok then
    if aeon.is_error(value) then return value.kind, value end
    return "script", { message = tostring(value), traceback = tb }
  end
  if value == nil and err ~= nil then
    if aeon.is_error(err) then return err.kind, err end
    return "rejected", { message = tostring(err) }
  end
  return "ok", value
end

return M
