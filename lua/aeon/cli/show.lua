--- aeon.cli.show: how the command line prints events, for `events read`,
-- `events all` and `events tail`: one line for people, or one JSON object
-- (--json).
local aeon = require "aeon"

local concat = table.concat
local json_encode = aeon.json.encode

local M = {}

--- Revision, time, key (with_key), type, data and correlation id, two
-- spaces apart.
function M.event_line(e, with_key)
  local parts = { e.revision, e.committed_at }
  if with_key then parts[#parts + 1] = e.key end
  parts[#parts + 1] = e.type
  parts[#parts + 1] = json_encode(e.data)
  if e.correlation_id then parts[#parts + 1] = "correlation_id=" .. e.correlation_id end
  return concat(parts, "  ")
end

--- The event as one JSON object.
function M.event_json(e)
  return json_encode({ key = e.key, revision = e.revision, type = e.type, data = e.data,
    correlation_id = e.correlation_id, committed_at = e.committed_at })
end

return M
