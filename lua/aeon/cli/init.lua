--- aeon.cli: the aeon-host command line (API.md section 1).
--
-- `main(argv)` returns the exit status: 0 success, 1 rejected or conflicted,
-- 2 usage error, 3 store or I/O failure, 4 script error. Errors are one line
-- on stderr; answers are JSON on stdout.
local aeon = require "aeon"
local appmod = require "aeon.app"

local io, os, ipairs, tostring, tonumber, type = io, os, ipairs, tostring, tonumber, type
local json_encode, json_decode = aeon.json.encode, aeon.json.decode

local M = {}

local part -- defined below, used by the subcommands

local EXIT = { ok = 0, rejected = 1, usage = 2, io = 3, script = 4 }
M.EXIT = EXIT

local USAGE = [[
usage:
  aeon-host [--store URI] FILE.lua [ARGS...]
  aeon-host [--store URI] serve FILE.lua [--listen 127.0.0.1:8080] [--workers N] [--watch] ...
                                          (serve FILE.lua --help: every option)
  aeon-host [--store URI] FILE.lua project [--once] [--rebuild NAME]
  aeon-host [--store URI] events read KEY [--from REV|--after REV] [--to REV|--before REV]
                                          [--limit N] [--backward] [--json]
  aeon-host [--store URI] events all [same options]
  aeon-host [--store URI] events tail [--key PATTERN] [--type PATTERN]
  aeon-host [--store URI] store deploy|destroy|info
  aeon-host --help | --version

The store is --store, else $AEON_STORE, else sqlite:aeon.db.
Stores: sqlite:PATH, PATH.db, memory:, dynamodb:NAME, or an Aeon config JSON.
Arguments to an app are name=value pairs (value read as JSON where it parses,
else as a string) or positional where the app names them.]]

-- A usage error carries its own exit status through the call chain.
local Usage = {}
local function usage(fmt, ...)
  error(setmetatable({ message = fmt:format(...) }, Usage), 0)
end

local function say(fmt, ...) io.stderr:write("aeon-host: ", fmt:format(...), "\n") end

--- Reads a command-line value: JSON where it parses as JSON, else a string.
function M.parse_value(text)
  local v = json_decode(text)
  if v == nil then return text end
  return v
end

-- Opens the store named on the command line, the environment, or the default.
local function open_store(opts)
  local uri = opts.store or os.getenv("AEON_STORE") or "sqlite:aeon.db"
  local store, err = aeon.open(uri)
  if not store then return nil, err end
  return store
end

