--- Shared spec helpers: the backends to run the store suite against (and
-- describe blocks over them), fresh stores, temporary files, running the
-- aeon-host binary, and the AWS CLI against DynamoDB Local.
local aeon = require "aeon"

local M = {}

M.HOST = os.getenv("AEON_HOST") or "build/aeon-host"
M.SUPPORT = os.getenv("AEON_SUPPORT") or "build/support" -- the fault proxy and such

local counter = 0
local function unique(prefix)
  counter = counter + 1
  return ("%s%d-%d-%d"):format(prefix, os.time(), math.random(1, 1e9), counter)
end
M.unique = unique

--- A new empty directory, removed at exit by the OS's tmp cleaning only:
-- specs keep their files small.
function M.tmpdir()
  local p = io.popen("mktemp -d")
  local dir = p:read("l")
  p:close()
  return dir
end

--- The backends the store suites run on, one row each (as Kong's
-- integration specs loop over strategies): when it runs, how to make a
-- fresh store, and what a spec must know of it. Adding a backend is one
-- row here.
--   fresh_uri()       the URI of a new, empty store
--   name_of(uri)      what the URI names: the file, the table
--   deploy            its tables must be deployed before use
--   batch_events      events one append may carry in a bulk spec
--   float_max/min     the largest and smallest magnitudes it holds exactly
--   bounded_numbers   it refuses numbers outside those (naming them)
--   exact_positions   a scan moves a subscription's position to the last
--                     revision it passed, matching or not
M.BACKENDS = {
  {
    name = "sqlite",
    enabled = function() return true end,
    fresh_uri = function() return "sqlite:" .. M.tmpdir() .. "/store.db" end,
    name_of = function(uri) return uri:match("^sqlite:(.*)$") end,
    deploy = false,
    batch_events = 250,
    float_max = 1e300, float_min = 5e-324,
    bounded_numbers = false,
    exact_positions = true,
  },
  {
    name = "dynamodb", -- when the test runner started DynamoDB Local
    enabled = function() return os.getenv("AEON_TEST_DYNAMODB_ENDPOINT") ~= nil end,
    fresh_uri = function() return "dynamodb:" .. unique("t") end,
    name_of = function(uri) return uri:match("^dynamodb:(.*)$") end,
    deploy = true,
    batch_events = 50, -- DynamoDB takes at most 100 items in one transaction
    float_max = 9.999999999999999e125, float_min = 1e-130,
    bounded_numbers = true,
    exact_positions = false,
  },
}

--- The row of a backend, by name.
function M.backend(name)
  for _, b in ipairs(M.BACKENDS) do
    if b.name == name then return b end
  end
  error("unknown backend " .. tostring(name))
end

