/*
 * hostlib.h - aeon.host, the host-only Lua module (hostlib.c) through which
 * aeon.cli.serve starts the server and app code reports to it: serve, log,
 * log_enabled, appended, conflict, projection_lag, stopping, now,
 * set_log_level. Preloaded by aeon-host into its main state (main.c) and
 * every worker and projection state (server/worker.c); aeon.core stays
 * loadable without it.
 */
#ifndef AEON_HOSTLIB_H
#define AEON_HOSTLIB_H

#include <lua.h>

int luaopen_aeon_host(lua_State *L);

/* Puts aeon.core (linked in, so require finds it without a .so) and
 * aeon.host in package.preload of L. */
void host_preload(lua_State *L);

#endif
