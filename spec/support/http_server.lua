--- spec/support/http_server.lua: runs `aeon-host serve` for a spec and
-- drives it with curl.
--
--   local server = require "support.http_server"
--   local s = server.start("apps/counter-basic.lua", { "--workers", "2" })
--   local status, body, headers = s:json("POST", "/commands/increment", { json = { name = "a" } })
--   assert.same(0, s:stop())
--
-- The server listens on 127.0.0.1 port 0 (a free port the kernel picks);
-- the URL comes from its start-up line. Its stdout, stderr (the JSON log),
-- pid and exit status are files in a fresh directory.
local aeon = require "aeon"
local helpers = require "helpers"

local q = helpers.shell_quote
local json_decode, json_encode = aeon.json.decode, aeon.json.encode

local M = {}

-- curl as the specs run it. `make sanitize` preloads ASan into everything
-- the specs start; curl hangs at start-up with it, and it has no business
-- being sanitized anyway.
M.CURL = "env -u LD_PRELOAD curl"

local slurp, spit = helpers.slurp, helpers.spit
M.slurp, M.spit = slurp, spit

function M.sleep(seconds) os.execute("sleep " .. tostring(seconds)) end

--- Wall-clock seconds, with a fraction.
function M.now()
  local p = io.popen("date +%s.%N")
  local t = tonumber(p:read("l"))
  p:close()
  return t
end

--- Polls f() every 0.1 s until it returns a true value or `seconds` pass;
-- returns that value (or the last one).
function M.eventually(seconds, f)
  local deadline = M.now() + seconds
  local v = f()
  while not v and M.now() < deadline do
    M.sleep(0.1)
    v = f()
  end
  return v
end

local Server = {}
Server.__index = Server

