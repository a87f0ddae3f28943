--- aeon.cli.tail: `aeon-host events tail [--key PATTERN] [--type PATTERN]
-- [--json] [--limit N]` follows the events committed from now on, printed
-- as `events all` prints them, until interrupted (or N events).
--
-- It reads through an ephemeral subscription that starts at the end of the
-- store, so it records no checkpoint and sees every matching event
-- committed while it runs, in commit order; on the embedded store an
-- append shows within 100 ms, at once from the same process.
local aeon = require "aeon"
local cli = require "aeon.cli"

local io = io

local M = {}

local FLAGS = { key = "string", type = "string", json = "flag", limit = "integer" }
local WAIT = 1 -- seconds per poll; the loop only ends on --limit or a signal

function M.run(opts, args, open_store, usage)
  local flags, rest = cli.parse_flags(args, 3, FLAGS)
  if #rest > 0 then usage("events tail takes no KEY (use --key PATTERN)") end
  if flags.key == "" or flags.type == "" then usage("--key and --type need a pattern") end
  local store, err = open_store(opts)
  if not store then
    io.stderr:write("aeon-host: ", err, "\n")
    return cli.EXIT.io
  end
  local sub, serr = store:subscribe(nil, { key = flags.key, type = flags.type, start = aeon.END })
  if not sub then
    store:close()
    io.stderr:write("aeon-host: ", serr, "\n")
    return cli.EXIT.io
  end

  local out, print_event = io.stdout, flags.json and cli.event_json or cli.event_line
  local left = flags.limit
  while left == nil or left > 0 do
    local events, perr = sub:poll(WAIT, left)
    if not events then
      store:close()
      io.stderr:write("aeon-host: ", perr, "\n")
      return cli.EXIT.io
    end
    for _, e in ipairs(events) do out:write(print_event(e, true), "\n") end
    out:flush()
    if left then left = left - #events end
  end
  store:close()
  return cli.EXIT.ok
end

return M
