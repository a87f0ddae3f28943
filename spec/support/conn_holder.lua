--- conn_holder.lua: opens many idle or half-sent connections and holds them,
-- for the connection-limit spec (spec/integration/containment_spec.lua).
--
--   lua5.4 spec/support/conn_holder.lua PORT N READY_FILE
--
-- Opens N connections to 127.0.0.1:PORT; every other one sends the start of
-- a request's headers and stops. Writes "opened N" to READY_FILE, then
-- holds them until killed (at most 120 s). A process of its own so that it
-- can raise its descriptor limit (ulimit -n) without the spec runner's.
local socket = require "socket"

local port = assert(tonumber(arg[1]), "port")
local n = assert(tonumber(arg[2]), "count")
local ready = assert(arg[3], "ready file")

local held = {}
for i = 1, n do
  local c = socket.tcp()
  if not c or not c:connect("127.0.0.1", port) then break end
  c:settimeout(0)
  if i % 2 == 0 then c:send("POST /commands/echo HTTP/1.1\r\nHost: x\r\nX-Drip: ") end
  held[#held + 1] = c
end
local f = assert(io.open(ready .. ".tmp", "w"))
f:write("opened ", #held, "\n")
f:close()
assert(os.rename(ready .. ".tmp", ready))
socket.sleep(120)
