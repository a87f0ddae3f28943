/*
 * bind.h - helpers shared by the binding units (bind_*.c) of aeon.core:
 * argument checks that raise on a programming mistake, the nil + message
 * channel for store failures, the event and JSON conversions, and the
 * handles that live on a store (subscriptions) and close with it.
 */
#ifndef AEON_BIND_H
#define AEON_BIND_H

#include <stdbool.h>

#include <lauxlib.h>
#include <lua.h>

#include "json.h"
#include "store.h"

/* The metatable of store handles; bind_sub.c and bind_view.c add methods
 * to its __index table. */
#define BIND_STORE_MT "aeon.store"

/* A handle that holds part of a store's backend handle (a subscription):
 * the store releases every child it has before it closes, so the children
 * can be collected in any order with it. */
typedef struct bind_child bind_child;
struct bind_child {
    void (*release)(bind_child *c); /* frees the backend side, once */
    bind_child *next;               /* sibling in the store's list */
    void *owner;                    /* the store's userdata; NULL once released */
};

/* Makes the metatable `name`: `methods` (or NULL) as its __index, `gc`
 * (or NULL) as its __gc and __close, `tostring` (or NULL) as its
 * __tostring - the only metamethods the handles have. */
void bind_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc,
                lua_CFunction tostring);

/* Pushes a zeroed userdata of `size` bytes whose metatable `name` (made on
 * first use) frees it with `gc` when collected: scratch memory a raise
 * cannot leak. */
void *bind_scratch(lua_State *L, size_t size, const char *name, lua_CFunction gc);

/* package.preload[name] = open, so require(name) opens the module. */
void bind_preload(lua_State *L, const char *name, lua_CFunction open);

/* Adds methods to the store handles' __index (bind_sub.c, bind_view.c). */
void bind_store_methods(lua_State *L, const luaL_Reg *methods);

/* ---- bind_store.c: store handles -------------------------------------- */

/* The open store at idx; raises "store is closed" or a type error. */
store *bind_check_store(lua_State *L, int idx);

/* What the binding knows of a handle's transaction (bind_txn.c): the
 * backend's own state says whether one is open, this says who may end it. */
typedef struct bind_txn {
    bool open;   /* begun by store:begin or store:transaction, not yet ended */
    bool scoped; /* ... by store:transaction, which alone ends it */
} bind_txn;

/* The store userdata at idx (raising on another type), its store (NULL
 * once closed) and its transaction record. */
store *bind_store_txn(lua_State *L, int idx, bind_txn **txn);

/* bind_txn.c: a store closing with a transaction open; the backend rolls it
 * back, this forgets it. */
void bind_txn_closed(lua_State *L, int idx);

/* Rolls back every transaction still open on a store of this Lua state and
 * returns how many there were: what the host does when a handler run ends,
 * so none is carried into the next one. */
int bind_end_transactions(lua_State *L);

/* Links c to the open store at idx. */
void bind_adopt(lua_State *L, int idx, bind_child *c);

/* Calls c's release and unlinks it; nothing when already released. */
void bind_release(bind_child *c);

/* ---- bind.c ----------------------------------------------------------- */

/* nil, "<backend> does not support <what> yet": what a binding answers for
 * a store_ops slot the backend leaves NULL. */
int bind_unsupported(lua_State *L, const store *s, const char *what);

/* nil, message for an expected failure; raises for STORE_INVALID. Frees err.
 * Notes STORE_DAMAGED for bind_damage_seen. */
int bind_fail(lua_State *L, store_status st, char *err);

/* Whether a store of this process has reported its data damaged. */
bool bind_damage_seen(void);

/* Notes a failure for bind_damage_seen, where the binding raises instead of
 * going through bind_fail (a cursor's next). */
void bind_note(store_status st);

/* A string the store accepts (UTF-8, no NUL, non-empty unless allow_empty). */
const char *bind_check_text(lua_State *L, int idx, const char *what, int allow_empty);

/* Raises on option names not in the NULL-terminated list `known`. */
void bind_check_options(lua_State *L, int idx, const char *const known[], const char *fn);

/* Lua value at idx -> JSON into buf; raises with `what` on values JSON
 * cannot hold exactly. */
void bind_encode(lua_State *L, int idx, json_buf *buf, const char *what);

/* JSON text from the store -> Lua value on the stack; raises if corrupt. */
void bind_decode(lua_State *L, const char *text, size_t len);

/* Pushes a committed event as { key, revision, type, data, correlation_id,
 * committed_at }. */
void bind_push_event(lua_State *L, const store_event *ev);

/* The same with `data_text` (when not NULL) as the data, a string. */
void bind_push_event_as(lua_State *L, const store_event *ev, const char *data_text);

/* Pushing many events fast (a cursor, a subscription's batch): the C closure
 * that pushes them keeps, as BIND_EVENT_UPVALUES upvalues from `first` on,
 * the six field names (so setting a field is a raw set with a string already
 * interned, not a lookup by C string), the key, type, committed_at and
 * correlation_id last pushed, which the next event usually repeats (so they
 * are not hashed and interned again), and the table of the short strings
 * of event data (json_strings). bind_event_upvalues pushes their
 * initial values, to be closed over; the cache, zeroed, lives with the
 * closure's state. */
#define BIND_EVENT_UPVALUES 11
#define BIND_CACHE_BYTES 64

typedef struct bind_cached {
    bool valid;                  /* text and the upvalue hold a string */
    size_t len;                  /* bytes in text */
    char text[BIND_CACHE_BYTES]; /* the string the upvalue holds */
} bind_cached;

typedef struct bind_event_cache {
    int first;                  /* upvalue index of the first name */
    bind_cached key;            /* the last key pushed */
    bind_cached type;           /* ... type */
    bind_cached committed_at;   /* ... committed_at */
    bind_cached correlation_id; /* ... correlation_id */
    json_strings strings;       /* short strings of event data */
} bind_event_cache;

void bind_event_upvalues(lua_State *L);

/* bind_push_event for a closure set up as above. */
void bind_push_event_cached(lua_State *L, const store_event *ev, bind_event_cache *cache);

/* Whether a backend fills every slot of a feature; bindings answer with
 * bind_unsupported when not. */
int bind_has_subscriptions(const store_ops *o);
int bind_has_views(const store_ops *o);
int bind_has_transactions(const store_ops *o);

/* ---- bind_filter.c ---------------------------------------------------- */

/* Builds the aeon.filter table at idx (nil: NULL). Leaves one userdata on
 * the stack that owns the nodes; they live as long as it does. */
const store_filter *bind_check_filter(lua_State *L, int idx);

/* ---- The units' openers, called in turn by luaopen_aeon_core (init.c)
 * with the module table on top. */
void bind_store_open(lua_State *L);  /* bind_store.c: aeon.open, stores, cursors */
void bind_filter_open(lua_State *L); /* bind_filter.c: aeon.filter */
void bind_sub_open(lua_State *L);    /* bind_sub.c: subscriptions */
void bind_view_open(lua_State *L);   /* bind_view.c: views, store:supports */
void bind_txn_open(lua_State *L);    /* bind_txn.c: store:begin/commit/rollback,
                                        store:transaction, store:in_transaction */
void bind_copy_open(lua_State *L);   /* bind_copy.c: aeon.core.batch (what store copy
                                        and verify move) and aeon.core.sha256 */

int luaopen_aeon_core(lua_State *L);

#endif
