-- An app for the transaction specs (spec/integration/transaction_spec.lua):
-- handlers that leave a transaction open every way one can (returning,
-- raising, stopped by the request's budget, swallowing that stop), one that
-- uses the safe form, plain appends and a count to check what was stored.
-- Nothing here is an example to follow but `atomic`.
local aeon = require "aeon"

local app = aeon.app "txn"

local function note(store, name, n)
  return store:append("t/" .. name, { { type = "noted", data = { n = n or 0 } } })
end

app:command("append", { params = { "name" } }, function(ctx, args)
  local r, err = note(ctx.store, args.name, args.n)
  if not r then return aeon.store_failure(err) end
  return r
end)

app:command("leak_return", { params = { "name" } }, function(ctx, args)
  assert(ctx.store:begin())
  return note(ctx.store, args.name)
end)

app:command("leak_raise", { params = { "name" } }, function(ctx, args)
  assert(ctx.store:begin())
  note(ctx.store, args.name)
  error("raised with a transaction open")
end)

app:command("leak_spin", { params = { "name" } }, function(ctx, args)
  assert(ctx.store:begin())
  note(ctx.store, args.name)
  while true do end
end)

-- Catches the budget's error and spins on: the server abandons it.
app:command("leak_stubborn", { params = { "name" } }, function(ctx, args)
  assert(ctx.store:begin())
  note(ctx.store, args.name)
  while true do pcall(function() while true do end end) end
end)

app:query("leak_query", { params = { "name" } }, function(ctx, args)
  assert(ctx.store:begin())
  return { head = ctx.store:head("t/" .. args.name) }
end)

-- The safe form: both appends commit, or (fail) neither does.
app:command("atomic", { params = { "name", "fail" } }, function(ctx, args)
  local ok, err = ctx.store:transaction(function(tx)
    note(tx, args.name, 1)
    note(tx, args.name, 2)
    if args.fail then error("refused after two appends") end
  end)
  if not ok then return aeon.store_failure(err) end
  return { committed = 2 }
end)

app:query("count", { params = { "name" } }, function(ctx, args)
  local n = 0
  for _ in ctx.store:read("t/" .. args.name) do n = n + 1 end
  return { n = n }
end)

-- A projection whose handler ends the batch's transaction itself (rolls it
-- back, or commits it) on the events that ask for it.
app:projection("meddler", { view = "meddler", key = "t/*" }, function(view, event, ctx)
  if event.data.rollback then ctx.store:rollback() end
  if event.data.commit then ctx.store:commit() end
  assert(view:put(event.revision, { n = event.data.n }, event.revision))
end)

return app