--- Starts `aeon-host --store STORE serve APP --listen 127.0.0.1:0 WORDS...`
-- and waits for its start-up line (up to 10 s). opts: env (table), store
-- (URI; default a fresh SQLite file), listen (false: pass no --listen).
function M.start(app, words, opts)
  opts = opts or {}
  local dir = helpers.tmpdir()
  local store = opts.store or ("sqlite:" .. dir .. "/store.db")
  local all = { "--store", store, "serve", app }
  if opts.listen ~= false then
    all[#all + 1] = "--listen"
    all[#all + 1] = opts.listen or "127.0.0.1:0"
  end
  for _, w in ipairs(words or {}) do all[#all + 1] = w end
  -- The pid and the exit status are written to a .tmp file and renamed, so
  -- that neither is ever read half written (a status read between the
  -- shell creating the file and writing it made a server that had exited
  -- look hung).
  os.execute(("(%s >%s/out 2>%s/err & echo $! >%s/pid.tmp; mv %s/pid.tmp %s/pid; wait $!; " ..
    "echo $? >%s/rc.tmp; mv %s/rc.tmp %s/rc) >/dev/null 2>&1 &")
    :format(helpers.host_command(all, opts.env), dir, dir, dir, dir, dir, dir, dir, dir))
  local s = setmetatable({ dir = dir, store = store, app = app }, Server)
  M.eventually(10, function()
    s.url = (slurp(dir .. "/out") or ""):match("(http://[%d%.]+:%d+)")
    return s.url or slurp(dir .. "/rc")
  end)
  s.pid = tonumber(M.eventually(10, function() return (slurp(dir .. "/pid") or ""):match("%d+") end))
  s.port = s.url and tonumber(s.url:match(":(%d+)$"))
  return s
end

--- What the server printed on stdout.
function Server:stdout() return slurp(self.dir .. "/out") or "" end

--- What the server wrote on stderr.
function Server:stderr() return slurp(self.dir .. "/err") or "" end

--- The log: every stderr line decoded (a line that is not JSON becomes
-- { not_json = line }).
function Server:log()
  local lines = {}
  for line in self:stderr():gmatch("[^\n]+") do
    local v = json_decode(line)
    lines[#lines + 1] = type(v) == "table" and v or { not_json = line }
  end
  return lines
end

--- Log lines whose fields match all of `fields`.
function Server:log_where(fields)
  local out = {}
  for _, l in ipairs(self:log()) do
    local ok = true
    for k, v in pairs(fields) do ok = ok and l[k] == v end
    if ok then out[#out + 1] = l end
  end
  return out
end

function Server:signal(name) os.execute(("kill -%s %d 2>/dev/null"):format(name, self.pid)) end

--- The exit status, waiting up to `seconds`; nil if still running. A
-- status file without a number is one still being written: not yet.
function Server:wait(seconds)
  local rc = M.eventually(seconds or 15, function()
    return (slurp(self.dir .. "/rc") or ""):match("%d+")
  end)
  return tonumber(rc)
end

--- One server for the specs of a describe block: started before the first
-- (lazy_setup; its URL asserted), stopped after the last, which asserts
-- that it exits 0. Returns the server, a table filled in once it starts.
function M.per_block(app, words, opts)
  local busted = require "busted" -- lazy_setup and luassert live in the spec's environment
  local s = setmetatable({}, Server)
  busted.lazy_setup(function()
    for k, v in pairs(M.start(app, words, opts)) do s[k] = v end
    busted.assert.truthy(s.url, s:stderr())
  end)
  busted.lazy_teardown(function() busted.assert.same(0, s:stop()) end)
  return s
end

--- SIGTERM, then the exit status.
function Server:stop()
  if self.stopped then return self.code end
  self:signal("TERM")
  self.code = self:wait(20)
  self.stopped = true
  return self.code
end

-- The curl command for one request, writing the body to `body` and the
-- headers to `head`; -w prints the status (000 when there was no answer).
local function curl(self, method, path, opts, body, head, reqfile)
  opts = opts or {}
  local cmd = { M.CURL, "-s -o", q(body), "-D", q(head), "-w '%{http_code}'", "-X", q(method),
    "--max-time", tostring(opts.max_time or 30) }
  for name, value in pairs(opts.headers or {}) do
    cmd[#cmd + 1] = "-H " .. q(name .. ": " .. value)
  end
  local data = opts.body or (opts.json and json_encode(opts.json))
  if data then
    local file = reqfile or (body .. ".req")
    spit(file, data)
    cmd[#cmd + 1] = "--data-binary @" .. q(file)
    if not (opts.headers and opts.headers["Content-Type"]) then
      cmd[#cmd + 1] = "-H 'Content-Type: application/json'"
    end
  end
  cmd[#cmd + 1] = q((opts.url or self.url) .. path)
  return table.concat(cmd, " ")
end

local function headers_of(text)
  local h = {}
  for line in (text or ""):gmatch("[^\r\n]+") do
    local k, v = line:match("^([^:]+):%s*(.*)$")
    if k then h[k:lower()] = v end
  end
  return h
end

local seq = 0
local function files(self)
  seq = seq + 1
  return ("%s/req%d.body"):format(self.dir, seq), ("%s/req%d.head"):format(self.dir, seq)
end

--- One request. opts: body (string), json (table), headers (table),
-- max_time. Returns status (0 when nothing answered), body text, headers
-- (lowercase names).
function Server:request(method, path, opts)
  local body, head = files(self)
  local p = io.popen(curl(self, method, path, opts, body, head))
  local status = tonumber(p:read("a")) or 0
  p:close()
  return status, slurp(body) or "", headers_of(slurp(head))
end

--- Like request, with the body decoded from JSON.
function Server:json(method, path, opts)
  local status, text, headers = self:request(method, path, opts)
  return status, json_decode(text), headers, text
end

--- A request in the background: returns a handle whose :wait() gives
-- status, body text, headers.
function Server:spawn(method, path, opts)
  local body, head = files(self)
  local status = body .. ".status"
  os.execute(("(%s >%s.tmp; mv %s.tmp %s) >/dev/null 2>&1 &"):format(
    curl(self, method, path, opts, body, head), q(status), q(status), q(status)))
  return {
    wait = function()
      local s = M.eventually(60, function() return slurp(status) end)
      return tonumber(s) or 0, slurp(body) or "", headers_of(slurp(head))
    end,
  }
end

--- `n` identical requests, `parallel` at a time (xargs -P); returns the
-- list of statuses.
function Server:parallel(n, parallel, method, path, opts)
  local body, head = files(self)
  local cmd = curl(self, method, path, opts, "/dev/null", "/dev/null", body .. ".req")
  local p = io.popen(("seq %d | xargs -P %d -I{} sh -c %s"):format(n, parallel, q(cmd)))
  local out = p:read("a")
  p:close()
  -- Statuses are three digits each; the writes of parallel curls may run together.
  local statuses = {}
  for s in out:gmatch("%d%d%d") do statuses[#statuses + 1] = tonumber(s) end
  os.remove(body .. ".req")
  os.remove(head)
  return statuses
end

--- The value of an unlabelled metric, or of one with exactly these labels
-- (`labels` as they appear: 'route="/health",status="200"').
function Server:metric(name, labels)
  local _, text = self:request("GET", "/metrics")
  local pattern = "\n" .. name:gsub("%p", "%%%0") ..
    (labels and ("{" .. labels:gsub("%p", "%%%0") .. "}") or "") .. " ([^\n]+)"
  local v = ("\n" .. text):match(pattern)
  return v and tonumber(v)
end

return M
