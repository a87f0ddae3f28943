-- LuaRocks packaging: `luarocks --lua-version 5.4 make rockspec/aeon-scm-1.rockspec`
-- builds the native module aeon.core and the aeon-host program with the
-- project's Makefile, and installs them with the Lua library. The C
-- libraries come from Debian's packages (sh scripts/setup.sh), not from a
-- rocks server. Debian's luarocks runs Lua 5.1 unless told otherwise, hence
-- --lua-version. curl is looked for by its library: Debian keeps curl.h
-- under the multiarch include folder (/usr/include/x86_64-linux-gnu/curl),
-- where LuaRocks looks for no header, but its library where LuaRocks looks.
rockspec_format = "3.0"
package = "aeon"
version = "scm-1"
source = { url = "git+file://." }
description = {
  summary = "Event store and event-sourcing app host: SQLite and DynamoDB, apps in Lua",
  detailed = [[
aeon-host embeds an event store (append, read, snapshot, subscribe) in Lua:
aggregates, command handlers and projections are Lua scripts. Stores are
SQLite (embedded, durable) or AWS DynamoDB with the table layout of Aeon.]],
  license = "MIT",
}
dependencies = { "lua >= 5.4, < 5.5" }
external_dependencies = {
  SQLITE = { header = "sqlite3.h" },
  JANSSON = { header = "jansson.h" },
  CURL = { library = "curl" },
  OPENSSL = { header = "openssl/hmac.h" },
}
build = {
  type = "make",
  build_target = "all",
  build_variables = { CFLAGS = "$(CFLAGS)" },
  install_target = "install-rock",
  install_variables = { LUADIR = "$(LUADIR)", LIBDIR = "$(LIBDIR)", BINDIR = "$(BINDIR)" },
}
