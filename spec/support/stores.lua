--- Store stand-ins for runner and app specs: a real store with one
-- operation changed, to provoke conflicts and failures deterministically.
local setmetatable = setmetatable

local M = {}

--- A store that behaves as `store` except for the methods in `overrides`
-- (called as overrides.name(self, ...)).
function M.proxy(store, overrides)
  return setmetatable(overrides or {}, { __index = function(_, name)
    local method = store[name]
    if method == nil then return nil end
    return function(_, ...) return method(store, ...) end
  end })
end

--- A store where, before each of its first `times` appends, another writer
-- (`other`, a second handle on the same store) appends `event` to the same
-- key first: each of those appends conflicts if it expected a revision.
-- `proxy.interfered` counts the interruptions.
function M.interfering(store, other, event, times)
  local p
  p = M.proxy(store, {
    interfered = 0,
    append = function(_, key, events, opts)
      if p.interfered < (times or 1) then
        p.interfered = p.interfered + 1
        assert(other:append(key, { event }))
      end
      return store:append(key, events, opts)
    end,
  })
  return p
end

return M
