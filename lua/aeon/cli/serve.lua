--- aeon.cli.serve: `aeon-host serve APP.lua [options]` and `aeon-host
-- APP.lua` (API.md section 5), in aeon-host's main state: it reads the
-- serve options and hands them to the C server (aeon.host.serve), which
-- blocks until SIGINT or SIGTERM. Every state the server makes runs
-- aeon.cli.worker instead.
--
-- aeon.host exists only inside aeon-host; this module is not loadable from
-- plain lua5.4.
local aeon = require "aeon"
local appmod = require "aeon.app"
local host = require "aeon.host"
local options = require "aeon.cli.options"

local io, os, pairs, ipairs, next, tostring = io, os, pairs, ipairs, next, tostring
local json_encode = aeon.json.encode
local EXIT, usage, say = options.EXIT, options.usage, options.say

local M = {}

-- Option -> kind of value (aeon.cli.options.parse).
local FLAGS = {
  listen = "string",
  workers = "integer",
  ["log-level"] = "string",
  watch = "flag",
  token = "string",
  ["metrics-loopback"] = "flag",
  ["max-body"] = "integer",
  timeout = "integer",
  ["header-timeout"] = "number",
  ["body-timeout"] = "number",
  ["max-connections"] = "integer",
  ["max-client-connections"] = "integer",
  ["max-instructions"] = "integer",
  ["max-time"] = "number",
  ["max-memory"] = "integer",
  drain = "number",
}

-- Each option's default in the help is options.SERVE's, so the two agree.
M.USAGE = ([[
usage: aeon-host [--store URI] serve FILE.lua [options]
       aeon-host [--store URI] FILE.lua            (the same, with every default)
serve options:
  --listen ADDR:PORT       where to listen (${listen}; :PORT for every interface,
                           port 0 for any free one)
  --workers N              worker threads, each with its own Lua state and store (${workers})
  --log-level LEVEL        debug, info, warn or error (${log-level})
  --watch                  reload the app when its Lua files change
  --token TOKEN            require "Authorization: Bearer TOKEN" for commands,
                           queries and /metrics (default $AEON_TOKEN; none when unset)
  --metrics-loopback       with a token, leave /metrics open to loopback clients
                           (a scraper on the same machine)
  --max-body BYTES         larger request bodies are answered 413 (${max-body})
  --timeout SECONDS        a connection that stalls this long is closed (${timeout})
  --header-timeout SECONDS a connection that has not sent a request's headers this long
                           after opening (or after its last answer) is closed
                           (${header-timeout}; 0: none)
  --body-timeout SECONDS   a body still arriving this long after its headers is cut
                           (${body-timeout})
  --max-connections N      open connections at most (${max-connections}, within the
                           descriptor limit)
  --max-client-connections N  per client address (${max-client-connections}); more are
                           refused at accept
  --max-instructions N     a request's handler is stopped past N Lua instructions
                           (${max-instructions}; 0: no limit)
  --max-time SECONDS       ... or past this many seconds (${max-time}; 0: no limit); a
                           worker stuck in C past it is answered 503 and replaced
  --max-memory MIB         memory of each worker's Lua state (${max-memory}; 0: no limit):
                           past it the request fails, 500 "memory budget exceeded"
  --drain SECONDS          on SIGINT/SIGTERM, wait this long for requests in flight (${drain})]])
  :gsub("%${([%w-]+)}", function(name) return tostring(options.SERVE[name]) end)

-- The options with the defaults filled in, checked.
local function settings(flags)
  for k, v in pairs(options.SERVE) do
    if flags[k] == nil then flags[k] = v end
  end
  if flags.workers < 1 or flags.workers > 1024 then usage("--workers needs 1 to 1024") end
  if flags.timeout < 1 then usage("--timeout needs at least 1 second") end
  if flags["max-connections"] < 1 or flags["max-client-connections"] < 1 then
    usage("--max-connections and --max-client-connections need at least 1")
  end
  if flags["max-body"] < 1 then usage("--max-body needs at least 1 byte") end
  local levels = { debug = true, info = true, warn = true, error = true }
  if not levels[flags["log-level"]] then usage("--log-level needs debug, info, warn or error") end
  return flags
