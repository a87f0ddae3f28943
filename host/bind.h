/*
 * bind.h - helpers shared by the binding units (bind_*.c) of aeon.core:
 * argument checks that raise on a programming mistake, the nil + message
 * channel for store failures, and the event and JSON conversions.
 */
#ifndef AEON_BIND_H
#define AEON_BIND_H

#include <stdbool.h>

#include <lua.h>

#include "json.h"
#include "store.h"

/* The open store at idx; raises "store is closed" or a type error. */
store *bind_check_store(lua_State *L, int idx);

/* nil, message for an expected failure; raises for STORE_INVALID. Frees err. */
int bind_fail(lua_State *L, store_status st, char *err);

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
    bool valid;                   /* text and the upvalue hold a string */
    size_t len;                   /* bytes in text */
    char text[BIND_CACHE_BYTES];  /* the string the upvalue holds */
} bind_cached;

typedef struct bind_event_cache {
    int first;                    /* upvalue index of the first name */
    bind_cached key;              /* the last key pushed */
    bind_cached type;             /* ... type */
    bind_cached committed_at;     /* ... committed_at */
    bind_cached correlation_id;   /* ... correlation_id */
    json_strings strings;         /* short strings of event data */
} bind_event_cache;

void bind_event_upvalues(lua_State *L);

/* bind_push_event for a closure set up as above. */
void bind_push_event_cached(lua_State *L, const store_event *ev, bind_event_cache *cache);

int luaopen_aeon_core(lua_State *L);

#endif
