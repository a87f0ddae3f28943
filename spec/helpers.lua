--- Shared spec helpers: the backends to run the store suite against, fresh
-- stores, temporary files, and running the aeon-host binary.
local aeon = require "aeon"

local M = {}

M.HOST = os.getenv("AEON_HOST") or "build/aeon-host"
M.SUPPORT = os.getenv("AEON_SUPPORT") or "build/support" -- the fault proxy and such

--- The backends the store suite runs on: sqlite always, dynamodb when the
-- test runner started DynamoDB Local (AEON_TEST_DYNAMODB_ENDPOINT).
function M.backends()
  local list = { "sqlite" }
  if os.getenv("AEON_TEST_DYNAMODB_ENDPOINT") then list[#list + 1] = "dynamodb" end
  return list
end

--- for _, backend in helpers.each_backend() do describe("store #" .. backend, ...) end
function M.each_backend() return ipairs(M.backends()) end

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

--- The URI of a fresh, empty store on a backend.
function M.fresh_uri(backend)
  if backend == "sqlite" then
    return "sqlite:" .. M.tmpdir() .. "/store.db"
  elseif backend == "dynamodb" then
    return "dynamodb:" .. unique("t")
  end
  error("unknown backend " .. tostring(backend))
end

--- Opens a fresh store (deploying its tables where the backend has them).
function M.fresh_store(backend)
  local uri = M.fresh_uri(backend)
  local store = assert(aeon.open(uri))
  if backend == "dynamodb" then assert(store:admin("deploy")) end
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
