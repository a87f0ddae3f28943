--- aeon.cli.store: `aeon-host store deploy|destroy|info`, the store's own
-- administration (its tables on DynamoDB), answered as JSON.
local aeon = require "aeon"
local options = require "aeon.cli.options"

local io = io
local EXIT, usage, say = options.EXIT, options.usage, options.say

local M = {}

M.USAGE = [[
usage: aeon-host [--store URI] store deploy|destroy|info
  deploy    create what the store needs (DynamoDB: its tables); nothing to do on SQLite
  destroy   remove it
  info      describe it, as JSON]]

local ACTIONS = { deploy = true, destroy = true, info = true }

function M.main(opts, words)
  local flags, pos = options.parse(words, 2, {}, "store")
  if flags.help then io.stdout:write(M.USAGE, "\n"); return EXIT.ok end
  local action = pos[1]
  if not ACTIONS[action] then usage("store needs deploy, destroy or info (see store --help)") end
  if pos[2] then usage("store %s takes no arguments", action) end
  local store, err = options.open_store(opts)
  if not store then say("%s", err); return EXIT.io end
  local info, aerr = store:admin(action)
  store:close()
  if not info then say("%s", aerr); return EXIT.io end
  io.stdout:write(aeon.json.encode(info), "\n")
  return EXIT.ok
end

return M
