--- aeon: the event store and app host for Lua.
--
-- `aeon.open(uri)` opens a store (API.md section 2); `aeon.app(name)` starts
-- an app definition; `aeon.execute` runs an aggregate's command and
-- `aeon.load` folds a key's state; the `aeon.reject`/`aeon.invalid`/
-- `aeon.not_yet` helpers are how a handler says why it did not do what it
-- was asked, so the host can answer with the right exit status or HTTP
-- status.
local core = require "aeon.core"
local errors = require "aeon.errors"
local app = require "aeon.app"
local aggregate = require "aeon.aggregate"

local M = {
  START = core.START,
  END = core.END,
  null = core.null,
  filter = core.filter,
  json = { encode = core.json_encode, decode = core.json_decode },
  revision_valid = core.revision_valid,
  VERSION = "0.1.0",
}

--- Opens a store: `sqlite:PATH`, `PATH.db`, `memory:`, `dynamodb:NAME` or an
-- Aeon config JSON object. Returns the store, or nil and a message.
function M.open(uri, opts)
  return core.open(uri, opts)
end

-- The errors a handler returns as its second value (see aeon.errors):
-- `return aeon.reject("...")`.
M.reject, M.invalid, M.not_yet = errors.reject, errors.invalid, errors.not_yet
M.conflict, M.store_failure, M.is_error = errors.conflict, errors.store_failure, errors.is_error

--- Starts an app definition (see aeon.app).
M.app = app.new

--- Runs a command through an aggregate (see aeon.aggregate).
M.execute = aggregate.execute

--- Folds a key's events into an aggregate's (or a projection's) state (see
-- aeon.aggregate).
M.load = aggregate.load

return M
