/*
 * host.c - the protected entry into Lua, and the one way a count hook
 * stops a handler that runs on after being stopped (see host.h).
 */
#include "host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

/* Message handler: keeps error objects that are tables (structured errors
 * from aeon) as they are, and adds a traceback to everything else. */
static int traceback(lua_State *L) {
    if (lua_type(L, 1) == LUA_TTABLE) return 1;
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int host_call(lua_State *L, int nargs, int nresults) {
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    int status = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    return status;
}

const char *host_traceback(const char *msg) {
    return msg ? strstr(msg, "\nstack traceback:") : NULL;
}

int host_report(lua_State *L, const char *prefix) {
    const char *msg = lua_tostring(L, -1);
    if (!msg) msg = "(error object is not a string)";
    const char *trace = host_traceback(msg);
    if (trace && !getenv("AEON_DEBUG"))
        fprintf(stderr, "%s: %.*s\n", prefix, (int)(trace - msg), msg);
    else
        fprintf(stderr, "%s: %s\n", prefix, msg);
    lua_pushinteger(L, HOST_EXIT_SCRIPT);
    return 1;
}

void host_stop_again(lua_State *L) {
    if (lua_isyieldable(L)) {
        lua_yield(L, 0);
        return;
    }
    luaL_error(L, "stopped");
}
