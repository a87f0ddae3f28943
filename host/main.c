/*
 * main.c - the aeon-host program.
 *
 * Provides main: makes a Lua state with aeon.core preloaded and the Lua
 * library on package.path, then hands the command line to aeon.cli, whose
 * answer is the exit status. Every call into Lua goes through host_call
 * (host.h), the one protected entry, so a script error becomes a clear line
 * on stderr and exit status 4, never a crash. Uses bind.h, hostlib.h (the
 * aeon.host module), runtime.h (aeon.lambda) and Lua.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "bind.h"
#include "host.h"
#include "hostlib.h"
#include "runtime.h"

/* Where the Lua library lives: $AEON_LUA_PATH, else beside the executable in
 * a source tree (build/../lua), else the installed share/lua/5.4. */
static void set_paths(lua_State *L, const char *argv0) {
    char exe[PATH_MAX], dir[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(exe, sizeof exe, "%s", argv0);
        n = (ssize_t)strlen(exe);
    }
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - exe) : 1, slash ? exe : ".");

    const char *env = getenv("AEON_LUA_PATH");
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L,
                    "%s%s%s/../lua/?.lua;%s/../lua/?/init.lua;%s/../share/lua/5.4/?.lua;"
                    "%s/../share/lua/5.4/?/init.lua;%s",
                    env ? env : "", env ? ";" : "", dir, dir, dir, dir, lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);

    /* aeon.core is linked in; require finds it without a .so. aeon.host
     * (the HTTP server) and aeon.lambda (the Lambda runtime) exist only
     * inside aeon-host. */
    bind_preload(L, "aeon.lambda", luaopen_aeon_lambda);
    host_preload(L);
}

static int pmain(lua_State *L) {
    int argc = (int)lua_tointeger(L, 1);
    char **argv = lua_touserdata(L, 2);
    luaL_openlibs(L);
    set_paths(L, argv[0]);

    lua_getglobal(L, "require");
    lua_pushliteral(L, "aeon.cli");
    if (host_call(L, 1, 1) != LUA_OK) return host_report(L, "aeon-host: cannot load aeon.cli");
    lua_getfield(L, -1, "main");
    lua_createtable(L, argc, 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    if (host_call(L, 1, 1) != LUA_OK) {
        bind_end_transactions(L);
        host_report(L, "aeon-host");
        /* An error that came of a damaged store file is the store's failure
         * (exit 3), not the script's. */
        if (bind_damage_seen()) lua_pushinteger(L, HOST_EXIT_IO);
        return 1;
    }
    lua_Integer code = luaL_optinteger(L, -1, 0);
    /* A script (or a store a handler opened itself) that ended with a
     * transaction open has not stored what it wrote in it: say so, rather
     * than let the close roll it back unnoticed. */
    int left_open = bind_end_transactions(L);
    if (left_open) {
        fprintf(stderr,
                "aeon-host: the run ended with %d transaction%s open: rolled back, "
                "nothing written in %s is stored\n",
                left_open, left_open == 1 ? "" : "s", left_open == 1 ? "it" : "them");
        if (code == 0) code = HOST_EXIT_SCRIPT;
    }
    lua_pushinteger(L, code);
    return 1;
}

int main(int argc, char **argv) {
    lua_State *L = luaL_newstate();
    if (!L) {
        fputs("aeon-host: cannot create a Lua state: out of memory\n", stderr);
        return HOST_EXIT_IO;
    }
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = lua_pcall(L, 2, 1, 0);
    int code = status == LUA_OK ? (int)lua_tointeger(L, -1) : HOST_EXIT_SCRIPT;
    if (status != LUA_OK) fprintf(stderr, "aeon-host: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return code;
}