--- The names of the backends that run here.
function M.backends()
  local list = {}
  for _, b in ipairs(M.BACKENDS) do
    if b.enabled() then list[#list + 1] = b.name end
  end
  return list
end

--- for _, backend in helpers.each_backend() do describe("store #" .. backend, ...) end
function M.each_backend() return ipairs(M.backends()) end

--- The URI of a fresh, empty store on a backend.
function M.fresh_uri(backend) return M.backend(backend).fresh_uri() end

--- Opens a fresh store (deploying its tables where the backend has them);
-- returns it, its URI and what the URI names (the file, the table).
function M.fresh_store(backend)
  local row = M.backend(backend)
  local uri = row.fresh_uri()
  local store = assert(aeon.open(uri))
  if row.deploy then assert(store:admin("deploy")) end
  return store, uri, row.name_of(uri)
end

--- The URI of a fresh store, with its tables deployed where the backend
-- has them, and the environment that names it to aeon-host.
function M.fresh_env(backend)
  local uri
  if M.backend(backend).deploy then
    local store
    store, uri = M.fresh_store(backend)
    store:close()
  else
    uri = M.fresh_uri(backend)
  end
  return uri, { AEON_STORE = uri }
end

--- Whether a backend has a feature store:supports knows ("subscriptions",
-- "views", "transactions"); false when it cannot even be opened. Specs
-- of a feature a backend lacks are marked pending for it, not failed.
function M.supports(backend, feature)
  local store = aeon.open(M.fresh_uri(backend))
  if not store then return false end
  local yes = store:supports(feature)
  store:close()
  return yes
end

--- describe(TITLE .. " #" .. backend, ...) on every backend, the block
-- being fn(backend); a backend without each of `features` gets one pending
-- spec instead, saying why (features.why) where that says more than "yet":
--   helpers.describe_backends("views", { "views" }, function(backend) ... end)
function M.describe_backends(title, features, fn)
  local busted = require "busted" -- describe and pending live in the spec's environment
  for _, backend in M.each_backend() do
    busted.describe(title .. " #" .. backend, function()
      for _, feature in ipairs(features) do
        if not M.supports(backend, feature) then
          busted.pending(("%s does not support %s %s"):format(backend, table.concat(features, " and "),
            features.why and "(" .. features.why .. ")" or "yet"))
          return
        end
      end
      fn(backend)
    end)
  end
end

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shell_quote = shell_quote

--- The whole of a file, or nil when it cannot be opened.
function M.slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

--- Writes `text` to a file, replacing what was there.
function M.spit(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

--- The path of a new file `name`, holding `text`, in a new directory.
function M.temp_file(name, text)
  local path = M.tmpdir() .. "/" .. name
  M.spit(path, text)
  return path
end

--- Calls f(store) with the store at `uri` open, and closes it, also when
-- f raises (the error goes on).
function M.with_store(uri, f)
  local store = assert(aeon.open(uri))
  local ok, err = pcall(f, store)
  store:close()
  if not ok then error(err, 0) end
end

--- The shell words that run aeon-host with `words`, under the environment
-- variables of the table `env` (may be nil).
function M.host_command(words, env)
  local cmd = {}
  for k, v in pairs(env or {}) do cmd[#cmd + 1] = k .. "=" .. shell_quote(v) end
  cmd[#cmd + 1] = shell_quote(M.HOST)
  for _, w in ipairs(words) do cmd[#cmd + 1] = shell_quote(w) end
  return table.concat(cmd, " ")
end

--- An absolute path for `path` (relative to the current directory).
function M.abspath(path)
  if path:sub(1, 1) == "/" then return path end
  local p = io.popen("pwd")
  local cwd = p:read("l")
  p:close()
  return cwd .. "/" .. path
end

--- Runs aeon-host with the words given; returns exit status, stdout, stderr.
-- opts.env: table of environment variables; opts.stdin: text.
function M.run_host(words, opts)
  opts = opts or {}
  local dir = M.tmpdir()
  local line = M.host_command(words, opts.env) .. " >" .. dir .. "/out 2>" .. dir .. "/err"
  if opts.stdin then line = line .. " <" .. shell_quote(opts.stdin) end
  local _, _, code = os.execute(line)
  local out, err = assert(M.slurp(dir .. "/out")), assert(M.slurp(dir .. "/err"))
  os.execute("rm -rf " .. dir)
  return code, out, err
end

--- Runs `aeon-host APP WORDS...` under `env`; returns the exit status, the
-- JSON it printed decoded (nil when it printed nothing), and stderr.
function M.run_app(app, env, ...)
  local code, out, err = M.run_host({ app, ... }, { env = env })
  return code, out ~= "" and aeon.json.decode(out) or nil, err
end

--- The AWS CLI, for specs that read DynamoDB Local's tables raw.
M.AWS_CLI = io.open("/usr/bin/aws") and "/usr/bin/aws" or "aws"

--- Whether the AWS CLI runs here.
function M.has_aws_cli()
  return os.execute(M.AWS_CLI .. " --version >/dev/null 2>&1")
end

--- Runs `aws dynamodb WORDS... --endpoint-url E --output json` against the
-- DynamoDB Local the runner started; returns the decoded answer (nil for
-- an empty one), or raises with the CLI's words.
function M.aws(words)
  local endpoint = assert(os.getenv("AEON_TEST_DYNAMODB_ENDPOINT"), "no DynamoDB Local")
  local dir = M.tmpdir()
  local cmd = { M.AWS_CLI, "dynamodb" }
  for _, w in ipairs(words) do cmd[#cmd + 1] = shell_quote(w) end
  cmd[#cmd + 1] = "--endpoint-url " .. shell_quote(endpoint) .. " --output json"
  local ok = os.execute(table.concat(cmd, " ") .. " >" .. dir .. "/out 2>" .. dir .. "/err")
  local out, err = M.slurp(dir .. "/out") or "", M.slurp(dir .. "/err") or ""
  os.execute("rm -rf " .. dir)
  if not ok then error("aws dynamodb " .. words[1] .. ": " .. err, 2) end
  if out:match("^%s*$") then return nil end
  return assert(aeon.json.decode(out))
end

--- Collects an iterator's values into an array.
function M.collect(iter, s, c, closer)
  local out = {}
  for v in iter, s, c, closer do out[#out + 1] = v end
  return out
end

--- Events' field `field` as an array.
function M.pluck(events, field)
  local out = {}
  for i, e in ipairs(events) do out[i] = e[field] end
  return out
end

return M
