--- aeon.cli.events: `aeon-host [APP.lua] events read KEY | all | keys | tail
-- [options]`: the store's events as they are stored, or, with an app given
-- before `events`, as that app's handlers see them (upcast: App:upcast).
local aeon = require "aeon"
local options = require "aeon.cli.options"
local show = require "aeon.cli.show"

local io, ipairs, pairs, pcall, require, type = io, ipairs, pairs, pcall, require, type
local EXIT, usage, say, clean = options.EXIT, options.usage, options.say, options.clean

local M = {}

M.USAGE = [[
usage:
  aeon-host [--store URI] events read KEY [--from REV|--after REV] [--to REV|--before REV]
                                          [--limit N] [--backward] [--json]
  aeon-host [--store URI] events all [--key PATTERN] [--type PATTERN] [same options]
                                                        every key, in revision order
  aeon-host [--store URI] events keys [PATTERN] [--json]   each key, its head and event count
  aeon-host [--store URI] events tail [--key PATTERN] [--type PATTERN] [--json] [--limit N]

  --from/--after REV     start at REV / just after it (0: the start)
  --to/--before REV      end at REV / just before it (Z: the end)
  --limit N              at most N events
  --backward             newest first
  --json                 one JSON object per event instead of a line for people
  --key/--type PATTERN   (all) only events whose key / type match: exact, or * for any run
events tail follows the events committed from now on until interrupted (or N events).
aeon-host [--store URI] APP.lua events read|all|tail ... prints the events upcast
by the app's upcasters (app:upcast; --key/--type match the events as stored);
the stored events are not changed.]]

local READ_FLAGS = { from = "string", after = "string", to = "string", before = "string",
  limit = "integer", backward = "flag", json = "flag" }

local ALL_FLAGS = { key = "string", type = "string" }
for k, v in pairs(READ_FLAGS) do ALL_FLAGS[k] = v end

local function read_options(flags)
  for _, name in ipairs { "from", "after", "to", "before" } do
    local r = flags[name]
    if r and r ~= aeon.START and r ~= aeon.END and not aeon.revision_valid(r) then
      usage("--%s needs a revision (26 characters of Crockford base32), 0 or Z", name)
    end
  end
  if flags.from and flags.after then usage("give --from or --after, not both") end
  if flags.to and flags.before then usage("give --to or --before, not both") end
  return { from = flags.from, after = flags.after, to = flags.to, before = flags.before,
    limit = flags.limit, direction = flags.backward and "backward" or nil }
end

-- Starts the read. A key the store refuses (empty, not UTF-8) is the
-- caller's mistake: the store raises, and here that is a usage error.
local function start(store, key, ro, flags)
  local ok, iter, s, c, closer
  if key then
    ok, iter, s, c, closer = pcall(store.read, store, key, ro)
  else
    ok, iter, s, c, closer = pcall(require("aeon.cli.inspect").read_all, store, ro, flags.key,
      flags.type)
  end
  if not ok then
    store:close()
    usage("%s", clean(iter))
  end
  return iter, s, c, closer
end

-- Prints every event the read yields; a failure mid-read (a damaged page,
-- a lost connection) is the store's.
local function print_all(iter, s, c, closer, json, with_key)
  local out = io.stdout
  return pcall(function()
    for e in iter, s, c, closer do
      out:write(json and show.event_json(e) or show.event_line(e, with_key), "\n")
    end
  end)
end

local function read(opts, words, sub, app)
  local flags, pos = options.parse(words, 3, sub == "all" and ALL_FLAGS or READ_FLAGS,
    "events " .. sub)
  if flags.key == "" or flags.type == "" then usage("--key and --type need a pattern") end
  if flags.help then io.stdout:write(M.USAGE, "\n"); return EXIT.ok end
  local key
  if sub == "read" then
    key = pos[1]
    if not key then usage("events read needs a KEY") end
    if #pos > 1 then usage("events read takes one KEY, not also '%s'", pos[2]) end
  elseif #pos > 0 then
    usage("events all takes no KEY (use events read KEY)")
  end
  local ro = read_options(flags)
  local store, err = options.open_store(opts)
  if not store then say("%s", err); return EXIT.io end
  local reader = app and app:store(store) or store
  local iter, s, c, closer = start(reader, key, ro, flags)
  if not iter then store:close(); say("%s", s); return EXIT.io end
  local ok, rerr = print_all(iter, s, c, closer, flags.json, not key)
  store:close()
  if not ok then say("%s", clean(rerr)); return EXIT.io end
  return EXIT.ok
end

-- events ACTION: a function here, or the module that runs it.
local ACTIONS = {
  read = read,
  all = read,
  tail = "aeon.cli.tail",
  keys = function(opts, words) return require("aeon.cli.inspect").keys(opts, words, M.USAGE) end,
}

-- `app`: the app given before `events`, whose upcasters the events go
-- through; nil for the events as stored.
function M.main(opts, words, app)
  local sub = words[2]
  if sub == "--help" or sub == "-h" then io.stdout:write(M.USAGE, "\n"); return EXIT.ok end
  local action = ACTIONS[sub]
  if not action then usage("events needs read, all, keys or tail (see events --help)") end
  if type(action) == "string" then return require(action).main(opts, words, M.USAGE, app) end
  return action(opts, words, sub, app)
end

return M
