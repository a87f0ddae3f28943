-- Crash safety of the embedded store: writer processes killed with kill -9
-- at random moments never lose or duplicate an acknowledged event, and never
-- leave half an append behind.
local aeon = require "aeon"
local helpers = require "helpers"

local ROUNDS, WRITERS = 20, 4

describe("kill -9 during appends #sqlite #crash", function()
  it("keeps every acknowledged event exactly once, whole appends only, in order", function()
    local dir = helpers.tmpdir()
    local uri = "sqlite:" .. dir .. "/crash.db"
    local log = dir .. "/acks"
    math.randomseed(os.time())
    for round = 1, ROUNDS do
      -- One shell per round starts the writers, waits until each has had an
      -- append acknowledged (so a slow start on a loaded machine still leaves
      -- something to lose; at most a minute), kills them all at once after a
      -- further random while, and reaps them.
      local cmd = {}
      local pids = {}
      for w = 1, WRITERS do
        cmd[#cmd + 1] = ("%s spec/support/crash_writer.lua %s r%dw%d %s >/dev/null 2>>%s/errors & p%d=$!;"):format(
          helpers.HOST, uri, round, w, log, dir, w)
        cmd[#cmd + 1] = ("n=0; until grep -q '^ack r%dw%d ' %s 2>/dev/null || [ $n -ge 600 ]; do sleep 0.1; n=$((n+1)); done;"):format(
          round, w, log)
        pids[w] = "$p" .. w
      end
      cmd[#cmd + 1] = ("sleep %.3f; kill -9 %s; wait"):format(math.random() * 0.3, table.concat(pids, " "))
      os.execute(table.concat(cmd, " "))
    end

    local errors = io.open(dir .. "/errors"):read("a")
    assert.same("", errors)

    -- What the writers were told was committed.
    local acked, nacks = {}, 0
    for line in io.lines(log) do
      local writer, batch, size, rev = line:match("^ack (%S+) (%d+) (%d+) (%S+)$")
      assert.is_not_nil(writer, "torn log line: " .. line)
      acked[writer .. "/" .. batch] = { size = tonumber(size), revision = rev }
      nacks = nacks + 1
    end
    assert.is_true(nacks >= ROUNDS * WRITERS, "the writers acknowledged too few appends to test anything")

    -- What the store has.
    local store = assert(aeon.open(uri))
    local seen, groups, prev = {}, {}, aeon.START
    local last_in_key = {}
    for e in store:read_all() do
      assert.is_true(e.revision > prev, "read_all out of revision order")
      prev = e.revision
      local d = e.data
      local id = d.writer .. "/" .. d.batch .. "/" .. d.i
      assert.is_nil(seen[id], "event stored twice: " .. id)
      seen[id] = true
      local g = groups[d.writer .. "/" .. d.batch] or { size = d.size, n = 0 }
      g.n = g.n + 1
      g.last = e.revision
      groups[d.writer .. "/" .. d.batch] = g
      last_in_key[e.key] = e.revision
    end
    for id, g in pairs(groups) do
      assert.same(g.size, g.n, "append " .. id .. " is torn")
    end
    for id, a in pairs(acked) do
      local g = groups[id]
      assert.is_not_nil(g, "acknowledged append " .. id .. " is lost")
      assert.same(a.revision, g.last)
    end
    -- Per key, revisions strictly increase in read order too.
    for key in pairs(last_in_key) do
      local p = aeon.START
      for e in store:read(key) do
        assert.is_true(e.revision > p)
        p = e.revision
      end
      assert.same(last_in_key[key], store:head(key))
    end
    store:close()
    os.execute("rm -rf " .. dir)
  end)
end)
