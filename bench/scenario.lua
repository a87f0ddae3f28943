--- bench/scenario.lua: one measurement per process, for bench/run.lua.
--
--   aeon-bench bench/scenario.lua NAME ARGS...
--
-- prints `result <value>` (a rate per second, or KiB) and nothing else on
-- stdout. Each NAME is one figure or one limit of the table:
--
--   fsync DIR N                 4 KiB write + fdatasync, per second
--   command DB CLIENTS N        aggregate-runner commands per second, CLIENTS
--                               threads with a store handle each, N commands
--                               each; also `per_commit`, appends per commit
--   batch-lua DB APPENDS PER    events per second appended from Lua, PER
--                               events per append
--   batch-c DB APPENDS PER      the same through store.h
--   batch-raw DB APPENDS PER    the same rows inserted by raw SQLite
--   fixture DB N NKEYS          builds a fixture; events written per second
--   replay DB N                 events per second folding the 1-key fixture
--                               with aeon.load (read, Lua tables, evolve)
--   replay-limit N              the same fold fed with no store
--   replay-lua N                the same fold over tables built in Lua
--   readall DB N NKEYS          events per second folding store:read_all
--   readall-limit N NKEYS       the same loop fed with no store
--   readall-lua N NKEYS         the same loop over tables built in Lua
--   ddb-deploy|ddb-destroy NAME the DynamoDB store NAME (its endpoint, region
--                               and credentials from the environment)
--   ddb-ping NAME N             GetItem round trips per second: the emulator
--   ddb-command NAME N          commands per second, one client
--   ddb-batch NAME APPENDS PER  events per second, PER events per append
--   ddb-occ NAME N              OCC commands per second: a head, then an
--                               append of one event expecting it
--   ddb-fixture NAME N [PER]    writes N events on counter/replay, PER an
--                               append (default 50)
--   ddb-fill NAME N             writes N plain event items on counter/replay
--                               (BatchWriteItem; a fixture for reads only)
--   ddb-readall NAME N          events per second folding store:read_all
--                               over NAME's N events
--   ddb-counts NAME             the requests of each operation, once: prints
--                               `count <what> <operation> <n>` lines
--   ddb-replay NAME N           events per second folding them (aeon.load)
--   ddb-head NAME N             heads per second
--   ddb-raw NAME N PER          plain event items per second, PER a
--                               TransactWriteItems (store copy's limit)
--   copy-raw SRC DST PER        SRC's event rows inserted into a fresh DST by
--                               raw SQLite, PER a transaction, per second
--   file-raw SRC DST PER        SRC's lines written to DST, PER at a time,
--                               flushed, per second
local bench = require "bench"
local aeon = require "aeon"
local counter = require "domain.counter"

local name = arg[1]
local function int(i) return math.tointeger(tonumber(arg[i])) end
local function result(v) io.write(("result %.6g\n"):format(v)) end

-- The counter app's event data, encoded as the binding encodes it.
local DATA = aeon.json.encode({ type = "incremented", name = "batch" })

-- The same event tables a read hands out, but no store behind them: a
-- stand-in with the two methods aeon.load calls.
local function fake_store(n, nkeys)
  return {
    snapshot = function() return nil end,
    read = function() return bench.events(n, nkeys) end,
  }
end

local function replay(store, n)
  local t0 = bench.now()
  local value = assert(aeon.load(store, counter, "counter/replay"))
  local secs = bench.now() - t0
  assert(value == n, ("replayed %s events, expected %d"):format(tostring(value), n))
  result(n / secs)
end

-- Every key's counter, from the events of all keys in revision order.
local function fold_all(iter, s, c, n)
  local evolve, counts, seen = counter.evolve, {}, 0
  local t0 = bench.now()
  for event in iter, s, c do
    local key = event.key
    counts[key] = evolve(counts[key] or 0, event)
    seen = seen + 1
  end
  local secs = bench.now() - t0
  assert(seen == n, ("read %d events, expected %d"):format(seen, n))
  result(n / secs)
end

if name == "fsync" then
  local n = int(3)
  result(n / bench.fsync(arg[2], n))
elseif name == "command" then
  local clients, n = int(3), int(4)
  local warm = bench.warm(arg[2]) -- in scope, so alive, until the end
  -- A handle of this process's own keeps the file's commit group, and its
  -- counts, alive after the clients close theirs.
  local watcher <close> = assert(aeon.open("sqlite:" .. arg[2]))
  local secs = bench.threads(clients, "bench/client.lua", "sqlite:" .. arg[2], tostring(n))
  local g = watcher:admin("info").group_commit
  result(clients * n / secs)
  if g and g.commits > 0 then io.write(("per_commit %.6g\n"):format(g.appends / g.commits)) end
elseif name == "batch-lua" then
  local appends, per = int(3), int(4)
  local events = {}
  for i = 1, per do events[i] = { type = "incremented", data = { type = "incremented", name = "batch" } } end
  local db = arg[2]
  local warm = bench.warm(db) -- in scope, so alive, until the end
  local store <close> = assert(aeon.open("sqlite:" .. db))
  local t0 = bench.now()
  for a = 0, appends - 1 do
    assert(store:append("counter/batch-" .. a % 10, events))
  end
  result(appends * per / (bench.now() - t0))
elseif name == "batch-c" then
  local appends, per = int(3), int(4)
  result(appends * per / bench.store_batch(arg[2], appends, per, DATA))
elseif name == "batch-raw" then
  local appends, per = int(3), int(4)
  result(appends * per / bench.raw_batch(arg[2], appends, per, DATA))
elseif name == "copy-raw" then
  local secs, rows = bench.raw_copy(arg[2], arg[3], int(4))
  result(rows / secs)
elseif name == "file-raw" then
  local lines, per = {}, int(4)
  for l in io.lines(arg[2]) do lines[#lines + 1] = l .. "\n" end
  local out = assert(io.open(arg[3], "wb"))
  local t0 = bench.now()
  for first = 1, #lines, per do
    assert(out:write(table.concat(lines, "", first, math.min(#lines, first + per - 1))))
    assert(out:flush())
  end
  local secs = bench.now() - t0
  out:close()
  os.remove(arg[3])
  result(#lines / secs)
elseif name == "fixture" then
  local t0 = bench.now()
  bench.fixture(arg[2], int(3), int(4))
  result(int(3) / (bench.now() - t0))
elseif name == "replay" then
  local store <close> = assert(aeon.open("sqlite:" .. arg[2]))
  replay(store, int(3))
elseif name == "replay-limit" then
  local n = int(2)
  replay(fake_store(n, 1), n)
elseif name == "replay-lua" then
  -- The floor of any replay in this host: tables of the same shape built
  -- by Lua itself, revisions from a pool (no string made per event).
  local n = int(2)
  local revs, at = {}, "2026-11-26T20:29:24.016Z"
  for i = 1, 1000 do revs[i] = ("01KB0V3Q2M7Y8W1J5X9T4R%04d"):format(i) end
  local lua_store = {
    snapshot = function() return nil end,
    read = function()
      local i = 0
      return function()
        i = i + 1
        if i > n then return nil end
        return { key = "counter/replay", revision = revs[i % 1000 + 1], type = "incremented",
          data = { type = "incremented", name = "replay" }, committed_at = at }
      end
    end,
  }
  replay(lua_store, n)
elseif name == "readall" then
  local store <close> = assert(aeon.open("sqlite:" .. arg[2]))
  local iter, s, c = store:read_all()
  fold_all(iter, s, c, int(3))
elseif name == "readall-limit" then
  local iter, s, c = bench.events(int(2), int(3))
  fold_all(iter, s, c, int(2))
elseif name == "readall-lua" then
  -- The same loop over tables Lua builds, keys cycling as the fixture's
  -- do, key names and revisions from pools: read_all's floor.
  local n, nkeys = int(2), int(3)
  local keys, names, revs, at = {}, {}, {}, "2026-11-26T20:29:24.016Z"
  for k = 1, nkeys do names[k] = tostring(k - 1); keys[k] = "counter/" .. names[k] end
  for i = 1, 1000 do revs[i] = ("01KB0V3Q2M7Y8W1J5X9T4R%04d"):format(i) end
  local i = 0
  fold_all(function()
    i = i + 1
    if i > n then return nil end
    local k = (i - 1) % nkeys + 1
    return { key = keys[k], revision = revs[i % 1000 + 1], type = "incremented",
      data = { type = "incremented", name = names[k] }, committed_at = at }
  end, nil, nil, n)
-- DynamoDB (Local): the store is NAME, deployed by ddb-deploy. Besides
-- `result`, each prints `<operation> <requests per operation>` for every
-- DynamoDB operation it made, and `connections <n>` opened.
elseif name:match("^ddb%-") then
  local store_name = arg[2]
  local uri = "dynamodb:" .. store_name
  local before = bench.http_counts()
  local ops = 1
  if name == "ddb-deploy" then
    local store <close> = assert(aeon.open(uri))
    assert(store:admin("deploy"))
    result(1)
  elseif name == "ddb-destroy" then
    local store <close> = assert(aeon.open(uri))
    assert(store:admin("destroy"))
    result(1)
  elseif name == "ddb-ping" then
    -- The emulator's limit: consistent GetItems, one at a time.
    local n = int(3)
    ops = n
    result(n / bench.ddb_ping(store_name .. "-metadata", n))
  elseif name == "ddb-command" then
    local n = int(3)
    ops = n + 1 -- the client's untimed first command is counted too
    result(n / bench.threads(1, "bench/client.lua", uri, tostring(n)))
  elseif name == "ddb-batch" then
    local appends, per = int(3), int(4)
    local events = {}
    for i = 1, per do events[i] = { type = "incremented", data = { type = "incremented", name = "batch" } } end
    local store <close> = assert(aeon.open(uri))
    ops = appends
    local t0 = bench.now()
    for a = 0, appends - 1 do assert(store:append("counter/batch-" .. a % 10, events)) end
    result(appends * per / (bench.now() - t0))
  elseif name == "ddb-occ" then
    -- The least an OCC command does: read the head, append expecting it.
    local n = int(3)
    local store <close> = assert(aeon.open(uri))
    local event = { { type = "incremented", data = { type = "incremented", name = "occ" } } }
    ops = n
    local t0 = bench.now()
    for _ = 1, n do
      local head = assert(store:head("counter/occ"))
      local r = assert(store:append("counter/occ", event, { expected_revision = head }))
      assert(r.type == "appended", r.type)
    end
    result(n / (bench.now() - t0))
  elseif name == "ddb-counts" then
    -- Each step's requests, by operation, on a fresh key: what a command
    -- costs in round trips, cached (the kept state of opts.cache) and not.
    local store <close> = assert(aeon.open(uri))
    local key = ("counter/counts-%d"):format(math.random(1e9))
    local cmd = counter.increment(key:sub(#"counter/" + 1))
    local function step(what, fn)
      local b = bench.http_counts()
      fn()
      for op, count in pairs(bench.http_counts()) do
        local d = count - (b[op] or 0)
        if op ~= "connections" and d > 0 then io.write(("count %s %s %d\n"):format(what, op, d)) end
      end
    end
    local agg = require "aeon.aggregate"
    local cached = { snapshot_every = 100, cache = true }
    step("runner-new-key", function() assert(agg.execute(store, counter, key, cmd, cached)) end)
    step("runner-cached", function() assert(agg.execute(store, counter, key, cmd, cached)) end)
    step("runner-uncached", function() assert(agg.execute(store, counter, key, cmd, { snapshot_every = 100 })) end)
    step("runner-no-snapshots", function() assert(agg.execute(store, counter, key, cmd)) end)
    step("head", function() assert(store:head(key)) end)
    local head = assert(store:head(key))
    step("save-snapshot", function() assert(store:save_snapshot(key, head, 3)) end)
    step("snapshot", function() assert(store:snapshot(key)) end)
    step("occ", function()
      local head = assert(store:head(key))
      assert(store:append(key, { counter.incremented(key:sub(9)) }, { expected_revision = head }))
    end)
    step("read-key", function() for _ in store:read(key) do end end)
    result(1)
  elseif name == "ddb-readall" then
    local store <close> = assert(aeon.open(uri))
    local iter, s, c = store:read_all()
    fold_all(iter, s, c, int(3))
  elseif name == "ddb-fixture" then
    -- N events on counter/replay, in appends of PER (the backend's
    -- transactions hold 100 items, 3 of them its own), as the counter app
    -- writes them.
    local n, per = int(3), int(4) or 50
    local store <close> = assert(aeon.open(uri))
    local t0 = bench.now()
    for first = 1, n, per do
      local events = {}
      for i = first, math.min(n, first + per - 1) do
        events[#events + 1] = { type = "incremented", data = { type = "incremented", name = "replay" } }
      end
      assert(store:append("counter/replay", events))
    end
    result(n / (bench.now() - t0))
  elseif name == "ddb-replay" then
    local store <close> = assert(aeon.open(uri))
    replay(store, int(3))
  elseif name == "ddb-fill" then
    -- N event items on counter/replay, written as plain items: a fixture
    -- for the read rows only.
    local n = int(3)
    result(n / bench.ddb_fill(store_name, "counter/replay", n))
  elseif name == "ddb-raw" then
    local n, per = int(3), int(4)
    ops = math.ceil(n / per)
    result(n / bench.ddb_raw(store_name, n, per))
  elseif name == "ddb-head" then
    local n = int(3)
    local store <close> = assert(aeon.open(uri))
    ops = n
    local t0 = bench.now()
    for _ = 1, n do assert(store:head("counter/replay")) end
    result(n / (bench.now() - t0))
  else
    error("unknown scenario " .. tostring(name))
  end
  local after = bench.http_counts()
  for op, count in pairs(after) do
    local d = count - (before[op] or 0)
    if op == "connections" then
      io.write(("connections %d\n"):format(d))
    elseif d > 0 then
      io.write(("%s %.6g\n"):format(op, d / ops))
    end
  end
else
  error("unknown scenario " .. tostring(name))
end
