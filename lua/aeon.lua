--- aeon: the event store and app host for Lua.
--
-- `aeon.open(uri)` opens a store (API.md section 2); `aeon.app(name)` starts
-- an app definition; `aeon.execute` runs an aggregate's command and
-- `aeon.load` folds a key's state; the `aeon.reject`/`aeon.invalid`/
-- `aeon.not_yet` helpers are how a handler says why it did not do what it
-- was asked, so the host can answer with the right exit status or HTTP
-- status.
local core = require "aeon.core"

local setmetatable, type, tostring = setmetatable, type, tostring

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

-- Errors a handler returns as its second value: `return aeon.reject("...")`.
local Error = {}
Error.__index = Error
Error.__tostring = function(e) return e.message end

local function failure(kind, message, fields)
  local e = fields or {}
  e.kind, e.message = kind, message
  return nil, setmetatable(e, Error)
end

--- The command is refused by the domain's rules (exit 1, HTTP 422).
function M.reject(message, fields) return failure("rejected", tostring(message), fields) end

--- The request itself is wrong: a bad or missing argument (exit 2, HTTP 400).
function M.invalid(message, fields) return failure("invalid", tostring(message), fields) end

--- A read model has not yet seen `revision` (exit 1, HTTP 202 + Retry-After).
-- `seen`, when given, is the revision it has seen, for the message.
function M.not_yet(revision, seen)
  local message = "not yet: the read model has not seen revision " .. tostring(revision)
  if seen == M.START then
    message = message .. " (it has seen no events yet)"
  elseif seen then
    message = message .. " (it has seen up to " .. tostring(seen) .. ")"
  end
  return failure("not_yet", message, { revision = revision, seen = seen })
end

--- An optimistic-concurrency conflict from an append result (exit 1, HTTP 409).
function M.conflict(result)
  return failure("conflict",
    ("conflict: expected revision %s but the head is %s"):format(result.expected_revision,
      result.actual_revision),
    { expected_revision = result.expected_revision, actual_revision = result.actual_revision })
end

--- The store failed (exit 3, HTTP 503).
function M.store_failure(message) return failure("store", tostring(message)) end

--- True when v is an error made by one of the functions above.
function M.is_error(v) return type(v) == "table" and getmetatable(v) == Error end

--- Starts an app definition (see aeon.app).
function M.app(name) return require("aeon.app").new(name) end

--- Runs a command through an aggregate (see aeon.aggregate).
function M.execute(...) return require("aeon.aggregate").execute(...) end

--- Folds a key's events into an aggregate's (or a projection's) state (see
-- aeon.aggregate).
function M.load(...) return require("aeon.aggregate").load(...) end

return M
