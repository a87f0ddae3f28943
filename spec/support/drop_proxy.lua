--- drop_proxy.lua: a loopback HTTP proxy in front of DynamoDB Local that
-- loses answers, to show a retried append commits exactly once.
--
--   lua5.4 spec/support/drop_proxy.lua UPSTREAM_PORT MODE DROPS PORT_FILE LOG_FILE
--
-- Listens on a free 127.0.0.1 port (written to PORT_FILE once listening).
-- Every request is forwarded to 127.0.0.1:UPSTREAM_PORT and its answer read
-- in full, so DynamoDB has acted on it. For the first DROPS requests whose
-- X-Amz-Target is TransactWriteItems the answer is then lost:
--   MODE "drop": the client's connection is closed without a byte of answer;
--   MODE "half": half the answer is sent, then the connection is closed.
-- Each request is logged to LOG_FILE as "forwarded OP" or "dropped OP".
-- One client connection at a time, requests in order (keep-alive), as the
-- store's client makes them. Exits after 120 s without a connection.
local socket = require "socket"

local upstream_port = assert(tonumber(arg[1]), "upstream port")
local mode = arg[2] or "drop"
local drops = tonumber(arg[3]) or 1
local port_file, log_file = assert(arg[4]), assert(arg[5])

local server = assert(socket.bind("127.0.0.1", 0))
local _, port = server:getsockname()
local f = assert(io.open(port_file .. ".tmp", "w"))
f:write(port, "\n")
f:close()
assert(os.rename(port_file .. ".tmp", port_file))

local function log(line)
  local l = assert(io.open(log_file, "a"))
  l:write(line, "\n")
  l:close()
end

-- Reads one HTTP message (request or response) with a Content-Length body.
-- Returns the raw bytes and the header table, or nil at end of stream.
local function read_message(sock)
  local head = {}
  local headers = {}
  local first = sock:receive("*l")
  if not first then return nil end
  head[#head + 1] = first
  while true do
    local line = sock:receive("*l")
    if not line then return nil end
    head[#head + 1] = line
    if line == "" then break end
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then headers[name:lower()] = value end
  end
  local body = ""
  local n = tonumber(headers["content-length"] or "0")
  if n > 0 then
    body = sock:receive(n)
    if not body then return nil end
  end
  return table.concat(head, "\r\n") .. "\r\n" .. body, headers, first
end

server:settimeout(120)
while true do
  local client = server:accept()
  if not client then break end
  client:settimeout(30)
  while true do
    local request, headers = read_message(client)
    if not request then break end
    local op = (headers["x-amz-target"] or "?"):match("%.([%w]+)$") or "?"
    local up = assert(socket.connect("127.0.0.1", upstream_port))
    up:settimeout(30)
    assert(up:send(request))
    local answer = read_message(up)
    up:close()
    if not answer then break end
    if op == "TransactWriteItems" and drops > 0 then
      drops = drops - 1
      log("dropped " .. op)
      if mode == "half" then client:send(answer:sub(1, #answer // 2)) end
      break -- close the client's connection
    end
    log("forwarded " .. op)
    client:send(answer)
  end
  client:close()
end
