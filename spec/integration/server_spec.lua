-- aeon-host serve (API.md section 5): the real server on a free loopback
-- port, driven with curl. spec/fixtures/http-app.lua has one handler per
-- way a request can go.
local aeon = require "aeon"
local helpers = require "helpers"
local server = require "support.http_server"

local eventually, spit = server.eventually, server.spit

local FIXTURE = "spec/fixtures/http-app.lua"
local FUTURE = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ" -- a revision no store has reached

-- Every answer but /metrics is JSON with the request id in a header.
local function assert_json(headers)
  assert.same("application/json", headers["content-type"])
  assert.matches("^%x+$", headers["x-request-id"])
end

describe("aeon-host serve #http", function()
  describe("statuses", function()
    local s = server.per_block(FIXTURE, { "--workers", "2", "--max-body", "1000", "--timeout",
      "1", "--max-instructions", "2000000" })

    it("prints the URL and a curl example to try, and answers /health", function()
      assert.matches("serving http%-app at http://127%.0%.0%.1:%d+", s:stdout())
      assert.matches("try: curl ", s:stdout())
      local status, body, headers = s:json("GET", "/health")
      assert.same(200, status)
      assert_json(headers)
      assert.same("ok", body.status)
      assert.same("http-app", body.app)
      assert.same(2, body.workers)
    end)

    it("422 for `return nil, aeon.reject(msg)`, which answered 200 null", function()
      local status, body = s:json("POST", "/commands/reject_second")
      assert.same(422, status)
      assert.same("sold out", body.error)
    end)

    it("500 for a handler answering nil or nothing, which answered 200 null", function()
      for _, name in ipairs { "answer_nil", "answer_nothing" } do
        local status, body = s:json("POST", "/commands/" .. name)
        assert.same(500, status)
        assert.matches("internal error", body.error)
        local logged = s:log_where { msg = "script error", command = name }
        assert.same(1, #logged)
        assert.matches("answered nil", logged[1].error)
      end
    end)

    it("200: runs a command with a JSON body and a query with ?name=value", function()
      local status, body, headers = s:json("POST", "/commands/echo",
        { json = { name = "a", n = 3, nested = { 1, 2 } } })
      assert.same(200, status)
      assert_json(headers)
      assert.same({ name = "a", n = 3, nested = { 1, 2 } }, body)
      -- Values read as JSON where they parse, else as strings, like the CLI.
      status, body = s:json("GET", "/queries/params?n=42&f=1.5&s=hello&b=true&j=%7B%22k%22%3A%5B1%5D%7D")
      assert.same(200, status)
      assert.same({ n = 42, f = 1.5, s = "hello", b = true, j = { k = { 1 } } }, body)
      -- An empty body is no arguments.
      status, body = s:json("POST", "/commands/echo")
      assert.same(200, status)
      assert.same({}, body)
    end)

    it("400: malformed JSON, with a message; a body that is not an object; invalid input", function()
      local status, body, headers = s:json("POST", "/commands/echo", { body = '{"name": "a",' })
      assert.same(400, status)
      assert_json(headers)
      assert.matches("malformed JSON", body.error)
      assert.same(headers["x-request-id"], body.request_id)
      status, body = s:json("POST", "/commands/echo", { body = "[1, 2]" })
      assert.same(400, status)
      assert.matches("JSON object", body.error)
      status, body = s:json("POST", "/commands/invalid", { json = {} })
      assert.same(400, status)
      assert.same("n must be a number", body.error)
    end)

    it("404: unknown routes, commands and queries", function()
      for _, case in ipairs {
        { "GET", "/" }, { "GET", "/nope" }, { "POST", "/commands/" }, { "POST", "/commands/a/b" },
        { "POST", "/commands/missing" }, { "GET", "/queries/missing" }, { "GET", "/queries/echo" },
      } do
        local status, body, headers = s:json(case[1], case[2], { json = {} })
        assert.same(404, status, case[2])
        assert_json(headers)
        assert.is_string(body.error)
      end
      local _, body = s:json("POST", "/commands/params", { json = {} })
      assert.matches("is a query: GET /queries/params", body.error)
    end)

    it("405: a wrong method, with Allow", function()
      local status, body, headers = s:json("GET", "/commands/echo")
      assert.same(405, status)
      assert.same("POST", headers["allow"])
      assert.is_string(body.error)
      status, _, headers = s:json("POST", "/queries/params", { json = {} })
      assert.same(405, status)
      assert.same("GET, HEAD", headers["allow"])
      status = s:json("DELETE", "/health")
      assert.same(405, status)
      status = s:json("PUT", "/commands/echo", { json = {} })
      assert.same(405, status)
    end)

    it("413: a body over --max-body, declared or chunked; a body at the limit is fine", function()
      local at_limit = '{"x":"' .. ("a"):rep(1000 - 8) .. '"}'
      assert.same(1000, #at_limit)
      local status = s:json("POST", "/commands/echo", { body = at_limit })
      assert.same(200, status)
      local status2, body, headers = s:json("POST", "/commands/echo", { body = at_limit .. " " })
      assert.same(413, status2)
      assert_json(headers)
      assert.matches("larger than the limit", body.error)
      -- Without Content-Length the body is read and dropped, then refused.
      status = s:json("POST", "/commands/echo",
        { body = ("x"):rep(3000), headers = { ["Transfer-Encoding"] = "chunked" } })
      assert.same(413, status)
    end)

    it("422 rejected, with the handler's fields", function()
      local status, body = s:json("POST", "/commands/reject", { json = {} })
      assert.same(422, status)
      assert.same("not today", body.error)
      assert.same("closed", body.reason)
    end)

    it("409 on an optimistic-concurrency conflict, counted in /metrics", function()
      local before = s:metric("aeon_append_conflicts_total")
      local key = helpers.unique("k")
      local status = s:json("POST", "/commands/append", { json = { key = key } })
      assert.same(200, status)
      local body
      status, body = s:json("POST", "/commands/append",
        { json = { key = key, expected_revision = aeon.START } })
      assert.same(409, status)
      assert.same(aeon.START, body.expected_revision)
      assert.is_string(body.actual_revision)
      assert.same(before + 1, s:metric("aeon_append_conflicts_total"))
    end)

    it("202 with Retry-After for a revision the read model has not seen", function()
      local status, body, headers = s:json("GET", "/queries/view?revision=" .. FUTURE)
      assert.same(202, status)
      assert.same("1", headers["retry-after"])
      assert.same(FUTURE, body.revision)
      status = s:json("GET", "/queries/view?revision=01AAAAAAAAAAAAAAAAAAAAAAAA")
      assert.same(200, status)
    end)

    it("503 when the store fails, without its message", function()
      local status, body, headers = s:json("POST", "/commands/store_down", { json = {} })
      assert.same(503, status)
      assert.same("1", headers["retry-after"])
      assert.not_matches("secret", body.error)
    end)

    it("500 on a script error: a request id, no internals, the traceback in the log; serving goes on", function()
      local status, body, headers, text = s:json("POST", "/commands/boom", { json = {} })
      assert.same(500, status)
      assert_json(headers)
      assert.same(headers["x-request-id"], body.request_id)
      assert.not_matches("secret", text)
      assert.not_matches("kaboom", text)
      local logged = eventually(30, function()
        return s:log_where({ msg = "script error", request_id = body.request_id })[1]
      end)
      assert.truthy(logged)
      assert.same("error", logged.level)
      assert.matches("kaboom", logged.error)
      assert.matches("stack traceback", logged.traceback)
      assert.matches("http%-app%.lua", logged.traceback)
      -- An answer that cannot be JSON, and os.exit, are script errors too.
      assert.same(500, (s:json("POST", "/commands/bad_answer", { json = {} })))
      assert.same(500, (s:json("POST", "/commands/exit", { json = {} })))
      assert.same(200, (s:json("POST", "/commands/echo", { json = {} })))
    end)

    it("appends nothing from a command that fails half way", function()
      local key = helpers.unique("half")
      assert.same(500, (s:json("POST", "/commands/half", { json = { key = key } })))
      local _, body = s:json("GET", "/queries/head?key=" .. key)
      assert.same(aeon.START, body.head)
      _, body = s:json("GET", "/queries/head?key=" .. key .. "-2")
      assert.same(aeon.START, body.head)
    end)

    it("stops a handler stuck in a loop at its instruction budget, even one that catches the error", function()
      for _, name in ipairs { "spin", "stubborn" } do
        local t0 = server.now()
        local status, body = s:json("POST", "/commands/" .. name, { json = {} })
        assert.same(500, status, name)
        assert.matches("2000000 instructions", body.error)
        assert.is_string(body.request_id)
        assert.truthy(server.now() - t0 < 10)
      end
      assert.same(200, (s:json("POST", "/commands/echo", { json = {} })))
    end)

    it("times out a client that stalls, and serves others meanwhile", function()
      -- Half a body, then nothing: the server closes the connection after
      -- --timeout (1 s here); cat returns when it does.
      local script = ([[
        exec 3<>/dev/tcp/127.0.0.1/%d
        t0=$(date +%%s.%%N)
        printf 'POST /commands/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{"a"' >&3
        cat <&3 >/dev/null
        echo "$t0 $(date +%%s.%%N)"
      ]]):format(s.port)
      local p = io.popen("timeout 10 env -u LD_PRELOAD bash -c " .. helpers.shell_quote(script))
      local other = s:spawn("GET", "/health") -- while the other stalls
      local t0, t1 = p:read("a"):match("([%d.]+) ([%d.]+)")
      p:close()
      assert.truthy(t0, "the connection was not closed within 10 s")
      local waited = tonumber(t1) - tonumber(t0)
      assert.truthy(waited >= 0.9 and waited < 4, waited)
      assert.same(200, (other:wait()))
      assert.truthy(eventually(30, function()
        return s:log_where({ msg = "request aborted", reason = "timeout" })[1]
      end))
    end)

    it("logs one JSON object per line: levels, and an access line per request", function()
      local _, _, headers = s:json("GET", "/queries/params?token=hunter2")
      local id = headers["x-request-id"]
      local line = eventually(30, function() return s:log_where({ request_id = id, msg = "request" })[1] end)
      assert.truthy(line)
      assert.same("info", line.level)
      assert.same("GET", line.method)
      assert.same("/queries/params", line.path) -- no query string
      assert.same(200, line.status)
      assert.is_number(line.duration_ms)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", line.ts)
      for _, l in ipairs(s:log()) do
        assert.is_nil(l.not_json)
        assert.is_string(l.msg)
        assert.truthy(({ debug = 1, info = 1, warn = 1, error = 1 })[l.level])
      end
      assert.not_matches("hunter2", s:stderr())
    end)

    it("serves Prometheus metrics: requests by route and status, latency, appends", function()
      s:json("POST", "/commands/append", { json = { key = helpers.unique("m") } })
      local status, text, headers = s:request("GET", "/metrics")
      assert.same(200, status)
      assert.matches("^text/plain; version=0%.0%.4", headers["content-type"])
      assert.matches('\naeon_http_requests_total{route="/commands/echo",status="200"} %d+', text)
      assert.matches('\naeon_http_requests_total{route="/commands/echo",status="413"} %d+', text)
      assert.matches('\naeon_http_requests_total{route="unmatched",status="404"} %d+', text)
      assert.matches('\naeon_http_request_duration_seconds_bucket{route="/commands/append",le="0.005"} %d+', text)
      assert.matches('\naeon_http_request_duration_seconds_bucket{route="/health",le="%+Inf"} %d+', text)
      assert.matches('\naeon_http_request_duration_seconds_count{route="/queries/params"} %d+', text)
      assert.matches("\n# TYPE aeon_http_request_duration_seconds histogram\n", text)
      assert.matches("\naeon_appends_total %d+", text)
      assert.matches("\naeon_events_appended_total %d+", text)
      assert.matches("\naeon_append_conflicts_total %d+", text)
      assert.matches("\n# TYPE aeon_projection_lag_events gauge\n", text)
      assert.matches("\n# TYPE aeon_projection_lag_seconds gauge\n", text)
      assert.matches('\naeon_http_requests_aborted_total{reason="timeout"} %d+', text)
      -- Names a client makes up never become labels.
      assert.not_matches("missing", text)
    end)
  end)

  it("stops a handler at its time budget (--max-time)", function()
    local s = server.start(FIXTURE, { "--workers", "1", "--max-instructions", "0", "--max-time", "1" })
    local t0 = server.now()
    local status, body = s:json("POST", "/commands/spin", { json = {} })
    assert.same(500, status)
    assert.matches("longer than 1 seconds", body.error)
    assert.truthy(server.now() - t0 < 5)
    assert.same(200, (s:json("POST", "/commands/echo", { json = {} })))
    assert.same(0, s:stop())
  end)

  describe("auth", function()
    it("401 for commands and queries without the bearer token ($AEON_TOKEN); /health stays open; never logged", function()
      local token = "tok-" .. helpers.unique("s3cr3t")
      local s = server.start(FIXTURE, {}, { env = { AEON_TOKEN = token } })
      local status, body, headers = s:json("POST", "/commands/echo", { json = {} })
      assert.same(401, status)
      assert.same('Bearer realm="aeon"', headers["www-authenticate"])
      assert.is_string(body.error)
      assert.same(401, (s:json("GET", "/queries/params")))
      assert.same(401, (s:json("GET", "/queries/params",
        { headers = { Authorization = "Bearer " .. token .. "x" } })))
      assert.same(401, (s:json("GET", "/queries/params", { headers = { Authorization = token } })))
      local auth = { Authorization = "Bearer " .. token }
      assert.same(200, (s:json("POST", "/commands/echo", { json = {}, headers = auth })))
      assert.same(200, (s:json("GET", "/queries/params?a=1", { headers = auth })))
      assert.same(200, (s:json("GET", "/health")))
      assert.matches('Authorization: Bearer %$AEON_TOKEN', s:stdout())
      assert.same(0, s:stop())
      assert.not_matches(token, s:stderr())
      assert.not_matches(token, s:stdout())
    end)

    it("takes --token too; --log-level warn drops the access log", function()
      local s = server.start(FIXTURE, { "--token", "flag-token", "--log-level", "warn" })
      assert.same(401, (s:json("POST", "/commands/echo", { json = {} })))
      assert.same(200, (s:json("POST", "/commands/echo",
        { json = {}, headers = { Authorization = "Bearer flag-token" } })))
      assert.same(500, (s:json("POST", "/commands/boom",
        { json = {}, headers = { Authorization = "Bearer flag-token" } })))
      assert.same(0, s:stop())
      assert.same(0, #s:log_where({ msg = "request" }))
      assert.same(1, #s:log_where({ msg = "script error" }))
      assert.not_matches("flag%-token", s:stderr())
    end)
  end)

  describe("apps", function()
    it("runs the counter-basic flow", function()
      local s = server.start("apps/counter-basic.lua")
      for _ = 1, 3 do
        local status, body = s:json("POST", "/commands/increment", { json = { name = "a" } })
        assert.same(200, status)
        assert.same("appended", body.type)
      end
      assert.same(200, (s:json("POST", "/commands/decrement", { json = { name = "a" } })))
      local status, body = s:json("GET", "/queries/counter?name=a")
      assert.same(200, status)
      assert.same({ value = 2, increments = 3, decrements = 1 }, body)
      assert.same(400, (s:json("POST", "/commands/increment", { json = {} })))
      -- Concurrent increments all land.
      local statuses = s:parallel(40, 8, "POST", "/commands/increment", { json = { name = "b" } })
      assert.same(40, #statuses)
      for _, st in ipairs(statuses) do assert.same(200, st) end
      _, body = s:json("GET", "/queries/counter?name=b")
      assert.same(40, body.value)
      assert.same(44, s:metric("aeon_events_appended_total"))
      assert.same(0, s:stop())
    end)

    it("prints a try: line for the counter that increments and then reads the count back", function()
      local s = server.start("apps/counter.lua")
      assert.truthy(s.url, s:stderr())
      local try = s:stdout():match("\n  try: ([^\n]+)")
      assert.truthy(try, s:stdout())
      local p = io.popen("PATH=" .. helpers.shell_quote(os.getenv("PATH")) .. " env -u LD_PRELOAD sh -c " ..
        helpers.shell_quote(try))
      local out = p:read("a")
      assert.is_true((p:close()))
      local command, query = out:match("^([^\n]+)\n([^\n]+)$")
      assert.truthy(command, out)
      assert.same({ "appended", 1 }, { aeon.json.decode(command).type, aeon.json.decode(command).value })
      assert.same(1, aeon.json.decode(query).value)
      assert.same(0, s:stop())
    end)

    it("runs the counter flow: a projection updates the view that the query reads", function()
      local s = server.start("apps/counter.lua")
      assert.same(1, select(2, s:json("GET", "/health")).projections)
      local status, body, headers = s:json("GET", "/queries/counter?name=a&revision=" .. FUTURE)
      assert.same(202, status)
      assert.same("1", headers["retry-after"])
      assert.same(FUTURE, body.revision)

      local statuses = s:parallel(20, 4, "POST", "/commands/increment", { json = { name = "a" } })
      for _, st in ipairs(statuses) do assert.same(200, st) end
      status, body = s:json("POST", "/commands/decrement", { json = { name = "a" } })
      assert.same(200, status)
      assert.same(19, body.value)
      -- The query answers from the view once it has seen the command's revision.
      local rev = body.revision
      local answer = eventually(30, function()
        local st, b = s:json("GET", "/queries/counter?name=a&revision=" .. rev)
        return st == 200 and b
      end)
      assert.truthy(answer)
      assert.same(19, answer.value)
      assert.same(20, answer.increments)
      assert.same(rev, answer.revision)
      assert.truthy(eventually(30, function()
        return s:metric("aeon_projection_lag_events", 'projection="counters"') == 0
      end))
      assert.is_number(s:metric("aeon_projection_lag_seconds", 'projection="counters"'))
      assert.same(0, s:stop())
      assert.truthy(s:log_where({ msg = "projection started", projection = "counters" })[1])
    end)

    it("runs the ice cream flow", function()
      local s = server.start("apps/icecream.lua")
      local status, body = s:json("POST", "/commands/restock",
        { json = { truck = "truck/1", flavour = "Vanilla", quantity = 3 } })
      assert.same(200, status)
      assert.same(3, body.stock)
      status, body = s:json("POST", "/commands/sell", { json = { truck = "truck/1", flavour = "Vanilla" } })
      assert.same(200, status)
      assert.same(2, body.stock)
      assert.same(2, select(2, s:json("GET", "/queries/stock?truck=truck/1&flavour=Vanilla")))
      assert.same(1, select(2, s:json("GET", "/queries/sold?truck=truck/1&flavour=Vanilla")))
      local _, history = s:json("GET", "/queries/history?truck=truck/1")
      assert.same(2, #history)
      assert.same(400, (s:json("POST", "/commands/sell", { json = { truck = "truck/1", flavour = "Mint" } })))
      -- Selling what is not in stock is recorded, as the series has it.
      s:json("POST", "/commands/sell", { json = { truck = "truck/1", flavour = "Vanilla" } })
      s:json("POST", "/commands/sell", { json = { truck = "truck/1", flavour = "Vanilla" } })
      status, body = s:json("POST", "/commands/sell", { json = { truck = "truck/1", flavour = "Vanilla" } })
      assert.same(200, status)
      assert.same({ "FlavourWasNotInStock" }, body.events)
      assert.same(0, select(2, s:json("GET", "/queries/stock?truck=truck/1&flavour=Vanilla")))
      assert.same(0, s:stop())
    end)
  end)

  describe("shutdown", function()
    it("on SIGTERM stops accepting, finishes the requests in flight and exits 0", function()
      -- The three requests run until the spec opens their gate, so they
      -- are in flight at the signal however slow the machine; --drain 60
      -- leaves them all the time they need.
      local gate = helpers.tmpdir() .. "/gate"
      local s = server.start(FIXTURE, { "--workers", "2", "--drain", "60" })
      local pending = {}
      for i = 1, 3 do pending[i] = s:spawn("POST", "/commands/gated", { json = { gate = gate } }) end
      assert.truthy(eventually(30, function()
        return s:metric("aeon_http_requests_in_flight") == 4 -- three gated ones and this
      end))
      s:signal("TERM")
      assert.truthy(eventually(30, function() return s:log_where({ msg = "shutting down" })[1] end))
      assert.same(0, (s:request("GET", "/health"))) -- no longer accepting
      server.spit(gate, "")
      for i = 1, 3 do
        local status, body = pending[i]:wait()
        assert.same(200, status)
        assert.matches('"opened":true', body)
      end
      assert.same(0, s:wait(30))
      local down = s:log_where({ msg = "shutting down" })[1]
      assert.same("SIGTERM", down.signal)
      assert.same(3, down.in_flight)
      assert.truthy(s:log_where({ msg = "stopped" })[1])
    end)

    it("regression: the spec helper read an exit status still being written and took an exited server for hung", function()
      -- The state the wrapper shell leaves for an instant when a server
      -- exits: its status file created, the status not yet in it.
      local s = server.start(FIXTURE)
      assert.same(0, s:stop())
      local dir = helpers.tmpdir()
      server.spit(dir .. "/rc", "")
      local exited = setmetatable({ dir = dir }, getmetatable(s))
      os.execute(("(sleep 0.3; echo 0 >%s/rc) >/dev/null 2>&1 &"):format(dir))
      assert.same(0, exited:wait(30))
    end)

    it("on SIGINT with projections running exits 0 after they stop", function()
      local s = server.start("apps/counter.lua")
      assert.same(200, (s:json("POST", "/commands/increment", { json = { name = "z" } })))
      s:signal("INT")
      assert.same(0, s:wait(10))
      assert.same("SIGINT", s:log_where({ msg = "shutting down" })[1].signal)
    end)
  end)

  describe("--watch", function()
    it("reloads changed files without dropping requests; a file that fails keeps the previous version", function()
      local dir = helpers.tmpdir()
      local module = helpers.unique("watched_helper"):gsub("%-", "_")
      spit(dir .. "/" .. module .. ".lua", "return { version = 1 }\n")
      local source = ([[
        local aeon = require "aeon"
        local helper = require "%s"
        local app = aeon.app "watched"
        app:query("version", function() return { version = helper.version } end)
        return app
      ]]):format(module)
      spit(dir .. "/app.lua", source)
      local s = server.start(dir .. "/app.lua", { "--watch", "--workers", "2" })
      local function version()
        local status, body = s:json("GET", "/queries/version")
        return status == 200 and body.version
      end
      assert.same(1, version())

      -- Requests all through the reloads.
      local hammer = io.popen(("for i in $(seq 150); do %s -s -o /dev/null -w '%%{http_code}\\n' %s/queries/version; sleep 0.02; done")
        :format(server.CURL, s.url))

      spit(dir .. "/" .. module .. ".lua", "return { version = 2 }\n")
      assert.same(2, eventually(30, function() return version() == 2 and 2 end))

      spit(dir .. "/app.lua", source .. "\nthis is not Lua (\n")
      assert.truthy(eventually(30, function()
        return s:log_where({ msg = "reload failed; still serving the previous version" })[1]
      end))
      assert.same(2, version())

      spit(dir .. "/app.lua", source)
      spit(dir .. "/" .. module .. ".lua", "return { version = 3 }\n")
      assert.same(3, eventually(30, function() return version() == 3 and 3 end))

      local statuses = hammer:read("a")
      hammer:close()
      local n = 0
      for st in statuses:gmatch("%d+") do
        n = n + 1
        assert.same("200", st)
      end
      assert.same(150, n)
      local failed = s:log_where({ msg = "reload failed; still serving the previous version" })[1]
      assert.matches("app%.lua", failed.error)
      assert.truthy(s:metric("aeon_reloads_total", 'result="ok"') >= 2)
      assert.same(1, s:metric("aeon_reloads_total", 'result="failed"'))
      assert.same(0, s:stop())
    end)
  end)

  describe("usage", function()
    it("refuses bad options and listen addresses (exit 2), a port in use (exit 3)", function()
      local code, _, err = helpers.run_host({ "serve", FIXTURE, "--bogus" })
      assert.same(2, code)
      assert.matches("unknown serve option %-%-bogus", err)
      code, _, err = helpers.run_host({ "serve", FIXTURE, "--listen", "nonsense" })
      assert.same(2, code)
      assert.matches("%-%-listen", err)
      code, _, err = helpers.run_host({ "--store", "memory:", "serve", FIXTURE })
      assert.same(2, code)
      assert.matches("memory:", err)
      code = helpers.run_host({ "serve", FIXTURE, "--workers", "0" })
      assert.same(2, code)
      code, _, err = helpers.run_host({ "serve", FIXTURE, "--log-level", "loud" })
      assert.same(2, code)
      assert.matches("log%-level", err)
      code, _, err = helpers.run_host({ "serve", FIXTURE, "--help" })
      assert.same(0, code)

      local s = server.start(FIXTURE)
      local dir = helpers.tmpdir()
      code, _, err = helpers.run_host({ "--store", "sqlite:" .. dir .. "/x.db", "serve", FIXTURE,
        "--listen", "127.0.0.1:" .. s.port })
      assert.same(3, code)
      assert.matches("127%.0%.0%.1:" .. s.port .. " is already in use", err)
      assert.same(0, s:stop())
    end)

    it("exits 4 when the app does not load", function()
      local dir = helpers.tmpdir()
      spit(dir .. "/broken.lua", "return {")
      local code, _, err = helpers.run_host({ "--store", "sqlite:" .. dir .. "/x.db", "serve", dir .. "/broken.lua" })
      assert.same(4, code)
      assert.matches("broken%.lua", err)
    end)
  end)
end)

