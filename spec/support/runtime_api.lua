--- spec/support/runtime_api.lua: a loopback AWS Lambda Runtime API, for
-- running `aeon-host lambda` in specs as Lambda would run it.
--
--   local api = runtime_api.start()            -- listens on 127.0.0.1, a free port
--   -- start aeon-host with AWS_LAMBDA_RUNTIME_API = api.address
--   local r = api:invoke(event, { deadline_ms = ... })
--   --> { kind = "response" | "error", id, body (decoded), raw, headers }
--   local e = api:init_error()                 -- the runtime's init/error post
--   api:close()
--
-- It implements the Runtime API as AWS documents it for custom runtimes
-- (version 2018-06-01), request by request:
--
--   GET  /2018-06-01/runtime/invocation/next        200, the event as the body, with
--        Lambda-Runtime-Aws-Request-Id, Lambda-Runtime-Deadline-Ms (epoch ms),
--        Lambda-Runtime-Invoked-Function-Arn and Lambda-Runtime-Trace-Id;
--        held open until there is an invocation (a long poll)
--   POST /2018-06-01/runtime/invocation/ID/response  202 {"status":"OK"}
--   POST /2018-06-01/runtime/invocation/ID/error     202 {"status":"OK"}; the body is
--        {"errorMessage", "errorType", "stackTrace"}, with the
--        Lambda-Runtime-Function-Error-Type header
--   POST /2018-06-01/runtime/init/error              202 {"status":"OK"}
--   an ID that is not the invocation in flight       400 InvalidRequestID
--   anything else                                    404
--
-- HTTP/1.1 with keep-alive; bodies by Content-Length (as libcurl sends
-- them). The spec is Lambda's side: it is single-threaded, so each call
-- serves the runtime's requests until the answer it waits for arrives.
local socket = require "socket"
local aeon = require "aeon"

local json_encode, json_decode = aeon.json.encode, aeon.json.decode

local M = {}

local Api = {}
Api.__index = Api

local PREFIX = "/2018-06-01/runtime"

function M.start()
  local server = assert(socket.bind("127.0.0.1", 0))
  server:settimeout(0)
  local _, port = server:getsockname()
  return setmetatable({ server = server, address = "127.0.0.1:" .. port, conns = {},
    seq = 0, waiting = nil }, Api)
end

-- Reads one request from a connection: method, path, headers, body; nil
-- when the connection closed.
local function read_request(conn)
  conn:settimeout(30)
  local first = conn:receive("*l")
  if not first then return nil end
  local method, path = first:match("^(%u+) (%S+) HTTP/1%.%d$")
  local headers = {}
  while true do
    local line = conn:receive("*l")
    if not line then return nil end
    if line == "" then break end
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then headers[name:lower()] = value end
  end
  local n = tonumber(headers["content-length"] or "0")
  local body = n > 0 and conn:receive(n) or ""
  if not body then return nil end
  return { method = method, path = path, headers = headers, body = body }
end

