--- spec/load/hostile.lua: the hostile half of `make loadtest`.
--
--   lua5.4 spec/load/hostile.lua PORT SECONDS COUNT_FILE
--
-- For SECONDS, from 127.0.0.2 (another client than the load's), sends the
-- bad requests of spec/integration/containment_spec.lua in a loop, each on
-- its own connection, against the server on 127.0.0.1:PORT: smuggling
-- attempts, bad URLs and headers, NUL in bodies, handlers that leak, close
-- the store, spin, escape their hook, build huge strings or hang in C, and
-- 300 idle connections held open from 127.0.0.3. Writes "requests N answered M"
-- to COUNT_FILE. Loopback only.
local socket = require "socket"

local port = assert(tonumber(arg[1]), "port")
local seconds = assert(tonumber(arg[2]), "seconds")
local count_file = assert(arg[3], "count file")
local FROM = "127.0.0.2"
local IDLE_FROM = "127.0.0.3" -- past its per-client limit, as a flood would be

local function post(path, body)
  return ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" ..
    "Content-Length: %d\r\n\r\n%s"):format(path, #body, body)
end

local smuggled = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
local CASES = {
  "POST /commands/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}" .. smuggled,
  "POST /commands/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
  "GET /queries/params?name=a%00zzz HTTP/1.1\r\nHost: x\r\n\r\n",
  "GET /queries/params?name=%zz HTTP/1.1\r\nHost: x\r\n\r\n",
  "GET /queries/params?name=%ff HTTP/1.1\r\nHost: x\r\n\r\n",
  "GET /health HTTP/1.1\r\nHost: x\r\nX-Note: \xff\xfe\r\n\r\n",
  "GET /nope HTTP/1.7\r\nHost: x\r\n\r\n",
  post("/commands/append", '{"key": "a\\u0000b"}'),
  post("/commands/table_error", "{}"),
  post("/commands/bare_table_error", "{}"),
  post("/commands/raise_table", "{}"),
  post("/commands/close_store", "{}"),
  post("/commands/close_store_meta", "{}"),
  post("/commands/loaded_coroutine", "{}"),
  post("/commands/new_coroutine", "{}"),
  post("/commands/unhook", "{}"),
  post("/commands/rep", "{}"),
  post("/commands/double", "{}"),
}
-- Hangs a worker in C for a few seconds (past --max-time): sent now and then.
local STUCK = post("/commands/pattern", '{"n": 13}')

local function send(text)
  local c = socket.tcp()
  if not c then return false end
  c:settimeout(15)
  if not c:bind(FROM, 0) or not c:connect("127.0.0.1", port) then
    c:close()
    return false
  end
  c:send(text)
  c:send("") -- nothing more: the answer, or the server closing, ends it
  local data, err, partial = c:receive(12)
  c:close()
  return ((data or partial or ""):match("^HTTP/1%.%d %d%d%d")) ~= nil
end

local idle = {}
for _ = 1, 300 do
  local c = socket.tcp()
  if c and c:bind(IDLE_FROM, 0) and c:connect("127.0.0.1", port) then idle[#idle + 1] = c end
end

local deadline = socket.gettime() + seconds
local sent, answered, i = 0, 0, 0
local next_stuck = socket.gettime()
while socket.gettime() < deadline do
  i = i % #CASES + 1
  local text = CASES[i]
  if socket.gettime() >= next_stuck then
    text, next_stuck = STUCK, socket.gettime() + 5
  end
  sent = sent + 1
  if send(text) then answered = answered + 1 end
end
for _, c in ipairs(idle) do c:close() end

local f = assert(io.open(count_file, "w"))
f:write(("requests %d answered %d idle %d\n"):format(sent, answered, #idle))
f:close()
