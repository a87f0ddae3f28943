--- The app of the versioned projection specs (projection_version_spec,
-- rolling_deploy_spec) and what they do with it: one document per key
-- k/1 .. k/10, { n } in version 1 and { n, twice } in version 2, and a
-- query `total` saying which build answered. Version 2's handler stops
-- before the events of k/10, the last 100 of the 1,000, until a gate (a
-- file) is open, so "during the build" is a state a spec waits for, not a
-- time: it waits there (`wait`), or fails on them and the runner tries
-- again after a backoff (a handler waiting inside its batch's transaction
-- holds the embedded store's write lock, so nothing else can write).
local aeon = require "aeon"
local helpers = require "helpers"
local server = require "support.http_server"

local M = {}

M.KEYS, M.PER_KEY = 10, 100
M.TOTAL = M.KEYS * M.PER_KEY

local APP = [[
local aeon = require "aeon"
local core = require "aeon.core"
local GATE, VERSION, WAIT, LEASE = %q, %d, %s, %s
local app = aeon.app "tally"

local function open(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

app:projection("tally", { view = "tally", key = "k/*", version = VERSION, lease = LEASE },
  function(view, event)
    if VERSION > 1 and event.key == "k/10" and not open(GATE) then
      if not WAIT then error("the gate is shut") end
      while not open(GATE) do core.sleep(0.02) end
    end
    local doc, rev = view:get(event.key)
    if rev and event.revision <= rev then return end -- a replayed batch (DynamoDB)
    local n = (doc and doc.n or 0) + 1
    local after = { n = n }
    if VERSION > 1 then after.twice = 2 * n end
    assert(view:put(event.key, after, event.revision))
  end)

-- The whole view: how many documents, their total, how many are in
-- version 2's shape, and which build answered.
app:query("total", { params = { "revision" }, views = { "tally" } }, function(ctx, args)
  local view = assert(ctx.store:view("tally"))
  if args.revision then
    local seen = assert(view:revision())
    if tostring(args.revision) > seen then return aeon.not_yet(tostring(args.revision), seen) end
  end
  local total, docs, twice, after = 0, 0, 0, nil
  repeat
    local page = assert(view:list { after = after, limit = 100 })
    for _, d in ipairs(page) do
      docs, total = docs + 1, total + d.doc.n
      if d.doc.twice == 2 * d.doc.n then twice = twice + 1 end
      after = d.id
    end
  until #page < 100
  return { total = total, docs = docs, twice = twice, view = view:name() }
end)

return app
]]

--- Writes the app of `version` to `path`, with its gate at `gate`;
-- opts: wait (the handler waits at the gate), lease (seconds).
function M.write(path, gate, version, opts)
  opts = opts or {}
  server.spit(path, APP:format(gate, version, tostring(opts.wait == true),
    tostring(opts.lease or "nil")))
end

--- Appends TOTAL events, PER_KEY on each key in turn; returns the last
-- revision and the revision of the last event before k/10's.
function M.seed(store)
  local last, before_gate
  for k = 1, M.KEYS do
    for half = 0, 1 do -- 50 at a time: one DynamoDB transaction takes at most 100 items
      local events = {}
      for i = 1, M.PER_KEY // 2 do events[i] = { type = "added", data = { i = half * 50 + i } } end
      last = assert(store:append("k/" .. k, events)).revision
    end
    if k == M.KEYS - 1 then before_gate = last end
  end
  return last, before_gate
end

--- Runs aeon-host on the store at `uri` with the app: code, out, err.
function M.host(uri, app, ...)
  return helpers.run_host({ "--store", uri, app, ... })
end

--- `project --status`'s word on the projection tally.
function M.status(uri, app)
  local code, out, err = M.host(uri, app, "project", "--status")
  assert(code == 0, err)
  return aeon.json.decode(out).tally
end

return M