local function reply(conn, status, reason, body, headers)
  local lines = { ("HTTP/1.1 %d %s"):format(status, reason),
    "Content-Type: application/json", "Content-Length: " .. #body }
  for k, v in pairs(headers or {}) do lines[#lines + 1] = k .. ": " .. v end
  lines[#lines + 1] = ""
  lines[#lines + 1] = body
  conn:send(table.concat(lines, "\r\n"))
end

-- The next request from the runtime, on any connection, waiting up to
-- `timeout` seconds: request and its connection, or nil.
function Api:receive(timeout)
  local deadline = socket.gettime() + timeout
  while socket.gettime() < deadline do
    local watch = { self.server }
    for _, c in ipairs(self.conns) do watch[#watch + 1] = c end
    local ready = socket.select(watch, nil, math.max(0.01, deadline - socket.gettime()))
    for _, s in ipairs(ready or {}) do
      if s == self.server then
        local c = self.server:accept()
        if c then self.conns[#self.conns + 1] = c end
      else
        local req = read_request(s)
        if req then return req, s end
        for i, c in ipairs(self.conns) do
          if c == s then table.remove(self.conns, i) break end
        end
        s:close()
      end
    end
  end
  return nil
end

local function send_event(conn, id, event, opts)
  local body = type(event) == "string" and event or json_encode(event)
  reply(conn, 200, "OK", body, {
    ["Lambda-Runtime-Aws-Request-Id"] = id,
    ["Lambda-Runtime-Deadline-Ms"] = tostring(opts.deadline_ms),
    ["Lambda-Runtime-Invoked-Function-Arn"] =
      "arn:aws:lambda:us-east-1:123456789012:function:aeon-spec",
    ["Lambda-Runtime-Trace-Id"] = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Sampled=0",
  })
end

local function now_ms() return math.floor(socket.gettime() * 1000) end

--- Hands `event` (a table, or JSON text) to the runtime as the next
-- invocation and serves its requests until it posts the answer. opts:
-- deadline_ms (default now + 30 s), timeout (seconds to wait, default 30).
-- Returns { kind = "response" | "error", id, body, raw, headers }, or
-- nil, why.
function Api:invoke(event, opts)
  opts = opts or {}
  opts.deadline_ms = opts.deadline_ms or now_ms() + 30000
  self.seq = self.seq + 1
  local id = ("8476a536-e9f4-11e8-9739-%012d"):format(self.seq)
  local deadline = socket.gettime() + (opts.timeout or 30)
  local sent = false
  if self.waiting then
    send_event(self.waiting, id, event, opts)
    self.waiting, sent = nil, true
  end
  while socket.gettime() < deadline do
    local req, conn = self:receive(deadline - socket.gettime())
    if not req then break end
    local path = req.path
    if req.method == "GET" and path == PREFIX .. "/invocation/next" then
      if sent then
        return nil, "the runtime asked for the next invocation without answering " .. id
      end
      send_event(conn, id, event, opts)
      sent = true
    elseif req.method == "POST" and path:sub(1, #PREFIX + 12) == PREFIX .. "/invocation/" then
      local rid, what = path:sub(#PREFIX + 13):match("^([^/]+)/(%a+)$")
      if rid ~= id or (what ~= "response" and what ~= "error") then
        reply(conn, (what == "response" or what == "error") and 400 or 404, "Bad Request",
          json_encode({ errorMessage = "Invalid request ID", errorType = "InvalidRequestID" }))
      else
        reply(conn, 202, "Accepted", '{"status":"OK"}')
        -- Lambda's side goes on: the runtime's next GET waits for the
        -- next invoke.
        local nreq, nconn = self:receive(5)
        if nreq and nreq.method == "GET" and nreq.path == PREFIX .. "/invocation/next" then
          self.waiting = nconn
        end
        return { kind = what, id = id, raw = req.body, body = json_decode(req.body),
          headers = req.headers }
      end
    else
      reply(conn, 404, "Not Found", '{"errorMessage":"not found","errorType":"NotFound"}')
    end
  end
  return nil, "no answer from the runtime to invocation " .. id
end

--- Waits for the runtime's POST to init/error: { body, raw, headers }, or
-- nil, why (it asked for an invocation instead, or said nothing).
function Api:init_error(timeout)
  local req, conn = self:receive(timeout or 30)
  if not req then return nil, "the runtime posted nothing" end
  if req.method == "POST" and req.path == PREFIX .. "/init/error" then
    reply(conn, 202, "Accepted", '{"status":"OK"}')
    return { raw = req.body, body = json_decode(req.body), headers = req.headers }
  end
  if req.method == "GET" then self.waiting = conn end
  return nil, ("the runtime sent %s %s, not an init error"):format(req.method, req.path)
end

function Api:close()
  for _, c in ipairs(self.conns) do c:close() end
  self.conns = {}
  self.server:close()
end

return M
