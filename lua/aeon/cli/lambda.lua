--- aeon.cli.lambda: aeon-host as an AWS Lambda custom runtime
-- (`aeon-host [--store URI] lambda [APP.lua]`, README "Deploying to AWS Lambda").
--
-- It loads the app and opens the store once (a failure is posted to the
-- Runtime API's init/error and ends the process), then loops: take the next
-- invocation, answer it, take the next. The Lua state, the app and the store
-- handle live as long as the execution environment.
--
-- An invocation is recognised by its shape:
--
--  * Function URL and API Gateway HTTP API events (payload 2.0) are served
--    by aeon.cli.serve's own request handler: the same routes, parameters,
--    statuses and JSON bodies as `aeon-host serve`, answered as
--    { statusCode, headers, body }.
--  * DynamoDB Streams batches from the events table: each new image becomes
--    the event the store's reads give and goes to the app's projections
--    (see stream() below); the answer names the records to retry.
--  * Anything else is an error naming the shapes known.
--
-- Each invocation runs under the budget of its Lambda-Runtime-Deadline-Ms,
-- less MARGIN_MS to post the answer (aeon.lambda.within).
--
-- aeon.lambda and aeon.host exist only inside aeon-host.
local aeon = require "aeon"
local appmod = require "aeon.app"
local lambda = require "aeon.lambda"
local host = require "aeon.host"
local serve = require "aeon.cli.worker"
local options = require "aeon.cli.options"

local type, pairs, ipairs, tostring, tonumber, pcall, xpcall = type, pairs, ipairs, tostring,
  tonumber, pcall, xpcall
local traceback = debug.traceback
local json_encode, json_decode = aeon.json.encode, aeon.json.decode

local M = {}

-- The part of an invocation's time kept back to post its answer.
M.MARGIN_MS = 250
-- An invocation without a deadline header (Lambda always sends one) gets
-- Lambda's longest timeout.
local NO_DEADLINE_MS = 900000

local ROUTES = "no such route: use POST /commands/NAME, GET /queries/NAME or GET /health"

local say, usage, EXIT = options.say, options.usage, options.EXIT

M.USAGE = [[
usage: aeon-host [--store URI] lambda [FILE.lua]
  Inside AWS Lambda (runtime provided.al2023): the custom runtime. The app is FILE.lua,
  else $_HANDLER (relative to $LAMBDA_TASK_ROOT); invocations come from the Runtime API
  at $AWS_LAMBDA_RUNTIME_API. $AEON_MAX_BODY and $AEON_TOKEN stand for serve's
  --max-body and --token.]]

-- ------------------------------------------------------------------------
-- Function URL and API Gateway HTTP API events (payload format 2.0)

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local B64_VALUE = {}
for i = 1, 64 do B64_VALUE[B64:byte(i)] = i - 1 end

-- Standard base64 (RFC 4648, padding optional) -> bytes; nil when it is not.
local function unbase64(text)
  text = text:gsub("%s", ""):gsub("=+$", "")
  if #text % 4 == 1 then return nil end
  local out, acc, bits = {}, 0, 0
  for i = 1, #text do
    local v = B64_VALUE[text:byte(i)]
    if not v then return nil end
    acc, bits = (acc << 6) | v, bits + 6
    if bits >= 8 then
      bits = bits - 8
      out[#out + 1] = string.char((acc >> bits) & 0xff)
    end
  end
  return table.concat(out)
end
M.unbase64 = unbase64

-- Percent-decoding as libmicrohttpd does for serve's query arguments:
-- '+' is a space, %XX a byte.
local function unescape(s)
  return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function query_params(raw)
  local params = {}
  for pair in (raw or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    if k ~= "" then params[unescape(k)] = unescape(v) end
  end
  return params
end

-- The route of a path, as serve's server (host/server/server.c) reads it.
local function route(path)
  if path == "/health" then return "health" end
  local kind, name = path:match("^/(%a+)/([^/]+)$")
  if kind == "commands" then return "command", name end
  if kind == "queries" then return "query", name end
  return nil
end

-- Constant-time comparison, as serve's bearer check.
local function authorized(token, header)
  local given = type(header) == "string" and header:match("^[Bb][Ee][Aa][Rr][Ee][Rr] +(.*)$")
  if not given then return false end
  local diff = #given ~ #token
  for i = 1, #token do diff = diff | (token:byte(i) ~ (given:byte(i) or 0)) end
  return diff == 0
end

local function http_answer(status, text, request_id, extra)
  local headers = { ["content-type"] = "application/json", ["cache-control"] = "no-store",
    ["x-request-id"] = request_id }
  for k, v in pairs(extra or {}) do headers[k] = v end
  return json_encode({ statusCode = status, headers = headers, body = text,
    isBase64Encoded = false })
end

local function http_error(status, message, request_id, extra)
  local _, text = serve.failure(status, message, request_id)
  return http_answer(status, text, request_id, extra)
end

local function http(rt, event, request_id, deadline)
  local ctx = event.requestContext
  local method = type(ctx.http.method) == "string" and ctx.http.method:upper() or ""
  local path = type(event.rawPath) == "string" and event.rawPath or tostring(ctx.http.path or "")
  -- API Gateway puts a named stage in front of the path.
  local stage = type(ctx.stage) == "string" and ctx.stage ~= "$default" and ctx.stage
  if stage and path:sub(1, #stage + 2) == "/" .. stage .. "/" then path = path:sub(#stage + 2) end

  local get, post = method == "GET" or method == "HEAD", method == "POST"
  local kind, name = route(path)
  if not kind then return http_error(404, ROUTES, request_id) end
  if kind == "command" and not post then
    return http_error(405, "commands take POST with a JSON object body", request_id,
      { allow = "POST" })
  elseif kind ~= "command" and not get then
    return http_error(405, kind == "query" and "queries take GET with ?name=value parameters"
      or "this route takes GET", request_id, { allow = "GET, HEAD" })
  end
  if kind == "health" then
    return http_answer(200, json_encode({ status = "ok", app = rt.app.name, runtime = "lambda" }),
      request_id)
  end
  local headers = type(event.headers) == "table" and event.headers or {}
  if rt.token and not authorized(rt.token, headers.authorization) then
    return http_error(401, "missing or wrong bearer token (Authorization: Bearer TOKEN)",
      request_id, { ["www-authenticate"] = 'Bearer realm="aeon"' })
  end

  local body = type(event.body) == "string" and event.body or ""
  if event.isBase64Encoded == true then
    body = unbase64(body)
    if not body then return http_error(400, "the body is not valid base64", request_id) end
  end
  if #body > rt.max_body then
    return http_error(413, "the body is larger than the limit (AEON_MAX_BODY)", request_id)
  end
  local params = kind == "query" and query_params(event.rawQueryString) or {}

  local ok, stopped, status, text, retry_after = lambda.within(deadline, rt.handle, kind, name,
    body, params, request_id)
  if stopped then
    return http_error(500, "the handler was stopped: it ran past the invocation's deadline " ..
      "(Lambda-Runtime-Deadline-Ms)", request_id)
  elseif not ok then
    host.log("error", "request failed", { request_id = request_id, error = tostring(status) })
    return http_error(500, "internal error", request_id)
  end
  return http_answer(status, text, request_id,
    retry_after and retry_after > 0 and { ["retry-after"] = tostring(retry_after) } or nil)
end

-- ------------------------------------------------------------------------
-- DynamoDB Streams batches from the events table
--
-- Each record's NewImage becomes the event the store's reads give
-- (aeon.lambda.stream: the backend's own conversion) and goes, in stream
-- order, to every projection of the app whose key, type and filter it
-- matches (as stored, as subscriptions match), as aeon.project hands events
-- over: handler(view, event, ctx), the event upcast (App:upcast) and
-- ctx.store the app's view of the store (App:store).
-- Lambda delivers a key's records in order, within one shard, and retries
-- a shard from the first record a batch reports failed (the event source
-- mapping's ReportBatchItemFailures); records after it come again. So each
-- projection keeps, per key, the revision it has applied up to, in its own
-- view (document "aeon.seen/PROJECTION/KEY"), and skips what it has seen: a
-- retried batch is harmless. A record that fails holds back its key's later
-- records until the retry; the answer names the first failed record of
-- each key. When the batch is done each view's seen revision advances to
-- the newest revision applied below the oldest failure: what `revision=`
-- queries compare with.
local SEEN = "aeon.seen/"

local function stream(rt, text, request_id, deadline)
  local app, store = rt.app, rt.store
  local names = app:projection_names()
  local selectors = {}
  for i, name in ipairs(names) do
    local p = app.projections[name]
    selectors[i] = { key = p.key, type = p.type, filter = p.filter }
  end
  local records, err = lambda.stream(text, selectors)
  if not records then return nil, "Aeon.BadStreamBatch", err end

  local failed, failures, lowest = {}, {}, nil
  local function fail(rec, projection, why)
    local k = rec.key or ""
    if failed[k] then return end
    failed[k] = true
    failures[#failures + 1] = rec.sequence
    local rev = rec.event and rec.event.revision or aeon.START
    if not lowest or rev < lowest then lowest = rev end
    host.log("error", "stream record failed", { request_id = request_id, projection = projection,
      sequence = rec.sequence, key = rec.key, revision = rec.event and rec.event.revision,
      type = rec.event and rec.event.type, error = why })
  end

  local views, marks, applied = {}, {}, {}
  local function seen(p, key)
    local id = SEEN .. p.name .. "/" .. key
    if marks[id] == nil then
      local view = views[p.view]
      local _, rev = view:get(id)
      marks[id] = rev or aeon.START
    end
    return marks[id], id
  end
  local current = 0
  local reader = app:store(store)
  local ok, stopped, why = lambda.within(deadline, function()
    -- The live build of each view (aeon.versions): a stream feeds what
    -- queries read; builds of new versions are made by `project`.
    for _, name in ipairs(names) do
      local p = app.projections[name]
      if not views[p.view] then views[p.view] = assert(reader:view(p.view)) end
    end
    for i, rec in ipairs(records) do
      current = i
      if rec.problem then fail(rec, nil, rec.problem) end
      for j, name in ipairs(names) do
        if not failed[rec.key or ""] and rec.matches[j] then
          local p, event = app.projections[name], rec.event
          local view = views[p.view]
          local mark, id = seen(p, event.key)
          if event.revision > mark then
            -- Upcast, as every read the host makes for the app (an upcaster
            -- that raises fails the record as its handler would).
            local hok, herr = xpcall(function()
              return p.handler(view, app:upcast_event(event),
                { store = reader, app = app, projection = name, request_id = request_id })
            end, traceback)
            if not hok then
              fail(rec, name, tostring(herr):match("^[^\n]*"))
            else
              assert(view:put(id, { projection = name, key = event.key }, event.revision))
              marks[id] = event.revision
            end
          end
          if not failed[rec.key or ""] then
            applied[p.view] = applied[p.view] or {}
            table.insert(applied[p.view], event.revision)
          end
        end
      end
    end
  end)
  if stopped or not ok then
    -- The record in hand and every later one wait for the retry.
    local reason = stopped and "the batch ran past the invocation's deadline" or tostring(why)
    for i = math.max(current, 1), #records do fail(records[i], nil, reason) end
  end
  for view, revs in pairs(applied) do
    local top
    for _, r in ipairs(revs) do
      if (not lowest or r < lowest) and (not top or r > top) then top = r end
    end
    if top then
      local aok, aerr = views[view]:advance(top)
      if not aok then host.log("error", "cannot advance a view", { view = view,
        request_id = request_id, error = tostring(aerr) }) end
    end
  end
  local items = {}
  for i, seq in ipairs(failures) do items[i] = json_encode({ itemIdentifier = seq }) end
  return '{"batchItemFailures":[' .. table.concat(items, ",") .. "]}"
end

-- ------------------------------------------------------------------------
-- The loop

local SHAPES = "aeon-host lambda answers Function URL and API Gateway HTTP API events " ..
  "(payload format 2.0: version \"2.0\", requestContext.http) and DynamoDB Streams batches " ..
  "(Records with eventSource \"aws:dynamodb\")"

local function shape(event)
  if type(event) ~= "table" then return nil end
  local ctx = event.requestContext
  if event.version == "2.0" and type(ctx) == "table" and type(ctx.http) == "table" then
    return "http"
  end
  local records = event.Records
  if type(records) == "table" and type(records[1]) == "table" and
      records[1].eventSource == "aws:dynamodb" then
    return "stream"
  end
  return nil
end

-- One invocation: the answer's JSON text, or nil, errorType, errorMessage.
local function invoke(rt, id, text, info)
  local deadline = (info.deadline_ms or lambda.now_ms() + NO_DEADLINE_MS) - M.MARGIN_MS
  local event = json_decode(text)
  local kind = shape(event)
  if kind == "http" then return http(rt, event, id, deadline) end
  if kind == "stream" then return stream(rt, text, id, deadline) end
  local what = event == nil and "not JSON" or "a JSON " .. type(event)
  if type(event) == "table" then
    local keys = {}
    for k in pairs(event) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    what = #keys > 0 and "an object with " .. table.concat(keys, ", ") or "an empty object"
  end
  return nil, "Aeon.UnknownEvent", SHAPES .. "; this event is " .. what
end

local function app_path(args)
  if args[1] then return args[1] end
  local handler = os.getenv("_HANDLER")
  if not handler or handler == "" then return nil end
  local root = os.getenv("LAMBDA_TASK_ROOT")
  if handler:sub(1, 1) ~= "/" and root and root ~= "" then return root .. "/" .. handler end
  return handler
end

-- Loads the app and opens the store: the runtime's state, or nil,
-- errorType, message, exit status.
local function init(opts, args)
  local path = app_path(args)
  if not path then
    return nil, "Aeon.NoApp", "no app: give APP.lua after `lambda`, or set _HANDLER " ..
      "(the function's handler) to the app file", EXIT.usage
  end
  -- Modules beside the app (a shared domain) are found by require.
  package.path = (path:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
  local ok, app = pcall(serve.load_app, path)
  if not ok then return nil, "Aeon.AppLoadError", tostring(app), EXIT.script end
  local store, err = options.open_store(opts)
  if not store then
    return nil, "Aeon.StoreError", "cannot open the store: " .. tostring(err), EXIT.io
  end
  -- One handler must not end the execution environment for the next.
  os.exit = function() error("os.exit is not available to an app on Lambda", 2) end
  local max_body = math.tointeger(tonumber(os.getenv("AEON_MAX_BODY") or ""))
  local token = os.getenv("AEON_TOKEN")
  return {
    app = app,
    store = store,
    handle = serve.handler(app, function() return store end),
    token = token ~= "" and token or nil,
    max_body = max_body and max_body > 0 and max_body or options.SERVE["max-body"],
  }
end

--- aeon-host lambda [APP.lua]: runs until the Runtime API goes away.
-- Returns the exit status.
function M.main(opts, words)
  local flags, args = options.parse(words, 2, {}, "lambda")
  if flags.help then io.stdout:write(M.USAGE, "\n"); return EXIT.ok end
  local api = os.getenv("AWS_LAMBDA_RUNTIME_API")
  if not api or api == "" then
    usage("lambda runs inside AWS Lambda: AWS_LAMBDA_RUNTIME_API (the Runtime API's " ..
      "host:port) is not set")
  end
  if #args > 1 then usage("lambda takes one APP.lua (or _HANDLER names it)") end
  local client <close> = lambda.client(api)
  local ok, rt, etype, emsg, code = pcall(init, opts, args)
  if not ok then rt, etype, emsg, code = nil, "Aeon.InitError", tostring(rt), EXIT.script end
  if not rt then
    say("%s", emsg)
    local ok, err = client:init_error(etype, emsg)
    if not ok then say("%s", err) end
    return code
  end
  while true do
    local id, text, info = client:next()
    if not id then
      say("%s", text)
      rt.store:close()
      return EXIT.io
    end
    local answer, atype, amsg = invoke(rt, id, text, info)
    local ok, err
    if answer then
      ok, err = client:respond(id, answer)
      -- Lambda refuses an answer it cannot take (over 6 MB, say): the
      -- invocation still gets one.
      if not ok and err:match("^the Runtime API answered") then
        ok, err = client:fail(id, "Aeon.ResponseRefused", err)
      end
    else
      host.log("error", "invocation failed", { request_id = id, error_type = atype,
        error = amsg })
      ok, err = client:fail(id, atype, amsg)
    end
    if not ok then
      say("%s", err)
      rt.store:close()
      return EXIT.io
    end
  end
end

return M
