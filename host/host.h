/*
 * host.h - the one protected entry from C into Lua, and the exit statuses.
 *
 * Every call from C into app code (the CLI, the HTTP workers, projection
 * runners) goes through host_call, as lua.c's docall does: errors are caught
 * with a traceback attached, so the caller can report one clear line and log
 * the rest. The budget hooks of the workers and of the Lambda runtime stop
 * a handler that runs on after being stopped the same way (host_stop_again).
 */
#ifndef AEON_HOST_H
#define AEON_HOST_H

#include <lua.h>

/* Exit statuses of aeon-host (API.md section 1). */
enum {
    HOST_EXIT_OK = 0,
    HOST_EXIT_REJECTED = 1, /* a command was rejected or conflicted */
    HOST_EXIT_USAGE = 2,
    HOST_EXIT_IO = 3,     /* store or I/O failure */
    HOST_EXIT_SCRIPT = 4, /* script error */
};

/* lua_pcall with a traceback handler: on error the stack holds the message
 * with "\nstack traceback:" and the trace appended. */
int host_call(lua_State *L, int nargs, int nresults);

/* Where the traceback host_call appended to an error message begins (at
 * its "\nstack traceback:"), or NULL when it has none. */
const char *host_traceback(const char *msg);

/* Writes the error on top of the stack to stderr as "prefix: message" (one
 * line; the traceback follows only when AEON_DEBUG is set) and returns a
 * Lua-callable result: pushes HOST_EXIT_SCRIPT and returns 1. */
int host_report(lua_State *L, const char *prefix);

/* For a count hook that already stopped a handler once (its error raised)
 * and finds it running on, because the handler caught that error: yields
 * out of the handler's coroutine where it can (the caller abandons it),
 * else raises again. The hook returns at once after it. */
void host_stop_again(lua_State *L);

#endif
