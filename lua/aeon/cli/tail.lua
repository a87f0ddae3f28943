--- aeon.cli.tail: `aeon-host events tail [--key PATTERN] [--type PATTERN]
-- [--json] [--limit N]` follows the events committed from now on, printed
-- as `events all` prints them, until interrupted (or N events).
--
-- It reads through an ephemeral subscription that starts at the end of the
-- store, so it records no checkpoint and sees every matching event
-- committed while it runs, in commit order; on the embedded store an
-- append shows within 100 ms, at once from the same process.
local aeon = require "aeon"
local options = require "aeon.cli.options"
local show = require "aeon.cli.show"

local io, ipairs, pcall = io, ipairs, pcall
local EXIT, usage, say, clean = options.EXIT, options.usage, options.say, options.clean

local M = {}

local FLAGS = { key = "string", type = "string", json = "flag", limit = "integer" }
local WAIT = 1 -- seconds per poll; the loop only ends on --limit or a signal

-- Prints what the subscription delivers until `left` events (nil: for
-- ever). Returns nil and the store's message when a poll fails.
local function follow(sub, left, json, app)
  local out, print_event = io.stdout, json and show.event_json or show.event_line
  while left == nil or left > 0 do
    local events, perr = sub:poll(WAIT, left)
    if not events then return nil, perr end
    for _, e in ipairs(events) do
      if app then e = app:upcast_event(e) end
      out:write(print_event(e, true), "\n")
    end
    out:flush()
    if left then left = left - #events end
  end
  return true
end

-- `app`, when given, upcasts each event before it is printed.
function M.main(opts, words, help, app)
  local flags, rest = options.parse(words, 3, FLAGS, "events tail")
  if flags.help then io.stdout:write(help, "\n"); return EXIT.ok end
  if #rest > 0 then usage("events tail takes no KEY (use --key PATTERN)") end
  if flags.key == "" or flags.type == "" then usage("--key and --type need a pattern") end
  local store, err = options.open_store(opts)
  if not store then say("%s", err); return EXIT.io end
  local ok, sub, serr = pcall(store.subscribe, store, nil,
    { key = flags.key, type = flags.type, start = aeon.END })
  if not ok then store:close(); usage("%s", clean(sub)) end
  if not sub then store:close(); say("%s", serr); return EXIT.io end
  local done, ferr = follow(sub, flags.limit, flags.json, app)
  store:close()
  if not done then say("%s", ferr); return EXIT.io end
  return EXIT.ok
end

return M
