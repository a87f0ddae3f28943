-- aeon-host lambda: the custom runtime driven through a loopback Runtime API
-- (spec/support/runtime_api.lua, the documented protocol), with DynamoDB
-- Local as the store when the runner started it (else the embedded store;
-- the stream batches need DynamoDB).
local aeon = require "aeon"
local helpers = require "helpers"
local process = require "support.process"
local runtime_api = require "support.runtime_api"
local http_server = require "support.http_server"

local json_encode, json_decode = aeon.json.encode, aeon.json.decode
local has_dynamodb = os.getenv("AEON_TEST_DYNAMODB_ENDPOINT") ~= nil
local backend = has_dynamodb and "dynamodb" or "sqlite"

local function now_ms() return math.floor(http_server.now() * 1000) end

--- A Function URL event (payload format 2.0) as Lambda delivers one.
local function url_event(method, target, opts)
  opts = opts or {}
  local path, query = target:match("^([^?]*)%??(.*)$")
  local headers = { host = "abcdefg.lambda-url.us-east-1.on.aws", ["user-agent"] = "curl/7.88.1",
    ["content-type"] = "application/json" }
  for k, v in pairs(opts.headers or {}) do headers[k] = v end
  return {
    version = "2.0", routeKey = "$default", rawPath = path, rawQueryString = query,
    headers = headers,
    requestContext = {
      accountId = "anonymous", apiId = "abcdefg", domainName = headers.host,
      domainPrefix = "abcdefg", requestId = "c1b1e1a0-0000-4000-8000-000000000001",
      routeKey = "$default", stage = "$default", time = "01/Dec/2026:22:00:00 +0000",
      timeEpoch = 1796162400000,
      http = { method = method, path = path, protocol = "HTTP/1.1", sourceIp = "127.0.0.1",
        userAgent = "curl/7.88.1" },
    },
    body = opts.body, isBase64Encoded = opts.base64 or false,
  }
end

