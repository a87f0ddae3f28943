-- Damage is loud. A store file with garbage written over some of its pages
-- used to go unnoticed: after a read failed with "database disk image is
-- malformed", appends on the same handle went on succeeding, and a read
-- that hit the damage from the command line exited 4 (script error). Now
-- the first SQLITE_CORRUPT or SQLITE_NOTADB marks the handle damaged, every
-- later call on it fails with "the store file is damaged: run `aeon-host
-- store check`", the command line exits 3, HTTP answers 503 and /health is
-- not ok; `aeon-host store check` reports what is wrong. Also: a read-only
-- store file opens for reading and refuses writes clearly, and `serve`
-- refuses every store private to one connection.
local aeon = require "aeon"
local helpers = require "helpers"
local server = require "support.http_server"

local q = helpers.shell_quote
local APP = "spec/support/txn_app.lua"
local DAMAGED = "the store file is damaged: run `aeon-host store check`"
local EVENTS = 3000

-- A real store file: EVENTS events of ~300 bytes over 30 keys (about 250
-- pages), closed so that everything is in the main file.
local function filled_store()
  local dir = helpers.tmpdir()
  local path = dir .. "/store.db"
  local store = assert(aeon.open("sqlite:" .. path))
  local pad = ("x"):rep(300)
  for i = 1, EVENTS / 100 do
    local batch = {}
    for j = 1, 100 do batch[j] = { type = "noted", data = { n = (i - 1) * 100 + j, pad = pad } } end
    assert(store:append("t/" .. (i % 30), batch))
  end
  store:close()
  return path, dir
end

-- Writes garbage over pages `from` to `to` (1-based, 4096 bytes each) of
-- the file, leaving the first page (header and schema) alone.
local function damage(path, from, to)
  local f = assert(io.open(path, "r+b"))
  local size = f:seek("end")
  assert(size >= to * 4096, "the store file is smaller than expected")
  for page = from, to do
    f:seek("set", (page - 1) * 4096)
    f:write(("\xA5\x5A\x13\x37"):rep(1024))
  end
  f:close()
end

local function read_everything(store)
  return pcall(function()
    local n = 0
    for _ in store:read_all() do n = n + 1 end
    return n
  end)
end

describe("a damaged store file #sqlite", function()
  it("marks the handle damaged: the failed read, and every call after it, say so", function()
    local path = filled_store()
    local before = assert(aeon.open("sqlite:" .. path))
    assert.same(EVENTS, select(2, read_everything(before)))
    before:close()
    damage(path, 20, 200)
    -- A fresh handle: one that read the pages before holds them in its cache.
    local store = assert(aeon.open("sqlite:" .. path))
    local ok, err = read_everything(store)
    assert.is_false(ok)
    assert.matches(DAMAGED, tostring(err), 1, true)
    assert.is_true(store:damaged())
    -- Every later operation fails the same way, writes first of all.
    local r, aerr = store:append("t/new", { { type = "noted", data = {} } })
    assert.is_nil(r)
    assert.matches(DAMAGED, aerr, 1, true)
    local h, herr = store:head("t/1")
    assert.is_nil(h)
    assert.matches(DAMAGED, herr, 1, true)
    assert.is_nil((store:snapshot("t/1")))
    store:close()
    -- Nothing was appended after the damage was seen.
    local fresh = assert(aeon.open("sqlite:" .. path))
    local n = 0
    local ok2 = pcall(function() for _ in fresh:read("t/new") do n = n + 1 end end)
    fresh:close()
    assert.same(0, n, tostring(ok2))
  end)

  it("exits 3 from the command line, and `store check` reports it", function()
    local path = filled_store()
    local uri = "sqlite:" .. path
    local code, out, err = helpers.run_host({ "--store", uri, "store", "check" })
    assert.same(0, code, err)
    local report = aeon.json.decode(out)
    assert.is_true(report.ok)
    assert.same(EVENTS, report.events)
    damage(path, 20, 200)
    code, _, err = helpers.run_host({ "--store", uri, "events", "all" })
    assert.same(3, code)
    assert.matches(DAMAGED, err, 1, true)
    code, _, err = helpers.run_host({ "--store", uri, APP, "count", "name=1" })
    assert.same(3, code)
    assert.matches(DAMAGED, err, 1, true)
    code, out = helpers.run_host({ "--store", uri, "store", "check" })
    assert.same(3, code)
    report = aeon.json.decode(out)
    assert.is_false(report.ok)
    assert.is_true(#report.problems > 0)
    assert.matches("integrity", table.concat(report.problems, "\n"))
  end)

  it("answers 503 over HTTP and /health is not ok", function()
    local path = filled_store()
    local s = server.start(APP, { "--workers", "1" }, { store = "sqlite:" .. path })
    assert.truthy(s.url, s:stderr())
    local status, body = s:json("GET", "/queries/count?name=1")
    assert.same(200, status)
    assert.same(EVENTS / 30, body.n)
    assert.same(200, (s:json("GET", "/health")))
    damage(path, 20, 200)
    local requests = 0
    for i = 1, 30 do
      status = s:json("GET", "/queries/count?name=" .. i)
      requests = requests + 1
      if status ~= 200 then break end
    end
    assert.same(503, status)
    status, body = s:json("POST", "/commands/append", { json = { name = "after" } })
    assert.same(503, status)
    local health
    status, health = s:json("GET", "/health")
    assert.same(503, status)
    assert.same("damaged", health.status)
    assert.same(0, s:stop())
    assert.truthy(s:stderr():find(DAMAGED, 1, true))
    assert.is_true(requests >= 1)
  end)

  it("is a file that is not a database at all: opening it says so, and exits 3", function()
    local dir = helpers.tmpdir()
    local path = dir .. "/junk.db"
    local f = assert(io.open(path, "wb"))
    f:write(("not a database "):rep(1000))
    f:close()
    local store, err = aeon.open("sqlite:" .. path)
    assert.is_nil(store)
    assert.matches(DAMAGED, err, 1, true)
    local code, out, cerr = helpers.run_host({ "--store", "sqlite:" .. path, "store", "check" })
    assert.same(3, code, cerr)
    assert.is_false(aeon.json.decode(out).ok)
  end)
end)

describe("aeon-host store check #sqlite", function()
  it("finds what breaks the store's own invariants", function()
    local path = filled_store()
    local uri = "sqlite:" .. path
    local store = assert(aeon.open(uri))
    local head = store:head("t/1")
    assert(store:save_snapshot("t/1", head, { n = 1 }))
    store:close()
    -- What no append writes: a malformed revision, data that is not JSON,
    -- a snapshot and a checkpoint past every event.
    local sql = table.concat({
      "INSERT INTO events (revision, key, type, data, correlation_id, committed_at) VALUES ('0-not-a-revision', 't/1', 'noted', '{}', NULL, '2026-01-01T00:00:00.000Z');",
      "INSERT INTO events (revision, key, type, data, correlation_id, committed_at) VALUES ('7ZZZZZZZZZZZZZZZZZZZZZZZZY', 't/2', 'noted', '{oops', NULL, '2026-01-01T00:00:00.000Z');",
      "UPDATE snapshots SET revision = '7ZZZZZZZZZZZZZZZZZZZZZZZZZ' WHERE key = 't/1';",
      "INSERT INTO subscriptions VALUES ('late', '7ZZZZZZZZZZZZZZZZZZZZZZZZZ');",
    }, " ")
    assert.is_true(os.execute(("sqlite3 %s %s"):format(q(path), q(sql))))
    local code, out = helpers.run_host({ "--store", uri, "store", "check" })
    assert.same(3, code)
    local report = aeon.json.decode(out)
    assert.is_false(report.ok)
    local text = table.concat(report.problems, "\n")
    assert.matches("0%-not%-a%-revision", text)
    assert.matches("not valid JSON", text)
    assert.matches("snapshot of t/1", text)
    assert.matches("subscription late", text)
  end)

  it("says clearly that it does not check a DynamoDB store", function()
    if not os.getenv("AEON_TEST_DYNAMODB_ENDPOINT") then
      pending("DynamoDB Local is not running")
      return
    end
    local _, uri = helpers.fresh_store("dynamodb")
    local code, _, err = helpers.run_host({ "--store", uri, "store", "check" })
    assert.same(3, code)
    assert.matches("dynamodb does not support store check", err)
  end)
end)

describe("a read-only store file #sqlite", function()
  -- The specs may run as root, whom file modes do not stop: drop the
  -- capabilities that let root write anyway (setpriv is util-linux's).
  local function as_user(words)
    local cmd = { "setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--" }
    for _, w in ipairs(words) do cmd[#cmd + 1] = q(w) end
    local dir = helpers.tmpdir()
    local _, _, code = os.execute(("%s >%s/out 2>%s/err"):format(table.concat(cmd, " "), dir, dir))
    return code, server.slurp(dir .. "/out"), server.slurp(dir .. "/err")
  end

  for _, how in ipairs { "file", "directory" } do
    it("opens for reading and refuses writes with a clear message (read-only " .. how .. ")", function()
      local path, dir = filled_store()
      if how == "file" then os.execute("chmod 444 " .. q(path)) else os.execute("chmod 555 " .. q(dir)) end
      local uri = "sqlite:" .. path
      local code, out, err = as_user({ helpers.HOST, "--store", uri, "events", "read", "t/1", "--json" })
      assert.same(0, code, err)
      local n = 0
      for _ in out:gmatch("[^\n]+") do n = n + 1 end
      assert.same(EVENTS / 30, n)
      code, _, err = as_user({ helpers.HOST, "--store", uri, APP, "append", "name=1" })
      os.execute("chmod 755 " .. q(dir) .. "; chmod 644 " .. q(path))
      assert.same(3, code)
      assert.matches("is read%-only: it can be read, not written", err)
    end)
  end
end)

describe("aeon-host serve #sqlite", function()
  it("refuses every store private to one connection, with a usage error", function()
    local dir = helpers.tmpdir()
    for _, uri in ipairs { "memory:", "sqlite::memory:", "sqlite:file::memory:",
                           "sqlite:file::memory:?cache=shared", "sqlite:file:" .. dir .. "/x.db?mode=memory",
                           "sqlite:file:" .. dir .. "/y.db?mode=memory&cache=shared" } do
      local code, _, err = helpers.run_host({ "--store", uri, "serve", APP, "--listen", "127.0.0.1:0" })
      assert.same(2, code, uri .. ": " .. err)
      assert.matches("private to one connection", err, 1, true)
    end
  end)
end)
