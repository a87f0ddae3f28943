--- bench/client.lua: one client of the command benchmark, run in a thread
-- of its own by bench.threads (bench/scenario.lua's `command`).
--
-- Client `index` opens its own store handle on DB and runs N increments of
-- the counter `bench-<index>` through the aggregate runner with the options
-- of apps/counter.lua (snapshot every 100 events, 30 retries): each
-- command loads the snapshot and the events after it, decides, and appends
-- one event with the expected revision, durably.
local index, db, n = ...
if os.getenv("BENCH_GC") then collectgarbage(os.getenv("BENCH_GC")) end
local aeon = require "aeon"
local counter = require "domain.counter"

local tostring, error = tostring, error

local OPTIONS = { retries = 30, snapshot_every = 100 } -- as apps/counter.lua

local store = assert(aeon.open("sqlite:" .. db))
local name = "bench-" .. index
local key, command = counter.key(name), counter.increment(name)
n = math.tointeger(tonumber(n))

-- The first command creates the key (and the file's schema, for the first
-- client); it is not timed.
assert(aeon.execute(store, counter, key, command, OPTIONS))

return function()
  for _ = 1, n do
    local r, err = aeon.execute(store, counter, key, command, OPTIONS)
    if not r then error(tostring(err)) end
  end
  store:close()
end
