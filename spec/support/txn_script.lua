-- A plain script (no app) that ends with a transaction open: what it
-- appended in it must not be reported as done.
local aeon = require "aeon"
local store = assert(aeon.open(arg[1]))
assert(store:begin())
assert(store:append("t/script", { { type = "noted", data = {} } }))
print("appended")
