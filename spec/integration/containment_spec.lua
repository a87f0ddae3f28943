-- Containment (aeon-host serve): a hostile client or handler costs one
-- request, not the server. Each case is one way the server was stopped,
-- hung, starved or made to leak, kept as a regression spec. The real
-- server on loopback; raw requests go through a plain TCP socket, since
-- curl will not send most of them.
local aeon = require "aeon"
local socket = require "socket"
local helpers = require "helpers"
local server = require "support.http_server"

local eventually = server.eventually
local FIXTURE = "spec/fixtures/hostile-app.lua"

-- The exit status within `seconds`, or nil after killing the server (a
-- hung server must not outlive its spec).
local function exit_within(s, seconds)
  local code = s:wait(seconds)
  if not code then os.execute("kill -KILL " .. s.pid .. " 2>/dev/null") end
  return code
end

-- Reads from the socket `c` until the server closes it or its timeout
-- passes without a byte; closes it and returns everything read.
local function read_to_end(c)
  local out = {}
  while true do
    local data, err, partial = c:receive(4096)
    out[#out + 1] = data or partial
    if err then break end
  end
  c:close()
  return table.concat(out)
end

-- Sends `text` as is and reads until the server closes the connection or
-- `wait` seconds pass without a byte. Returns everything read. `from`: the
-- local address to send from (another loopback address is another client).
local function raw(port, text, wait, from)
  local c = assert(socket.tcp())
  c:settimeout(wait or 3)
  if from then assert(c:bind(from, 0)) end
  assert(c:connect("127.0.0.1", port))
  assert(c:send(text))
  return read_to_end(c)
end

-- The answers in a byte stream: { status, headers, body } each.
local function answers(text)
  local list = {}
  local pos = 1
  while true do
    local s, e, status = text:find("HTTP/1%.%d (%d%d%d)[^\r\n]*\r\n", pos)
    if not s then break end
    local head_end = text:find("\r\n\r\n", e - 1, true) or #text
    local headers = {}
    for k, v in text:sub(e + 1, head_end):gmatch("([^:\r\n]+):%s*([^\r\n]*)") do
      headers[k:lower()] = v
    end
    local len = tonumber(headers["content-length"]) or 0
    list[#list + 1] = { status = tonumber(status), headers = headers,
      body = text:sub(head_end + 4, head_end + 3 + len) }
    pos = head_end + 4 + len
  end
  return list
end

-- The one answer a raw request got: 400, JSON with the request id.
local function assert_one_400(port, text, pattern)
  local got = answers(raw(port, text))
  assert.same(1, #got, "answers to one request")
  local a = got[1]
  assert.same(400, a.status)
  assert.same("application/json", a.headers["content-type"])
  local body = aeon.json.decode(a.body)
  assert.is_table(body, a.body)
  assert.same(a.headers["x-request-id"], body.request_id)
  if pattern then assert.matches(pattern, body.error) end
  return body
end

describe("containment #http", function()
  describe("strict HTTP", function()
    local s = server.per_block(FIXTURE, { "--workers", "2" })

    -- The second request hides in the first one's body.
    local smuggled = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"

    it("regression: two Content-Length headers were accepted and the rest of the body ran as a second request", function()
      local body = "{}" .. smuggled
      assert_one_400(s.port, "POST /commands/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" ..
        "Content-Length: 2\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body, "Content%-Length")
      -- The same length twice is refused too, and a request sent after it on
      -- the connection is never read.
      assert_one_400(s.port, "POST /commands/echo HTTP/1.1\r\nHost: x\r\n" ..
        "Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}" .. smuggled, "Content%-Length")
    end)

    it("refuses Transfer-Encoding with Content-Length", function()
      assert_one_400(s.port, "POST /commands/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n" ..
        "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n" .. smuggled, "Transfer%-Encoding")
    end)

    it("regression: ?name=a%00zzz answered for `a`; a NUL, bad escapes or invalid UTF-8 in the URL are 400", function()
      for _, target in ipairs {
        "/queries/params?name=a%00zzz", "/queries/params%00x?name=a", "/commands/echo%00",
        "/queries/params?name=%zz", "/queries/params?name=%4", "/queries/params?name=%ff",
        "/queries/params?%c3%28=1",
      } do
        local method = target:match("^/commands") and "POST" or "GET"
        assert_one_400(s.port, method .. " " .. target .. " HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
      end
      -- Good escapes still work.
      local status, body = s:json("GET", "/queries/params?name=%C3%A9t%C3%A9&x=a%20b")
      assert.same(200, status)
      assert.same({ name = "été", x = "a b" }, body)
    end)

    it("refuses a header value that is not UTF-8", function()
      assert_one_400(s.port, "GET /health HTTP/1.1\r\nHost: x\r\nX-Note: \xff\xfe\r\n\r\n", "UTF%-8")
    end)

    -- The one answer a raw request got, as JSON with the request id.
    local function assert_json_answer(text, status, pattern)
      local got = answers(raw(s.port, text))
      assert.same(1, #got, "answers to " .. text:sub(1, 60))
      local a = got[1]
      assert.same(status, a.status, text:sub(1, 60))
      assert.same("application/json", a.headers["content-type"], a.body)
      local body = aeon.json.decode(a.body)
      assert.is_table(body, a.body)
      assert.is_string(a.headers["x-request-id"])
      assert.same(a.headers["x-request-id"], body.request_id)
      assert.matches(pattern, body.error)
    end

    it("regression: what libmicrohttpd refused itself (400, 413, 414, 431, 505) was answered in HTML, or not at all", function()
      local H = "Host: x\r\n"
      for _, case in ipairs {
        { "BOGUS\r\n\r\n", 400, "request line" },
        { "GET /health\r\n\r\n", 400, "request line" },
        { "GET /health HTTX/1.1\r\n" .. H .. "\r\n", 400, "request line" },
        { "GET /health HTTP/1.1 \r\n" .. H .. "\r\n", 400, "request line" },
        { "GET /health HTTP/2.0\r\n" .. H .. "\r\n", 505, "HTTP/1%.1" },
        { "GET /health HTTP/0.9\r\n" .. H .. "\r\n", 505, "HTTP/1%.1" },
        { "GET /health HTTP/1.1\r\n" .. H .. "no colon here\r\n\r\n", 400, "colon" },
        { "GET /health HTTP/1.1\r\n" .. H .. " folded: x\r\n\r\n", 400, "folded" },
        { "POST /commands/echo HTTP/1.1\r\n" .. H .. "Content-Length: abc\r\n\r\n{}", 400, "Content%-Length" },
        { "POST /commands/echo HTTP/1.1\r\n" .. H .. "Content-Length: 99999999999999999999999\r\n\r\n{}",
          413, "larger than" },
        { "GET /queries/params?name=" .. ("a"):rep(40000) .. " HTTP/1.1\r\n" .. H .. "\r\n", 414, "request line" },
        { "GET /health HTTP/1.1\r\n" .. H .. "X-Big: " .. ("b"):rep(40000) .. "\r\n\r\n", 431, "headers" },
        { "GET /health HTTP/1.1\r\n" .. H .. ("X-A: 1\r\n"):rep(150) .. "\r\n", 431, "fields" },
        { "GET /health HTTP/1.1\r\n" .. H .. "Cookie: " .. ("c=1; "):rep(150) .. "\r\n\r\n", 431, "fields" },
      } do
        assert_json_answer(case[1], case[2], case[3])
      end
      -- Still the server: a good request on a fresh connection answers.
      assert.same(200, (s:json("GET", "/health")))
    end)

    it("answers a bad request after a good one on a kept-alive connection in JSON too", function()
      local c = assert(socket.tcp())
      c:settimeout(3)
      assert(c:connect("127.0.0.1", s.port))
      assert(c:send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"))
      -- The first answer, whole, before the second request is sent.
      local text = ""
      repeat
        local data, err, partial = c:receive(1)
        text = text .. (data or partial)
        local got = answers(text)
      until err or (got[1] and #got[1].body == tonumber(got[1].headers["content-length"]))
      assert(c:send("GET /health HTTP/9.9\r\nHost: x\r\n\r\n"))
      local got = answers(text .. read_to_end(c))
      assert.same(2, #got)
      assert.same(200, got[1].status)
      assert.same(505, got[2].status)
      assert.same("application/json", got[2].headers["content-type"])
      assert.same(got[2].headers["x-request-id"], aeon.json.decode(got[2].body).request_id)
    end)

    it("regression: a NUL in a body string answered 500 (a script error) instead of 400", function()
      local before = s:metric("aeon_script_errors_total")
      local status, body = s:json("POST", "/commands/append", { body = '{"key": "a\\u0000b"}' })
      assert.same(400, status)
      assert.matches("NUL", body.error)
      status = s:json("GET", '/queries/params?name=%22a%5Cu0000b%22')
      assert.same(400, status)
      assert.same(before, s:metric("aeon_script_errors_total"))
    end)
  end)

  describe("honest answers", function()
    local s = server.per_block(FIXTURE, { "--workers", "2" })

    it("regression: a handler returning nil, {message = ...} sent `table: 0x...`", function()
      local status, body, _, text = s:json("POST", "/commands/table_error", { json = {} })
      assert.same(422, status)
      assert.same("out of stock", body.error)
      assert.same(0, body.left)
      status, body, _, text = s:json("POST", "/commands/bare_table_error", { json = {} })
      assert.same(422, status)
      assert.same("the command was refused", body.error)
      assert.not_matches("table: 0x", text)
      status, _, _, text = s:json("POST", "/commands/raise_table", { json = {} })
      assert.same(500, status)
      assert.not_matches("table: 0x", text)
      local logged = eventually(30, function() return s:log_where({ msg = "script error", command = "raise_table" })[1] end)
      assert.same("raised as a table", logged.error)
    end)

    it("regression: `return ctx.store:append(...)` turned a store failure into 422 with the raw SQLite message", function()
      -- Another connection holds the write lock until the store gives up.
      local holder = assert(aeon.open(s.store))
      assert(holder:begin())
      local returned = s:spawn("POST", "/commands/return_append", { json = { key = helpers.unique("r") } })
      local raised = s:spawn("POST", "/commands/assert_append", { json = { key = helpers.unique("a") } })
      for _, pending in ipairs { returned, raised } do
        local status, text, headers = pending:wait()
        assert.same(503, status, text)
        assert.same("1", headers["retry-after"])
        local body = aeon.json.decode(text)
        assert.same("the store is unavailable; try again", body.error)
        assert.not_matches("[Ll]ock", text)
        assert.not_matches("SQLITE", text)
      end
      holder:rollback()
      holder:close()
      assert.same(2, #eventually(30, function()
        local l = s:log_where({ msg = "store failure" })
        return #l >= 2 and l
      end))
      assert.same(200, (s:json("POST", "/commands/return_append", { json = { key = helpers.unique("r") } })))
    end)
  end)

  describe("the worker's store", function()
    it("regression: a handler calling ctx.store:close() broke its worker for good while /health said ok", function()
      local s = server.start(FIXTURE, { "--workers", "1" })
      local status, body = s:json("POST", "/commands/close_store", { json = {} })
      assert.same(500, status)
      assert.same(200, (s:json("POST", "/commands/append", { json = { key = helpers.unique("c") } })))
      -- Closed behind the host's back: opened again for the next request.
      assert.same(200, (s:json("POST", "/commands/close_store_meta", { json = {} })))
      assert.same(200, (s:json("POST", "/commands/append", { json = { key = helpers.unique("c") } })))
      assert.truthy(s:log_where({ msg = "a handler closed the store; opened it again" })[1])

      -- While it cannot be opened again, the worker is unhealthy and says so.
      local path = s.store:match("^sqlite:(.*)$")
      assert.same(200, (s:json("POST", "/commands/block_store", { json = { path = path } })))
      status, body = s:json("POST", "/commands/append", { json = { key = helpers.unique("c") } })
      assert.same(503, status)
      status, body = s:json("GET", "/health")
      assert.same(503, status) -- its only worker cannot serve
      assert.same("degraded", body.status)
      assert.same(1, body.unhealthy_workers)
      assert(os.remove(path))
      assert(os.rename(path .. ".away", path))
      assert.same(200, (s:json("POST", "/commands/append", { json = { key = helpers.unique("c") } })))
      status, body = s:json("GET", "/health")
      assert.same(200, status)
      assert.same("ok", body.status)
      assert.same(0, s:stop())
    end)
  end)

  describe("budgets", function()
    it("regression: a coroutine made while the app loaded had no hook; debug.sethook() removed it", function()
      local s = server.start(FIXTURE, { "--workers", "1", "--max-instructions", "2000000" })
      for _, name in ipairs { "loaded_coroutine", "new_coroutine", "unhook" } do
        local status, body = s:json("POST", "/commands/" .. name, { json = {}, max_time = 20 })
        assert.same(500, status, name)
        assert.is_string(body.request_id)
      end
      assert.same(200, (s:json("POST", "/commands/echo", { json = {} })))
      assert.same(0, s:stop())
    end)

    it("regression: work in C past --max-time held its worker; now the client gets 503 and the worker is replaced", function()
      local s = server.start(FIXTURE, { "--workers", "1", "--max-time", "1", "--drain", "2" })
      local status, body = s:json("POST", "/commands/pattern", { json = {}, max_time = 20 })
      assert.same(503, status)
      assert.matches("stuck past its time budget", body.error)
      -- The only worker was replaced: the next requests are served.
      assert.same(200, (s:json("POST", "/commands/echo", { json = {}, max_time = 20 })))
      status, body = s:json("GET", "/health")
      assert.same(200, status)
      assert.same("degraded", body.status)
      assert.same(1, body.stuck_workers)
      assert.truthy(s:log_where({ msg = "worker stuck past its time budget; replacing it" })[1])
      -- Shutdown does not wait for the stuck thread, and says it left it.
      s:signal("TERM")
      assert.same(4, s:wait(10))
      assert.matches("leaving 1 worker stuck in C", s:stderr())
    end)
  end)

  describe("memory", function()
    local function rss(pid)
      local f = io.open("/proc/" .. pid .. "/status")
      local kb = f:read("a"):match("VmRSS:%s*(%d+)")
      f:close()
      return tonumber(kb) * 1024
    end

    it("regression: requests building 1.5 GB strings took the server to 5.9 GB and kept it; now 500 and back", function()
      local s = server.start(FIXTURE, { "--workers", "2" })
      assert.same(200, (s:json("POST", "/commands/echo", { json = {} })))
      local idle = rss(s.pid)
      for _, name in ipairs { "rep", "double", "rep", "double" } do
        local status, body = s:json("POST", "/commands/" .. name, { json = {}, max_time = 60 })
        assert.same(500, status, name)
        assert.same("memory budget exceeded (--max-memory)", body.error)
      end
      assert.same(200, (s:json("POST", "/commands/echo", { json = {} })))
      local after = rss(s.pid)
      -- Near idle: far below one worker's budget (256 MiB) above it. (Under
      -- AddressSanitizer freed memory waits in its quarantine, so there the
      -- size says nothing.)
      if not (os.getenv("LD_PRELOAD") or ""):match("asan") then
        assert.truthy(after < idle + 64 * 1024 * 1024, ("idle %d, after %d bytes"):format(idle, after))
      end
      assert.same(0, s:stop())
    end)
  end)

  describe("loading", function()
    local function app_source(version, top)
      return ([[
        local aeon = require "aeon"
        %s
        local app = aeon.app "watched"
        app:query("version", function() return { version = %d } end)
        return app
      ]]):format(top or "", version)
    end

    it("regression: --watch loading a file calling os.exit(7) killed the server; one that loops hung it", function()
      local dir = helpers.tmpdir()
      local file = dir .. "/app.lua"
      server.spit(file, app_source(1))
      -- No instruction budget: the loops below are stopped by time (the
      -- default 1e8 instructions may run out first or not, with the load).
      local s = server.start(file, { "--watch", "--workers", "1", "--max-time", "1",
        "--max-instructions", "0" })
      local function version()
        local status, body = s:json("GET", "/queries/version")
        return status == 200 and body.version
      end
      assert.same(1, version())
      local function failed(n)
        return eventually(30, function()
          local l = s:log_where({ msg = "reload failed; still serving the previous version" })
          return #l >= n and l[n]
        end)
      end
      server.spit(file, app_source(2, "os.exit(7)"))
      assert.matches("os%.exit is not available", failed(1).error)
      assert.same(1, version())
      server.spit(file, app_source(3, "while true do end"))
      assert.matches("longer than 1 seconds", failed(2).error)
      assert.same(1, version())
      server.spit(file, app_source(4, "while true do pcall(function() while true do end end) end"))
      assert.matches("longer than 1 seconds", failed(3).error)
      -- Stuck in C at the top level, where no hook runs: given up on.
      server.spit(file, app_source(5, 'string.find(("a"):rep(26) .. "b", ("a*"):rep(26) .. "c")'))
      assert.matches("stuck past its time budget", failed(4).error)
      assert.same(1, version())
      server.spit(file, app_source(6))
      assert.same(6, eventually(30, function() return version() == 6 and 6 end))
      assert.same(0, s:stop())
    end)

    it("stops on SIGTERM while a reload loops, within --drain plus a second", function()
      local dir = helpers.tmpdir()
      local file = dir .. "/app.lua"
      server.spit(file, app_source(1))
      -- No instruction budget either: the loop runs until the signal.
      local s = server.start(file, { "--watch", "--workers", "1", "--max-time", "60", "--drain", "1",
        "--max-instructions", "0" })
      -- The reload's load says it has begun, then loops.
      server.spit(file, app_source(2, ('assert(io.open(%q, "w")):close() while true do end')
        :format(dir .. "/begun")))
      assert.truthy(eventually(30, function() return server.slurp(dir .. "/begun") end))
      s:signal("TERM")
      assert.same(0, exit_within(s, 30))
      assert.matches("shutting down", s:log_where({ msg = "reload failed; still serving the previous version" })[1].error)
    end)

    it("regression: serve's own first load of the app had no budget; a top-level endless loop hung it", function()
      local dir = helpers.tmpdir()
      for i, top in ipairs { "while true do end", "while true do pcall(function() while true do end end) end",
                             "debug.sethook() while true do end" } do
        local file = ("%s/app%d.lua"):format(dir, i)
        server.spit(file, app_source(1, top))
        local s = server.start(file, { "--max-time", "1", "--max-instructions", "0" })
        assert.same(4, exit_within(s, 30), top)
        assert.is_nil(s.url, top)
        if i < 3 then
          assert.matches("loading .*app" .. i .. "%.lua was stopped: it ran longer than 1 seconds %(%-%-max%-time%)", s:stderr())
        else
          assert.matches("debug%.sethook is not available", s:stderr())
        end
      end
      -- The instruction budget holds it too.
      server.spit(dir .. "/count.lua", app_source(1, "while true do end"))
      local s = server.start(dir .. "/count.lua", { "--max-instructions", "1000000" })
      assert.same(4, exit_within(s, 30))
      assert.matches("ran more than 1000000 instructions %(%-%-max%-instructions%)", s:stderr())
    end)

    it("regression: serve's first load stuck in C (where no hook runs) hung it; now exit 4 a second past --max-time", function()
      local dir = helpers.tmpdir()
      local file = dir .. "/app.lua"
      server.spit(file, app_source(1, 'string.find(("a"):rep(26) .. "b", ("a*"):rep(26) .. "c")'))
      local s = server.start(file, { "--max-time", "1" })
      assert.same(4, exit_within(s, 30))
      assert.is_nil(s.url)
      assert.matches("loading .*app%.lua was stopped: it is stuck past its time budget %(%-%-max%-time 1%), " ..
        "outside Lua", s:stderr())
    end)

    it("regression: `aeon-host FILE.lua` with no words held a plain script to serve's load budget and killed it (exit 4)", function()
      local dir = helpers.tmpdir()
      -- About 2e8 VM instructions: twice serve's default --max-instructions.
      server.spit(dir .. "/script.lua", 'local s = 0 for i = 1, 1e8 do s = s + i end io.write(s)')
      local status, out, err = helpers.run_host({ "--store", "sqlite:" .. dir .. "/s.db", dir .. "/script.lua" })
      assert.same(0, status, err)
      assert.same("5000000050000000", out)
      -- A script is still a script: its own exit status, its output.
      server.spit(dir .. "/exits.lua", 'io.write("ran") os.exit(3)')
      status, out = helpers.run_host({ "--store", "sqlite:" .. dir .. "/s.db", dir .. "/exits.lua" })
      assert.same(3, status)
      assert.same("ran", out)
    end)

    it("`aeon-host APP.lua` (no command) is a foreground process: a top-level loop ends on SIGTERM", function()
      local dir = helpers.tmpdir()
      local file = dir .. "/app.lua"
      server.spit(file, app_source(1, "while true do end"))
      -- The shell's own watchdog kills it after a minute: a hang must not outlive the spec.
      local sh = ("exec 2>/dev/null; %s & pid=$!; (sleep 60; kill -KILL $pid) 2>/dev/null & dog=$!; " ..
        "sleep 1; kill -TERM $pid; wait $pid; code=$?; kill $dog 2>/dev/null; exit $code"):format(
        helpers.host_command({ "--store", "sqlite:" .. dir .. "/s.db", file }))
      local _, _, code = os.execute(sh)
      assert.same(128 + 15, code)
    end)

    it("refuses os.exit at start-up too (exit 4, not the app's status)", function()
      local dir = helpers.tmpdir()
      server.spit(dir .. "/app.lua", app_source(1, "os.exit(7)"))
      local code, _, err = helpers.run_host({ "--store", "sqlite:" .. dir .. "/x.db", "serve", dir .. "/app.lua" })
      assert.same(4, code)
      assert.matches("os%.exit is not available", err)
    end)
  end)

  describe("connections", function()
    -- A request from another loopback address, which counts as another client.
    local function from(host, port, text) return answers(raw(port, text, 10, host))[1] end

    it("regression: about 1,020 idle or dripping connections from one address locked everyone out", function()
      local s = server.start(FIXTURE, { "--workers", "2" })
      -- Half of them send nothing; half start their headers and stop.
      local ready = helpers.tmpdir() .. "/ready"
      local p = io.popen(("ulimit -n 4096 2>/dev/null; " ..
        "lua5.4 spec/support/conn_holder.lua %d 2000 %s >/dev/null 2>&1 & echo $!"):format(s.port, ready))
      local holder = p:read("l")
      p:close()
      local opened = eventually(30, function() return server.slurp(ready) end)
      assert.same("opened 2000\n", opened)
      local health = from("127.0.0.2", s.port, "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      assert.truthy(health, "no answer to /health")
      assert.same(200, health.status)
      local echo = from("127.0.0.2", s.port, "POST /commands/echo HTTP/1.1\r\nHost: x\r\n" ..
        "Connection: close\r\nContent-Length: 2\r\n\r\n{}")
      assert.truthy(echo, "no answer to a command")
      assert.same(200, echo.status)
      os.execute("kill " .. holder)
      assert.same(0, s:stop())
      assert.same(256, s:log_where({ msg = "listening" })[1].max_client_connections)
    end)

    it("closes a connection whose headers drip past --header-timeout, and one whose body drips past --body-timeout", function()
      local s = server.start(FIXTURE, { "--header-timeout", "1", "--body-timeout", "1", "--timeout", "30" })
      for _, case in ipairs {
        { head = "GET /health HTTP/1.1\r\nHost: x\r\n", drip = "X" },
        { head = "POST /commands/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", drip = " " },
      } do
        local c = assert(socket.tcp())
        c:settimeout(0.3)
        assert(c:connect("127.0.0.1", s.port))
        c:send(case.head)
        local closed = false
        for _ = 1, 30 do -- up to about 10 s, a byte at a time
          local _, err = c:send(case.drip)
          local _, rerr = c:receive(1)
          if err == "closed" or rerr == "closed" then
            closed = true
            break
          end
        end
        c:close()
        assert.truthy(closed, case.head)
      end
      assert.same(0, s:stop())
    end)
  end)

  describe("metrics", function()
    it("regression: /metrics was open when --token was set; --metrics-loopback opens it to loopback", function()
      local s = server.start(FIXTURE, { "--token", "tok" })
      assert.same(401, (s:request("GET", "/metrics")))
      local status, text = s:request("GET", "/metrics", { headers = { Authorization = "Bearer tok" } })
      assert.same(200, status)
      assert.matches("aeon_http_requests_total", text)
      assert.same(200, (s:request("GET", "/health")))
      assert.same(0, s:stop())
      s = server.start(FIXTURE, { "--token", "tok", "--metrics-loopback" })
      assert.same(200, (s:request("GET", "/metrics")))
      assert.same(401, (s:json("POST", "/commands/echo", { json = {} })))
      assert.same(0, s:stop())
    end)

    it("regression: a client that left was counted reason=\"error\"; now client_closed", function()
      local s = server.start(FIXTURE, { "--workers", "1" })
      local status = s:json("POST", "/commands/slow", { json = { seconds = 2 }, max_time = 0.5 })
      assert.same(0, status)
      assert.truthy(eventually(10, function()
        return s:metric("aeon_http_requests_aborted_total", 'reason="client_closed"') == 1
      end))
      assert.same(0, s:metric("aeon_http_requests_aborted_total", 'reason="error"'))
      assert.same(0, s:stop())
    end)
  end)

  describe("shutdown", function()
    -- Backtracks in C for far longer than any spec runs: no hook reaches it.
    local STUCK = 'string.find(("a"):rep(26) .. "b", ("a*"):rep(26) .. "c")'
    -- Lua that makes the file `marker`, then sticks in C.
    local function stick(marker)
      return ('assert(io.open(%q, "w")):close() %s'):format(marker, STUCK)
    end
    -- An app file in a fresh directory: its source is `make(dir)`.
    local function app_in_dir(make)
      local dir = helpers.tmpdir()
      server.spit(dir .. "/app.lua", make(dir))
      return dir .. "/app.lua", dir
    end

    it("regression: SIGTERM with a handler stuck in C waited for it for ever (a lost wake-up)", function()
      -- --max-time 60: the handler is still within its budget when the
      -- signal comes, so only shutdown's own deadline gives up on it.
      local s = server.start(FIXTURE, { "--workers", "1", "--max-time", "60", "--drain", "1" })
      local stuck = s:spawn("POST", "/commands/pattern", { json = {} })
      assert.truthy(eventually(30, function()
        local _, body = s:json("GET", "/health")
        return type(body) == "table" and body.in_flight == 2 -- the stuck one and this
      end))
      s:signal("TERM")
      -- It exited 0, as if nothing had been lost; now 4, saying what it left.
      assert.same(4, exit_within(s, 30))
      local status, body = stuck:wait()
      assert.same(503, status)
      assert.matches("shutting down", body)
      assert.truthy(s:log_where({ msg = "worker stuck at shutdown; leaving it" })[1])
      assert.same(1, s:log_where({ msg = "leaving workers stuck in C to the process exit" })[1].workers)
      assert.matches("stopped, leaving 1 worker stuck in C", s:stderr())
    end)

    it("regression: SIGTERM while a replacement worker's load was stuck in C waited for it for ever", function()
      -- Loads normally until `stick` exists; from then on a load writes
      -- `stuck` and hangs in C.
      local file, dir = app_in_dir(function(dir) return ([[
        local aeon = require "aeon"
        local f = io.open(%q)
        if f then
          f:close()
          %s
        end
        local app = aeon.app "stuck-load"
        app:command("echo", function(_, args) return args end)
        app:command("pattern", function() return { found = %s } end)
        return app
      ]]):format(dir .. "/stick", stick(dir .. "/stuck"), STUCK) end)
      local s = server.start(file, { "--workers", "1", "--max-time", "1", "--drain", "1" })
      server.spit(dir .. "/stick", "")
      -- The worker is taken out of its stuck handler; its replacement's
      -- load then sticks.
      assert.same(503, (s:json("POST", "/commands/pattern", { json = {}, max_time = 30 })))
      assert.truthy(eventually(30, function() return server.slurp(dir .. "/stuck") end))
      s:signal("TERM")
      -- The handler's worker and its replacement, both still in C.
      assert.same(4, exit_within(s, 30))
      assert.truthy(s:log_where({ msg = "worker stuck loading the app at shutdown; leaving it" })[1])
      assert.matches("stopped, leaving 2 workers stuck in C", s:stderr())
    end)

    it("regression: SIGTERM with a projection stuck in C joined it for ever; now exit 4 and a log line", function()
      local file, dir = app_in_dir(function(dir) return ([[
        local aeon = require "aeon"
        local app = aeon.app "stuck-projection"
        app:command("note", function(ctx)
          local r, err = ctx.store:append("note/1", { { type = "noted", data = {} } })
          if not r then return aeon.store_failure(err) end
          return r
        end)
        app:projection("sticky", { view = "sticky", key = { "note/*" } }, function()
          %s
        end)
        return app
      ]]):format(stick(dir .. "/stuck")) end)
      local s = server.start(file, { "--workers", "1", "--drain", "1" })
      assert.same(200, (s:json("POST", "/commands/note", { json = {} })))
      assert.truthy(eventually(30, function() return server.slurp(dir .. "/stuck") end))
      s:signal("TERM")
      assert.same(4, exit_within(s, 30))
      local left = s:log_where({ msg = "projection stuck in C at shutdown; leaving it" })[1]
      assert.truthy(left)
      assert.same("sticky", left.projection)
      assert.matches("leaving 1 projection stuck in C", s:stderr())
    end)
  end)
end)
