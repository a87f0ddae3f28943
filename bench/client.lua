--- bench/client.lua: one client of the command benchmark, run in a thread
-- of its own by bench.threads (bench/scenario.lua's `command`).
--
-- Client `index` opens its own store handle on URI and runs N `increment`
-- commands of the flagship app, apps/counter.lua, on the counter
-- `bench-<index>`, as the host would for a request: app:call, the handler,
-- the aggregate runner with the app's options (kept state, a snapshot
-- every 100 events, 30 retries): load, decide, append one event with the
-- expected revision, durably.
local index, uri, n = ...
local aeon = require "aeon"

local error, tostring = error, tostring

local app = dofile("apps/counter.lua")
local store = assert(aeon.open(uri))
local ctx = { store = store, app = app }
local args = { name = "bench-" .. index }
n = math.tointeger(tonumber(n))

local function increment()
  local outcome, value = app:call("increment", ctx, args)
  if outcome ~= "ok" then error(outcome .. ": " .. tostring(value.message)) end
end

-- The first command creates the key; it is not timed.
increment()

return function()
  for _ = 1, n do increment() end
  store:close()
end
