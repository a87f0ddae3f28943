--- aeon.cli.project: `aeon-host APP.lua project [--once] [--rebuild NAME]
-- [--status] [NAME...]` runs an app's projections (aeon.project) and prints
-- a JSON report of what each did, or (--status) where each stands.
local aeon = require "aeon"
local project = require "aeon.project"
local options = require "aeon.cli.options"

local io, ipairs, pairs, concat = io, ipairs, pairs, table.concat
local EXIT, usage, say = options.EXIT, options.usage, options.say

local M = {}

local FLAGS = { once = "flag", rebuild = "string", status = "flag" }

--- The help text for this app.
function M.usage_of(path)
  return ([[
usage: aeon-host [--store URI] %s project [--once] [--rebuild NAME] [--status] [NAME...]
  follows the store and keeps the app's views up to date until interrupted
  NAME...          only these projections (default: all)
  --once           stop when caught up with every event committed now
  --rebuild NAME   build NAME's view anew beside the live one, from the first event,
                   and switch to it once caught up (as a version change does)
  --status         print where each projection stands and stop: the live build's
                   version, view, revision and lag; a build in progress with its
                   events done, lag and ETA
prints a JSON report: {"NAME":{"events":N,"revision":"...","version":V,"view":"VIEW"}}]]):format(path)
end

local function check_names(app, names, all)
  for _, n in ipairs(names) do
    if not app.projections[n] then
      usage("app %s has no projection '%s' (it has: %s)", app.name, n, concat(all, ", "))
    end
  end
end

-- Runs what the flags ask for on an open store: a report, or nil and why.
local function run(store, app, flags, names, all)
  if flags.status then return project.status(store, app) end
  if flags.rebuild then return project.rebuild(store, app, flags.rebuild) end
  if not flags.once then
    say("running projections of %s: %s (interrupt to stop)", app.name,
      concat(#names > 0 and names or all, ", "))
  end
  return project.run(store, app, #names > 0 and names or nil, { once = flags.once })
end

function M.main(opts, app, path, words)
  local flags, names = options.parse(words, 2, FLAGS, "project")
  if flags.help then io.stdout:write(M.usage_of(path), "\n"); return EXIT.ok end
  local all = app:projection_names()
  if #all == 0 then usage("app %s declares no projections", app.name) end
  check_names(app, names, all)
  if flags.rebuild then
    check_names(app, { flags.rebuild }, all)
    if #names > 0 then usage("--rebuild takes one projection; give no other names") end
    if flags.status or flags.once then usage("--rebuild takes neither --status nor --once") end
  end
  if flags.status and (flags.once or #names > 0) then
    usage("--status takes neither --once nor names")
  end
  local store, err = options.open_store(opts)
  if not store then say("%s", err); return EXIT.io end
  local report, rerr = run(store, app, flags, names, all)
  store:close()
  if not report then say("%s", rerr); return EXIT.io end
  local failed = false
  for _, r in pairs(report) do failed = failed or r.failed ~= nil end
  io.stdout:write(aeon.json.encode(report), "\n")
  return failed and EXIT.script or EXIT.ok
end

return M
