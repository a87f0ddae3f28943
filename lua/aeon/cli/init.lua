--- aeon.cli: the aeon-host command line (API.md section 1).
--
-- `main(argv)` returns the exit status (aeon.cli.options.EXIT): 0 success,
-- 1 rejected or conflicted, 2 usage error, 3 store or I/O failure, 4 script
-- error. Errors are one line on stderr; answers are JSON on stdout.
--
-- This file only dispatches: each subcommand is a module with
-- `main(opts, words)`, where `opts.store` is the global --store and
-- `words[1]` the subcommand's name.
local aeon = require "aeon"
local appmod = require "aeon.app"
local options = require "aeon.cli.options"
local help = require "aeon.cli.help"

local io, xpcall, require, tostring, unpack = io, xpcall, require, tostring, table.unpack
local traceback = debug.traceback
local EXIT, usage = options.EXIT, options.usage

local M = {}

M.EXIT = EXIT

-- Subcommand -> the module that runs it.
local SUBCOMMANDS = {
  events = "aeon.cli.events",
  store = "aeon.cli.store",
  serve = "aeon.cli.serve",
  new = "aeon.cli.new",
  test = "aeon.cli.test",
  lambda = "aeon.cli.lambda",
  views = "aeon.cli.views",
}

-- What an app's words after the file can start with, besides a command or
-- query: NAME -> the function that runs it, (opts, app, path, words).
local APP_WORDS = {
  project = function(...) return require("aeon.cli.project").main(...) end,
  -- APP.lua events ...: the events as the app sees them (upcast).
  events = function(opts, app, _, words) return require("aeon.cli.events").main(opts, words, app) end,
}

-- Global options come before the file or subcommand.
local GLOBALS = { store = "string", version = "flag" }

-- Returns opts and the index of the first other word, or nil and an exit
-- status when the option was --help or --version.
local function globals(argv)
  local flags, _, i = options.parse(argv, 1, GLOBALS, nil, true)
  if flags.help then
    io.stdout:write(help.USAGE, "\n")
    return nil, EXIT.ok
  elseif flags.version then
    io.stdout:write("aeon-host ", aeon.VERSION, "\n")
    return nil, EXIT.ok
  end
  return { store = flags.store }, i
end

-- aeon-host FILE.lua [WORDS...]: a script, or an app's command or query,
-- or with no words the app served. The file runs here as any script does,
-- with no budget: this is a foreground process, which Ctrl-C or SIGTERM
-- ends, and a script may run as long as it needs. An app it returns is
-- served by workers that load it under the request budgets.
local function run_file(opts, path, words)
  local ok, result = options.load_file(path, words)
  if not ok then return result end
  if not appmod.is_app(result) then return EXIT.ok end
  local app, first = result, words[1]
  if first == nil then return require("aeon.cli.serve").run(opts, app, path, {}) end
  if first == "--help" or first == "-h" then
    io.stdout:write(help.app(app, path), "\n")
    return EXIT.ok
  end
  if APP_WORDS[first] then return APP_WORDS[first](opts, app, path, words) end
  return require("aeon.cli.call").main(opts, app, path, words)
end

local function dispatch(argv)
  local opts, i = globals(argv)
  if not opts then return i end
  local words = { unpack(argv, i) }
  local first = words[1]
  if not first then usage("nothing to run (see --help)") end
  local sub = SUBCOMMANDS[first]
  if sub then return require(sub).main(opts, words) end
  return run_file(opts, first, { unpack(words, 2) })
end

--- Runs the command line; returns the exit status.
function M.main(argv)
  local ok, status = xpcall(dispatch, function(e)
    if options.is_usage(e) then return e end
    return traceback(tostring(e), 2)
  end, argv)
  if ok then return status end
  if options.is_usage(status) then
    options.say("%s", status.message)
    return EXIT.usage
  end
  error(status, 0)
end

return M
