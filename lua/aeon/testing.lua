--- aeon.testing: given/when/then for aggregates and projections, in busted.
--
--     local testing = require "aeon.testing"
--     local given = testing.for_aggregate(counter.aggregate)
--
--     it("never goes below 0", function()
--       given {}
--         .when { type = "decrement", name = "a" }
--         .then_nothing()
--     end)
--
--     given { incremented "a" } .when(decrement "a") .then_events { decremented "a" }
--     given { ... } .when(command) .then_rejected "quantity must be"   -- a Lua pattern
--     given { ... } .when(command) .then_events { ... } .then_state(1)  -- chains
--
--     local given = testing.for_projection(icecream.in_stock)
--     given { restocked("truck/1", "Vanilla", 2) } .then_state { Vanilla = 2, Strawberry = 0 }
--
-- `given` takes events in the form `decide` returns (`{ type, data }`); each
-- is folded as the store would hand it over, with a `key` (opts.key, default
-- "test/1"), an increasing `revision` and a `committed_at`. An aggregate or
-- projection is anything with `initial` and `evolve` (and `decide` for
-- `when`); nothing here touches a store, so these specs need no build.
--
-- `opts.app`, an app built by aeon.app, upcasts the given events with its
-- upcasters (app:upcast) before they are folded, as the host does for
-- every event it reads: given old-shape events, expect current-shape
-- behaviour.
--
--     local given = testing.for_aggregate(counter.aggregate, { app = app })
-- Failures are luassert failures, with the state and what was decided in
-- the message.
--
--     local server = testing.serve("app.lua")            -- aeon-host serve, a fresh store
--     local status, body = server:post("deposit", { id = "a", amount = 5 })
--     status, body = server:get("balance", { id = "a", revision = body.revision }, { wait = 5 })
--     server:stop()                                      --> the server's exit status
--
-- `serve` runs the app as it is served: `aeon-host --store sqlite:TMP serve
-- APP --listen 127.0.0.1:0` ($AEON_HOST, else the aeon-host running these
-- specs, else the one on PATH), and talks to it with curl; answers come back
-- decoded from JSON. `get` with `wait` asks again while the answer is 202 (a
-- read model not there yet), for up to that many seconds.
local assert = require "luassert"

local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error
local setmetatable, tonumber, io, os = setmetatable, tonumber, io, os
local format, math_type, sort, concat = string.format, math.type, table.sort, table.concat

local M = {}

local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  return out
end

