-- The README cannot drift: every example marked runnable is run, and where
-- it shows output, the output must be what it shows.
--
-- The mark is an HTML comment (invisible on GitHub) on the line right
-- before a fenced block:
--
--   <!-- runnable -->        ```sh: each "$ COMMAND" line runs with sh in the
--                           repository's folder, on a fresh store of its own
--                           per block ($AEON_STORE), stderr with stdout; the
--                           lines after it, up to the next "$ ", are what it
--                           must print. ```lua: the block runs as a script
--                           (aeon-host FILE.lua) in an empty folder and must
--                           exit 0.
--   <!-- runnable spec -->  ```lua: the block is a busted spec, run with
--                           `aeon-host test` (apps/ on the path) and must pass.
--
-- Revisions and timestamps differ from run to run: in the comparison each
-- becomes REV or TIME, and a revision a command shows is mapped to the one
-- the run printed in its place, so a later command that uses it (`counter
-- revision=01KB...`) gets the real one.
local helpers = require "helpers"

local q = helpers.shell_quote

local REV = "[0-9A-HJKMNP-TV-Z]" .. ("[0-9A-HJKMNP-TV-Z]"):rep(25)
local TIME = "%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ"

local function read(path)
  local f = assert(io.open(path))
  local text = f:read("a")
  f:close()
  return text
end

local write = helpers.spit

--- The runnable blocks of a Markdown text: { lang, mode, line, lines }.
local function runnable_blocks(text)
  local lines = {}
  for l in (text .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = l end
  local out = {}
  local i = 1
  while i <= #lines do
    local mark = lines[i]:match("^<!%-%- runnable(.-)%-%->%s*$")
    if mark then
      local lang = (lines[i + 1] or ""):match("^```(%w+)%s*$")
      assert(lang, ("README.md:%d: a runnable mark must stand right before a ``` block"):format(i))
      local body, j = {}, i + 2
      while lines[j] and lines[j] ~= "```" do
        body[#body + 1] = lines[j]
        j = j + 1
      end
      out[#out + 1] = { lang = lang, mode = mark:match("%S+"), line = i + 1, lines = body }
      i = j
    end
    i = i + 1
  end
  return out
end

local function normalise(text)
  return (text:gsub(TIME, "TIME"):gsub(REV, "REV"):gsub("%s+$", ""))
end

local function revisions(text)
  local out = {}
  for r in text:gsub(TIME, ""):gmatch(REV) do out[#out + 1] = r end
  return out
end

-- Runs a shell command line in the repository's folder; returns what it
-- printed (stdout and stderr).
local function sh(line, env)
  local p = io.popen(("%s sh -c %s 2>&1"):format(env, q(line)))
  local out = p:read("a")
  p:close()
  return out
end

local function run_sh(block)
  local dir = helpers.tmpdir()
  local env = "AEON_STORE=" .. q("sqlite:" .. dir .. "/store.db")
  local steps = {}
  for _, l in ipairs(block.lines) do
    local cmd = l:match("^%$ (.*)$")
    if cmd then
      steps[#steps + 1] = { cmd = cmd, shown = {} }
    else
      assert(#steps > 0, ("README.md:%d: output before any $ command"):format(block.line))
      local shown = steps[#steps].shown
      shown[#shown + 1] = l
    end
  end
  assert.is_true(#steps > 0, ("README.md:%d: a runnable sh block needs $ commands"):format(block.line))
  local seen = {} -- shown revision -> the one this run printed
  for _, step in ipairs(steps) do
    local cmd = step.cmd:gsub(REV, function(r) return seen[r] or r end)
    cmd = cmd:gsub("build/aeon%-host", q(helpers.HOST))
    local out = sh(cmd, env)
    local shown = table.concat(step.shown, "\n")
    assert.same(normalise(shown), normalise(out),
      ("README.md:%d: `%s` printed something else than the README shows"):format(block.line, step.cmd))
    local s, a = revisions(shown), revisions(out)
    for k, r in ipairs(s) do seen[r] = seen[r] or a[k] end
  end
  os.execute("rm -rf " .. q(dir))
  return #steps
end

local function run_lua(block)
  local dir = helpers.tmpdir()
  write(dir .. "/example.lua", table.concat(block.lines, "\n") .. "\n")
  local out = sh(("cd %s && %s example.lua; echo \"rc=$?\""):format(q(dir),
    q(helpers.abspath(helpers.HOST))), "")
  os.execute("rm -rf " .. q(dir))
  assert.matches("rc=0\n$", out, ("README.md:%d: the example failed"):format(block.line))
end

local function run_spec(block)
  local dir = helpers.tmpdir()
  os.execute("mkdir -p " .. q(dir .. "/spec"))
  write(dir .. "/spec/readme_spec.lua", table.concat(block.lines, "\n") .. "\n")
  local apps = helpers.abspath("apps")
  local out = sh(("env -u LD_PRELOAD -u AEON_HOST LUA_PATH=%s %s test %s"):format(
    q(apps .. "/?.lua;;"), q(helpers.abspath(helpers.HOST)), q(dir)), "")
  os.execute("rm -rf " .. q(dir))
  assert.matches("\n[1-9]%d* passed, 0 failed\n$", out,
    ("README.md:%d: the spec example did not pass"):format(block.line))
end

describe("README.md examples #cli", function()
  local blocks = runnable_blocks(read("README.md"))

  it("are marked (the marks themselves did not vanish)", function()
    local kinds = {}
    for _, b in ipairs(blocks) do kinds[b.lang .. (b.mode and (" " .. b.mode) or "")] = true end
    assert.is_true(#blocks >= 5, "only " .. #blocks .. " runnable blocks")
    assert.same({ lua = true, ["lua spec"] = true, sh = true }, kinds)
  end)

  for _, block in ipairs(blocks) do
    it(("README.md:%d (%s%s) runs as shown"):format(block.line, block.lang,
      block.mode and (" " .. block.mode) or ""), function()
      if block.lang == "sh" then
        run_sh(block)
      elseif block.mode == "spec" then
        run_spec(block)
      else
        run_lua(block)
      end
    end)
  end

  it("normalises revisions and times, and maps the shown ones to the real ones", function()
    assert.same("REV  TIME  x", normalise("01KB0V3Q2M7Y8W1J5X9T4R6ZQE  2026-11-26T20:29:24.016Z  x\n"))
    assert.same({ "01KB0V3Q2M7Y8W1J5X9T4R6ZQE" }, revisions('{"revision":"01KB0V3Q2M7Y8W1J5X9T4R6ZQE"}'))
  end)
end)
