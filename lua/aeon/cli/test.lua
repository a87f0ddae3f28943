--- aeon.cli.test: `aeon-host test [DIR] [BUSTED OPTIONS...]` runs an app's
-- specs (DIR/spec/*_spec.lua, DIR default the current directory).
--
-- busted runs inside aeon-host itself, so the specs run on Lua 5.4 with the
-- aeon library and aeon.core (linked into the host) found, from whatever
-- directory, with nothing to set up; DIR and DIR/spec are on package.path
-- (`require "domain.x"` finds DIR/domain/x.lua). busted's `lua` setting
-- (which would start another interpreter without aeon.core) is ignored. The
-- output ends with the plain line "N passed, N failed" (errors count as
-- failed). Exit status: 0 when all passed, 1 otherwise, 2 a usage error,
-- 3 busted missing.
local io, os, ipairs, pcall, tostring = io, os, ipairs, pcall, tostring

local M = {}

local function absolute(dir)
  local p = io.popen("cd '" .. dir:gsub("'", "'\\''") .. "' 2>/dev/null && pwd")
  local abs = p:read("l")
  p:close()
  return abs
end

local function run(args, usage)
  local dir, extra = nil, {}
  for i = 2, #args do
    local a = args[i]
    if a == "--help" or a == "-h" then
      io.stdout:write("usage: aeon-host test [DIR] [BUSTED OPTIONS...]\n",
        "  runs DIR/spec/*_spec.lua (DIR default .) with busted on Lua 5.4, the aeon\n",
        "  library on the path; ends with \"N passed, N failed\"\n")
      return 0
    elseif a:sub(1, 1) == "-" or dir then
      extra[#extra + 1] = a
    else
      dir = a
    end
  end
  local abs = absolute(dir or ".")
  if not abs then usage("test: no directory %s", dir) end
  local f = io.open(abs .. "/spec")
  if not f then usage("test: %s has no spec folder (aeon-host new DIR makes an app with one)", abs) end
  f:close()

  local ok, err = pcall(require, "busted.runner")
  if not ok then
    io.stderr:write("aeon-host: test needs busted for Lua 5.4 (apt-get install lua-busted): ",
      tostring(err):match("^[^\n]*"), "\n")
    return 3
  end
  package.path = abs .. "/?.lua;" .. abs .. "/?/init.lua;" .. abs .. "/spec/?.lua;" .. package.path
  local argv = { [0] = "aeon-host test", "--directory=" .. abs, "--ignore-lua",
    "--output=aeon.cli.test_output" }
  for _, a in ipairs(extra) do argv[#argv + 1] = a end
  _G.arg = argv
  -- Runs every spec; on failures busted exits the process itself, with 1.
  require("busted.runner")({ standalone = false })
  return 0
end

--- The subcommand's entry, as aeon.cli calls it: words[1] is "test".
function M.main(_, words) return run(words, require("aeon.cli.options").usage) end

return M
