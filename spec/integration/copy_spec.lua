-- `aeon-host store copy` and `store verify` (README, "Moving a store"):
-- exact copies between SQLite, DynamoDB Local and export files, resumable
-- after kill -9, refusing targets that hold other events.
local aeon = require "aeon"
local core = require "aeon.core"
local helpers = require "helpers"
local process = require "support.process"

local run = helpers.run_host
local json = aeon.json
local dynamodb = os.getenv("AEON_TEST_DYNAMODB_ENDPOINT") and true or false
local with_dynamodb = dynamodb and it or pending

-- A seed only an export file can carry: Lua tables cannot tell [] from {}.
local SEED_REVISION = "01KA0000000000000000000001"
local SEED = '{"revision":"' .. SEED_REVISION .. '","key":"shape/1","type":"shaped",'
  .. '"committed_at":"2025-11-02T03:04:05.678Z","correlation_id":"seed-1",'
  .. '"data":{"empty_array":[],"empty_object":{},"nested":[[],[{}],{"a":[]}]}}\n'

local write = helpers.spit
local function slurp(path) return assert(helpers.slurp(path)) end

local function lines(path)
  local out = {}
  for l in io.lines(path) do out[#out + 1] = l end
  return out
end

-- Data of every kind the store keeps exactly, within DynamoDB's number
-- range (it holds no -0.0 and nothing below 1e-130).
local function varied_data(i)
  return {
    i = i,
    int_max = math.maxinteger, int_min = math.mininteger, big = (1 << 53) + 1, zero = 0,
    floats = { 0.1, 1.0, -2.5, 1e20, 2.0 ^ 53, 2.0 ^ 60, 1 / 3, 1e-100, 1.5e125,
      9.9999999999999992e125, 123456789.125 },
    text = { "", "héllo ✓ 😀", "quote\" back\\slash\nnew line", "tab\tend" },
    yes = true, no = false, nothing = aeon.null,
    deep = { a = { b = { c = { 1, { d = "e" } } } } },
  }
end

-- A varied store: the seed (through an export file), single appends with
-- and without correlation ids, a multi-event append, multi-key appends,
-- snapshots.
local function make_varied(uri)
  local dir = helpers.tmpdir()
  write(dir .. "/seed.ndjson", SEED)
  local code, _, err = run({ "store", "copy", "ndjson:" .. dir .. "/seed.ndjson", uri })
  assert(code == 0, err)
  local s = assert(aeon.open(uri))
  for i = 1, 6 do
    assert(s:append("thing/" .. (i % 3), { { type = "made", data = varied_data(i),
      correlation_id = i % 2 == 0 and ("corr-" .. i) or nil } }).type == "appended")
  end
  local evs = {}
  for i = 1, 5 do evs[i] = { type = "step", data = { n = i, f = i + 0.5 } } end
  assert(s:append("steps/1", evs).type == "appended")
  for round = 1, 2 do
    assert(s:append_many({
      { key = "order/" .. round, events = { { type = "placed", data = { round = round } },
        { type = "priced", data = { total = 12.5 * round } } } },
      { key = "stock/" .. round, events = { { type = "reserved", data = { n = round } } } },
      { key = "mail/" .. round, events = { { type = "queued", data = { to = "a@b.c" },
        correlation_id = "order-" .. round } } },
    }).type == "appended")
  end
  assert(s:save_snapshot("thing/1", s:head("thing/1"), { count = 2, last = 1.0, list = { 1, 2.5 } }))
  assert(s:save_snapshot("steps/1", s:head("steps/1"), { n = 5 }))
  s:close()
end

-- Every event of a store through aeon.core.batch: fields, `more`, data as
-- canonical text (so [] and {} differ).
local function dump(uri)
  local s = assert(aeon.open(uri))
  local b = core.batch()
  local out, after = {}, aeon.START
  while true do
    local n = assert(b:read(s, after, aeon.END, 100))
    if n == 0 then break end
    for i = 1, n do out[#out + 1] = b:event(i) end
    after = b:last()
  end
  s:close()
  return out
end

-- Two Lua values are the same, integers apart from floats and floats bit
-- for bit.
local function same_value(a, b, where)
  assert(type(a) == type(b), where .. ": " .. type(a) .. " vs " .. type(b))
  if type(a) == "number" then
    assert(math.type(a) == math.type(b), where .. ": " .. math.type(a) .. " vs " .. math.type(b))
    if math.type(a) == "float" then
      assert(string.pack("<d", a) == string.pack("<d", b), where .. ": " .. a .. " vs " .. b)
    else
      assert(a == b, where)
    end
  elseif type(a) == "table" then
    for k, v in pairs(a) do same_value(v, b[k], where .. "." .. tostring(k)) end
    for k in pairs(b) do assert(a[k] ~= nil, where .. "." .. tostring(k) .. " only on one side") end
  else
    assert(a == b, where)
  end
end

-- Field by field: the events read by the Lua API (data as Lua values),
-- the same events through batches (data text and grouping), heads and
-- snapshots.
local function assert_same_store(a_uri, b_uri)
  local a, b = assert(aeon.open(a_uri)), assert(aeon.open(b_uri))
  local ea, eb = helpers.collect(a:read_all()), helpers.collect(b:read_all())
  assert.same(#ea, #eb)
  local keys = {}
  for i, e in ipairs(ea) do
    local f = eb[i]
    for _, field in ipairs { "key", "revision", "type", "correlation_id", "committed_at" } do
      assert.same(e[field], f[field])
    end
    same_value(e.data, f.data, e.revision .. " data")
    keys[e.key] = true
  end
  for key in pairs(keys) do
    assert.same(a:head(key), b:head(key))
    local sa, sb = a:snapshot(key), b:snapshot(key)
    assert.same(sa == nil, sb == nil)
    if sa then
      assert.same(sa.revision, sb.revision)
      same_value(sa.state, sb.state, key .. " snapshot")
    end
  end
  a:close()
  b:close()
  assert.same(dump(a_uri), dump(b_uri))
end

local function copy(src, dst, extra)
  local words = { "store", "copy", src, dst }
  for _, w in ipairs(extra or {}) do words[#words + 1] = w end
  local code, out, err = run(words)
  return code, out ~= "" and json.decode(out) or nil, err
end

local function verify(a, b)
  local code, out, err = run({ "store", "verify", a, b })
  return code, out ~= "" and json.decode(out) or nil, err
end

describe("store copy #cli", function()
  it("keeps a varied store exact from SQLite to DynamoDB Local to an export file to SQLite", function()
    local original = helpers.fresh_uri("sqlite")
    make_varied(original)
    local events = dump(original)
    assert.same(1 + 6 + 5 + 8, #events)
    -- The seed's empty array and object, and the multi-key appends' grouping.
    assert.matches('"empty_array":%[%]', events[1].data)
    assert.matches('"empty_object":{}', events[1].data)
    local more = {}
    for i = #events - 7, #events do more[#more + 1] = events[i].more end
    assert.same({ 3, 2, 1, 0, 3, 2, 1, 0 }, more)
    assert.same({ 4, 3, 2, 1, 0 }, { events[8].more, events[9].more, events[10].more,
      events[11].more, events[12].more })

    local middle = original
    if dynamodb then
      middle = helpers.fresh_uri("dynamodb")
      local code, report, err = copy(original, middle)
      assert(code == 0, err)
      assert.same(#events, report.copied)
      assert_same_store(original, middle)
    end
    local file = helpers.tmpdir() .. "/export.ndjson"
    local code, report, err = copy(middle, "ndjson:" .. file)
    assert(code == 0, err)
    assert.same(#events, report.copied)
    -- One line an event, plus one a snapshot; readable by any JSON tool.
    local ls = lines(file)
    assert.same(#events + 2, #ls)
    for _, l in ipairs(ls) do assert.is_table(json.decode(l)) end
    local final = helpers.fresh_uri("sqlite")
    code, report, err = copy("ndjson:" .. file, final)
    assert(code == 0, err)
    assert.same(#events, report.copied)
    assert.same(2, report.snapshots)
    assert_same_store(original, final)
    code, report = verify(original, final)
    assert.same(0, code)
    assert.is_true(report.same)
    assert.same(#events, report.source_events)
    assert.same(11, report.keys)
    code = verify(original, "ndjson:" .. file)
    assert.same(0, code)
  end)

  with_dynamodb("splits an append over DynamoDB's 100 transaction items, says so, and keeps its grouping", function()
    local src = helpers.fresh_uri("sqlite")
    local s = assert(aeon.open(src))
    local evs = {}
    for i = 1, 150 do evs[i] = { type = "tick", data = { i = i } } end
    assert(s:append("many/1", evs).type == "appended")
    assert(s:append_many({ { key = "x/1", events = { { type = "a" } } },
      { key = "x/2", events = { { type = "b" } } } }).type == "appended")
    s:close()
    local ddb = helpers.fresh_uri("dynamodb")
    local code, report, err = copy(src, ddb)
    assert(code == 0, err)
    assert.same(152, report.copied)
    assert.same(1, report.split)
    assert.same(2, report.writes) -- 97 events, then the other 53 with the two-key append
    assert_same_store(src, ddb)
    local back = helpers.fresh_uri("sqlite")
    code, report, err = copy(ddb, back)
    assert(code == 0, err)
    assert.same(0, report.split)
    assert_same_store(src, back)
  end)

  it("copies a consistent prefix of a source being written, and says how far", function()
    local src, dst = helpers.fresh_uri("sqlite"), helpers.fresh_uri("sqlite")
    local s = assert(aeon.open(src))
    local evs = {}
    for i = 1, 100 do evs[i] = { type = "tick", data = { i = i } } end
    for k = 1, 20 do assert(s:append("pre/" .. k, evs).type == "appended") end
    s:close()
    local script = helpers.tmpdir() .. "/writer.lua"
    write(script, ([[
      local aeon = require "aeon"
      local s = assert(aeon.open(%q))
      for i = 1, 400 do
        assert(s:append_many({ { key = "live/a", events = { { type = "t", data = { i = i } } } },
          { key = "live/b", events = { { type = "t", data = { i = i } } } } }).type == "appended")
      end
    ]]):format(src))
    local writer = process.start({ script })
    local code, report, err = copy(src, dst)
    local status = writer:wait(60)
    writer:cleanup()
    assert(code == 0, err)
    assert.same(0, status)
    -- The target holds exactly the source's events up to the revision reached.
    local want = {}
    local a = assert(aeon.open(src))
    for e in a:read_all { to = report.revision } do want[#want + 1] = e.revision end
    a:close()
    local got = {}
    for _, e in ipairs(dump(dst)) do got[#got + 1] = e.revision end
    assert.same(want, got)
    assert.same(report.copied, #got)
    assert.is_true(#got >= 2000)
    -- Multi-key appends were not torn: each live/a has its live/b.
    local ea, eb = 0, 0
    for _, e in ipairs(dump(dst)) do
      if e.key == "live/a" then ea = ea + 1 elseif e.key == "live/b" then eb = eb + 1 end
    end
    assert.same(ea, eb)
    -- Once the writer is done, a second run brings the rest.
    code, report = copy(src, dst)
    assert.same(0, code)
    assert.same(0, (verify(src, dst)))
  end)

  it("copies only what is new on a second run", function()
    local src, dst = helpers.fresh_uri("sqlite"), helpers.fresh_uri("sqlite")
    make_varied(src)
    local code, report = copy(src, dst)
    assert.same(0, code)
    assert.same(20, report.copied)
    code, report = copy(src, dst)
    assert.same(0, code)
    assert.same(0, report.copied)
    local s = assert(aeon.open(src))
    s:append("late/1", { { type = "late", data = { n = 1 } }, { type = "late", data = { n = 2 } } })
    local head = s:head("late/1")
    s:close()
    code, report = copy(src, dst)
    assert.same(0, code)
    assert.same(2, report.copied)
    assert.same(head, report.revision)
    assert_same_store(src, dst)
  end)

  it("refuses a target holding events the source lacks, unless --force, and never writes the source", function()
    local src, dst = helpers.fresh_uri("sqlite"), helpers.fresh_uri("sqlite")
    make_varied(src)
    local before = dump(src)
    local t = assert(aeon.open(dst))
    t:append("other/1", { { type = "foreign", data = {} } })
    t:close()
    local code, report, err = copy(src, dst)
    assert.same(1, code)
    assert.is_nil(report)
    assert.matches("holds events the source does not have", err)
    assert.same(1, #dump(dst))
    code, report, err = copy(src, dst, { "--force" })
    assert(code == 0, err)
    assert.same(20, report.copied)
    assert.same(21, #dump(dst))
    assert.same(before, dump(src))
    -- A missing SQLite source is an error, not a new empty store.
    local missing = helpers.tmpdir() .. "/none.db"
    code, _, err = copy("sqlite:" .. missing, dst)
    assert.same(3, code)
    assert.matches("does not exist", err)
    assert.is_nil(io.open(missing))
  end)

  it("refuses bad export lines, naming the line, and writes nothing", function()
    local dir = helpers.tmpdir()
    write(dir .. "/bad.ndjson", SEED .. '{"revision":"nope","key":"k","type":"t",'
      .. '"committed_at":"2025-11-02T03:04:05.678Z","data":1}\n')
    local dst = helpers.fresh_uri("sqlite")
    local code, _, err = copy("ndjson:" .. dir .. "/bad.ndjson", dst)
    assert.same(3, code)
    assert.matches("line 2: has a bad revision", err)
    assert.same(0, #dump(dst))
  end)

  it("says store copy usage errors with exit 2", function()
    assert.same(2, (run({ "store", "copy", "memory:" })))
    assert.same(2, (run({ "store", "verify" })))
    assert.same(2, (run({ "store", "copy", "a.db", "a.db" })))
  end)
end)

-- Snapshots saved in SOURCE after a copy, for keys that got no new events
-- (so no batch of the next run holds them): each pair of ends.
describe("store copy of snapshots #cli", function()
  local PAIRS = { { "sqlite", "sqlite" }, { "sqlite", "ndjson" }, { "ndjson", "sqlite" },
    { "sqlite", "dynamodb" }, { "dynamodb", "sqlite" } }

  local function fresh_end(kind)
    if kind == "ndjson" then return "ndjson:" .. helpers.tmpdir() .. "/end.ndjson" end
    return helpers.fresh_uri(kind)
  end

  -- A store URI holding what `uri` holds (an export file copied into SQLite).
  local function as_store(uri)
    if not uri:match("^ndjson:") then return uri end
    local back = helpers.fresh_uri("sqlite")
    local code, _, err = copy(uri, back)
    assert(code == 0, err)
    return back
  end

  for _, pair in ipairs(PAIRS) do
    local from, to = pair[1], pair[2]
    local maybe = (from ~= "dynamodb" and to ~= "dynamodb" or dynamodb) and it or pending
    maybe(("a second run brings every key's newest snapshot, once (%s -> %s), regression: keys "
      .. "without new events kept their old snapshot"):format(from, to), function()
      -- An export file source is written from a store, as users make one.
      local origin = helpers.fresh_uri(from == "ndjson" and "sqlite" or from)
      make_varied(origin)
      local src = origin
      if from == "ndjson" then
        src = fresh_end("ndjson")
        assert.same(0, (copy(origin, src)))
      end
      local dst = fresh_end(to)
      local code, report, err = copy(src, dst)
      assert(code == 0, err)
      assert.same(2, report.snapshots)
      -- A first snapshot of a key with events and none, and a new state at
      -- the same revision of one that had a snapshot.
      local s = assert(aeon.open(origin))
      assert(s:save_snapshot("order/1", s:head("order/1"), { placed = true, total = 12.5 }))
      assert(s:save_snapshot("steps/1", s:head("steps/1"), { n = 5, again = 1.0 }))
      s:close()
      if from == "ndjson" then assert.same(0, (copy(origin, src))) end
      code, report, err = copy(src, dst)
      assert(code == 0, err)
      assert.same(0, report.copied)
      assert.same(2, report.snapshots)
      assert_same_store(origin, as_store(dst))
      assert.same(0, (verify(origin, dst)))
      -- Once there, they are not written again.
      local before = to == "ndjson" and slurp(dst:sub(8))
      code, report, err = copy(src, dst)
      assert(code == 0, err)
      assert.same(0, report.snapshots)
      if before then assert.same(before, slurp(dst:sub(8))) end
    end)
  end
end)

describe("store verify #cli", function()
  local src, file
  before_each(function()
    src = helpers.fresh_uri("sqlite")
    make_varied(src)
    file = helpers.tmpdir() .. "/export.ndjson"
    assert.same(0, (copy(src, "ndjson:" .. file)))
  end)

  local function variant(edit)
    local ls = lines(file)
    edit(ls)
    local path = helpers.tmpdir() .. "/variant.ndjson"
    write(path, table.concat(ls, "\n") .. "\n")
    return verify(src, "ndjson:" .. path)
  end

  it("finds the same events the same", function()
    local code, report = verify(src, "ndjson:" .. file)
    assert.same(0, code)
    assert.is_true(report.same)
    assert.same(20, report.target_events)
    assert.same(2, report.snapshots)
    assert.matches("^%x+$", report.digest)
  end)

  it("catches one changed and one missing snapshot, naming the first in key order", function()
    local code, report, err = variant(function(ls)
      for i = #ls, 1, -1 do
        if ls[i]:find('{"snapshot":"steps/1"', 1, true) then
          table.remove(ls, i)
        elseif ls[i]:find('{"snapshot":"thing/1"', 1, true) then
          ls[i] = assert(ls[i]:gsub('"count":2', '"count":3'))
        end
      end
    end)
    assert.same(1, code)
    assert.same(0, report.missing + report.extra + report.changed)
    assert.same(1, report.snapshots_missing)
    assert.same(1, report.snapshots_changed)
    assert.same(0, report.snapshots_extra)
    assert.matches("the snapshot of key steps/1 %(at %w+%) is in the source, not in the target", err)
    assert.matches("steps/1", report.first_difference)
  end)

  it("catches one appended event", function()
    local code, report, err = variant(function(ls)
      ls[#ls + 1] = '{"revision":"7ZZZZZZZZZZZZZZZZZZZZZZZZZ","key":"thing/1","type":"made",'
        .. '"committed_at":"2026-01-01T00:00:00.000Z","data":{}}'
    end)
    assert.same(1, code)
    assert.is_false(report.same)
    assert.same(1, report.extra)
    assert.same(21, report.target_events)
    assert.matches("event 7ZZZZZZZZZZZZZZZZZZZZZZZZZ %(key thing/1%) is in the target, not in the source", err)
  end)

  it("catches one changed event", function()
    local changed
    local code, report, err = variant(function(ls)
      for i, l in ipairs(ls) do
        if l:find('"type":"step"', 1, true) and l:find('"f":2.5', 1, true) and not changed then
          changed = json.decode(l).revision
          ls[i] = l:gsub('"f":2%.5', '"f":2.5000000000000004')
        end
      end
    end)
    assert.same(1, code)
    assert.same(1, report.changed)
    assert.same(0, report.missing + report.extra)
    assert.same(1, report.keys_differing)
    assert.matches("event " .. changed .. " %(key steps/1%): data", err)
  end)

  it("catches one missing event", function()
    local gone
    local code, report, err = variant(function(ls)
      for i, l in ipairs(ls) do
        if l:find('"key":"stock/2"', 1, true) then
          gone = json.decode(l).revision
          table.remove(ls, i)
          break
        end
      end
    end)
    assert.same(1, code)
    assert.same(1, report.missing)
    assert.same(19, report.target_events)
    assert.matches("event " .. gone .. " %(key stock/2%) is in the source, not in the target", err)
  end)

  for _, kind in ipairs { "sqlite", "dynamodb" } do
    local maybe = (kind ~= "dynamodb" or dynamodb) and it or pending
    maybe("catches a snapshot changed and one added in a copied store (" .. kind .. ")", function()
      local dst = helpers.fresh_uri(kind)
      assert.same(0, (copy(src, dst)))
      assert.same(0, (verify(src, dst)))
      local t = assert(aeon.open(dst))
      assert(t:save_snapshot("steps/1", t:head("steps/1"), { n = 6 }))
      assert(t:save_snapshot("order/2", t:head("order/2"), { placed = true }))
      t:close()
      local code, report, err = verify(src, dst)
      assert.same(1, code)
      assert.same(0, report.missing + report.extra + report.changed)
      assert.same(1, report.snapshots_extra)
      assert.same(1, report.snapshots_changed)
      assert.matches("the snapshot of key order/2 %(at %w+%) is in the target, not in the source", err)
      -- The next copy puts the source's back where only the state differs
      -- (the same revision), and verify then names the one left.
      assert.same(0, (copy(src, dst)))
      code, report = verify(src, dst)
      assert.same(1, code)
      assert.same(0, report.snapshots_changed)
      assert.same(1, report.snapshots_extra)
    end)
  end

  it("catches an event appended to a copied store", function()
    local dst = helpers.fresh_uri("sqlite")
    assert.same(0, (copy(src, dst)))
    assert.same(0, (verify(src, dst)))
    local t = assert(aeon.open(dst))
    t:append("thing/1", { { type = "made", data = { extra = true } } })
    t:close()
    local code, report = verify(src, dst)
    assert.same(1, code)
    assert.same(1, report.extra)
  end)
end)

describe("store copy killed with kill -9 #cli #heavy", function()
  local N = 50000

  -- 50,000 events: appends of 100 events over 100 keys, some multi-key;
  -- made once, both cases only read it.
  local big
  local function big_source()
    if big then return big end
    local uri = helpers.fresh_uri("sqlite")
    big = uri
    local s = assert(aeon.open(uri))
    local evs = {}
    for i = 1, 100 do evs[i] = { type = "tick", data = { i = i, x = i / 7 } } end
    for round = 1, N / 100 - 10 do
      assert(s:append("big/" .. (round % 100), evs).type == "appended")
    end
    local half = {}
    for i = 1, 50 do half[i] = evs[i] end
    for round = 1, 10 do
      assert(s:append_many({ { key = "pair/a" .. round, events = half },
        { key = "pair/b" .. round, events = half } }).type == "appended")
    end
    s:close()
    return uri
  end

  -- How far a copy has got: the export file's size, or the target's
  -- last revision; both only grow.
  local function progress(target)
    if target:match("^ndjson:") then
      local f = io.open(target:sub(8), "rb")
      if not f then return "" end
      local size = f:seek("end")
      f:close()
      return ("%020d"):format(size)
    end
    local s = aeon.open(target)
    if not s then return "" end
    local last = ""
    for e in s:read_all { direction = "backward", limit = 1 } do last = e.revision end
    s:close()
    return last
  end

  -- Kills copies of src into target at moments spread over the copy, then
  -- lets one finish; returns how many were killed mid-way.
  local function kill_and_resume(src, target)
    local killed = 0
    for round = 1, 4 do
      -- Killed as soon as it has written past what the last round left,
      -- measured before it starts (starting it waits for its pid): any
      -- pause lets a fast machine finish the copy before the kill.
      local start = progress(target)
      local p = process.start({ "store", "copy", src, target, "--batch", "250" })
      process.wait_until(function() return progress(target) > start end, 30, 0.001)
      p:kill(9)
      local status = p:wait(30)
      if status == 137 then killed = killed + 1 end
      p:cleanup()
    end
    local code, report, err = copy(src, target)
    assert(code == 0, err)
    return killed, report
  end

  it("resumes a copy into SQLite to an identical store", function()
    local src = big_source()
    local dst = helpers.fresh_uri("sqlite")
    local killed = kill_and_resume(src, dst)
    assert.is_true(killed >= 1)
    assert.same(N, #dump(dst))
    local code, report = verify(src, dst)
    assert.same(0, code)
    assert.same(N, report.target_events)
  end)

  it("resumes a copy into an export file with nothing duplicated", function()
    local src = big_source()
    local path = helpers.tmpdir() .. "/big.ndjson"
    local killed = kill_and_resume(src, "ndjson:" .. path)
    assert.is_true(killed >= 1)
    local seen, last, n = {}, "", 0
    for l in io.lines(path) do
      local rev = l:match('^{"revision":"(%w+)"')
      if rev then
        assert.is_nil(seen[rev])
        assert.is_true(rev > last)
        seen[rev], last, n = true, rev, n + 1
      end
    end
    assert.same(N, n)
    local code, report = verify(src, "ndjson:" .. path)
    assert.same(0, code)
    assert.same(N, report.target_events)
  end)
end)

for _, backend in helpers.each_backend() do
  describe("import #" .. backend, function()
    local function batch_of(text)
      local path = helpers.tmpdir() .. "/in.ndjson"
      write(path, text)
      local f = assert(io.open(path, "rb"))
      local b = core.batch()
      assert(b:read_ndjson(f, 0, 1000))
      f:close()
      return b
    end
    local function line(rev, key, more)
      return ('{"revision":"%s","key":"%s","type":"t","committed_at":"2025-11-02T03:04:05.678Z",'
        .. '%s"data":{"k":"%s","f":1.0,"l":[]}}\n'):format(rev, key, more and ('"more":' .. more .. ',') or "", key)
    end
    local R1, R2, R3 = "01KA0000000000000000000001", "01KA0000000000000000000002", "01KA0000000000000000000003"

    it("writes events as they are, once, however often it is repeated", function()
      local store = helpers.fresh_store(backend)
      local b = batch_of(line(R1, "a", 1) .. line(R2, "b") .. line(R3, "a"))
      local r = assert(b:import(store))
      assert.same(3, r.imported)
      assert.same(R3, store:head("a"))
      assert.same(R2, store:head("b"))
      local evs = helpers.collect(store:read_all())
      assert.same({ R1, R2, R3 }, helpers.pluck(evs, "revision"))
      assert.same("2025-11-02T03:04:05.678Z", evs[1].committed_at)
      assert.same("float", math.type(evs[1].data.f))
      r = assert(b:import(store))
      if backend == "sqlite" then
        assert.same(0, r.imported)
        assert.same(3, r.present)
      end
      assert.same(3, #helpers.collect(store:read_all()))
      -- Appends after an import number above it.
      local a = assert(store:append("a", { { type = "next" } }))
      assert.is_true(a.revision > R3)
      store:close()
    end)

    it("never moves a head back", function()
      local store = helpers.fresh_store(backend)
      assert(batch_of(line(R3, "a")):import(store))
      assert(batch_of(line(R1, "a")):import(store))
      assert.same(R3, store:head("a"))
      assert.same({ R1, R3 }, helpers.pluck(helpers.collect(store:read("a")), "revision"))
      store:close()
    end)

    local sqlite_only = backend == "sqlite" and it or pending
    sqlite_only("refuses a revision another key holds, writing nothing of the call", function()
      local store = helpers.fresh_store(backend)
      assert(batch_of(line(R2, "a")):import(store))
      local b = batch_of(line(R1, "x") .. line(R2, "b"))
      assert.has_error(function() b:import(store) end, nil)
      local ok, err = pcall(b.import, b, store)
      assert.is_false(ok)
      assert.matches("held by another key", err)
      assert.same({ R2 }, helpers.pluck(helpers.collect(store:read_all()), "revision"))
      store:close()
    end)

    it("lists snapshots page by page, each once, up to a revision", function()
      local store = helpers.fresh_store(backend)
      local heads = {}
      for i = 1, 5 do
        local key = "snap/" .. i
        heads[key] = assert(store:append(key, { { type = "t", data = { i = i } } })).revision
        assert(store:save_snapshot(key, heads[key], { i = i, half = i / 2 }))
      end
      store:append("bare/1", { { type = "t" } })
      local b, after, seen, pages = core.batch(), nil, {}, 0
      repeat
        local n, last = b:list_snapshots(store, after, 2, aeon.END)
        assert(n, last)
        pages = pages + 1
        for i = 1, b:snapshot_count() do
          local sn = b:snapshot(i)
          assert.is_nil(seen[sn.key])
          assert.same(heads[sn.key], sn.revision)
          seen[sn.key] = json.decode(sn.state)
        end
        after = last
      until n < 2
      assert.same(3, pages)
      assert.same({ i = 3, half = 1.5 }, seen["snap/3"])
      local count = 0
      for _ in pairs(seen) do count = count + 1 end
      assert.same(5, count)
      -- Up to a revision: those of later events are left out, still counted.
      local n = assert(b:list_snapshots(store, nil, 10, heads["snap/2"]))
      assert.same(5, n)
      assert.same(2, b:snapshot_count())
      store:close()
    end)

    it("refuses events out of revision order", function()
      local store = helpers.fresh_store(backend)
      assert.has_error(function() batch_of(line(R2, "a") .. line(R1, "a")):import(store) end)
      assert.same(0, #helpers.collect(store:read_all()))
      store:close()
    end)
  end)
end
