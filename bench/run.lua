--- bench/run.lua: `make bench` -- measures the host against the limits of
-- this machine, in the same run, and prints one table.
--
--   lua5.4 bench/run.lua BUILD_DIR       (from the repository root)
--
-- Every figure runs ROUNDS times (default 5, $BENCH_ROUNDS), its limit
-- right before and right after it, so that a busy neighbour slows both; the
-- table shows the medians of the figures, of the limits and of the rounds'
-- ratios (figure / mean of its two limits). Each measurement is a process
-- of its own (BUILD_DIR/aeon-bench bench/scenario.lua ...; the memory row
-- runs BUILD_DIR/aeon-host). Databases live in a temporary directory under
-- BUILD_DIR, on the repository's disk, and are removed at the end.
-- The DynamoDB rows run against DynamoDB Local, started for the run with
-- scripts/dynamodb-local.sh and stopped after it ($BENCH_DYNAMODB=0 skips
-- them); the HTTP rows run bench/http.sh (wrk; $BENCH_HTTP=0 skips them).
-- Progress goes to stderr, the table to stdout.
local build = arg[1] or "build/bench"
local function env_int(name, default)
  return math.tointeger(tonumber(os.getenv(name) or "")) or default
end
local ROUNDS = env_int("BENCH_ROUNDS", 5)
local EVENTS = env_int("BENCH_EVENTS", 1000000)
local KEYS = 10000