--- Splits "--name value" and "--flag" options from positional arguments,
-- from args[first] on; `spec` maps option names to "flag", "string" or
-- "integer". Raises a usage error on anything else.
local function parse_flags(args, first, spec)
  local flags, positional = {}, {}
  local i = first
  while i <= #args do
    local a = args[i]
    local name = a:match("^%-%-([%w-]+)$")
    if name then
      local kind = spec[name]
      if not kind then usage("unknown option --%s", name) end
      if kind == "flag" then
        flags[name] = true
      else
        i = i + 1
        if args[i] == nil then usage("option --%s needs a value", name) end
        if kind == "integer" then
          local n = math.tointeger(tonumber(args[i]))
          if not n or n < 0 then usage("option --%s needs a non-negative integer", name) end
          flags[name] = n
        else
          flags[name] = args[i]
        end
      end
    else
      positional[#positional + 1] = a
    end
    i = i + 1
  end
  return flags, positional
end
M.parse_flags = parse_flags

-- Formats one event for people: revision, time, key, type, data.
local function event_line(e, with_key)
  local parts = { e.revision, e.committed_at }
  if with_key then parts[#parts + 1] = e.key end
  parts[#parts + 1] = e.type
  parts[#parts + 1] = json_encode(e.data)
  if e.correlation_id then parts[#parts + 1] = "correlation_id=" .. e.correlation_id end
  return table.concat(parts, "  ")
end

local function event_json(e)
  return json_encode({ key = e.key, revision = e.revision, type = e.type, data = e.data,
    correlation_id = e.correlation_id, committed_at = e.committed_at })
end

--- How `events read`, `events all` and `events tail` print an event:
-- one line for people, or one JSON object (--json).
M.event_line, M.event_json = event_line, event_json

local READ_FLAGS = { from = "string", after = "string", to = "string", before = "string",
  limit = "integer", backward = "flag", json = "flag" }

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

local function cmd_events(opts, args)
  local sub = args[2]
  if sub ~= "read" and sub ~= "all" and sub ~= "tail" then
    usage("events needs read, all or tail")
  end
  if sub == "tail" then
    return part("aeon.cli.tail", "following events").run(opts, args, open_store, usage)
  end
  local flags, pos = parse_flags(args, 3, READ_FLAGS)
  local key
  if sub == "read" then
    key = pos[1]
    if not key then usage("events read needs a KEY") end
    if #pos > 1 then usage("events read takes one KEY") end
  elseif #pos > 0 then
    usage("events all takes no KEY")
  end
  local store, err = open_store(opts)
  if not store then say("%s", err); return EXIT.io end
  local ro = read_options(flags)
  local iter, s, c, closer
  if key then iter, s, c, closer = store:read(key, ro) else iter, s, c, closer = store:read_all(ro) end
  if not iter then say("%s", s); return EXIT.io end
  local out = io.stdout
  for e in iter, s, c, closer do
    out:write(flags.json and event_json(e) or event_line(e, not key), "\n")
  end
  store:close()
  return EXIT.ok
end

local function cmd_store(opts, args)
  local action = args[2]
  if action ~= "deploy" and action ~= "destroy" and action ~= "info" then
    usage("store needs deploy, destroy or info")
  end
  if args[3] then usage("store %s takes no arguments", action) end
  local store, err = open_store(opts)
  if not store then say("%s", err); return EXIT.io end
  local info, aerr = store:admin(action)
  store:close()
  if not info then say("%s", aerr); return EXIT.io end
  io.stdout:write(json_encode(info), "\n")
  return EXIT.ok
end

-- Loads an app file. Returns the chunk's result, or nil and an exit status
-- after saying why.
local function load_file(path, args)
  local chunk, err = loadfile(path)
  if not chunk then
    local f = io.open(path, "r")
    if not f then say("cannot open %s", path); return nil, EXIT.usage end
    f:close()
    say("%s", err)
    return nil, EXIT.script
  end
  _G.arg = { [0] = path, table.unpack(args) }
  -- Modules beside the app (a shared domain, say) are found by require.
  local dir = path:match("^(.*)/[^/]*$") or "."
  package.path = dir .. "/?.lua;" .. package.path
  local tb
  local ok, result = xpcall(chunk, function(e)
    tb = debug.traceback(tostring(e), 2)
    return e
  end, table.unpack(args))
  if not ok then
    say("%s", tostring(result))
    if os.getenv("AEON_DEBUG") and tb then io.stderr:write(tb, "\n") end
    return nil, EXIT.script
  end
  return true, result
end

--- Turns command-line words into a handler's argument table: name=value
-- pairs, or positional values named by the handler's params.
function M.call_args(h, words)
  local args, n = {}, 0
  for _, w in ipairs(words) do
    local name, value = w:match("^([%a_][%w_%-]*)=(.*)$")
    if name then
      if h.params then
        local known = false
        for _, p in ipairs(h.params) do known = known or p == name end
        if not known then
          usage("%s '%s' takes %s, not '%s'", h.kind, h.name, table.concat(h.params, ", "), name)
        end
      end
      args[name] = M.parse_value(value)
    else
      n = n + 1
      local pname = h.params and h.params[n]
      if not pname then
        usage("%s '%s' takes %s", h.kind, h.name,
          h.params and #h.params > 0 and (#h.params .. " positional argument(s): " ..
            table.concat(h.params, " ")) or "only name=value arguments")
      end
      args[pname] = M.parse_value(w)
    end
  end
  return args
end

-- Loads an optional part of the host (the HTTP server, the projection
-- runner), saying clearly when this build lacks it.
function part(name, what)
  local ok, mod = pcall(require, name)
  if ok then return mod end
  -- Only a missing part is this build's limit; any other error is a bug
  -- that must surface as it is.
  if tostring(mod):find("module '" .. name .. "' not found", 1, true) then
    usage("%s is not available in this build of aeon-host", what)
  end
  error(mod, 0)
end

local function run_app(opts, app, path, words)
  if #words == 0 then
    return part("aeon.cli.serve", "serving over HTTP").run(opts, app, path, {}, open_store, usage)
  end
  if words[1] == "project" then
    return part("aeon.project", "running projections").cli(opts, app, words, open_store, usage)
  end
  local h = app:lookup(words[1])
  if not h then
    usage("app %s has no command or query '%s' (it has: %s)", app.name, words[1],
      table.concat(app:names(), ", "))
  end
  local rest = { table.unpack(words, 2) }
  local args = M.call_args(h, rest)
  local store, err = open_store(opts)
  if not store then say("%s", err); return EXIT.io end
  -- A query that reads views answers, without a revision, with every event
  -- committed before it: nothing else keeps the views up to date for a
  -- one-off command, so bring their projections up to date first. With a
  -- revision it answers from the views as they are (or "not yet").
  if h.kind == "query" and h.views and args.revision == nil then
    local ok, cerr = part("aeon.project", "running projections").catch_up(store, app, h.views)
    if not ok then
      store:close()
      say("%s", cerr)
      return EXIT.io
    end
  end
  local outcome, value = app:call(h.name, { store = store, app = app, source = "cli" }, args)
  store:close()
  if outcome == "ok" then
    io.stdout:write(json_encode(value == nil and aeon.null or value), "\n")
    return EXIT.ok
  end
  say("%s", value.message)
  if outcome == "script" and os.getenv("AEON_DEBUG") and value.traceback then
    io.stderr:write(value.traceback, "\n")
  end
  return appmod.OUTCOMES[outcome].exit
end

local function dispatch(argv)
  local opts, args = {}, {}
  local i = 1
  -- Global options come before the file or subcommand.
  while argv[i] do
    local a = argv[i]
    if a == "--store" then
      if not argv[i + 1] then usage("--store needs a URI") end
      opts.store = argv[i + 1]
      i = i + 2
    elseif a:match("^%-%-store=") then
      opts.store = a:sub(9)
      i = i + 1
    elseif a == "--help" or a == "-h" then
      io.stdout:write(USAGE, "\n")
      return EXIT.ok
    elseif a == "--version" then
      io.stdout:write("aeon-host ", aeon.VERSION, "\n")
      return EXIT.ok
    elseif a:match("^%-") then
      usage("unknown option %s (see --help)", a)
    else
      break
    end
  end
  for j = i, #argv do args[#args + 1] = argv[j] end
  local first = args[1]
  if not first then usage("nothing to run (see --help)") end
  if first == "events" then return cmd_events(opts, args) end
  if first == "store" then return cmd_store(opts, args) end

  local serve = first == "serve"
  local path = serve and args[2] or first
  if not path then usage("serve needs an app FILE.lua") end
  local rest = { table.unpack(args, serve and 3 or 2) }
  local ok, result = load_file(path, serve and {} or rest)
  if not ok then return result end
  if not appmod.is_app(result) then
    if serve then usage("%s does not return an app", path) end
    return EXIT.ok
  end
  if serve then
    return part("aeon.cli.serve", "serving over HTTP").run(opts, result, path, rest, open_store, usage)
  end
  return run_app(opts, result, path, rest)
end

--- Runs the command line; returns the exit status.
function M.main(argv)
  local ok, status = xpcall(dispatch, function(e)
    if getmetatable(e) == Usage then return e end
    return debug.traceback(tostring(e), 2)
  end, argv)
  if ok then return status end
  if getmetatable(status) == Usage then
    say("%s", status.message)
    return EXIT.usage
  end
  error(status, 0)
end

return M
