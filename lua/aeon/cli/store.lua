--- aeon.cli.store: `aeon-host store deploy|destroy|info|check`, the store's
-- own administration (its tables on DynamoDB) and its check, answered as
-- JSON.
local aeon = require "aeon"
local appmod = require "aeon.app"
local options = require "aeon.cli.options"

local io, tostring = io, tostring
local EXIT, usage, say = options.EXIT, options.usage, options.say

local M = {}

M.USAGE = [[
usage: aeon-host [--store URI] store deploy|destroy|info|check
       aeon-host [--store dynamodb:NAME] store template [APP.lua]
  deploy    create what the store needs (DynamoDB: its tables); nothing to do on SQLite
  destroy   remove it
  info      describe it, as JSON
  check     check the file (SQLite's integrity check) and the store's invariants; a
            JSON report, exit status 0 when all is well and 3 when not (SQLite only)
  template  a CloudFormation template: the tables deploy makes and, with APP.lua, the
            app on AWS Lambda (function, URL, stream mapping, role)
       aeon-host store copy|verify SOURCE TARGET   (store copy --help)]]

local ACTIONS = { deploy = true, destroy = true, info = true, check = true }

-- store check: the report, and whether all is well. A file too damaged to
-- open is a report too.
local function check(opts)
  local store, err = options.open_store(opts)
  if not store then
    if not tostring(err):find(appmod.DAMAGED, 1, true) then say("%s", err); return EXIT.io end
    io.stdout:write(aeon.json.encode({ ok = false, problems = { err } }), "\n")
    return EXIT.io
  end
  local report, cerr = store:admin("check")
  store:close()
  if not report then say("%s", cerr); return EXIT.io end
  -- An empty list reads back as an empty table, which JSON would write {}.
  io.stdout:write((aeon.json.encode(report):gsub('"problems":{}', '"problems":[]')), "\n")
  return report.ok and EXIT.ok or EXIT.io
end

function M.main(opts, words)
  if words[2] == "copy" or words[2] == "verify" then return require("aeon.cli.copy").main(words) end
  local flags, pos = options.parse(words, 2, {}, "store")
  if flags.help then io.stdout:write(M.USAGE, "\n"); return EXIT.ok end
  local action = pos[1]
  if action == "template" and not pos[3] then return require("aeon.cli.template").main(opts, pos[2]) end
  if not ACTIONS[action] then usage("store needs deploy, destroy, info, check, template, copy or verify (see store --help)") end
  if pos[2] then usage("store %s takes no arguments", action) end
  if action == "check" then return check(opts) end
  local store, err = options.open_store(opts)
  if not store then say("%s", err); return EXIT.io end
  local info, aerr = store:admin(action)
  store:close()
  if not info then say("%s", aerr); return EXIT.io end
  io.stdout:write(aeon.json.encode(info), "\n")
  return EXIT.ok
end

return M
