--- aeon.cli.copy: `aeon-host store copy SOURCE TARGET` and
-- `aeon-host store verify SOURCE TARGET` (README, "Moving a store").
--
-- SOURCE and TARGET are store URIs or `ndjson:PATH` (an export file,
-- docs/API.md "Export files"). Events move in batches of whole appends that
-- stay in C (aeon.core.batch): event data never becomes a Lua table, so it
-- is copied exactly. A copy goes on after the target's last revision
-- (revisions are global and increase in commit order, so that is where the
-- last run stopped), after checking that the source holds that event too.
-- Snapshots are not events and carry no such mark: after the events, every
-- snapshot of the source is listed (a store's list reads no events) and
-- those the target does not hold as they are are written, so a key whose
-- snapshot was saved after the last run gets it even without new events.
local aeon = require "aeon"
local core = require "aeon.core"
local options = require "aeon.cli.options"

local io, os, pairs, ipairs, math, table, tostring, pcall, require =
  io, os, pairs, ipairs, math, table, tostring, pcall, require
local json_encode = aeon.json.encode

local M = {}

local EXIT, usage, say = options.EXIT, options.usage, options.say

M.USAGE = [[
usage: aeon-host store copy SOURCE TARGET [--force] [--batch N]
       aeon-host store verify SOURCE TARGET
  SOURCE, TARGET   store URIs (sqlite:PATH, PATH.db, dynamodb:NAME, an Aeon config)
                   or ndjson:PATH, an export file (one JSON object a line)
  copy             every event TARGET lacks, exactly, with heads, and every key's newest
                   snapshot; goes on after TARGET's last revision, so a second run copies
                   only what is new
  --force          copy even though TARGET holds events SOURCE does not have
  --batch N        events a write takes, rounded up to whole appends (1000)
  verify           compare every event, a digest per key and each key's newest snapshot;
                   exit 0 only when the same]]

local BATCH = 1000 -- events read and written at a time (whole appends)
local SNAPSHOT_PAGE = 1000 -- snapshots listed at a time

local function clock()
  local ok, host = pcall(require, "aeon.host")
  if ok and host.now then return host.now end
  return os.time
end

-- One end of a copy: a store, or an export file.
local function open_end(spec, role)
  local path = spec:match("^ndjson:(.+)$")
  if path then return { kind = "ndjson", path = path, name = spec } end
  -- Opening a SQLite file that is not there would create it: a source is
  -- never written to, so it must exist.
  local file = spec:match("^sqlite:(.+)$") or (spec:match("%.db$") and spec)
  if role == "source" and file and file ~= ":memory:" then
    local f = io.open(file, "rb")
    if not f then say("source %s does not exist", spec); return nil end
    f:close()
  end
  local store, err = aeon.open(spec)
  if not store then say("%s %s: %s", role, spec, err); return nil end
  return { kind = "store", store = store, name = spec }
end

local function close_end(e)
  if e.file then e.file:close(); e.file = nil end
  if e.store then e.store:close() end
end

-- The last event of an end as a batch of one (count 0 when empty).
local function last_event(e, b)
  if e.kind == "ndjson" then return b:tail_ndjson(e.path) end
  local ok, err = pcall(function()
    for ev in e.store:read_all { direction = "backward", limit = 1 } do
      assert(b:read(e.store, ev.revision, ev.revision, 1, true))
    end
  end)
  if not ok then return nil, tostring(err) end
  return b:count()
end

local FIELDS = { "key", "type", "committed_at", "correlation_id", "data", "more" }

-- What differs between two events of the same revision, or nil.
local function differs(a, b)
  for _, f in ipairs(FIELDS) do
    if a[f] ~= b[f] then
      return ("%s %s in one, %s in the other"):format(f, json_encode(a[f] == nil and aeon.null or a[f]),
        json_encode(b[f] == nil and aeon.null or b[f]))
    end
  end
end

-- A reader of SOURCE's events in batches, after `after`, up to `to`
-- (a store's last revision when the copy began, so what it copies is a
-- consistent prefix even while the source is written).
local function reader(e, to)
  if e.kind == "store" then
    return function(b, after) return b:read(e.store, after, to, BATCH) end
  end
  local f, err = io.open(e.path, "rb")
  if not f then return nil, err end
  e.file = f
  local line = 0
  return function(b, after)
    while true do
      local n, next_line = b:read_ndjson(f, line, BATCH)
      if not n then return nil, e.path .. ": " .. next_line end
      line = next_line
      if n == 0 then return 0 end
      -- Resuming: what the target has already is skipped (not the
      -- snapshots, which the target may lack all the same).
      b:drop_through(after)
      if b:count() > 0 or b:snapshot_count() > 0 then return b:count() end
    end
  end
end

-- The source's copy of event `rev` (a batch of one), for the safety check.
local function source_event(e, rev, b)
  if e.kind == "store" then
    local n, err = b:read(e.store, rev, rev, 1, true)
    if not n then return nil, err end
    return n > 0 and b:event(1) or false
  end
  local f, err = io.open(e.path, "rb")
  if not f then return nil, err end
  local line = 0
  while true do
    local n, next_line = b:read_ndjson(f, line, BATCH)
    if not n then f:close(); return nil, next_line end
    line = next_line
    local i = b:find(rev)
    if i then f:close(); return b:event(i) end
    if n == 0 or b:last() > rev then f:close(); return false end
  end
end

local function progress_line(copied, rate, eta)
  io.stderr:write(("\r%d events, %d events/s%s   "):format(copied, math.floor(rate),
    eta and (", ETA %ds"):format(math.ceil(eta)) or ""))
end

local function on_terminal()
  return os.execute("test -t 2") == true
end

-- Notes the batch's snapshots in map (key -> { revision, digest }), the
-- newest of each key (an export file may hold older ones before it).
local function note_snapshots(map, b)
  for i = 1, b:snapshot_count() do
    local sn = b:snapshot(i)
    local cur = map[sn.key]
    if not cur or cur.revision <= sn.revision then
      map[sn.key] = { revision = sn.revision, digest = core.sha256(sn.state) }
    end
  end
end

-- Every snapshot of a store, page by page, into map; reads no events.
local function store_snapshots(e, map)
  local b, after = core.batch(), nil
  repeat
    local n, last = b:list_snapshots(e.store, after, SNAPSHOT_PAGE, aeon.END)
    if not n then return nil, last end
    note_snapshots(map, b)
    after = last
  until n < SNAPSHOT_PAGE
  return map
end

-- The snapshots an export file holds (none when there is no file), in a
-- pass that parses only its snapshot lines.
local function file_snapshots(path)
  local map = {}
  local f = io.open(path, "rb")
  if not f then return map end
  local b, line = core.batch(), 0
  while true do
    local n, next_line = b:read_ndjson(f, line, SNAPSHOT_PAGE, true)
    if not n then f:close(); return nil, next_line end
    line = next_line
    note_snapshots(map, b)
    if n == 0 then break end
  end
  f:close()
  return map
end

-- Which of the batch's snapshots to write, as save_snapshots' and
-- write_ndjson's `only`, and how many: with `newest` (an export file
-- source's, which may hold older snapshots of a key before its newest),
-- only those; with `have` (an export file target's, noted as written),
-- only those it lacks. One older than the file's is not written, as a
-- store would not save it.
local function chosen(b, newest, have)
  local only, n = {}, 0
  for i = 1, b:snapshot_count() do
    local sn = b:snapshot(i)
    local digest = core.sha256(sn.state)
    local top, cur = newest and newest[sn.key], have and have[sn.key]
    if (not newest or (top and top.revision == sn.revision and top.digest == digest))
      and (not cur or cur.revision < sn.revision
        or (cur.revision == sn.revision and cur.digest ~= digest)) then
      only[i], n = true, n + 1
      if have then have[sn.key] = { revision = sn.revision, digest = digest } end
    end
  end
  return only, n
end

-- Writes a batch to the target: its events, then the snapshots chosen.
-- Returns true, or nil and a message.
local function put(b, dst, newest, have, report)
  local only, n = chosen(b, newest, have)
  if dst.kind == "store" then
    if b:count() > 0 then
      local r, err = b:import(dst.store)
      if not r then return nil, err end
      report.copied = report.copied + r.imported
      report.present = report.present + r.present
      report.writes = report.writes + r.writes
      report.split = report.split + r.split
    end
    if n > 0 then
      local saved, err = b:save_snapshots(dst.store, only)
      if not saved then return nil, err end
      report.snapshots = report.snapshots + saved
    end
    return true
  end
  if b:count() + n == 0 then return true end
  local ok, err = b:write_ndjson(dst.file, only)
  if ok then ok, err = dst.file:flush() end
  if not ok then return nil, err end
  report.copied = report.copied + b:count()
  report.snapshots = report.snapshots + n
  report.writes = report.writes + 1
  return true
end

-- Where a copy starts: after the target's last event, which the source
-- must hold as it is; or from the start with --force.
local function start_after(src, dst, force)
  local b = core.batch()
  local n, err = last_event(dst, b)
  if not n then say("target %s: %s", dst.name, err); return nil, EXIT.io end
  if n == 0 then return aeon.START end
  local mine = b:event(1)
  -- Imports skip what a store holds already; an export file is only
  -- appended to, so it goes on after its last line.
  if force then return dst.kind == "store" and aeon.START or mine.revision end
  local theirs, serr = source_event(src, mine.revision, core.batch())
  if theirs == nil then say("source %s: %s", src.name, serr); return nil, EXIT.io end
  local why = not theirs and "the source has no such event" or differs(theirs, mine)
  if why then
    say("target %s holds events the source does not have (its last, %s of key %s: %s); "
      .. "nothing copied (--force copies anyway)", dst.name, mine.revision, mine.key, why)
    return nil, EXIT.rejected
  end
  return mine.revision
end

--- store copy|verify SOURCE TARGET: words are the command line from
-- "store" on. Returns the exit status.
function M.main(words)
  local action = words[2]
  local flags, pos = options.parse(words, 3, action == "copy" and { force = "flag", batch = "integer" }
    or {}, "store " .. action)
  if flags.help then io.stdout:write(M.USAGE, "\n"); return EXIT.ok end
  if #pos ~= 2 then usage("store %s needs SOURCE and TARGET (store URIs or ndjson:PATH)", action) end
  if pos[1] == pos[2] then usage("store %s: SOURCE and TARGET are the same", action) end
  if flags.batch then
    if flags.batch < 1 then usage("option --batch needs a positive integer") end
    BATCH = flags.batch
  end
  local src = open_end(pos[1], "source")
  if not src then return EXIT.io end
  local dst = open_end(pos[2], "target")
  if not dst then close_end(src); return EXIT.io end
  local ok, status = pcall(action == "copy" and M.run_copy or M.run_verify, src, dst, flags)
  close_end(src)
  close_end(dst)
  if not ok then say("%s", tostring(status)); return EXIT.io end
  return status
end

--- store copy: the events TARGET lacks, then one JSON line.
function M.run_copy(src, dst, flags)
  local now = clock()
  if dst.kind == "store" then
    local ok, err = dst.store:admin("deploy")
    if not ok then say("target %s: %s", dst.name, err); return EXIT.io end
  end
  -- The source's end now: everything at or below it is committed.
  local to, first = aeon.END, nil
  if src.kind == "store" then
    local b = core.batch()
    local n, err = last_event(src, b)
    if not n then say("source %s: %s", src.name, err); return EXIT.io end
    to = n > 0 and b:last() or aeon.START
  end
  local after, refused = start_after(src, dst, flags.force)
  if not after then return refused end
  local next_batch, rerr = reader(src, to)
  if not next_batch then say("source %s: %s", src.name, rerr); return EXIT.io end
  -- Which snapshots an export file source has last of each key, and
  -- which an export file target has (it is only appended to).
  local have, newest, herr
  if src.kind == "ndjson" then
    newest, herr = file_snapshots(src.path)
    if not newest then say("source %s: %s", src.name, herr); return EXIT.io end
  end
  if dst.kind == "ndjson" then
    have, herr = file_snapshots(dst.path)
    if not have then say("target %s: %s", dst.name, herr); return EXIT.io end
    local f, err = io.open(dst.path, "ab")
    if not f then say("target %s: %s", dst.name, err); return EXIT.io end
    dst.file = f
  end

  local b = core.batch()
  local report = { copied = 0, present = 0, snapshots = 0, writes = 0, split = 0 }
  local tty = on_terminal()
  -- Timed from here: what came before (deploying, the checks) is not copying.
  local started = now()
  local last_shown, reached = started, after
  local span_from = after ~= aeon.START and after or nil
  while true do
    local n, err = next_batch(b, reached)
    if not n then say("source %s: %s", src.name, err); return EXIT.io end
    -- An export file's batch may hold snapshots only.
    if n == 0 and b:snapshot_count() == 0 then break end
    if n > 0 then
      first = first or b:event(1).revision
      span_from = span_from or first
    end
    local ok, werr = put(b, dst, newest, have, report)
    if not ok then say("target %s: %s", dst.name, werr); return EXIT.io end
    reached = b:last() or reached
    local t = now()
    if tty and t - last_shown >= 0.5 then
      last_shown = t
      local rate = report.copied / math.max(t - started, 1e-3)
      progress_line(report.copied, rate, M.eta(span_from, reached, to, t - started))
    end
  end
  -- A store's snapshots, up to the events copied (a snapshot saved while
  -- copying may be of events past them: the next run brings it).
  if src.kind == "store" then
    local after_key
    b = core.batch()
    repeat
      local n, last = b:list_snapshots(src.store, after_key, SNAPSHOT_PAGE, to)
      if not n then say("source %s: %s", src.name, last); return EXIT.io end
      local ok, werr = put(b, dst, newest, have, report)
      if not ok then say("target %s: %s", dst.name, werr); return EXIT.io end
      after_key = last
    until n < SNAPSHOT_PAGE
  end
  if tty then io.stderr:write("\n") end
  local seconds = now() - started
  report.revision = reached
  report.source, report.target = src.name, dst.name
  report.seconds = math.floor(seconds * 1000 + 0.5) / 1000
  report.events_per_second = math.floor(report.copied / math.max(seconds, 1e-3))
  io.stdout:write(json_encode(report), "\n")
  return EXIT.ok
end

-- How far revision b lies past a, as a number: a revision is a 130-bit
-- number in base 32 (its time, then counter bits that appends in one
-- millisecond step through), and a double keeps the leading digits of the
-- difference, which is all a ratio needs.
local DIGITS = {}
for i, c in ("0123456789ABCDEFGHJKMNPQRSTVWXYZ"):gmatch("()(.)") do DIGITS[c] = i - 1 end
local function span(a, b)
  local d = 0
  for i = 1, 26 do d = d * 32 + (DIGITS[b:sub(i, i)] or 0) - (DIGITS[a:sub(i, i)] or 0) end
  return d
end

-- Seconds left, from how far the copy has come through the revisions, so
-- no count of the source is needed.
function M.eta(from, at, to, elapsed)
  if not from or to == aeon.END or to == aeon.START then return nil end
  local done, all = span(from, at), span(from, to)
  if all <= 0 or done <= 0 then return nil end
  return elapsed * (all - done) / done
end

-- A reader of every event of an end, one at a time (canonical fields);
-- an export file's snapshots go into `snapshots` on the way.
local function events_of(e, snapshots)
  local b, i, n = core.batch(), 0, 0
  local next_batch, err = reader(e, aeon.END)
  if not next_batch then return nil, err end
  local after = aeon.START
  return function()
    while i == n do
      local got, rerr = next_batch(b, after)
      if not got then error(rerr, 0) end
      note_snapshots(snapshots, b)
      if got == 0 and b:snapshot_count() == 0 then return nil end
      n, i, after = got, 0, b:last() or after
    end
    i = i + 1
    return b:event(i)
  end
end

-- Compares the newest snapshot of each key (maps of note_snapshots), in
-- key order, noting each difference.
local function compare_snapshots(a, b, note)
  local keys = {}
  for key in pairs(a) do keys[#keys + 1] = key end
  for key in pairs(b) do if not a[key] then keys[#keys + 1] = key end end
  table.sort(keys)
  for _, key in ipairs(keys) do
    local x, y = a[key], b[key]
    if not y then
      note("snapshots_missing", ("the snapshot of key %s (at %s) is in the source, not in the "
        .. "target"):format(key, x.revision))
    elseif not x then
      note("snapshots_extra", ("the snapshot of key %s (at %s) is in the target, not in the "
        .. "source"):format(key, y.revision))
    elseif x.revision ~= y.revision then
      note("snapshots_changed", ("the snapshot of key %s is at %s in the source, at %s in the "
        .. "target"):format(key, x.revision, y.revision))
    elseif x.digest ~= y.digest then
      note("snapshots_changed", ("the snapshot of key %s at %s has another state in the "
        .. "target"):format(key, x.revision))
    end
  end
end

local function canonical_line(ev)
  return table.concat({ ev.revision, ev.key, ev.type, ev.committed_at, ev.correlation_id or "",
    tostring(ev.more), ev.data }, "\0")
end

--- store verify: exit 0 only when both hold the same events.
function M.run_verify(src, dst)
  local snaps = { {}, {} }
  local a, aerr = events_of(src, snaps[1])
  if not a then say("source %s: %s", src.name, aerr); return EXIT.io end
  local b, berr = events_of(dst, snaps[2])
  if not b then say("target %s: %s", dst.name, berr); return EXIT.io end
  local digests = { {}, {} }
  local counts = { 0, 0 }
  local report = { same = true, missing = 0, extra = 0, changed = 0, snapshots_missing = 0,
    snapshots_extra = 0, snapshots_changed = 0 }
  local function note(kind, text)
    report[kind] = report[kind] + 1
    if report.same then report.same, report.first_difference = false, text end
  end
  local function fold(side, ev)
    counts[side] = counts[side] + 1
    local d = digests[side]
    d[ev.key] = core.sha256((d[ev.key] or "") .. canonical_line(ev))
  end
  local x, y = a(), b()
  while x or y do
    if y == nil or (x and x.revision < y.revision) then
      fold(1, x)
      note("missing", ("event %s (key %s) is in the source, not in the target"):format(x.revision, x.key))
      x = a()
    elseif x == nil or y.revision < x.revision then
      fold(2, y)
      note("extra", ("event %s (key %s) is in the target, not in the source"):format(y.revision, y.key))
      y = b()
    else
      fold(1, x)
      fold(2, y)
      local why = differs(x, y)
      if why then note("changed", ("event %s (key %s): %s"):format(x.revision, x.key, why)) end
      x, y = a(), b()
    end
  end
  -- Snapshots after the events: an event's difference is named first.
  for side, e in ipairs { src, dst } do
    if e.kind == "store" then
      local ok, serr = store_snapshots(e, snaps[side])
      if not ok then
        say("%s %s: %s", side == 1 and "source" or "target", e.name, serr)
        return EXIT.io
      end
    end
  end
  local nsnaps = 0
  for _ in pairs(snaps[1]) do nsnaps = nsnaps + 1 end
  compare_snapshots(snaps[1], snaps[2], note)
  report.snapshots = nsnaps
  local keys, differing = 0, 0
  for key, d in pairs(digests[1]) do
    keys = keys + 1
    if digests[2][key] ~= d then differing = differing + 1 end
  end
  for key in pairs(digests[2]) do
    if not digests[1][key] then differing = differing + 1 end
  end
  report.source_events, report.target_events = counts[1], counts[2]
  report.keys, report.keys_differing = keys, differing
  report.source, report.target = src.name, dst.name
  if report.same then
    local all = {}
    for key, d in pairs(digests[1]) do all[#all + 1] = key .. "\0" .. d end
    table.sort(all)
    report.digest = core.sha256(table.concat(all, "\n"))
  end
  io.stdout:write(json_encode(report), "\n")
  if not report.same then say("stores differ: %s", report.first_difference) end
  return report.same and EXIT.ok or EXIT.rejected
end

return M
