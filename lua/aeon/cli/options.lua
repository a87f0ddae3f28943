--- aeon.cli.options: what every part of the command line shares (API.md
-- section 1): the exit statuses, the defaults, how a usage error travels,
-- the one option parser and how a word becomes a value.
--
-- Every subcommand reads its words with `parse(words, first, spec)`, so
-- options behave the same everywhere: `--name value` or `--name=value`,
-- `--help` (or `-h`) anywhere, `--` ending the options, and a word that
-- looks like an option never taken as a value.
local aeon = require "aeon"
local appmod = require "aeon.app"

local io, os, type, tostring, tonumber, error, setmetatable, getmetatable =
  io, os, type, tostring, tonumber, error, setmetatable, getmetatable
local loadfile, xpcall, unpack, traceback = loadfile, xpcall, table.unpack, debug.traceback
local debug, monotonic = debug, require("aeon.core").monotonic
local tointeger, huge = math.tointeger, math.huge

local M = {}

local OUTCOMES = appmod.OUTCOMES

--- The exit statuses (README, API.md section 1). They are the outcomes'
-- (aeon.app's OUTCOMES), which say the same for a handler's answer.
M.EXIT = {
  ok = OUTCOMES.ok.exit,             -- 0
  rejected = OUTCOMES.rejected.exit, -- 1: rejected, conflicted, not yet
  usage = OUTCOMES.invalid.exit,     -- 2
  io = OUTCOMES.store.exit,          -- 3: store or I/O failure
  script = OUTCOMES.script.exit,     -- 4
}

--- The store when neither --store nor $AEON_STORE names one.
M.DEFAULT_STORE = "sqlite:aeon.db"

--- `serve`'s defaults; the C server takes every value from here.
M.SERVE = {
  listen = "127.0.0.1:8080",
  workers = 4,
  ["log-level"] = "info",
  ["max-body"] = 1048576,           -- bytes
  timeout = 30,                     -- seconds a connection may stall
  ["max-instructions"] = 100000000, -- Lua VM instructions per request
  ["max-time"] = 30,                -- seconds per request
  ["max-memory"] = 256,             -- MiB per Lua state
  ["header-timeout"] = 10,          -- seconds to send a request's headers
  ["body-timeout"] = 60,            -- seconds to send a request's body
  ["max-connections"] = 4096,       -- open connections at most
  ["max-client-connections"] = 256, -- per client address
  drain = 10,                       -- seconds shutdown waits for requests in flight
}

--- The store URI the command line names: --store, else $AEON_STORE, else
-- the default.
function M.store_uri(opts)
  return opts.store or os.getenv("AEON_STORE") or M.DEFAULT_STORE
end

--- Opens that store: the store, or nil and the store's message.
function M.open_store(opts)
  return aeon.open(M.store_uri(opts))
end

-- A usage error carries its own exit status through the call chain.
local Usage = {}

--- Raises a usage error (exit 2) with this message.
function M.usage(fmt, ...)
  error(setmetatable({ message = fmt:format(...) }, Usage), 0)
end

function M.is_usage(e) return getmetatable(e) == Usage end

--- One line on stderr, "aeon-host: ...".
function M.say(fmt, ...)
  io.stderr:write("aeon-host: ", fmt:format(...), "\n")
end

--- A message without the "file.lua:N: " a raised error starts with: what
-- the host's own library raised names a place the user cannot act on.
function M.clean(message)
  message = tostring(message)
  local rest = message:match("^[^\n]-%.lua:%d+: (.*)$")
  while rest do
    message = rest
    rest = message:match("^[^\n]-%.lua:%d+: (.*)$")
  end
  return message
end

--- Reads a value from a word: JSON where it parses as JSON, else the word
-- itself as a string. The command line's arguments and HTTP's query
-- parameters both read this way.
function M.parse_value(text)
  local v = aeon.json.decode(text)
  if v == nil then return text end
  return v
end

--- Whether a word is an option rather than a value: it starts with "-"
-- and a letter, or "--". ("-5" is a value.)
function M.looks_like_option(word)
  return word:match("^%-%a") ~= nil or word:match("^%-%-") ~= nil
end

-- Reads an option's value of this kind, or raises a usage error.
local function convert(name, kind, text)
  if kind == "integer" then
    local n = tointeger(tonumber(text))
    if not n or n < 0 then M.usage("option --%s needs a non-negative integer", name) end
    return n
  elseif kind == "number" then
    local n = tonumber(text)
    if not n or n < 0 or n ~= n or n == huge then
      M.usage("option --%s needs a non-negative number", name)
    end
    return n
  end
  return text
end

--- Splits words[first..] into options and positional words. `spec` maps
-- each option's name to "flag", "string", "integer" (non-negative) or
-- "number" (non-negative, finite); `what` names the command in messages.
-- `--help` and `-h` set flags.help wherever they are; after `--` every
-- word is positional. With `stop`, parsing ends at the first positional
-- word, whose index is the third result (the global options before a
-- subcommand). Returns flags, positional; raises a usage error on an
-- unknown option or a missing or bad value.
function M.parse(words, first, spec, what, stop)
  local flags, positional = {}, {}
  local i, n = first or 1, #words
  local see = what and (what .. " --help") or "--help"
  what = what and (what .. " ") or ""
  while i <= n do
    local w = words[i]
    if stop and not M.looks_like_option(w) then break end
    if w == "--" then
      for j = i + 1, n do positional[#positional + 1] = words[j] end
      break
    end
    local name, inline = w:match("^%-%-([%w][%w-]*)=(.*)$")
    name = name or w:match("^%-%-([%w][%w-]*)$")
    if w == "-h" or name == "help" then
      flags.help = true
    elseif name then
      local kind = spec[name]
      if not kind then
        M.usage("unknown %soption --%s (see %s)", what, name, see)
      end
      if kind == "flag" then
        if inline then M.usage("option --%s takes no value", name) end
        flags[name] = true
      else
        local value = inline
        if not value then
          i = i + 1
          value = words[i]
          if value == nil or M.looks_like_option(value) then
            M.usage("option --%s needs a value (write --%s=VALUE for one that starts with -)",
              name, name)
          end
        end
        flags[name] = convert(name, kind, value)
      end
    elseif M.looks_like_option(w) then
      M.usage("unknown %soption %s (see %s)", what, w, see)
    else
      positional[#positional + 1] = w
    end
    i = i + 1
  end
  return flags, positional, i
end

-- How many VM instructions a load's budget hook lets pass between looks.
local LOAD_HOOK_EVERY = 10000
-- A load still running this long past its time budget is stuck in C, where
-- the hook never runs (as the server's own loads are given up on).
local STUCK_SLACK = 1

-- aeon.host, inside aeon-host: its load_deadline ends a load stuck in C.
local has_host, host = pcall(require, "aeon.host")

-- A count hook holding a load to `budget` ({ instructions = N, seconds = S },
-- 0: no limit), and a function that retires it. Past the budget it raises,
-- and from then on at every instruction, so code that catches the error
-- cannot run on. Coroutines the file makes inherit it.
local function load_budget(path, budget)
  local used, deadline, why, over = 0, monotonic() + budget.seconds, nil, false
  local sethook = debug.sethook
  local function hook()
    if over then return end
    if not why then
      used = used + LOAD_HOOK_EVERY
      if budget.instructions > 0 and used > budget.instructions then
        why = ("loading %s was stopped: it ran more than %d instructions (--max-instructions)")
          :format(path, budget.instructions)
      elseif budget.seconds > 0 and monotonic() > deadline then
        why = ("loading %s was stopped: it ran longer than %g seconds (--max-time)")
          :format(path, budget.seconds)
      else
        return
      end
    end
    sethook(hook, "", 1)
    error(why, 0)
  end
  sethook(hook, "", LOAD_HOOK_EVERY)
  -- Stuck in C, it cannot be stopped, nor left behind on this thread: the
  -- process ends, exit 4, saying why.
  local cancel = has_host and budget.seconds > 0 and host.load_deadline(budget.seconds + STUCK_SLACK,
    ("aeon-host: loading %s was stopped: it is stuck past its time budget (--max-time %g), " ..
      "outside Lua (in C, where no hook runs)"):format(path, budget.seconds))
  -- The file may not take the hook away while it loads.
  debug.sethook = function() error("debug.sethook is not available to an app being loaded", 2) end
  return function()
    over = true
    if cancel then cancel() end
    debug.sethook = sethook
    sethook()
  end
end

--- Loads and runs a Lua file with `args` (also the global `arg`), the way
-- `aeon-host FILE.lua` and `serve FILE.lua` do. With `budget` (`serve`:
-- { instructions = N, seconds = S }, 0 for no limit) the file's top level
-- runs under it, as the server's own loads do; one stuck in C past it ends
-- the process (exit 4). Returns true and what the chunk returned, or false
-- and an exit status after saying why.
function M.load_file(path, args, budget)
  local chunk, err = loadfile(path)
  if not chunk then
    local f = io.open(path, "r")
    if not f then M.say("cannot open %s", path); return false, M.EXIT.usage end
    f:close()
    M.say("%s", err)
    return false, M.EXIT.script
  end
  _G.arg = { [0] = path, unpack(args) }
  -- Modules beside the app (a shared domain, say) are found by require.
  local dir = path:match("^(.*)/[^/]*$") or "."
  package.path = dir .. "/?.lua;" .. package.path
  local tb
  local retire = budget and load_budget(path, budget)
  local ok, result = xpcall(chunk, function(e)
    tb = traceback(tostring(e), 2)
    return e
  end, unpack(args))
  if retire then retire() end
  if not ok then
    M.say("%s", tostring(result))
    if os.getenv("AEON_DEBUG") and tb then io.stderr:write(tb, "\n") end
    return false, M.EXIT.script
  end
  return true, result
end

return M
