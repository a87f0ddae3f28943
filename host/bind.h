/*
 * bind.h - helpers shared by the binding units (bind_*.c) of aeon.core:
 * argument checks that raise on a programming mistake, the nil + message
 * channel for store failures, and the event and JSON conversions.
 */
#ifndef AEON_BIND_H
#define AEON_BIND_H

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

int luaopen_aeon_core(lua_State *L);

#endif
