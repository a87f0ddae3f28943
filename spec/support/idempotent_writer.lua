-- One of several processes repeating the same append with the same
-- idempotency key at the same moment; prints the result type.
-- Run as: aeon-host idempotent_writer.lua URI KEY TOKEN START_AT
local aeon = require "aeon"

local uri, key, token, start_at = arg[1], arg[2], arg[3], tonumber(arg[4])
local store = assert(aeon.open(uri))
-- Line the processes up on a wall-clock instant so the appends overlap.
local sleep = require("aeon.core").sleep
while os.time() < start_at do sleep(0.002) end
local r = assert(store:append(key, { { type = "paid", data = { amount = 10 } } },
  { idempotency_key = token }))
io.stdout:write(r.type, "\n")
store:close()
