--- aeon.cli.new: `aeon-host new DIR` writes a small working app to start
-- from: DIR/app.lua (an account aggregate whose withdraw can be rejected, a
-- projection keeping balances and a query over that view), its pure domain
-- module DIR/domain/account.lua, busted specs (the aggregate, the
-- projection, the app over HTTP) and a README. The app is named after DIR.
-- It writes nothing when DIR already holds any of these files.
local io, os, ipairs = io, os, ipairs

local M = {}

local APP = [==[
--- {{NAME}}: an event-sourced app (aeon-host).
--
--   aeon-host app.lua deposit a 10        {"balance":10,"count":1,"revision":"01K...","type":"appended"}
--   aeon-host app.lua withdraw a 25       aeon-host: insufficient funds: the balance is 10 (exit 1)
--   aeon-host app.lua balance a           {"balance":10,"deposits":1,"revision":"01K...","withdrawals":0}
--   aeon-host app.lua                     serves it over HTTP
--
-- Commands run the account aggregate (domain/account.lua) through
-- aeon.execute; the `balances` projection keeps a view the query reads.
local aeon = require "aeon"
local account = require "domain.account"

local app = aeon.app "{{NAME}}"

local function command(make)
  return function(ctx, args)
    if type(args.id) ~= "string" or args.id == "" then
      return aeon.invalid("id must be a non-empty string")
    end
    local result, balance = aeon.execute(ctx.store, account, account.key(args.id),
      make(args.id, args.amount))
    if not result then return nil, balance end -- rejected, or a conflict or store failure
    result.balance = balance
    return result
  end
end

app:command("deposit", { params = { "id", "amount" } }, command(account.deposit))
app:command("withdraw", { params = { "id", "amount" } }, command(account.withdraw))

-- One document per account. A replayed event (at or below the document's
-- revision) changes nothing.
app:projection("balances", { view = "balances", key = "account/*" }, function(view, event)
  local id = event.data.id
  local doc = view:get(id) or account.balances.initial
  if event.revision <= doc.revision then return end
  local after = account.balances.evolve(doc, event)
  after.revision = event.revision
  view:put(id, after, event.revision)
end)

-- With `revision` (from a command's answer) it says "not yet" until the
-- view has seen it; from the command line without one, the view is first
-- brought up to date.
app:query("balance", { params = { "id", "revision" }, views = { "balances" } },
  function(ctx, args)
    local view = ctx.store:view("balances")
    if args.revision then
      local seen = view:revision()
      if args.revision > seen then return aeon.not_yet(args.revision, seen) end
    end
    return view:get(args.id) or account.balances.initial
  end)

return app
]==]

local DOMAIN = [==[
--- domain.account: an account's balance, as events. Pure: no I/O.
--
-- Commands { type = "deposit" | "withdraw", id, amount }; events
-- { type = "deposited" | "withdrawn", data = { id, amount } }. The state is
-- the balance; a withdrawal above it is refused.
local aeon = require "aeon"

local M = {}

function M.key(id) return "account/" .. id end

M.initial = 0

function M.evolve(balance, event)
  if event.type == "deposited" then return balance + event.data.amount end
  if event.type == "withdrawn" then return balance - event.data.amount end
  return balance
end

function M.decide(balance, command)
  local amount = command.amount
  if math.type(amount) ~= "integer" or amount < 1 then
    return nil, "amount must be a whole number above 0"
  end
  if command.type == "deposit" then
    return { M.deposited(command.id, amount) }
  elseif command.type == "withdraw" then
    if amount > balance then
      return nil, ("insufficient funds: the balance is %d"):format(balance)
    end
    return { M.withdrawn(command.id, amount) }
  end
  return nil, "unknown account command " .. tostring(command.type)
end

function M.deposit(id, amount) return { type = "deposit", id = id, amount = amount } end
function M.withdraw(id, amount) return { type = "withdraw", id = id, amount = amount } end
function M.deposited(id, amount) return { type = "deposited", data = { id = id, amount = amount } } end
function M.withdrawn(id, amount) return { type = "withdrawn", data = { id = id, amount = amount } } end

--- The read model's document: balance and counts, and the revision of the
-- last event in it.
M.balances = {
  initial = { balance = 0, deposits = 0, withdrawals = 0, revision = aeon.START },
  evolve = function(doc, event)
    local d = event.data
    if event.type == "deposited" then
      return { balance = doc.balance + d.amount, deposits = doc.deposits + 1,
        withdrawals = doc.withdrawals, revision = doc.revision }
    elseif event.type == "withdrawn" then
      return { balance = doc.balance - d.amount, deposits = doc.deposits,
        withdrawals = doc.withdrawals + 1, revision = doc.revision }
    end
    return doc
  end,
}

return M
]==]

local ACCOUNT_SPEC = [==[
-- The account aggregate: given these events, when this command, then these
-- events (or this rejection), and the state after them.
local testing = require "aeon.testing"
local account = require "domain.account"

local given = testing.for_aggregate(account)

describe("account", function()
  it("takes deposits", function()
    given {} .when(account.deposit("a", 10))
      .then_events { account.deposited("a", 10) } .then_state(10)
  end)

  it("pays out what it holds", function()
    given { account.deposited("a", 10) } .when(account.withdraw("a", 4))
      .then_events { account.withdrawn("a", 4) } .then_state(6)
  end)

  it("refuses to go below 0", function()
    given { account.deposited("a", 10) } .when(account.withdraw("a", 25))
      .then_rejected "insufficient funds: the balance is 10"
  end)

  it("refuses amounts that are not whole and positive", function()
    given {} .when(account.deposit("a", 0)) .then_rejected "amount must be"
    given {} .when(account.deposit("a", 1.5)) .then_rejected "amount must be"
  end)
end)
]==]

local BALANCES_SPEC = [==[
-- The balances read model: the document the projection keeps per account.
local testing = require "aeon.testing"
local account = require "domain.account"

local given = testing.for_projection(account.balances)

describe("balances", function()
  it("counts deposits and withdrawals", function()
    given { account.deposited("a", 10), account.withdrawn("a", 4), account.deposited("a", 1) }
      .then_state { balance = 7, deposits = 2, withdrawals = 1, revision = "0" }
  end)

  it("starts at 0", function()
    given {} .then_state { balance = 0, deposits = 0, withdrawals = 0, revision = "0" }
  end)
end)
]==]

local APP_SPEC = [==[
-- The app served over HTTP, as clients see it: aeon-host serve on a free
-- loopback port with a fresh store.
local testing = require "aeon.testing"

describe("{{NAME}} over HTTP", function()
  local server
  setup(function() server = testing.serve("app.lua") end)
  teardown(function() if server then assert.same(0, server:stop()) end end)

  it("deposits, refuses an overdraft, and reads the balance back", function()
    local status, body = server:post("deposit", { id = "a", amount = 10 })
    assert.same(200, status)
    assert.same({ "appended", 10 }, { body.type, body.balance })

    status, body = server:post("withdraw", { id = "a", amount = 25 })
    assert.same(422, status)
    assert.same("insufficient funds: the balance is 10", body.error)

    status, body = server:post("withdraw", { id = "a", amount = 4 })
    assert.same(200, status)
    -- The projection runs in the background: ask for the revision just made.
    status, body = server:get("balance", { id = "a", revision = body.revision }, { wait = 10 })
    assert.same(200, status)
    assert.same({ 6, 1, 1 }, { body.balance, body.deposits, body.withdrawals })
  end)

  it("answers 400 for a bad id and 404 for an unknown command", function()
    assert.same(400, (server:post("deposit", { amount = 1 })))
    assert.same(404, (server:post("close", { id = "a" })))
  end)
end)
]==]

local README = [==[
# {{NAME}}

An event-sourced app for aeon-host: accounts that take deposits and refuse
overdrafts (`app.lua`, its domain in `domain/account.lua`).

Run a command or query (the store is `sqlite:aeon.db` here, or `--store URI`):

```sh
aeon-host app.lua deposit a 10
aeon-host app.lua withdraw a 25     # refused: exit 1
aeon-host app.lua balance a
```

Serve it over HTTP (Ctrl-C stops it):

```sh
aeon-host app.lua
curl -s -X POST http://127.0.0.1:8080/commands/deposit -d '{"id":"a","amount":10}'
curl -s 'http://127.0.0.1:8080/queries/balance?id=a'
```

Test it (busted specs in `spec/`: the aggregate, the read model, the app over HTTP):

```sh
aeon-host test
```
]==]

local FILES = {
  { "app.lua", APP },
  { "domain/account.lua", DOMAIN },
  { "spec/account_spec.lua", ACCOUNT_SPEC },
  { "spec/balances_spec.lua", BALANCES_SPEC },
  { "spec/app_spec.lua", APP_SPEC },
  { "README.md", README },
}

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

local function run(args, usage)
  local dir = args[2]
  if dir == "--help" or dir == "-h" then
    io.stdout:write("usage: aeon-host new DIR\n",
      "  writes a small working app to start from into DIR: app.lua, domain/, spec/, README.md\n")
    return 0
  end
  if not dir or dir == "" then usage("new needs a DIR") end
  if args[3] then usage("new takes one DIR") end
  local name = dir:gsub("/+$", ""):match("([^/]+)$") or "app"
  name = name:gsub("[^%w_%-]", "-")
  for _, f in ipairs(FILES) do
    if exists(dir .. "/" .. f[1]) then
      usage("new: %s/%s exists; nothing written (choose a new DIR)", dir, f[1])
    end
  end
  if not os.execute("mkdir -p " .. q(dir .. "/domain") .. " " .. q(dir .. "/spec")) then
    io.stderr:write("aeon-host: new: cannot make ", dir, "\n")
    return 3
  end
  for _, f in ipairs(FILES) do
    local path = dir .. "/" .. f[1]
    local out, err = io.open(path, "w")
    if not out then
      io.stderr:write("aeon-host: new: ", err, "\n")
      return 3
    end
    out:write((f[2]:gsub("{{NAME}}", name)))
    out:close()
  end
  io.stdout:write(("made %s in %s: %s\n  next: cd %s && aeon-host test\n"):format(name, dir,
    "app.lua, domain/account.lua, spec/, README.md", q(dir)))
  return 0
end

--- The subcommand's entry, as aeon.cli calls it: words[1] is "new".
function M.main(_, words) return run(words, require("aeon.cli.options").usage) end

return M