-- A readable one-line rendering for failure messages.
local function show(v, depth)
  depth = depth or 0
  if type(v) == "string" then return format("%q", v) end
  if type(v) ~= "table" then return tostring(v) end
  if depth > 4 then return "{...}" end
  local parts, n = {}, #v
  for i = 1, n do parts[#parts + 1] = show(v[i], depth + 1) end
  local keys = {}
  for k in pairs(v) do
    if not (math_type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
  end
  sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do parts[#parts + 1] = tostring(k) .. " = " .. show(v[k], depth + 1) end
  return "{ " .. concat(parts, ", ") .. " }"
end
M.show = show

local function committed(key, i, e)
  if type(e) ~= "table" or type(e.type) ~= "string" then
    error(format("given: event %d needs a type (got %s)", i, show(e)), 0)
  end
  return { key = e.key or key, revision = e.revision or format("%026d", i), type = e.type,
    data = e.data, correlation_id = e.correlation_id,
    committed_at = e.committed_at or format("2026-01-01T00:00:%02d.%03dZ", i // 1000 % 60, i % 1000) }
end

local function evolve(subject, state, event)
  local next_state = subject.evolve(state, event)
  if next_state == nil then
    error(format("evolve returned nil for a '%s' event (forgot to return the state?)", event.type), 0)
  end
  return next_state
end

local function outcome(subject, key, state, history, command)
  local events, reason = subject.decide(copy(state), command)
  local context = format("given state %s, when %s", show(state), show(command))
  local o = {}

  local function decided(what)
    assert.is_not_nil(events, format("%s: expected %s, but the command was rejected: %s",
      context, what, tostring(type(reason) == "table" and reason.message or reason)))
    assert.is_table(events, context .. ": decide must return a list of events")
  end

  --- The command decided exactly these events.
  function o.then_events(expected)
    decided("events " .. show(expected))
    assert.same(expected, events, context .. ": decided " .. show(events))
    return o
  end

  --- The command decided no events and was not rejected.
  function o.then_nothing()
    decided("no events")
    assert.same({}, events, context .. ": expected no events, decided " .. show(events))
    return o
  end

  --- The command was rejected; its reason matches `pattern` (a Lua pattern)
  -- when one is given.
  function o.then_rejected(pattern)
    assert.is_nil(events, context .. ": expected a rejection, but decided " .. show(events))
    local why = type(reason) == "table" and reason.message or reason
    assert.is_string(why, context .. ": a rejection needs a reason")
    if pattern then
      assert.is_truthy(why:find(pattern),
        format("%s: rejected with %q, which does not match %q", context, why, pattern))
    end
    return o
  end

  --- The state after the decided events.
  function o.then_state(expected)
    decided("a state")
    local s = copy(state)
    for i, e in ipairs(events) do s = evolve(subject, s, committed(key, #history + i, e)) end
    assert.same(expected, s, context .. ": state after " .. show(events))
    return o
  end

  return o
end

local function scenario(subject, opts, with_decide)
  opts = opts or {}
  if type(subject) ~= "table" or subject.initial == nil or type(subject.evolve) ~= "function" then
    error("needs a table with initial and evolve", 3)
  end
  if with_decide and type(subject.decide) ~= "function" then
    error("an aggregate needs a decide function", 3)
  end
  local key, app = opts.key or "test/1", opts.app
  if app ~= nil and (type(app) ~= "table" or type(app.upcast_event) ~= "function") then
    error("option 'app' must be an app built by aeon.app", 3)
  end
  return function(history)
    if type(history) ~= "table" then error("given needs a list of events", 2) end
    local state = copy(subject.initial)
    for i, e in ipairs(history) do
      local event = committed(key, i, copy(e))
      if app then event = app:upcast_event(event) end
      state = evolve(subject, state, event)
    end
    local s = { state = state }
    --- The state the given events fold into.
    function s.then_state(expected)
      assert.same(expected, state, "state after " .. show(history))
      return s
    end
    if with_decide then
      function s.when(command) return outcome(subject, key, state, history, command) end
    end
    return s
  end
end

--- Returns `given` for an aggregate: given(events).when(command).then_...
function M.for_aggregate(aggregate, opts) return scenario(aggregate, opts, true) end

--- Returns `given` for a projection: given(events).then_state(expected)
function M.for_projection(projection, opts) return scenario(projection, opts, false) end

-- ------------------------------------------------------------------------
-- An app over HTTP

local function sh_quote(v) return "'" .. tostring(v):gsub("'", "'\\''") .. "'" end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

local function spit(path, text)
  local f, err = io.open(path, "wb")
  if not f then error(err, 2) end
  f:write(text)
  f:close()
end

local function run(cmd)
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  return out
end

--- The aeon-host the specs serve apps with: $AEON_HOST, else the program
-- running them when it is aeon-host (`aeon-host test`), else `aeon-host`.
function M.host()
  local env = os.getenv("AEON_HOST")
  if env and env ~= "" then return env end
  -- The shell popen starts is a child of this process.
  local self_exe = run("readlink /proc/$PPID/exe 2>/dev/null"):gsub("%s+$", "")
  if self_exe:match("/aeon%-host$") then return self_exe end
  return "aeon-host"
end

local function urlencode(v)
  return (tostring(v):gsub("[^%w%-_%.~]", function(c) return format("%%%02X", c:byte()) end))
end

local Server = {}
Server.__index = Server

--- Serves `app` (a path) on a free loopback port with a fresh SQLite store
-- (opts.store: another URI; opts.args: more serve options). Raises when it
-- does not start within 10 s, with what it printed.
function M.serve(app, opts)
  opts = opts or {}
  local aeon = require "aeon"
  local dir = run("mktemp -d"):gsub("%s+$", "")
  local store = opts.store or ("sqlite:" .. dir .. "/store.db")
  local words = { sh_quote(M.host()), "--store", sh_quote(store), "serve", sh_quote(app),
    "--listen", "127.0.0.1:0" }
  for _, a in ipairs(opts.args or {}) do words[#words + 1] = sh_quote(a) end
  os.execute(format("(%s >%s/out 2>%s/err & echo $! >%s/pid; wait $!; echo $? >%s/rc) >/dev/null 2>&1 &",
    concat(words, " "), dir, dir, dir, dir))
  local s = setmetatable({ dir = dir, store = store, json = aeon.json }, Server)
  for _ = 1, 200 do
    s.url = (slurp(dir .. "/out") or ""):match("(http://[%d%.]+:%d+)")
    if s.url or slurp(dir .. "/rc") then break end
    os.execute("sleep 0.05")
  end
  s.pid = tonumber(slurp(dir .. "/pid"))
  if not s.url then
    local why = (slurp(dir .. "/err") or "") .. (slurp(dir .. "/out") or "")
    s:stop()
    error(format("aeon-host serve %s did not start: %s", app, why), 2)
  end
  return s
end

-- One request; returns the status and the body decoded from JSON (or the
-- text, when it is not JSON).
function Server:request(method, path, body)
  local n = (self.n or 0) + 1
  self.n = n
  local out = format("%s/answer%d", self.dir, n)
  local cmd = { "curl -s -o", sh_quote(out), "-w '%{http_code}' -X", method, "--max-time 30" }
  if body then
    spit(out .. ".req", body)
    cmd[#cmd + 1] = "-H 'Content-Type: application/json' --data-binary @" .. sh_quote(out .. ".req")
  end
  cmd[#cmd + 1] = sh_quote(self.url .. path)
  local status = tonumber(run(concat(cmd, " "))) or 0
  local text = slurp(out) or ""
  local v = self.json.decode(text)
  if v == nil then v = text end
  return status, v
end

--- POST /commands/NAME with `args` as the JSON body.
function Server:post(name, args)
  return self:request("POST", "/commands/" .. name, self.json.encode(args or {}))
end

--- GET /queries/NAME?k=v... ; opts.wait: seconds to ask again while 202.
function Server:get(name, params, opts)
  local q = {}
  for k, v in pairs(params or {}) do q[#q + 1] = urlencode(k) .. "=" .. urlencode(v) end
  sort(q)
  local path = "/queries/" .. name .. (#q > 0 and "?" .. concat(q, "&") or "")
  local tries = math.floor((opts and opts.wait or 0) / 0.05)
  local status, body = self:request("GET", path)
  while status == 202 and tries > 0 do
    os.execute("sleep 0.05")
    tries = tries - 1
    status, body = self:request("GET", path)
  end
  return status, body
end

--- What the server wrote on stderr (its JSON log).
function Server:log() return slurp(self.dir .. "/err") or "" end

--- Stops the server (SIGTERM) and returns its exit status.
function Server:stop()
  if self.code ~= nil or not self.pid then return self.code end
  os.execute(format("kill -TERM %d 2>/dev/null", self.pid))
  local rc
  for _ = 1, 400 do
    rc = slurp(self.dir .. "/rc")
    if rc then break end
    os.execute("sleep 0.05")
  end
  self.code = rc and tonumber(rc:match("%d+"))
  os.execute("rm -rf " .. sh_quote(self.dir))
  return self.code
end

return M
