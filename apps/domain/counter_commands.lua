--- domain.counter_commands: the counter apps' `increment` and `decrement`.
--
-- Each runs the counter aggregate (domain.counter) through aeon.execute
-- with the app's options (retries, snapshots, reporting conflicts) and
-- answers with the append result plus the counter's value after it:
-- `{ type = "appended", count, revision, value }`, or
-- `{ type = "unchanged", value = 0 }` for a decrement at 0.
local aeon = require "aeon"
local counter = require "domain.counter"

local M = {}

local function handler(make, options)
  return function(ctx, args)
    local name, why = counter.check_name(args.name)
    if not name then return aeon.invalid(why) end
    local result, value = aeon.execute(ctx.store, counter, counter.key(name), make(name), options)
    if not result then return nil, value end
    result.value = value
    return result
  end
end

--- Declares both commands on `app`, run with `options` (see aeon.execute).
function M.declare(app, options)
  app:command("increment", { params = { "name" }, description = "adds 1 to the counter NAME" },
    handler(counter.increment, options))
  app:command("decrement", { params = { "name" },
    description = "takes 1 from the counter NAME, unless it is at 0" },
    handler(counter.decrement, options))
end

return M
