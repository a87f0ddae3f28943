/*
 * bind_txn.c - transactions for Lua (API.md section 4): the safe form
 * store:transaction(fn), which commits when fn returns and rolls back when
 * it raises; the pair store:begin/commit/rollback under it;
 * store:in_transaction; and bind_end_transactions, with which the host
 * rolls back whatever a handler run left open.
 *
 * Provides bind_txn_open (called by luaopen_aeon_core, init.c), bind_txn_closed and
 * bind_end_transactions. Uses the transaction slots of store.h through
 * bind.h; a backend that leaves them NULL (DynamoDB) gets nil, "<backend>
 * does not support transactions yet".
 *
 * A transaction belongs to the run that began it. Every store of a Lua
 * state with one open is kept in a registry table (which also keeps the
 * store from being collected, and so closed, silently), so that the host can
 * find and roll back every one when a request, a command-line run or a
 * script ends, whichever way it ends: a handler stopped by its budget, or
 * abandoned in its coroutine, never reaches its own commit or rollback.
 * Inside store:transaction the transaction is the function's: begin, commit
 * and rollback raise there, so its end is always the function's end.
 */
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>

#include "bind.h"
#include "store.h"

/* The registry key of the table { [store userdata] = true } of stores with
 * a transaction open. */
static const char open_key = 0;

/* Marks the store at idx as having a transaction open, or not. */
static void mark(lua_State *L, int idx, bind_txn *t, bool open) {
    idx = lua_absindex(L, idx);
    t->open = open;
    if (!open) t->scoped = false;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &open_key) != LUA_TTABLE) {
        lua_pop(L, 1);
        if (!open) return;
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &open_key);
    }
    lua_pushvalue(L, idx);
    if (open)
        lua_pushboolean(L, 1);
    else
        lua_pushnil(L);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

void bind_txn_closed(lua_State *L, int idx) {
    bind_txn *t;
    bind_store_txn(L, idx, &t);
    mark(L, idx, t, false);
}

int bind_end_transactions(lua_State *L) {
    int n = 0;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &open_key) != LUA_TTABLE) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pop(L, 1);
        bind_txn *t;
        store *s = bind_store_txn(L, -1, &t);
        if (s && t->open) {
            s->ops->rollback(s);
            n++;
        }
        *t = (bind_txn){0};
    }
    lua_pop(L, 1);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &open_key);
    return n;
}

/* The open store at idx and its record; raises when store:transaction owns
 * its transaction, for `what` may not end or nest it. */
static store *check_unscoped(lua_State *L, int idx, bind_txn **t, const char *what) {
    store *s = bind_check_store(L, idx);
    bind_store_txn(L, idx, t);
    if ((*t)->scoped)
        luaL_error(L,
                   "store:%s inside store:transaction: the transaction is its function's, "
                   "committed when it returns and rolled back when it raises",
                   what);
    return s;
}

static int l_begin(lua_State *L) {
    bind_txn *t;
    store *s = check_unscoped(L, 1, &t, "begin");
    if (!bind_has_transactions(s->ops)) return bind_unsupported(L, s, "transactions");
    char *err = NULL;
    store_status st = s->ops->begin(s, &err);
    if (st != STORE_OK) return bind_fail(L, st, err);
    mark(L, 1, t, true);
    lua_pushboolean(L, 1);
    return 1;
}

/* Whatever its outcome, a commit ends the transaction (store.h). */
static int l_commit(lua_State *L) {
    bind_txn *t;
    store *s = check_unscoped(L, 1, &t, "commit");
    if (!bind_has_transactions(s->ops)) return bind_unsupported(L, s, "transactions");
    char *err = NULL;
    store_status st = s->ops->commit(s, &err);
    if (t->open) mark(L, 1, t, false);
    if (st != STORE_OK) return bind_fail(L, st, err);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_rollback(lua_State *L) {
    bind_txn *t;
    store *s = check_unscoped(L, 1, &t, "rollback");
    if (bind_has_transactions(s->ops)) s->ops->rollback(s);
    if (t->open) mark(L, 1, t, false);
    return 0;
}

/* store:in_transaction() -> boolean; false on a closed store. */
static int l_in_transaction(lua_State *L) {
    bind_txn *t;
    store *s = bind_store_txn(L, 1, &t);
    lua_pushboolean(L, s && t->open);
    return 1;
}

/* store:transaction's end, when fn has returned (status LUA_OK, or
 * LUA_YIELD after a yield and resume) or raised. The stack holds the store
 * and fn's results, or the store and the error. */
static int transaction_end(lua_State *L, int status, lua_KContext ctx) {
    (void)ctx;
    bind_txn *t;
    store *s = bind_store_txn(L, 1, &t);
    bool failed = status != LUA_OK && status != LUA_YIELD;
    /* Closed inside fn (the close rolled it back), or ended by the host. */
    if (!s || !t->open) {
        if (failed) return lua_error(L);
        lua_pushnil(L);
        lua_pushliteral(L, "store:transaction: the transaction ended inside its function "
                           "(the store was closed); nothing of it was committed");
        return 2;
    }
    if (failed) {
        s->ops->rollback(s);
        mark(L, 1, t, false);
        return lua_error(L);
    }
    char *err = NULL;
    store_status st = s->ops->commit(s, &err);
    mark(L, 1, t, false);
    if (st != STORE_OK) return bind_fail(L, st, err);
    lua_pushboolean(L, 1);
    lua_insert(L, 2);
    return lua_gettop(L) - 1;
}

/* store:transaction(fn) -> true, fn's results; nil, message when the
 * transaction cannot begin or commit. Raises what fn raised, after rolling
 * back. Called with lua_pcallk so that fn may yield (the server's budget
 * yields out of a handler that ignores its error). */
static int l_transaction(lua_State *L) {
    bind_txn *t;
    store *s = check_unscoped(L, 1, &t, "transaction");
    luaL_checktype(L, 2, LUA_TFUNCTION);
    if (!bind_has_transactions(s->ops)) return bind_unsupported(L, s, "transactions");
    if (t->open)
        luaL_error(L, "store:transaction: a transaction is already open (store:begin's); "
                      "commit or roll it back first");
    char *err = NULL;
    store_status st = s->ops->begin(s, &err);
    if (st != STORE_OK) return bind_fail(L, st, err);
    mark(L, 1, t, true);
    t->scoped = true;
    lua_settop(L, 2);
    lua_pushvalue(L, 1);
    return transaction_end(L, lua_pcallk(L, 1, LUA_MULTRET, 0, 0, transaction_end), 0);
}

static const luaL_Reg store_methods[] = {
    {"transaction", l_transaction},
    {"begin", l_begin},
    {"commit", l_commit},
    {"rollback", l_rollback},
    {"in_transaction", l_in_transaction},
    {NULL, NULL},
};

void bind_txn_open(lua_State *L) { bind_store_methods(L, store_methods); }