end

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- The command line to try: the app's first declared command with made-up
-- arguments, then the first declared query that takes its arguments, reading
-- back what the command did (apps declare their main command first); else
-- the first query, else /health. Answers carry no final newline, so an echo
-- goes between the two; a query over views reads what a projection thread
-- keeps in the background, so it waits a second for it.
local function example(app, url, token)
  local auth = token and ' -H "Authorization: Bearer $AEON_TOKEN"' or ""
  local commands, queries = app:declared("command"), app:declared("query")
  local function query_line(h, given)
    local q = {}
    for _, p in ipairs(h.params or {}) do
      if not given or given[p] then q[#q + 1] = p .. "=a" end
    end
    return ("curl -s%s '%s/queries/%s%s'"):format(auth, url, h.name,
      #q > 0 and "?" .. table.concat(q, "&") or "")
  end
  if commands[1] then
    local h = app:lookup(commands[1])
    local args = {}
    for _, p in ipairs(h.params or {}) do args[p] = "a" end
    local body = next(args) and json_encode(args) or "{}"
    local line = ("curl -s -X POST %s/commands/%s%s -d %s"):format(url, h.name, auth, quote(body))
    for _, qname in ipairs(queries) do
      local q = app:lookup(qname)
      local takes = true
      for p in pairs(args) do
        local found = false
        for _, qp in ipairs(q.params or {}) do found = found or qp == p end
        takes = takes and found
      end
      if takes then
        return line .. (q.views and " && echo && sleep 1 && " or " && echo && ") .. query_line(q, args)
      end
    end
    return line
  elseif queries[1] then
    return query_line(app:lookup(queries[1]))
  end
  return ("curl -s %s/health"):format(url)
end

-- The config aeon.host.serve takes: every value from here, none left to
-- C's own choosing.
local function config_of(app, path, uri, flags, token)
  return {
    app = path,
    app_name = app.name,
    store = uri,
    lua_path = package.path,
    lua_cpath = package.cpath,
    listen = flags.listen,
    workers = flags.workers,
    max_body = flags["max-body"],
    timeout = flags.timeout,
    header_timeout = flags["header-timeout"],
    body_timeout = flags["body-timeout"],
    max_connections = flags["max-connections"],
    max_client_connections = flags["max-client-connections"],
    max_instructions = flags["max-instructions"],
    max_time = flags["max-time"],
    max_memory = flags["max-memory"] * 1024 * 1024,
    drain = flags.drain,
    watch = flags.watch or false,
    metrics_loopback = flags["metrics-loopback"] or false,
    token = token,
  }
end

-- The exit status for a kind of failure aeon.host.serve reports.
local FAILED = { usage = EXIT.usage, script = EXIT.script, io = EXIT.io }

--- Serves `app` (loaded from `path`) with the options in `flags` (from
-- aeon.cli.options.parse, or {} for the defaults) until SIGINT/SIGTERM.
-- Returns the exit status.
function M.run(opts, app, path, flags)
  flags = settings(flags)
  host.set_log_level(flags["log-level"])
  local uri = options.store_uri(opts)
  -- Fail fast, with the store's own message, before any thread starts.
  local store, err = options.open_store(opts)
  if not store then say("%s", err); return EXIT.io end
  -- Each worker opens its own connection: one to a store only it sees
  -- (memory:, sqlite::memory:, a file::memory: or mode=memory URI) would
  -- serve each request from a different, empty store.
  local shared = store:supports("sharing")
  store:close()
  if not shared then
    usage("%s is in memory, private to one connection: serving needs a store its workers " ..
      "share (sqlite:PATH, dynamodb:NAME)", uri)
  end

  local token = flags.token or os.getenv("AEON_TOKEN")
  if token == "" then token = nil end
  local code, message, kind = host.serve(config_of(app, path, uri, flags, token), function(url)
    io.stdout:write(("aeon-host: serving %s at %s (%d workers, store %s)\n  try: %s\n"):format(
      app.name, url, flags.workers, uri, example(app, url, token)))
    io.stdout:flush()
  end)
  if code then return code end
  say("%s", tostring(message))
  return FAILED[kind] or EXIT.io
end

--- `aeon-host serve FILE.lua [options]`; `serve --help` lists the options.
function M.main(opts, words)
  local flags, pos = options.parse(words, 2, FLAGS, "serve")
  if flags.help then io.stdout:write(M.USAGE, "\n"); return EXIT.ok end
  local path = pos[1]
  if not path then usage("serve needs an app FILE.lua (see serve --help)") end
  if pos[2] then usage("serve takes one FILE.lua and options, not also '%s'", pos[2]) end
  -- The app may not end the process while it loads (the server's own
  -- states take os.exit away for good), nor run past a request's budget.
  flags = settings(flags)
  local exit = os.exit
  os.exit = function() error("os.exit is not available to an app being served", 2) end
  local ok, app = options.load_file(path, {},
    { instructions = flags["max-instructions"], seconds = flags["max-time"] })
  os.exit = exit
  if not ok then return app end
  if not appmod.is_app(app) then usage("%s does not return an app", path) end
  return M.run(opts, app, path, flags)
end

return M
