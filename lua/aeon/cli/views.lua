--- aeon.cli.views: `aeon-host views NAME [ID]`, reading read models from
-- the command line.
--
--   aeon-host views NAME ID                                  one document, as JSON
--   aeon-host views NAME [--after ID] [--limit N] [--json]   its documents, in id order
--
-- A listing prints `ID  REVISION  DOCUMENT` per line (--json: one object
-- {"doc","id","revision"} per line), page by page through view:list. A
-- missing document is exit status 1.
local aeon = require "aeon"
local options = require "aeon.cli.options"

local io, ipairs, tostring = io, ipairs, tostring
local json_encode = aeon.json.encode
local EXIT, usage, say = options.EXIT, options.usage, options.say

local M = {}

local FLAGS = { after = "string", limit = "integer", json = "flag" }
-- view:list's largest page.
local PAGE = 1000

M.USAGE = [[
usage:
  aeon-host [--store URI] views NAME ID                                one document, as JSON
  aeon-host [--store URI] views NAME [--after ID] [--limit N] [--json] its documents, in id order
A listing prints ID  REVISION  DOCUMENT per line (--json: {"doc","id","revision"} objects).
A missing document is exit status 1.]]

-- views NAME ID: the document as JSON, or exit status 1 when there is none.
local function one(view, name, id)
  local doc, rev = view:get(id)
  if doc == nil then
    if rev ~= nil then say("%s", tostring(rev)); return EXIT.io end
    say("view %s has no document %s", name, id)
    return EXIT.rejected
  end
  io.stdout:write(json_encode(doc), "\n")
  return EXIT.ok
end

-- views NAME: every document after `after`, at most `left`, page by page.
local function list(view, flags)
  local out = io.stdout
  local after, left = flags.after, flags.limit
  repeat
    local want = left and (left < PAGE and left or PAGE) or PAGE
    local page, err = view:list { after = after, limit = want }
    if not page then say("%s", tostring(err)); return EXIT.io end
    for _, d in ipairs(page) do
      if flags.json then
        out:write(json_encode(d), "\n")
      else
        out:write(d.id, "  ", d.revision, "  ", json_encode(d.doc), "\n")
      end
    end
    if left then left = left - #page end
    after = page[#page] and page[#page].id
  until #page < want or (left and left <= 0)
  return EXIT.ok
end

function M.main(opts, words)
  local flags, pos = options.parse(words, 2, FLAGS, "views")
  if flags.help then io.stdout:write(M.USAGE, "\n"); return EXIT.ok end
  local name, id = pos[1], pos[2]
  if not name or name == "" then usage("views needs a view NAME (see views --help)") end
  if pos[3] then usage("views takes a NAME and at most one ID") end
  if id and (flags.after or flags.limit) then usage("views NAME ID takes no --after or --limit") end
  if flags.limit == 0 then usage("option --limit needs at least 1") end
  local store, err = options.open_store(opts)
  if not store then say("%s", tostring(err)); return EXIT.io end
  local view, verr = store:view(name)
  local status
  if not view then
    say("%s", tostring(verr))
    status = EXIT.io
  elseif id then
    status = one(view, name, id)
  else
    status = list(view, flags)
  end
  store:close()
  return status
end

return M
