--- aeon.cli.call: `aeon-host APP.lua NAME [ARGS...]` calls one of the
-- app's commands or queries and prints its answer as JSON (API.md
-- section 1); `NAME --help` prints how to call it instead.
local aeon = require "aeon"
local appmod = require "aeon.app"
local project = require "aeon.project"
local options = require "aeon.cli.options"
local help = require "aeon.cli.help"

local io, os, ipairs, pairs, pcall, concat = io, os, ipairs, pairs, pcall, table.concat
local EXIT, usage, say = options.EXIT, options.usage, options.say

local M = {}

-- Splits a handler's words into name=value pairs, positional words and
-- --help; a word that looks like an option is no value (name=--x is).
local function split(h, words)
  local named, positional, wants_help = {}, {}, false
  local i, n = 1, #words
  while i <= n do
    local w = words[i]
    local name, value = w:match("^([%a_][%w_%-]*)=(.*)$")
    if w == "--" then
      for j = i + 1, n do positional[#positional + 1] = words[j] end
      break
    elseif w == "--help" or w == "-h" then
      wants_help = true
    elseif options.looks_like_option(w) then
      usage("%s '%s' has no option %s (for a value that starts with -, write NAME=%s or put it after --)",
        h.kind, h.name, w, w)
    elseif name then
      if named[name] ~= nil then usage("%s '%s': %s is given twice", h.kind, h.name, name) end
      named[name] = value
    else
      positional[#positional + 1] = w
    end
    i = i + 1
  end
  return named, positional, wants_help
end

--- Turns command-line words into a handler's argument table: name=value
-- pairs, or positional words named, in order, by the handler's params. A
-- parameter given twice (by name and by position) and more positional
-- words than params are usage errors. Returns args, or nil when --help was
-- among the words.
function M.args(h, words)
  local named, positional, wants_help = split(h, words)
  if wants_help then return nil end
  local params = h.params or {}
  if #positional > #params then
    usage("%s '%s' takes %s, not also '%s'", h.kind, h.name,
      #params > 0 and (#params .. " positional argument(s): " .. concat(params, " "))
        or "no positional arguments (only NAME=VALUE)", positional[#params + 1])
  end
  local args = {}
  for name, text in pairs(named) do args[name] = options.parse_value(text) end
  for k, w in ipairs(positional) do
    local p = params[k]
    if named[p] ~= nil then
      usage("%s '%s': %s is given twice, as %s=%s and as the positional word '%s'", h.kind,
        h.name, p, p, named[p], w)
    end
    args[p] = options.parse_value(w)
  end
  return args
end

-- A query that reads views answers, without a revision, with every event
-- committed before it: nothing else keeps the views up to date for a
-- one-off command, so bring their projections up to date first. With a
-- revision it answers from the views as they are (or "not yet").
local function catch_up(store, app, h, args)
  if h.kind ~= "query" or not h.views or args.revision ~= nil then return true end
  return project.catch_up(store, app, h.views)
end

-- Prints an answer; one JSON cannot hold is the handler's mistake.
local function print_answer(h, value)
  local ok, text = pcall(aeon.json.encode, value == nil and aeon.null or value)
  if not ok then
    say("%s '%s' answered what JSON cannot hold: %s", h.kind, h.name, options.clean(text))
    return EXIT.script
  end
  io.stdout:write(text, "\n")
  return EXIT.ok
end

local function say_failure(outcome, value)
  say("%s", value.message)
  if outcome == "script" and os.getenv("AEON_DEBUG") and value.traceback then
    io.stderr:write(value.traceback, "\n")
  end
  return appmod.OUTCOMES[outcome].exit
end

--- Runs `words` (NAME ARGS...) against the app; returns the exit status.
function M.main(opts, app, path, words)
  local h = app:lookup(words[1])
  if not h then
    local p = app.projections[words[1]]
    if p and (words[2] == "--help" or words[2] == "-h") then
      io.stdout:write(help.projection(app, p, path), "\n")
      return EXIT.ok
    end
    usage("app %s has no command or query '%s' (it has: %s; see %s --help)", app.name, words[1],
      concat(app:names(), ", "), path)
  end
  local args = M.args(h, { table.unpack(words, 2) })
  if not args then io.stdout:write(help.handler(app, h, path), "\n"); return EXIT.ok end
  local store, err = options.open_store(opts)
  if not store then say("%s", err); return EXIT.io end
  local ok, cerr = catch_up(store, app, h, args)
  if not ok then store:close(); say("%s", cerr); return EXIT.io end
  local outcome, value = app:call(h.name, { store = store, app = app, source = "cli" }, args)
  store:close()
  if outcome == "ok" then return print_answer(h, value) end
  return say_failure(outcome, value)
end

return M
