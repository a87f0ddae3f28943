--- counter: the flagship counter, everything together.
--
-- Commands run through the aggregate runner with optimistic concurrency and
-- retries: when another writer appended between the read and the append,
-- the command reloads and decides again, backing off with jitter, so
-- concurrent increments all land and none is lost. A counter is a hot spot
-- by design, so it retries up to 30 times: with four busy writers on one
-- counter about 4 attempts in 10 conflict on the embedded store (more on a
-- remote one), and with the runner's default of 10 retries the odd command
-- still ran out of them. A snapshot every 100 events keeps each command's
-- read short however long the counter's history grows, and a served app
-- keeps each counter's state in memory between commands (`cache`), so a
-- command usually reads no event at all. Counters never go below 0.
-- Queries answer from a read model kept by a projection (CQRS).
--
--   aeon-host apps/counter.lua increment name=a
--     {"count":1,"revision":"01K...","type":"appended","value":1}
--   aeon-host apps/counter.lua decrement a
--   aeon-host apps/counter.lua counter a
--     {"decrements":1,"increments":1,"revision":"01K...","value":0}
local aeon = require "aeon"
local counter_commands = require "domain.counter_commands"
local counter_cqrs = require "domain.counter_cqrs"

local app = aeon.app "counter"

local OPTIONS = { retries = 30, snapshot_every = 100, cache = true }

counter_commands.declare(app, OPTIONS)

-- The read side is CQRS: a projection keeps a `counters` view of
-- { value, increments, decrements, revision, changed_at } per name, and the
-- query answers from it. `revision=REV` (from a command's answer) says "not
-- yet" until the view has seen REV; without it, a command-line query first
-- brings the view up to date, so it reflects every event committed before.
--
-- `changed_at` (when the last event folded in was committed) is version 2
-- of the read model: version 1 had the other four fields. It was deployed
-- by saving this file under `serve --watch` while increments kept coming;
-- the host built version 2 beside version 1 and switched when it had caught
-- up (README, "Evolving read models", has what the queries answered).
counter_cqrs.declare_projection(app, { changed_at = true })
app:query("counter", { params = { "name", "revision" }, views = { counter_cqrs.VIEW },
  description = "the counter NAME; with REVISION, once the view has seen it" },
  counter_cqrs.query)

return app