--- Starts `aeon-host --store URI lambda [APP]` against a fresh loopback API.
local function start_runtime(uri, app, env)
  local api = runtime_api.start()
  local vars = { AWS_LAMBDA_RUNTIME_API = api.address }
  for k, v in pairs(env or {}) do vars[k] = v end
  local words = { "--store", uri, "lambda" }
  if app then words[#words + 1] = app end
  return api, process.start(words, { env = vars })
end

--- One function-URL request through the runtime: status, decoded body,
-- headers, the raw answer.
local function call(api, method, target, opts)
  local r = assert(api:invoke(url_event(method, target, opts), opts and opts.invoke))
  assert.equal("response", r.kind, r.raw)
  local answer = r.body
  return answer.statusCode, json_decode(answer.body), answer.headers, r
end

local function without_request_id(body)
  if type(body) == "table" then body.request_id = nil end
  return body
end

describe("aeon-host lambda #lambda", function()
  local uri

  setup(function()
    local store
    store, uri = helpers.fresh_store(backend)
    store:close()
  end)

  describe("function URL events", function()
    local api, proc, server

    setup(function()
      server = http_server.start("spec/fixtures/http-app.lua", {}, { store = uri })
      api, proc = start_runtime(uri, "spec/fixtures/http-app.lua")
    end)

    -- Processes started after the loopback API hold its socket too (they
    -- inherit it), so the runtime is stopped as Lambda stops one: SIGTERM.
    teardown(function()
      proc:kill("TERM")
      assert.equal(143, proc:wait(10))
      api:close()
      server:stop()
    end)

    -- Each request is made to `aeon-host serve` and through the runtime;
    -- status, Retry-After and body (but the request id) must be the same.
    local cases = {
      { "POST", "/commands/echo", '{"a":1,"b":[1,2.5,"x"],"c":{"d":null}}', 200 },
      { "GET", "/queries/params?x=1&y=a+b%21&z=%7B%22k%22%3A2%7D&flag", nil, 200 },
      { "POST", "/commands/reject", "", 422 },
      { "POST", "/commands/invalid", "", 400 },
      { "POST", "/commands/store_down", "", 503 },
      { "POST", "/commands/boom", "", 500 },
      { "POST", "/commands/bad_answer", "", 500 },
      { "POST", "/commands/echo", "[1,2]", 400 },
      { "POST", "/commands/echo", "{", 400 },
      { "POST", "/commands/nosuch", "", 404 },
      { "GET", "/queries/echo", nil, 404 },
      { "GET", "/commands/echo", nil, 405 },
      { "POST", "/queries/params", "", 405 },
      { "GET", "/queries/view?revision=01BBBBBBBBBBBBBBBBBBBBBBBB", nil, 202 },
      { "GET", "/queries/view?revision=01AAAAAAAAAAAAAAAAAAAAAAAA", nil, 200 },
      { "POST", "/commands/append",
        '{"key":"lambda/conflict","expected_revision":"01AAAAAAAAAAAAAAAAAAAAAAAA"}', 409 },
    }
    for _, c in ipairs(cases) do
      local method, target, body, want = c[1], c[2], c[3], c[4]
      it(("answers %s %s as serve does (%d)"):format(method, target, want), function()
        local s_status, s_body, s_headers = server:json(method, target, { body = body })
        local status, answer, headers = call(api, method, target, { body = body })
        assert.equal(want, s_status)
        assert.equal(s_status, status)
        assert.same(without_request_id(s_body), without_request_id(answer))
        assert.equal(s_headers["retry-after"], headers["retry-after"])
        assert.equal(s_headers["allow"], headers["allow"])
        assert.equal("application/json", headers["content-type"])
      end)
    end

    it("takes a base64 body (isBase64Encoded), as a function URL sends binary ones", function()
      local text = '{"word":"caf\xc3\xa9","n":12345678901234567}'
      local b64 = "eyJ3b3JkIjoiY2Fmw6kiLCJuIjoxMjM0NTY3ODkwMTIzNDU2N30="
      local status, answer = call(api, "POST", "/commands/echo", { body = b64, base64 = true })
      assert.equal(200, status)
      assert.same(json_decode(text), answer)
      assert.equal(12345678901234567, answer.n)
      local bad = call(api, "POST", "/commands/echo", { body = "not*base64", base64 = true })
      assert.equal(400, bad)
    end)

    it("answers 413 for a body over the limit, 404 for other routes, and /health", function()
      assert.equal(413, call(api, "POST", "/commands/echo", { body = ("x"):rep(1048577) }))
      local status, answer = call(api, "GET", "/nowhere")
      assert.equal(404, status)
      assert.matches("no such route", answer.error)
      local hs, health = call(api, "GET", "/health")
      assert.equal(200, hs)
      assert.same({ status = "ok", app = "http-app", runtime = "lambda" }, health)
    end)

    it("stops a handler past the invocation's deadline, then serves the next one", function()
      local status, answer = call(api, "POST", "/commands/spin", { invoke =
        { deadline_ms = now_ms() + 1500 } })
      assert.equal(500, status)
      assert.matches("ran past the invocation's deadline", answer.error)
      -- The same state and store handle answer the next invocation.
      local again, echoed = call(api, "POST", "/commands/echo", { body = '{"after":true}' })
      assert.equal(200, again)
      assert.same({ after = true }, echoed)
    end)

    it("answers an event of no known shape with an error naming the shapes", function()
      local r = assert(api:invoke({ source = "aws.events", ["detail-type"] = "Scheduled Event" }))
      assert.equal("error", r.kind)
      assert.equal("Aeon.UnknownEvent", r.body.errorType)
      assert.matches("Function URL", r.body.errorMessage)
      assert.matches("DynamoDB Streams", r.body.errorMessage)
      assert.matches("detail%-type, source", r.body.errorMessage)
      assert.equal("Aeon.UnknownEvent", r.headers["lambda-runtime-function-error-type"])
    end)
  end)

  describe("init", function()
    it("posts an app that fails to load to init/error and exits", function()
      local api, proc = start_runtime(uri, "spec/fixtures/lambda-broken-app.lua")
      local e = assert(api:init_error())
      api:close()
      assert.equal("Aeon.AppLoadError", e.body.errorType)
      assert.matches("the app's configuration is missing", e.body.errorMessage)
      assert.equal(4, proc:wait(10))
    end)

    it("posts a store it cannot open to init/error", function()
      local api, proc = start_runtime("sqlite:/nonexistent/dir/x.db", "spec/fixtures/lambda-app.lua")
      local e = assert(api:init_error())
      api:close()
      assert.equal("Aeon.StoreError", e.body.errorType)
      assert.equal(3, proc:wait(10))
    end)

    it("finds the app through _HANDLER under LAMBDA_TASK_ROOT (a two-line bootstrap)", function()
      local api, proc = start_runtime(uri, nil, { _HANDLER = "fixtures/lambda-app.lua",
        LAMBDA_TASK_ROOT = "spec" })
      local status, answer = call(api, "POST", "/commands/note",
        { body = '{"key":"note/handler","n":1}' })
      proc:kill("TERM")
      assert.equal(143, proc:wait(10))
      api:close()
      assert.equal(200, status, json_encode(answer))
      assert.equal("appended", answer.type)
    end)
  end)
  describe("make lambda's zip", function()
    local zip = (os.getenv("AEON_BUILD") or "build") .. "/lambda/aeon-lambda.zip"
    local present = io.open(zip)
    if present then present:close() end

    it("runs its app through its two-line bootstrap, on the libraries it ships", function()
      if not present then
        pending("no " .. zip .. " (make lambda builds it; make test does)")
        return
      end
      local dir = helpers.tmpdir()
      assert(os.execute(("unzip -q %s -d %s"):format(helpers.shell_quote(zip), dir)))
      local bootstrap = http_server.slurp(dir .. "/bootstrap")
      assert.equal(2, select(2, bootstrap:gsub("\n", "")))
      -- As Lambda starts it: the task root, the handler, the system's
      -- library folders first on LD_LIBRARY_PATH; nothing of this tree's.
      http_server.spit(dir .. "/as-lambda", "#!/bin/sh\nunset AEON_LUA_PATH\n" ..
        "exec \"$LAMBDA_TASK_ROOT/bootstrap\"\n")
      os.execute("chmod +x " .. dir .. "/as-lambda")
      local api = runtime_api.start()
      local host = helpers.HOST
      helpers.HOST = dir .. "/as-lambda" -- process.start runs helpers.HOST
      local proc = process.start({}, { env = { AWS_LAMBDA_RUNTIME_API = api.address,
        LAMBDA_TASK_ROOT = dir, _HANDLER = "app/counter-cqrs.lua", AEON_STORE = uri,
        LD_LIBRARY_PATH = "/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:" .. dir .. "/lib" } })
      helpers.HOST = host
      local status, answer = call(api, "POST", "/commands/increment", { body = '{"name":"zip"}' })
      local maps = http_server.slurp("/proc/" .. proc.pid .. "/maps") or ""
      proc:kill("TERM")
      proc:wait(10)
      api:close()
      assert.equal(200, status)
      assert.equal("appended", answer.type)
      for _, lib in ipairs { "liblua5.4.so.0", "libcurl.so.4", "libsqlite3.so.0", "libjansson.so.4" } do
        assert.truthy(maps:find(dir .. "/lib/" .. lib, 1, true), lib .. " from the zip")
      end
    end)
  end)
  describe("DynamoDB Streams batches #dynamodb", function()
    if not has_dynamodb then
      pending("needs DynamoDB Local (the runner starts it)")
      return
    end
    local CLI = io.open("/usr/bin/aws") and "/usr/bin/aws" or "aws"

    -- The events table's items as DynamoDB Local holds them (a Scan), in
    -- revision order: what the stream carried as NewImages.
    local function scan(name)
      local dir = helpers.tmpdir()
      assert(os.execute(("%s dynamodb scan --table-name %s --endpoint-url %s --output json >%s/out")
        :format(CLI, helpers.shell_quote(name), helpers.shell_quote(os.getenv("AEON_TEST_DYNAMODB_ENDPOINT")), dir)))
      local items = json_decode(http_server.slurp(dir .. "/out")).Items
      table.sort(items, function(a, b) return a.revision.S < b.revision.S end)
      return items
    end

    -- A batch as Lambda delivers one from the table's stream.
    local function batch(name, items)
      local records = {}
      for i, item in ipairs(items) do
        records[i] = {
          eventID = ("%032x"):format(i), eventName = "INSERT", eventVersion = "1.1",
          eventSource = "aws:dynamodb", awsRegion = "us-east-1",
          dynamodb = { ApproximateCreationDateTime = 1796162400,
            Keys = { key = item.key, revision = item.revision }, NewImage = item,
            SequenceNumber = ("4%020d"):format(i), SizeBytes = 120, StreamViewType = "NEW_IMAGE" },
          eventSourceARN = "arn:aws:dynamodb:us-east-1:123456789012:table/" .. name ..
            "/stream/2026-12-01T00:00:00.000",
        }
      end
      return { Records = records }
    end

    local function failures(api, event)
      local r = assert(api:invoke(event))
      assert.equal("response", r.kind, r.raw)
      local seqs = {}
      for i, f in ipairs(r.body.batchItemFailures) do seqs[i] = f.itemIdentifier end
      return seqs, r.raw
    end

    it("feeds the app's projections, which a query then reads; a retried batch is harmless", function()
      local store, suri, name = helpers.fresh_store("dynamodb")
      store:close()
      local api, proc = start_runtime(suri, "apps/counter-cqrs.lua")
      local last
      for _, who in ipairs { "a", "b", "a" } do
        local status, answer = call(api, "POST", "/commands/increment",
          { body = json_encode({ name = who }) })
        assert.equal(200, status)
        last = answer.revision
      end
      local waiting, _, headers = call(api, "GET", "/queries/counter?name=a&revision=" .. last)
      assert.equal(202, waiting)
      assert.equal("1", headers["retry-after"])

      local event = batch(name, scan(name))
      assert.equal(3, #event.Records)
      local seqs, raw = failures(api, event)
      assert.same({}, seqs)
      assert.equal('{"batchItemFailures":[]}', raw)
      local status, a = call(api, "GET", "/queries/counter?name=a&revision=" .. last)
      assert.equal(200, status)
      assert.equal(2, a.value)
      local _, b = call(api, "GET", "/queries/counter?name=b")
      assert.equal(1, b.value)

      -- Lambda delivers the same records again: nothing is counted twice.
      assert.same({}, (failures(api, event)))
      local _, again = call(api, "GET", "/queries/counter?name=a")
      assert.equal(2, again.value)
      proc:kill("TERM")
      proc:wait(10)
      api:close()
    end)

    it("hands the projections upcast events, and their ctx.store reads upcast too", function()
      local store, suri = helpers.fresh_store("dynamodb")
      store:close()
      local name = suri:match("^dynamodb:(.*)$")
      local api, proc = start_runtime(suri, "spec/fixtures/lambda-upcast-app.lua")
      for _, note in ipairs { { key = "note/a", n = 1 }, { key = "note/b", n = 2 },
        { key = "note/a", n = 3 } } do
        assert.equal(200, (call(api, "POST", "/commands/note", { body = json_encode(note) })))
      end
      local event = batch(name, scan(name))
      assert.equal(3, #event.Records)
      assert.equal("noted_v1", event.Records[1].dynamodb.NewImage.type.S) -- stored as written
      assert.same({}, (failures(api, event)))
      local _, a = call(api, "GET", "/queries/notes?key=note/a")
      assert.same({ ns = { 1, 3 }, read = "noted" }, a)
      local _, b = call(api, "GET", "/queries/notes?key=note/b")
      assert.same({ ns = { 2 }, read = "noted" }, b)
      proc:kill("TERM")
      proc:wait(10)
      api:close()
    end)

    it("names the first failed record of each key; other keys go on; exact numbers", function()
      local store, suri, name = helpers.fresh_store("dynamodb")
      store:close()
      local api, proc = start_runtime(suri, "spec/fixtures/lambda-app.lua")
      local notes = {
        { key = "note/a", n = 1 }, { key = "note/b", n = 0.1 },
        { key = "note/a", n = 12345678901234567 }, { key = "note/a", n = 2, poison = true },
        { key = "note/b", n = 2 }, { key = "note/a", n = 3 }, { key = "note/a", n = 4, poison = true },
      }
      for _, note in ipairs(notes) do
        assert.equal(200, (call(api, "POST", "/commands/note", { body = json_encode(note) })))
      end
      local items = scan(name)
      local event = batch(name, items)
      assert.equal(#notes, #event.Records)
      local poisoned -- the sequence number of the first poisoned record
      for _, r in ipairs(event.Records) do
        if not poisoned and r.dynamodb.NewImage.data.M.poison then poisoned = r.dynamodb.SequenceNumber end
      end
      assert.same({ poisoned }, (failures(api, event)))
      local _, a = call(api, "GET", "/queries/notes?key=note/a")
      assert.same({ 1, 12345678901234567 }, a.ns)
      assert.equal(12345678901234567, a.ns[2])
      local _, b = call(api, "GET", "/queries/notes?key=note/b")
      assert.same({ 0.1, 2 }, b.ns)
      assert.equal("float", math.type(b.ns[1]))

      -- Lambda retries from the failed record: the records after it come
      -- again; those already applied are skipped, the poisoned one fails
      -- again, and its key's later records still wait.
      local from
      for i, r in ipairs(event.Records) do
        if r.dynamodb.SequenceNumber == poisoned then from = i end
      end
      local retry = { Records = { table.unpack(event.Records, from) } }
      assert.same({ poisoned }, (failures(api, retry)))
      local _, b2 = call(api, "GET", "/queries/notes?key=note/b")
      assert.same({ 0.1, 2 }, b2.ns)
      local _, a2 = call(api, "GET", "/queries/notes?key=note/a")
      assert.same({ 1, 12345678901234567 }, a2.ns)
      proc:kill("TERM")
      proc:wait(10)
      api:close()
    end)
  end)
  describe("store template", function()
    local function template(words)
      local code, out, err = helpers.run_host(words)
      assert.equal(0, code, err)
      return json_decode(out), out
    end

    -- cfn-lint from npm, with AWS's current resource specification
    -- (scripts/cfn-lint.sh): properties, types, required fields, Ref and
    -- GetAtt targets.
    local function lint(text)
      local dir = helpers.tmpdir()
      http_server.spit(dir .. "/template.json", text)
      local p = io.popen("sh scripts/cfn-lint.sh validate " .. dir .. "/template.json 2>&1; echo rc=$?")
      local out = p:read("a")
      p:close()
      return out
    end

    it("passes cfn-lint, with the function, URL, stream mapping and role for an app with projections", function()
      local t, text = template({ "--store", "dynamodb:shop", "store", "template", "apps/counter-cqrs.lua" })
      local out = lint(text)
      assert.matches("Template valid!", out)
      assert.matches("rc=0", out)
      local r = t.Resources
      assert.equal("provided.al2023", r.Function.Properties.Runtime)
      assert.equal("app/counter-cqrs.lua", r.Function.Properties.Handler)
      assert.same({ Ref = "MemorySize" }, r.Function.Properties.MemorySize)
      assert.same({ Ref = "Timeout" }, r.Function.Properties.Timeout)
      assert.same({ S3Bucket = { Ref = "CodeBucket" }, S3Key = { Ref = "CodeKey" } }, r.Function.Properties.Code)
      assert.equal("dynamodb:shop", r.Function.Properties.Environment.Variables.AEON_STORE)
      assert.same({ Ref = "UrlAuthType" }, r.FunctionUrl.Properties.AuthType)
      local m = r.EventsStreamMapping.Properties
      assert.same({ ["Fn::GetAtt"] = { "EventsTable", "StreamArn" } }, m.EventSourceArn)
      assert.same({ "ReportBatchItemFailures" }, m.FunctionResponseTypes)
      assert.is_true(m.BisectBatchOnFunctionError)
      assert.equal(100, m.BatchSize)
      assert.equal("TRIM_HORIZON", m.StartingPosition)
      -- Least privilege: the tables, the index, the stream, the log group.
      local wildcard = {}
      for _, st in ipairs(r.FunctionRole.Properties.Policies[1].PolicyDocument.Statement) do
        local actions = type(st.Action) == "table" and st.Action or { st.Action }
        for _, a in ipairs(actions) do
          assert.truthy(a:match("^dynamodb:%a+$") or a:match("^logs:%a+$"), a)
        end
        if st.Resource == "*" then wildcard[#wildcard + 1] = st.Action end
      end
      assert.same({ "dynamodb:ListStreams" }, wildcard)
    end)

    it("leaves out the stream mapping for an app without projections, the function without an app", function()
      local t, text = template({ "--store", "dynamodb:shop", "store", "template", "apps/counter-basic.lua" })
      assert.matches("Template valid!", lint(text))
      assert.is_nil(t.Resources.EventsStreamMapping)
      assert.truthy(t.Resources.Function)
      local bare, btext = template({ "--store", "dynamodb:shop", "store", "template" })
      assert.matches("Template valid!", lint(btext))
      assert.same({ "EventsTable", "MetadataTable", "ViewsTable" }, (function()
        local names = {}
        for k in pairs(bare.Resources) do names[#names + 1] = k end
        table.sort(names)
        return names
      end)())
      local code, _, err = helpers.run_host({ "--store", "sqlite:x.db", "store", "template" })
      assert.equal(2, code)
      assert.matches("DynamoDB store", err)
    end)

    it("has Aeon's tables, as its CDK construct defines them", function()
      local t = template({ "--store", "dynamodb:shop", "store", "template" })
      local events, meta = t.Resources.EventsTable.Properties, t.Resources.MetadataTable.Properties
      -- EventStore.ts: TableV2 (on-demand) `shop`, partition key `key`, sort key
      -- `revision`, stream NEW_IMAGE, index `by-revision` on slice + revision;
      -- `shop-metadata` on pk + sk with a NEW_IMAGE stream.
      assert.equal("shop", events.TableName)
      assert.equal("PAY_PER_REQUEST", events.BillingMode)
      assert.same({ { AttributeName = "key", KeyType = "HASH" },
        { AttributeName = "revision", KeyType = "RANGE" } }, events.KeySchema)
      assert.same({ StreamViewType = "NEW_IMAGE" }, events.StreamSpecification)
      assert.equal(1, #events.GlobalSecondaryIndexes)
      local ix = events.GlobalSecondaryIndexes[1]
      assert.equal("by-revision", ix.IndexName)
      assert.same({ { AttributeName = "slice", KeyType = "HASH" },
        { AttributeName = "revision", KeyType = "RANGE" } }, ix.KeySchema)
      assert.same({ ProjectionType = "ALL" }, ix.Projection)
      assert.equal("shop-metadata", meta.TableName)
      assert.same({ { AttributeName = "pk", KeyType = "HASH" },
        { AttributeName = "sk", KeyType = "RANGE" } }, meta.KeySchema)
      assert.same({ StreamViewType = "NEW_IMAGE" }, meta.StreamSpecification)
      assert.equal("PAY_PER_REQUEST", meta.BillingMode)
      assert.equal("Retain", t.Resources.EventsTable.DeletionPolicy)
    end)

    it("has the tables store deploy makes #dynamodb", function()
      if not has_dynamodb then pending("needs DynamoDB Local") return end
      local uri = helpers.fresh_uri("dynamodb")
      local name = uri:match("^dynamodb:(.*)$")
      local code, _, err = helpers.run_host({ "--store", uri, "store", "deploy" })
      assert.equal(0, code, err)
      local t = template({ "--store", uri, "store", "template" })
      local CLI = io.open("/usr/bin/aws") and "/usr/bin/aws" or "aws"
      local function sorted(list, field)
        local out = {}
        for i, v in ipairs(list or {}) do out[i] = v end
        table.sort(out, function(a, b) return a[field] < b[field] end)
        return out
      end
      for resource, table_name in pairs { EventsTable = name, MetadataTable = name .. "-metadata",
          ViewsTable = name .. "-views" } do
        local p = io.popen(("%s dynamodb describe-table --table-name %s --endpoint-url %s --output json")
          :format(CLI, table_name, helpers.shell_quote(os.getenv("AEON_TEST_DYNAMODB_ENDPOINT"))))
        local d = json_decode(p:read("a")).Table
        p:close()
        local want = t.Resources[resource].Properties
        assert.equal(table_name, want.TableName)
        assert.same(d.KeySchema, want.KeySchema)
        assert.same(sorted(d.AttributeDefinitions, "AttributeName"),
          sorted(want.AttributeDefinitions, "AttributeName"))
        assert.equal(d.BillingModeSummary.BillingMode, want.BillingMode)
        assert.equal(d.StreamSpecification and d.StreamSpecification.StreamViewType,
          want.StreamSpecification and want.StreamSpecification.StreamViewType)
        assert.equal(#(d.GlobalSecondaryIndexes or {}), #(want.GlobalSecondaryIndexes or {}))
        for i, ix in ipairs(d.GlobalSecondaryIndexes or {}) do
          local w = want.GlobalSecondaryIndexes[i]
          assert.equal(ix.IndexName, w.IndexName)
          assert.same(ix.KeySchema, w.KeySchema)
          assert.equal(ix.Projection.ProjectionType, w.Projection.ProjectionType)
        end
      end
    end)
  end)
end)
