--- Shared spec helpers: the backends to run the store suite against, fresh
-- stores, temporary files, and running the aeon-host binary.
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

--- Opens a fresh store (deploying its tables where the backend has them).
function M.fresh_store(backend)
  local uri = M.fresh_uri(backend)
  local store = assert(aeon.open(uri))
  if M.backend(backend).deploy then assert(store:admin("deploy")) end
  return store, uri
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

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.shell_quote = shell_quote

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
  local cmd = {}
  for k, v in pairs(opts.env or {}) do cmd[#cmd + 1] = k .. "=" .. shell_quote(v) end
  cmd[#cmd + 1] = shell_quote(M.HOST)
  for _, w in ipairs(words) do cmd[#cmd + 1] = shell_quote(w) end
  local line = table.concat(cmd, " ") .. " >" .. dir .. "/out 2>" .. dir .. "/err"
  if opts.stdin then line = line .. " <" .. shell_quote(opts.stdin) end
  local _, _, code = os.execute(line)
  local function slurp(name)
    local f = io.open(dir .. "/" .. name)
    local s = f:read("a")
    f:close()
    return s
  end
  local out, err = slurp("out"), slurp("err")
  os.execute("rm -rf " .. dir)
  return code, out, err
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
