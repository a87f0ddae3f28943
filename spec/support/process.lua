--- Background aeon-host processes for specs: start one, signal it, wait
-- for it to exit and read what it printed.
--
--   local p = process.start({ "--store", uri, "apps/counter-cqrs.lua", "project" })
--   p:kill(9); p:wait(10) --> 137 (128 + the signal), or nil on timeout
--
-- A process runs under a small shell group that waits for it and writes
-- its exit status to a file: the specs never depend on who reaps it.
local helpers = require "helpers"
local core = require "aeon.core"

local M = {}

local Process = {}
Process.__index = Process

local slurp = helpers.slurp

--- Waits until fn() returns a true value, checking every `step` seconds
-- (default 0.05) for at most `timeout` seconds; returns that value or nil.
function M.wait_until(fn, timeout, step)
  local deadline = core.monotonic() + timeout
  repeat
    local v = fn()
    if v then return v end
    core.sleep(step or 0.05)
  until core.monotonic() > deadline
  return fn()
end

M.sleep = core.sleep

--- Starts aeon-host with `words`; opts.env: environment variables.
function M.start(words, opts)
  opts = opts or {}
  local dir = helpers.tmpdir()
  local line = ("{ %s >%s/out 2>%s/err </dev/null & echo $! >%s/pid.tmp; mv %s/pid.tmp %s/pid;"
    .. " wait $!; echo $? >%s/status.tmp; mv %s/status.tmp %s/status; } >/dev/null 2>&1 &"):format(
    helpers.host_command(words, opts.env), dir, dir, dir, dir, dir, dir, dir, dir)
  assert(os.execute(line))
  local pid = M.wait_until(function()
    local s = slurp(dir .. "/pid")
    return s and tonumber(s:match("%d+"))
  end, 10)
  assert(pid, "the background process did not start")
  return setmetatable({ dir = dir, pid = pid }, Process)
end

--- Sends a signal (a number or a name such as "TERM").
function Process:kill(signal)
  os.execute(("kill -%s %d 2>/dev/null"):format(tostring(signal or "TERM"), self.pid))
end

--- Waits up to `timeout` seconds for the exit; returns the exit status
-- (128 + N when killed by signal N), or nil if it is still running.
function Process:wait(timeout)
  local s = M.wait_until(function() return slurp(self.dir .. "/status") end, timeout or 30)
  return s and tonumber(s:match("%d+"))
end

function Process:stdout() return slurp(self.dir .. "/out") or "" end
function Process:stderr() return slurp(self.dir .. "/err") or "" end

--- Removes the process's files (after it has exited).
function Process:cleanup() os.execute("rm -rf " .. helpers.shell_quote(self.dir)) end

return M
