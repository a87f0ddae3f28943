--- aeon.cli.help: what `--help` prints. The host's usage, and an app's
-- own: its commands, queries and projections with their parameters and
-- descriptions (`aeon-host APP.lua --help`), or one of them
-- (`aeon-host APP.lua NAME --help`).
local options = require "aeon.cli.options"

local ipairs, concat, upper = ipairs, table.concat, string.upper

local M = {}

M.USAGE = ([[
usage:
  aeon-host [--store URI] FILE.lua [ARGS...]      run a script, or an app's command or query
  aeon-host [--store URI] FILE.lua                an app with no ARGS: serve it over HTTP
  aeon-host [--store URI] FILE.lua --help         the app's commands, queries and projections
  aeon-host [--store URI] FILE.lua NAME --help    one of them
  aeon-host [--store URI] serve FILE.lua [--listen 127.0.0.1:8080] [--workers N] [--watch] ...
  aeon-host [--store URI] FILE.lua project [--once] [--rebuild NAME] [--status] [NAME...]
  aeon-host [--store URI] events read KEY [--from REV|--after REV] [--to REV|--before REV]
                                          [--limit N] [--backward] [--json]
  aeon-host [--store URI] events all [--key PATTERN] [--type PATTERN] [same options]
  aeon-host [--store URI] events keys [PATTERN] [--json]
  aeon-host [--store URI] events tail [--key PATTERN] [--type PATTERN] [--json] [--limit N]
  aeon-host [--store URI] FILE.lua events read|all|tail ...   the events as the app reads them (upcast)
  aeon-host [--store URI] store deploy|destroy|info|check
  aeon-host store copy|verify SOURCE TARGET        SOURCE, TARGET: store URIs or ndjson:PATH
  aeon-host [--store URI] views NAME [ID] [--after ID] [--limit N] [--json]
  aeon-host new DIR                               a new app to start from, with specs
  aeon-host test [DIR]                            an app's specs (DIR/spec), with busted
  aeon-host [--store URI] lambda [FILE.lua]       inside AWS Lambda: its custom runtime
  aeon-host --help | --version
Every subcommand takes --help.

The store is --store, else $AEON_STORE, else ${store}.
Stores: sqlite:PATH, PATH.db, memory:, dynamodb:NAME, or an Aeon config JSON.
Arguments to an app are name=value pairs (value read as JSON where it parses,
else as a string) or positional where the app names them; a word that starts
with - is an option (write name=-x, or put it after --, for such a value).
Exit statuses: 0 ok, 1 rejected or conflicted, 2 usage error, 3 store or I/O
failure, 4 script error.]]):gsub("%${store}", options.DEFAULT_STORE)

--- How a command or query is called: "increment NAME", "history [TRUCK]"
-- style; every parameter may be left out, so each is shown as optional
-- after the first, and an undeclared list as NAME=VALUE...
function M.signature(h)
  if not h.params then return h.name .. " [NAME=VALUE...]" end
  local words = { h.name }
  for _, p in ipairs(h.params) do words[#words + 1] = upper(p) end
  return concat(words, " ")
end

-- The lines describing one command or query, indented.
local function handler_lines(h, out)
  out[#out + 1] = "  " .. M.signature(h)
  if h.description then out[#out + 1] = "      " .. h.description end
  if h.views then out[#out + 1] = "      reads the views " .. concat(h.views, ", ") end
end

local function projection_lines(p, out)
  local what = { "view " .. p.view }
  if p.key then what[#what + 1] = "keys " .. concat(p.key, ", ") end
  if p.type then what[#what + 1] = "types " .. concat(p.type, ", ") end
  if p.declared_version then what[#what + 1] = "version " .. p.version end
  out[#out + 1] = "  " .. p.name .. "  (" .. concat(what, "; ") .. ")"
  if p.description then out[#out + 1] = "      " .. p.description end
end

--- `aeon-host APP.lua --help`.
function M.app(app, path)
  local out = { ("app %s (%s)"):format(app.name, path) }
  for _, kind in ipairs { "command", "query" } do
    local names = app:names(kind)
    if #names > 0 then
      out[#out + 1] = ""
      out[#out + 1] = kind == "command" and "commands:" or "queries:"
      for _, name in ipairs(names) do handler_lines(app:lookup(name), out) end
    end
  end
  local projections = app:projection_names()
  if #projections > 0 then
    out[#out + 1] = ""
    out[#out + 1] = "projections:"
    for _, name in ipairs(projections) do projection_lines(app.projections[name], out) end
  end
  out[#out + 1] = ""
  out[#out + 1] = ("usage: aeon-host [--store URI] %s NAME [ARGS...]   call a command or query"):format(path)
  out[#out + 1] = ("       aeon-host [--store URI] %s NAME --help    one of them"):format(path)
  if #projections > 0 then
    out[#out + 1] = ("       aeon-host [--store URI] %s project [--once] [--rebuild NAME] [--status] [NAME...]"):format(path)
  end
  if app:has_upcasters() then
    out[#out + 1] = ("       aeon-host [--store URI] %s events read KEY | all   its events, upcast"):format(path)
  end
  out[#out + 1] = ("       aeon-host [--store URI] serve %s [options]   (serve --help: the options)"):format(path)
  out[#out + 1] = "Arguments are positional in the order shown, or NAME=VALUE (the value read as"
  out[#out + 1] = "JSON where it parses as JSON, else as a string)."
  return concat(out, "\n")
end

--- `aeon-host APP.lua NAME --help`, for a command or query.
function M.handler(app, h, path)
  local out = { ("usage: aeon-host [--store URI] %s %s"):format(path, M.signature(h)),
    ("  %s of app %s"):format(h.kind, app.name) }
  if h.description then out[#out + 1] = "  " .. h.description end
  if h.params and #h.params > 0 then
    out[#out + 1] = "  parameters: " .. concat(h.params, ", ") ..
      " (positional in this order, or NAME=VALUE)"
  elseif h.params then
    out[#out + 1] = "  no parameters"
  end
  if h.views then out[#out + 1] = "  reads the views " .. concat(h.views, ", ") end
  out[#out + 1] = h.kind == "command"
    and ("  over HTTP: POST /commands/%s with a JSON object of arguments"):format(h.name)
    or ("  over HTTP: GET /queries/%s?NAME=VALUE&..."):format(h.name)
  return concat(out, "\n")
end

--- `aeon-host APP.lua NAME --help`, for a projection.
function M.projection(app, p, path)
  local out = { ("projection %s of app %s"):format(p.name, app.name) }
  projection_lines(p, out)
  out[#out + 1] = ("run it: aeon-host [--store URI] %s project %s [--once]"):format(path, p.name)
  return concat(out, "\n")
end

return M
