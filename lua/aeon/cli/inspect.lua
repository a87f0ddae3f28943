--- aeon.cli.inspect: looking into a store from the command line.
--
--   aeon-host events all [--key PATTERN] [--type PATTERN] [read options]
--   aeon-host events keys [PATTERN] [--json]   every key: its head and event count
--
-- Patterns are those of subscriptions: exact, or `*` for any run of
-- characters. What a filter can say (an exact key or type, a key prefix)
-- goes to the store as a read_all filter; any other pattern is matched
-- here, on each event read. `events keys` reads every event (of the keys
-- the pattern's prefix allows): the store keeps no list of keys.
local aeon = require "aeon"

local io, ipairs, pairs, next, table, tostring = io, ipairs, pairs, next, table, tostring
local f = aeon.filter

local M = {}

-- A Lua pattern matching what the glob matches, anchored.
local function glob(p)
  return "^" .. p:gsub("[%^%$%(%)%%%.%[%]%+%-%?]", "%%%0"):gsub("%*", ".*") .. "$"
end

-- The store filter a pattern allows: eq without `*`, prefix with one
-- trailing `*`; `exact` tells whether it says all the pattern says.
local function pushdown(p)
  if not p:find("*", 1, true) then return f.eq(p), true end
  local head = p:match("^([^*]*)%*$")
  if head then return head ~= "" and f.prefix(head) or nil, true end
  head = p:match("^([^*]*)%*")
  return head ~= "" and f.prefix(head) or nil, false
end

--- Reads every event matching key and type patterns (either may be nil),
-- with read_all options `ro` (limit counts matching events). Returns an
-- iterator, or nil and the store's message.
function M.read_all(store, ro, key, type_)
  local filter, exact = {}, true
  for field, p in pairs { key = key, type = type_ } do
    local flt, whole = pushdown(p)
    filter[field] = flt
    exact = exact and whole
  end
  local opts = {}
  for k, v in pairs(ro) do opts[k] = v end
  if next(filter) then opts.filter = filter end
  if exact then return store:read_all(opts) end
  -- Some pattern is matched here: the limit is counted here too.
  local limit = opts.limit
  opts.limit = nil
  local iter, s, c, closer = store:read_all(opts)
  if not iter then return nil, s end
  local kp, tp = key and glob(key), type_ and glob(type_)
  local n = 0
  return function()
    if limit and n >= limit then return nil end
    while true do
      local e = iter(s, c)
      if e == nil then return nil end
      c = e
      if (not kp or e.key:find(kp)) and (not tp or e.type:find(tp)) then
        n = n + 1
        return e
      end
    end
  end, nil, nil, closer
end

--- aeon-host events keys [PATTERN] [--json]
function M.keys(opts, words, help)
  local options = require "aeon.cli.options"
  local usage, exit = options.usage, options.EXIT
  local flags, pos = options.parse(words, 3, { json = "flag" }, "events keys")
  if flags.help then io.stdout:write(help, "\n"); return exit.ok end
  if #pos > 1 then usage("events keys takes one PATTERN") end
  local pattern = pos[1]
  if pattern == "" then usage("events keys needs a non-empty PATTERN") end
  local store, err = options.open_store(opts)
  if not store then
    options.say("%s", tostring(err))
    return exit.io
  end
  local iter, s, c, closer = M.read_all(store, {}, pattern, nil)
  if not iter then
    store:close()
    options.say("%s", tostring(s))
    return exit.io
  end
  local heads, counts, keys = {}, {}, {}
  for e in iter, s, c, closer do
    if not counts[e.key] then
      keys[#keys + 1] = e.key
      counts[e.key] = 0
    end
    counts[e.key] = counts[e.key] + 1
    if not heads[e.key] or e.revision > heads[e.key] then heads[e.key] = e.revision end
  end
  store:close()
  table.sort(keys)
  local out = io.stdout
  for _, k in ipairs(keys) do
    if flags.json then
      out:write(aeon.json.encode { key = k, head = heads[k], events = counts[k] }, "\n")
    else
      out:write(k, "  ", heads[k], "  ", counts[k], "\n")
    end
  end
  return exit.ok
end

return M
