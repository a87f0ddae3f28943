/*
 * init.c - opens aeon.core from one table of its units, as Lua's linit.c
 * opens the standard libraries: each unit adds its functions to the module
 * table on top of the stack and makes its metatables. Provides
 * luaopen_aeon_core, loadable from plain lua5.4 and busted as
 * build/aeon/core.so and preloaded inside aeon-host. Uses bind.h.
 */
#include <lua.h>

#include "bind.h"

/* In this order: subscriptions and views add methods to the store's
 * metatable, which bind_store_open makes. */
static void (*const units[])(lua_State *L) = {
    bind_store_open,  /* aeon.open, stores, cursors, JSON, sleep */
    bind_filter_open, /* aeon.filter */
    bind_sub_open,    /* store:subscribe, subscriptions, monotonic */
    bind_view_open,   /* store:view, views, store:supports */
    bind_txn_open,    /* store:begin/commit/rollback/transaction */
    bind_copy_open,   /* aeon.core.batch, sha256: store copy and verify */
};

int luaopen_aeon_core(lua_State *L) {
    lua_newtable(L);
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) units[i](L);
    return 1;
}
