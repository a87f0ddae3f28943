--- aeon.errors: how a handler says why it did not do what it was asked
-- (re-exported by aeon as aeon.reject, aeon.invalid, aeon.not_yet,
-- aeon.conflict, aeon.store_failure and aeon.is_error).
--
-- Each returns `nil, err`, so a handler can `return aeon.reject("...")`;
-- `err.kind` names the outcome (aeon.app's OUTCOMES: the exit status and
-- the HTTP status) and `err.message` says why. It depends on aeon.core
-- only, so aeon.app and aeon.aggregate use it without requiring aeon back.
local core = require "aeon.core"

local setmetatable, getmetatable, type, tostring = setmetatable, getmetatable, type, tostring

local M = {}

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
  if seen == core.START then
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

return M