-- Sizes of one round of each measurement: a second or so each on this
-- machine, long enough to dwarf process start-up.
local FSYNCS = 500          -- 4 KiB writes + fdatasync, three times a round
local COMMANDS_1 = 600      -- commands by the single client
local CLIENTS = 16
local COMMANDS_16 = 150     -- commands by each of the 16 clients
local APPENDS, PER = 100, 100
-- DynamoDB Local answers in milliseconds, not microseconds.
local DDB_PINGS, DDB_HEADS, DDB_COMMANDS = 100, 100, 50
local DDB_APPENDS, DDB_PER = 10, 50 -- a transaction holds 100 items
local DDB_EVENTS = 5000             -- replayed: one page (DynamoDB's 1 MB)
-- Through a loopback proxy that holds every request DDB_RTT_MS (the
-- network's round trip; spec/support/faultproxy.c): the commands and
-- appends of these sizes, and a replay and a read_all of DDB_BIG events
-- (one key, in a store of their own), beside the same without the proxy.
local DDB_RTT_MS = 5
local DDB_BIG = env_int("BENCH_DDB_EVENTS", 50000)
local DDB_OCC, DDB_RUNNER = 30, 30
local DDB_PROXY_APPENDS, DDB_PROXY_PER = 10, 25
-- store copy: the events of the rate rows (on 1,000 keys; DynamoDB Local's
-- on 10), the rows a SQLite transaction and an export write take (the
-- copy's batch), and DynamoDB's items a transaction.
local COPY_EVENTS, COPY_KEYS, COPY_PER = 100000, 1000, 1000
local DDB_COPY_EVENTS, DDB_COPY_KEYS, DDB_COPY_PER = 1000, 10, 100
-- bench/http.sh: seconds of wrk per run, and the server's workers and
-- wrk's connections of the two configurations measured.
local HTTP_SECONDS = 5
local HTTP_RUNS = { { workers = 4, connections = 32 }, { workers = 16, connections = 64 } }

local function say(fmt, ...) io.stderr:write(fmt:format(...), "\n") end

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  if not ok then error("failed: " .. cmd .. "\n" .. out, 0) end
  return out
end

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local tmp = sh("mktemp -d " .. quote(build .. "/tmp.XXXXXX")):gsub("%s+$", "")
local function path(name) return tmp .. "/" .. name end

-- Environment settings put before every command (DynamoDB Local's).
local env_prefix = ""

-- The library aeon-host run from build/bench loads: this tree's (it would
-- look in build/lua; aeon.cli is lua/aeon/cli/init.lua).
local HOST_ENV = "AEON_LUA_PATH='lua/?.lua;lua/?/init.lua' "

-- Runs one measurement; returns its result and a table of every
-- `name value` line it printed.
local function scenario(...)
  local words = { env_prefix .. build .. "/aeon-bench", "bench/scenario.lua" }
  for _, w in ipairs({ ... }) do words[#words + 1] = quote(tostring(w)) end
  local out = sh(table.concat(words, " "))
  local lines = {}
  for name, v in out:gmatch("(%w[%w_]*) ([%d.e+-]+)\n") do lines[name] = tonumber(v) end
  lines.counts = {}
  for what, op, n in out:gmatch("count (%S+) (%S+) (%d+)\n") do
    table.insert(lines.counts, { what = what, op = op, n = tonumber(n) })
  end
  if not lines.result then error("no result from " .. table.concat(words, " ") .. ":\n" .. out, 0) end
  return lines.result, lines
end

local function rss()
  -- build/bench/aeon-host would look for the library in build/lua.
  local out = sh(("%s%s/aeon-host bench/rss.lua %s %d"):format(HOST_ENV, build,
    quote(path("replay.db")), EVENTS))
  local idle, peak = out:match("idle (%d+)"), out:match("peak (%d+)")
  if not idle or not peak then error("no memory figures from bench/rss.lua:\n" .. out, 0) end
  return tonumber(idle), tonumber(peak)
end

-- `aeon-host store copy SOURCE TARGET`: the events per second it reports.
local function copy(source, target)
  local out = sh(("%s%s%s/aeon-host store copy %s %s"):format(env_prefix, HOST_ENV, build,
    quote(source), quote(target)))
  local rate = out:match('"events_per_second":(%d+)')
  if not rate then error("no rate from store copy:\n" .. out, 0) end
  return tonumber(rate)
end

-- Peak RSS of one copy (bench/rss.lua copy), as idle and peak KiB.
local function copy_rss(source, target)
  local out = sh(("%s%s/aeon-host bench/rss.lua copy %s %s"):format(HOST_ENV, build, quote(source),
    quote(target)))
  local idle, peak = out:match("idle (%d+)"), out:match("peak (%d+)")
  if not idle or not peak then error("no memory figures from bench/rss.lua copy:\n" .. out, 0) end
  return tonumber(idle), tonumber(peak)
end

local function remove_db(file)
  for _, suffix in ipairs({ "", "-wal", "-shm" }) do os.remove(file .. suffix) end
end

local function median(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = v end
  table.sort(s)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

-- Samples of each figure, and of the ratio to its limit. A limit is taken
-- right before and right after its figure, and the figure is compared
-- with their mean, so that the ratio of one round holds even when the
-- machine's load changes from one round to the next.
local samples = setmetatable({}, { __index = function(t, k) t[k] = {}; return t[k] end })
local function sample(name, v) table.insert(samples[name], v) end
local function pair(name, limit_name, figure, before, after)
  local limit = (before + after) / 2
  sample(name, figure)
  sample(limit_name, limit)
  sample(name .. "/ratio", figure / limit)
end

local function have(file)
  local f = io.open(file)
  if f then f:close() end
  return f ~= nil
end

-- ------------------------------------------------------------------
-- The embedded store

local function embedded_round()
  local f1 = scenario("fsync", tmp, FSYNCS)
  local c1 = scenario("command", path("cmd1.db"), 1, COMMANDS_1)
  local f2 = scenario("fsync", tmp, FSYNCS)
  local c16, more = scenario("command", path("cmd16.db"), CLIENTS, COMMANDS_16)
  local f3 = scenario("fsync", tmp, FSYNCS)
  pair("command1", "fsync1", c1, f1, f2)
  pair("command16", "fsync16", c16, f2, f3)
  if more.per_commit then sample("per_commit", more.per_commit) end

  local r1 = scenario("batch-raw", path("raw.db"), APPENDS, PER)
  local bl = scenario("batch-lua", path("batch.db"), APPENDS, PER)
  local bc = scenario("batch-c", path("batch.db"), APPENDS, PER)
  local r2 = scenario("batch-raw", path("raw.db"), APPENDS, PER)
  pair("batch_lua", "raw_lua", bl, r1, r2)
  pair("batch_c", "raw_c", bc, r1, r2)

  -- Replay and read_all beside their floor, the same fold over tables
  -- Lua builds with no store, and the C-built tables with no store.
  local l1 = scenario("replay-lua", EVENTS)
  local rp = scenario("replay", path("replay.db"), EVENTS)
  local l2 = scenario("replay-lua", EVENTS)
  pair("replay", "replay_lua", rp, l1, l2)
  sample("replay_limit", scenario("replay-limit", EVENTS))

  local a1 = scenario("readall-lua", EVENTS, KEYS)
  local ra = scenario("readall", path("all.db"), EVENTS, KEYS)
  local a2 = scenario("readall-lua", EVENTS, KEYS)
  pair("readall", "readall_lua", ra, a1, a2)
  sample("readall_limit", scenario("readall-limit", EVENTS, KEYS))

  local idle, peak = rss()
  sample("idle", idle)
  sample("growth", peak - idle)
  for _, f in ipairs({ "cmd1.db", "cmd16.db", "raw.db", "batch.db" }) do
    for _, suffix in ipairs({ "", "-wal", "-shm" }) do os.remove(path(f .. suffix)) end
  end
end

-- store copy into SQLite and into an export file, each beside the
-- target's raw write of the same rows or lines.
local function copy_round()
  local r1 = scenario("copy-raw", path("copy.db"), path("raw-copy.db"), COPY_PER)
  remove_db(path("copied.db"))
  local c = copy("sqlite:" .. path("copy.db"), "sqlite:" .. path("copied.db"))
  local r2 = scenario("copy-raw", path("copy.db"), path("raw-copy.db"), COPY_PER)
  pair("copy_sqlite", "copy_sqlite_raw", c, r1, r2)
  remove_db(path("copied.db"))
  remove_db(path("raw-copy.db"))

  local f1 = scenario("file-raw", path("lines.ndjson"), path("raw.ndjson"), COPY_PER)
  os.remove(path("copied.ndjson"))
  c = copy("sqlite:" .. path("copy.db"), "ndjson:" .. path("copied.ndjson"))
  local f2 = scenario("file-raw", path("lines.ndjson"), path("raw.ndjson"), COPY_PER)
  pair("copy_ndjson", "copy_ndjson_raw", c, f1, f2)
  os.remove(path("copied.ndjson"))
end

-- ------------------------------------------------------------------
-- DynamoDB Local

local ddb = { skipped = nil, name = nil, requests = {} }

-- Starts the emulator; returns nil and why not when it cannot.
local function ddb_start()
  if os.getenv("BENCH_DYNAMODB") == "0" then return nil, "BENCH_DYNAMODB=0" end
  local backends = io.open("store/open.c"):read("a")
  if not backends:find("store_dynamodb_ops", 1, true) then
    return nil, "the DynamoDB backend is not in this tree"
  end
  local p = assert(io.popen(("AEON_DDB_STATE=%s sh scripts/dynamodb-local.sh start 2>&1")
    :format(quote(path("ddb.run")))))
  local out = p:read("a")
  if not p:close() then return nil, (out:match("[^\n]*%S[^\n]*$") or "DynamoDB Local did not start") end
  local words = {}
  for name, value in out:gmatch("export ([%w_]+)=(%S+)") do
    if name ~= "AEON_DDB_LOCAL_PID" then words[#words + 1] = name .. "=" .. quote(value) end
  end
  env_prefix = table.concat(words, " ") .. " "
  return true
end

-- Starts the delaying proxy in front of the emulator; sets ddb.proxy_env,
-- the environment that sends the backend through it.
local function proxy_start()
  local port = env_prefix:match("AWS_ENDPOINT_URL='http://127%.0%.0%.1:(%d+)'")
  if not port then error("no DynamoDB Local port in: " .. env_prefix, 0) end
  local out = path("proxy.out")
  ddb.proxy_pid = sh(("%s/support/faultproxy 0 %s 0 1 %d >%s 2>&1 & echo $!"):format(build, port,
    DDB_RTT_MS, quote(out))):match("%d+")
  local listening
  for _ = 1, 200 do
    local f = io.open(out)
    listening = f and f:read("a"):match("listening (%d+)")
    if f then f:close() end
    if listening then break end
    os.execute("sleep 0.05")
  end
  if not listening then error("the delaying proxy did not start", 0) end
  local url = quote("http://127.0.0.1:" .. listening)
  ddb.proxy_env = env_prefix:gsub("(AWS_ENDPOINT_URL[%w_]*)='[^']*'", "%1=" .. url:gsub("%%", "%%%%"))
end

local function ddb_stop()
  if ddb.proxy_pid then os.execute("kill " .. ddb.proxy_pid .. " 2>/dev/null") end
  sh(("AEON_DDB_STATE=%s sh scripts/dynamodb-local.sh stop"):format(quote(path("ddb.run"))))
end

-- A scenario through the delaying proxy.
local function proxied(...)
  local saved = env_prefix
  env_prefix = ddb.proxy_env
  local ok, res, lines = pcall(scenario, ...)
  env_prefix = saved
  if not ok then error(res, 0) end
  return res, lines
end

-- Requests of one kind, in all, of a scenario's answer (per operation x
-- operations).
local function total(lines, ops)
  local n = 0
  for op, v in pairs(lines) do
    if op:match("^%u") then n = n + v * ops end
  end
  return n
end

-- Requests per operation of one scenario's answer, as "Query 1.00, ...".
local function requests(lines)
  local parts = {}
  for op, v in pairs(lines) do
    if op:match("^%u") then parts[#parts + 1] = ("%s %.2f"):format(op, v) end
  end
  table.sort(parts)
  return table.concat(parts, ", "), lines.connections
end

local function ddb_round()
  local name = ddb.name
  local p1 = scenario("ddb-ping", name, DDB_PINGS)
  local _, cmd = scenario("ddb-command", name, DDB_COMMANDS)
  local p2 = scenario("ddb-ping", name, DDB_PINGS)
  local _, head = scenario("ddb-head", name, DDB_HEADS)
  local _, batch = scenario("ddb-batch", name, DDB_APPENDS, DDB_PER)
  local _, rp = scenario("ddb-replay", name, DDB_EVENTS)
  local p3 = scenario("ddb-ping", name, DDB_PINGS)
  -- store copy into a new store each round, beside plain event items
  -- written into the bench's own events table.
  local w1 = scenario("ddb-raw", name, DDB_COPY_EVENTS, DDB_COPY_PER)
  ddb.round = (ddb.round or 0) + 1
  local target = ("%s-copy%d"):format(name, ddb.round)
  local c = copy("sqlite:" .. path("copy-ddb.db"), "dynamodb:" .. target)
  local w2 = scenario("ddb-raw", name, DDB_COPY_EVENTS, DDB_COPY_PER)
  pair("copy_ddb", "copy_ddb_raw", c, w1, w2)
  scenario("ddb-destroy", target)
  pair("ddb_command", "ddb_ping_c", cmd.result, p1, p2)
  pair("ddb_head", "ddb_ping_h", head.result, p2, p3)
  sample("ddb_batch", batch.result)
  sample("ddb_replay", rp.result)
  ddb.requests = { command = cmd, head = head, batch = batch, replay = rp }

  -- Through the proxy: each figure as milliseconds per operation beside
  -- its lower bound, the requests it made times the round trip measured
  -- right before and after it (a GetItem through the proxy).
  local big = name .. "-big"
  local function bound(what, lines, ops, per_op, rt1, rt2)
    local rt = 2000 / (rt1 + rt2) -- ms per round trip
    local ms = 1000 / lines.result * per_op
    local lower = total(lines, ops) / ops * rt * per_op
    sample(what, ms)
    sample(what .. "_bound", lower)
    sample(what .. "/ratio", ms / lower)
    sample(what .. "_rt", rt)
  end
  local t1 = proxied("ddb-ping", name, DDB_PINGS // 2)
  local _, occ = proxied("ddb-occ", name, DDB_OCC)
  local t2 = proxied("ddb-ping", name, DDB_PINGS // 2)
  local _, runner = proxied("ddb-command", name, DDB_RUNNER)
  local t3 = proxied("ddb-ping", name, DDB_PINGS // 2)
  local _, pbatch = proxied("ddb-batch", name, DDB_PROXY_APPENDS, DDB_PROXY_PER)
  local t4 = proxied("ddb-ping", name, DDB_PINGS // 2)
  local _, preplay = proxied("ddb-replay", big, DDB_BIG)
  local t5 = proxied("ddb-ping", name, DDB_PINGS // 2)
  local _, pall = proxied("ddb-readall", big, DDB_BIG)
  local t6 = proxied("ddb-ping", name, DDB_PINGS // 2)
  bound("p_occ", occ, DDB_OCC, 1, t1, t2)
  bound("p_runner", runner, DDB_RUNNER + 1, 1, t2, t3)
  bound("p_batch", pbatch, DDB_PROXY_APPENDS, DDB_PROXY_PER, t3, t4)
  bound("p_replay", preplay, 1, DDB_BIG, t4, t5)
  bound("p_readall", pall, 1, DDB_BIG, t5, t6)
  -- The same replay and read_all straight to the emulator, right after.
  local _, dreplay = scenario("ddb-replay", big, DDB_BIG)
  local _, dall = scenario("ddb-readall", big, DDB_BIG)
  sample("d_replay", 1000 / dreplay.result * DDB_BIG)
  sample("d_readall", 1000 / dall.result * DDB_BIG)
  sample("p_replay/added", dreplay.result / preplay.result)
  sample("p_readall/added", dall.result / pall.result)
  ddb.proxied = { occ = occ, runner = runner, batch = pbatch, replay = preplay, readall = pall }
end

-- ------------------------------------------------------------------
-- HTTP: bench/http.sh (wrk against aeon-host serve)

local http = { skipped = nil }

local function http_check()
  if os.getenv("BENCH_HTTP") == "0" then return nil, "BENCH_HTTP=0" end
  if not have("bench/http.sh") then return nil, "bench/http.sh is not in this tree" end
  if os.execute("command -v wrk >/dev/null 2>&1") ~= true then return nil, "wrk is not installed" end
  return true
end

-- Requests per second and p99 in ms of one bench/http.sh run.
local function http_run(workers, connections)
  local db = path("http.db")
  local out = sh(("%sAEON_HOST=%s AEON_BENCH_SECONDS=%d "
    .. "AEON_BENCH_WORKERS=%d AEON_BENCH_CONNECTIONS=%d AEON_BENCH_STORE=%s sh bench/http.sh")
    :format(HOST_ENV, quote(build .. "/aeon-host"), HTTP_SECONDS, workers, connections, quote("sqlite:" .. db)))
  for _, suffix in ipairs({ "", "-wal", "-shm" }) do os.remove(db .. suffix) end
  local rate, p99 = out:match("requests/s: ([%d.]+)"), out:match("p99 ([%d.]+) ms")
  local failed = tonumber(out:match("non%-2xx or failed: (%d+)") or "0")
  if not rate or not p99 then error("no figures from bench/http.sh:\n" .. out, 0) end
  if failed > 0 then error(("bench/http.sh: %d requests failed:\n%s"):format(failed, out), 0) end
  return tonumber(rate), tonumber(p99)
end

local function http_round()
  local f = scenario("fsync", tmp, FSYNCS)
  for i, run in ipairs(HTTP_RUNS) do
    local rate, p99 = http_run(run.workers, run.connections)
    local f2 = scenario("fsync", tmp, FSYNCS)
    pair("http" .. i, "http_fsync" .. i, rate, f, f2)
    sample("http_p99_" .. i, p99)
    f = f2
  end
end

-- ------------------------------------------------------------------
-- The run

local ok, err = pcall(function()
  local t0 = os.time()
  say("bench: building fixtures (%d events on 1 key, %d events on %d keys) in %s", EVENTS, EVENTS,
    KEYS, tmp)
  scenario("fixture", path("replay.db"), EVENTS, 1)
  scenario("fixture", path("all.db"), EVENTS, KEYS)

  say("bench: store copy fixtures (%d events on %d keys, %d on %d)", COPY_EVENTS, COPY_KEYS,
    DDB_COPY_EVENTS, DDB_COPY_KEYS)
  scenario("fixture", path("copy.db"), COPY_EVENTS, COPY_KEYS)
  scenario("fixture", path("copy-ddb.db"), DDB_COPY_EVENTS, DDB_COPY_KEYS)
  copy("sqlite:" .. path("copy.db"), "ndjson:" .. path("lines.ndjson"))
  -- Memory: a copy of the 1,000,000 events beside one of 100,000, into
  -- export files (the copy's own memory; SQLite's page cache is its own).
  local idle, peak = copy_rss("sqlite:" .. path("all.db"), "ndjson:" .. path("rss.ndjson"))
  os.remove(path("rss.ndjson"))
  sample("copy_idle", idle)
  sample("copy_growth", peak - idle)
  idle, peak = copy_rss("sqlite:" .. path("copy.db"), "ndjson:" .. path("rss.ndjson"))
  os.remove(path("rss.ndjson"))
  sample("copy_growth_small", peak - idle)

  local started, why = ddb_start()
  if started then
    ddb.name = ("bench-%d-%d"):format(os.time(), math.random(1e6))
    say("bench: DynamoDB Local: deploying %s, writing %d events", ddb.name, DDB_EVENTS)
    scenario("ddb-deploy", ddb.name)
    scenario("ddb-fixture", ddb.name, DDB_EVENTS)
    say("bench: DynamoDB Local: deploying %s-big, writing %d events", ddb.name, DDB_BIG)
    scenario("ddb-deploy", ddb.name .. "-big")
    scenario("ddb-fill", ddb.name .. "-big", DDB_BIG)
    proxy_start()
    local _, lines = scenario("ddb-counts", ddb.name)
    ddb.counts = lines.counts
  else
    ddb.skipped = why
    env_prefix = ""
  end
  local ddb_env = env_prefix
  local http_ok
  http_ok, http.skipped = http_check()

  for round = 1, ROUNDS do
    say("bench: round %d of %d", round, ROUNDS)
    env_prefix = ""
    embedded_round()
    copy_round()
    if http_ok then http_round() end
    if started then
      env_prefix = ddb_env
      ddb_round()
    end
  end
  if started then
    env_prefix = ddb_env
    scenario("ddb-destroy", ddb.name)
    scenario("ddb-destroy", ddb.name .. "-big")
  end
  say("bench: done in %d s", os.time() - t0)
end)
if env_prefix ~= "" or have(path("ddb.run")) then pcall(ddb_stop) end
sh("rm -rf " .. quote(tmp))
if not ok then
  io.stderr:write("bench: ", tostring(err), "\n")
  os.exit(1)
end

-- ------------------------------------------------------------------
-- The table

local M = {}
for name, list in pairs(samples) do M[name] = median(list) end

local function num(v)
  local s = ("%.0f"):format(v)
  local out = s:reverse():gsub("(%d%d%d)", "%1,"):reverse()
  return (out:gsub("^,", ""))
end

local function mib(kib) return ("%.1f MiB"):format(kib / 1024) end

local rows = {}
local function row(id, figure, measured, limit, ratio, goal, met)
  rows[#rows + 1] = { id, figure, measured, limit, ratio and ("%.2f"):format(ratio) or "",
    goal, met == nil and "" or (met and "yes" or "NO") }
end
local function note(id, figure, text) rows[#rows + 1] = { id, figure, text } end

local r = function(name) return M[name .. "/ratio"] end
row("1", "command, 1 client, 1 key", num(M.command1) .. " cmd/s", num(M.fsync1) .. " fdatasync/s",
  r "command1", ">= 0.7", r "command1" >= 0.7)
row("2", ("command, %d clients, %d keys"):format(CLIENTS, CLIENTS), num(M.command16) .. " cmd/s",
  num(M.fsync16) .. " fdatasync/s", r "command16", ">= 3", r "command16" >= 3)
if M.per_commit then
  row("2g", "  appends per commit (group commit)", ("%.1f"):format(M.per_commit), "", nil, "", nil)
end
row("3", ("batched append, %d events/append (Lua)"):format(PER), num(M.batch_lua) .. " events/s",
  "raw SQLite " .. num(M.raw_lua) .. " rows/s", r "batch_lua", ">= 0.75", r "batch_lua" >= 0.75)
row("3c", "  the same through store.h (C)", num(M.batch_c) .. " events/s",
  "raw SQLite " .. num(M.raw_c) .. " rows/s", r "batch_c", "", nil)
row("4", ("replay %s events, 1 key (aeon.load)"):format(num(EVENTS)), num(M.replay) .. " events/s",
  "Lua tables " .. num(M.replay_lua) .. " events/s", r "replay", ">= 0.5, >= 1.5M/s",
  r "replay" >= 0.5 and M.replay >= 1.5e6)
row("4C", "  the same fold, C-built tables, no store", num(M.replay_limit) .. " events/s", "", nil, "", nil)
row("5", ("read_all %s events, %s keys"):format(num(EVENTS), num(KEYS)), num(M.readall) .. " events/s",
  "Lua tables " .. num(M.readall_lua) .. " events/s", r "readall", ">= 0.5, >= 1.5M/s",
  r "readall" >= 0.5 and M.readall >= 1.5e6)
row("5C", "  the same loop, C-built tables, no store", num(M.readall_limit) .. " events/s", "", nil, "", nil)
row("6", ("peak RSS growth, replaying %s"):format(num(EVENTS)), mib(M.growth),
  "idle host " .. mib(M.idle), nil, "< 16 MiB", M.growth < 16 * 1024)

if ddb.skipped then
  note("7", "DynamoDB Local", "not measured: " .. ddb.skipped)
else
  local q = ddb.requests
  local function per(lines, op) return lines[op] or 0 end
  local creq = requests(q.command)
  row("7a", "DynamoDB Local: command, 1 client", num(M.ddb_command) .. " cmd/s",
    num(M.ddb_ping_c) .. " GetItem/s", r "ddb_command", "", nil)
  row("", "  requests per command", creq, "", nil, "1 read + 1 write",
    per(q.command, "TransactWriteItems") <= 1.001 and
    per(q.command, "Query") + per(q.command, "GetItem") <= 1.05)
  row("7b", "  head", num(M.ddb_head) .. " heads/s", num(M.ddb_ping_h) .. " GetItem/s", r "ddb_head",
    "1 GetItem", per(q.head, "GetItem") == 1)
  row("", "  requests per head", (requests(q.head)), "", nil, "", nil)
  row("7c", ("  batched append, %d events/append"):format(DDB_PER), num(M.ddb_batch) .. " events/s",
    "", nil, "1 TransactWriteItems", per(q.batch, "TransactWriteItems") == 1)
  row("7d", ("  replay %s events (aeon.load)"):format(num(DDB_EVENTS)), num(M.ddb_replay) .. " events/s",
    "", nil, "1 Query",
    per(q.replay, "Query") <= 1)
  row("", "  requests per replay", (requests(q.replay)), "", nil, "", nil)
  local conns = {}
  for _, k in ipairs({ "command", "head", "batch", "replay" }) do conns[#conns + 1] = q[k].connections end
  local most = math.max(table.unpack(conns))
  row("7e", "  connections per process (1 handle)", tostring(most), "", nil, "1, kept alive", most == 1)

  local p = ddb.proxied
  local function ms(v) return v >= 100 and ("%s ms"):format(num(v)) or ("%.1f ms"):format(v) end
  local function via(id, figure, name, lines, ops)
    local reqs = total(lines, ops) / ops
    row(id, figure, ms(M[name]), ("%s = %.2f req x %.2f ms"):format(ms(M[name .. "_bound"]), reqs,
      M[name .. "_rt"]), r(name), "", nil)
  end
  row("7f", ("through a loopback proxy adding %d ms a request: round trip"):format(DDB_RTT_MS),
    ms(M.p_occ_rt), "", nil, "", nil)
  via("7g", "  OCC command (head + append)", "p_occ", p.occ, DDB_OCC)
  via("7h", "  command, aggregate runner (kept state)", "p_runner", p.runner, DDB_RUNNER + 1)
  via("7i", ("  batched append, %d events"):format(DDB_PROXY_PER), "p_batch", p.batch,
    DDB_PROXY_APPENDS)
  local queries = per(p.replay, "Query")
  via("7j", ("  replay %s events (aeon.load)"):format(num(DDB_BIG)), "p_replay", p.replay, 1)
  row("", "    Query requests", tostring(queries), "", nil, "<= 10", queries <= 10)
  row("", "    time added by the round trips", ("%s -> %s"):format(ms(M.d_replay), ms(M.p_replay)),
    "no proxy", M["p_replay/added"], "<= 1.15", M["p_replay/added"] <= 1.15)
  via("7k", ("  read_all %s events"):format(num(DDB_BIG)), "p_readall", p.readall, 1)
  row("", "    time added by the round trips", ("%s -> %s"):format(ms(M.d_readall), ms(M.p_readall)),
    "no proxy", M["p_readall/added"], "<= 1.15", M["p_readall/added"] <= 1.15)
end
if http.skipped then
  note("8", "HTTP, wrk", "not measured: " .. http.skipped)
else
  for i, run in ipairs(HTTP_RUNS) do
    row(i == 1 and "8" or "8" .. string.char(96 + i),
      ("%sPOST /commands/increment, %d workers"):format(i == 1 and "HTTP: " or "  ", run.workers),
      ("%s req/s, p99 %.0f ms"):format(num(M["http" .. i]), M["http_p99_" .. i]),
      num(M["http_fsync" .. i]) .. " fdatasync/s", r("http" .. i), "", nil)
  end
end

row("9", ("store copy SQLite -> SQLite, %s events"):format(num(COPY_EVENTS)),
  num(M.copy_sqlite) .. " events/s", "raw SQLite " .. num(M.copy_sqlite_raw) .. " rows/s",
  r "copy_sqlite", "", nil)
row("9b", "  SQLite -> export file", num(M.copy_ndjson) .. " events/s",
  "raw write " .. num(M.copy_ndjson_raw) .. " lines/s", r "copy_ndjson", "", nil)
if ddb.skipped then
  note("9c", "  SQLite -> DynamoDB Local", "not measured: " .. ddb.skipped)
else
  row("9c", ("  SQLite -> DynamoDB Local, %s events"):format(num(DDB_COPY_EVENTS)),
    num(M.copy_ddb) .. " events/s", "raw items " .. num(M.copy_ddb_raw) .. "/s", r "copy_ddb", "", nil)
end
row("9d", ("  peak RSS growth, copying %s events"):format(num(EVENTS)), mib(M.copy_growth),
  ("%s events: %s"):format(num(COPY_EVENTS), mib(M.copy_growth_small)), nil, "< 16 MiB, flat",
  M.copy_growth < 16 * 1024 and M.copy_growth < M.copy_growth_small + 4 * 1024)

local head = { "#", "figure", "measured", "limit, same run", "ratio", "goal", "met" }
local width = {}
for i, h in ipairs(head) do width[i] = #h end
for _, rw in ipairs(rows) do
  for i = 1, #rw > 3 and #rw or 2 do width[i] = math.max(width[i], utf8.len(rw[i])) end
end
local function line(cells)
  local out = {}
  for i, c in ipairs(cells) do
    local pad = width[i] - utf8.len(c)
    out[i] = (i == 3 or i == 5) and (" "):rep(pad) .. c or c .. (" "):rep(pad)
  end
  return (table.concat(out, "  "):gsub("%s+$", ""))
end

print(("aeon-host benchmarks: the embedded store on the repository's disk; medians of %d rounds")
  :format(ROUNDS))
print(line(head))
for _, rw in ipairs(rows) do
  print(#rw > 3 and line(rw) or line({ rw[1], rw[2], rw[3] }))
end
if ddb.counts and #ddb.counts > 0 then
  local by, order = {}, {}
  for _, c in ipairs(ddb.counts) do
    if not by[c.what] then by[c.what] = {}; order[#order + 1] = c.what end
    table.insert(by[c.what], ("%s %d"):format(c.op, c.n))
  end
  print("DynamoDB requests per operation (bench/scenario.lua ddb-counts, one of each):")
  for _, what in ipairs(order) do
    table.sort(by[what])
    print(("  %-22s %s"):format(what, table.concat(by[what], ", ")))
  end
end
print(([[
ratio: the median of the rounds' figure / limit, each limit measured right before and after its
figure. Limits: fdatasync = a 4 KiB write + fdatasync in the same directory; raw SQLite = the
same rows, schema and pragmas, one prepared INSERT per row, one transaction per append; Lua
tables = the same Lua fold (aeon.load, or the read_all loop) over event tables of the same shape
that a Lua table constructor builds, no store (revisions and keys from pools): the floor of any
replay here. Rows 4C and 5C: the same fold fed tables built by the binding's C code from
in-memory events (data decoded from JSON by the same decoder), no store.
Commands run apps/counter.lua's increment (kept state, snapshot every 100); row 2 runs %d
threads, one store handle each, in one process: group commit shares commits within a process.
DynamoDB Local is the limit of rows 7: GetItem/s is one consistent GetItem at a time through
the same HTTP client; requests are counted inside aeon-bench, per operation of each kind.
Rows 7f-7k: through spec/support/faultproxy, which holds every request %d ms before forwarding
it (a network's round trip, on loopback); each lower bound is the requests made times the round
trip of a GetItem through the proxy measured before and after, ratio = figure / bound; "time
added" is the same read through the proxy / straight to the emulator (%s events, one key, in a
store of their own; pages as large as DynamoDB makes them, the next fetched ahead).
Rows 8: bench/http.sh (wrk, %d s a run) against aeon-host serve apps/counter-basic.lua over
100 counters, wrk connections %d and %d; the server's workers each have a store handle, so
their appends share commits.
Rows 9: aeon-host store copy (the rate it reports, batches of %d events) beside the target's raw
write of the same rows in the same batches (raw SQLite: one prepared INSERT, synchronous=FULL;
export file: the lines written and flushed; DynamoDB: plain event items, %d a TransactWriteItems);
9d: VmHWM - VmRSS before, of one copy into an export file, beside a copy 10 times smaller.]])
  :format(CLIENTS, DDB_RTT_MS, num(DDB_BIG), HTTP_SECONDS, HTTP_RUNS[1].connections, HTTP_RUNS[2].connections, COPY_PER,
    DDB_COPY_PER))
