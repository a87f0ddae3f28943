--- aeon.cli.test_output: busted's utfTerminal output, then one plain line,
-- "N passed, N failed" (errors count as failed), for `aeon-host test` and
-- for scripts that read the result.
local io = io

return function(options)
  local busted = require "busted"
  local handler = require("busted.outputHandlers.utfTerminal")(options)
  local subscribe = handler.subscribe
  handler.subscribe = function(h, o)
    subscribe(h, o)
    busted.subscribe({ "suite", "end" }, function()
      io.stdout:write(("%d passed, %d failed\n"):format(h.successesCount,
        h.failuresCount + h.errorsCount))
      io.stdout:flush()
      return nil, true
    end)
  end
  return handler
end
