/*
 * bind.c - the helpers every binding unit of aeon.core uses: metatables
 * (bind_class, bind_scratch), the two error channels, argument checks, JSON in and out,
 * pushing events, and which features a backend fills. Provides the
 * functions of bind.h not marked as another unit's. Uses store.h and
 * json.h.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "bind.h"
#include "json.h"
#include "store.h"

/* gc serves as "__close" too: a handle closes the same way whether
 * collected or leaving a to-be-closed variable's scope. */
void bind_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc,
                lua_CFunction tostring) {
    luaL_newmetatable(L, name);
    if (methods) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
    }
    const luaL_Reg meta[] = {{"__gc", gc}, {"__close", gc}, {"__tostring", tostring}};
    for (size_t i = 0; i < sizeof meta / sizeof meta[0]; i++) {
        if (meta[i].func == NULL) continue;
        lua_pushcfunction(L, meta[i].func);
        lua_setfield(L, -2, meta[i].name);
    }
    lua_pop(L, 1);
}

void *bind_scratch(lua_State *L, size_t size, const char *name, lua_CFunction gc) {
    void *p = lua_newuserdatauv(L, size, 0);
    memset(p, 0, size);
    if (luaL_newmetatable(L, name)) {
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return p;
}

void bind_preload(lua_State *L, const char *name, lua_CFunction open) {
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    lua_pushcfunction(L, open);
    lua_setfield(L, -2, name);
    lua_pop(L, 2);
}

void bind_store_methods(lua_State *L, const luaL_Reg *methods) {
    luaL_getmetatable(L, BIND_STORE_MT);
    lua_getfield(L, -1, "__index");
    luaL_setfuncs(L, methods, 0);
    lua_pop(L, 2);
}

int bind_has_subscriptions(const store_ops *o) {
    return o->subscribe && o->poll && o->ack && o->checkpoint && o->sub_close && o->sub_reset;
}

int bind_has_views(const store_ops *o) {
    return o->view_get && o->view_put && o->view_revision && o->view_advance && o->view_clear;
}

int bind_has_transactions(const store_ops *o) { return o->begin && o->commit && o->rollback; }

int bind_unsupported(lua_State *L, const store *s, const char *what) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s does not support %s yet", s->ops->name, what);
    return 2;
}

/* Whether any store of this process reported damage: what the server's
 * /health and the command line's exit status go by. */
static atomic_bool damage_seen;

bool bind_damage_seen(void) { return atomic_load(&damage_seen); }

void bind_note(store_status st) {
    if (st == STORE_DAMAGED) atomic_store(&damage_seen, true);
}

/* Reports a store failure the way the contract says: raise for a caller's
 * mistake, nil + message otherwise. Frees err. */
int bind_fail(lua_State *L, store_status st, char *err) {
    bind_note(st);
    lua_pushnil(L);
    lua_pushstring(L, err ? err : "out of memory");
    free(err);
    if (st == STORE_INVALID) return lua_error(L);
    return 2;
}

/* A string argument checked for what the store accepts, raising otherwise. */
const char *bind_check_text(lua_State *L, int idx, const char *what, int allow_empty) {
    size_t len;
    if (lua_type(L, idx) != LUA_TSTRING)
        luaL_error(L, "%s must be a string, got %s", what, luaL_typename(L, idx));
    const char *s = lua_tolstring(L, idx, &len);
    const char *why = strlen(s) != len ? "contains a NUL byte" : store_check_text(s, allow_empty);
    if (why) luaL_error(L, "%s %s", what, why);
    return s;
}

/* Rejects option names the function does not know, so typos surface. */
void bind_check_options(lua_State *L, int idx, const char *const known[], const char *fn) {
    if (lua_isnoneornil(L, idx)) return;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        int ok = 0;
        if (lua_type(L, -1) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -1);
            for (int i = 0; known[i]; i++)
                if (strcmp(k, known[i]) == 0) ok = 1;
        }
        if (!ok) { luaL_error(L, "%s: unknown option '%s'", fn, luaL_tolstring(L, -1, NULL)); }
    }
}

/* Encodes the Lua value at idx as JSON into buf, raising with `what` on a
 * value JSON cannot hold exactly. */
void bind_encode(lua_State *L, int idx, json_buf *buf, const char *what) {
    char msg[256];
    if (json_encode(L, idx, buf, msg, sizeof msg)) {
        json_buf_free(buf);
        luaL_error(L, "%s: %s", what, msg);
    }
}

/* Pushes the value of JSON text from the store; raises if it is corrupt. */
void bind_decode(lua_State *L, const char *text, size_t len) {
    char msg[160];
    if (json_decode(L, text, len, msg, sizeof msg))
        luaL_error(L, "stored JSON is corrupt: %s", msg);
}

void bind_push_event(lua_State *L, const store_event *ev) { bind_push_event_as(L, ev, NULL); }

void bind_push_event_as(lua_State *L, const store_event *ev, const char *data_text) {
    lua_createtable(L, 0, 7);
    lua_pushstring(L, ev->key);
    lua_setfield(L, -2, "key");
    lua_pushstring(L, ev->revision);
    lua_setfield(L, -2, "revision");
    lua_pushstring(L, ev->type);
    lua_setfield(L, -2, "type");
    if (data_text != NULL)
        lua_pushstring(L, data_text);
    else
        bind_decode(L, ev->data, ev->data_len);
    lua_setfield(L, -2, "data");
    if (ev->correlation_id) {
        lua_pushstring(L, ev->correlation_id);
        lua_setfield(L, -2, "correlation_id");
    }
    lua_pushstring(L, ev->committed_at);
    lua_setfield(L, -2, "committed_at");
}

/* Offsets of the upvalues bind_event_upvalues pushes, from cache->first. */
enum {
    UV_KEY,
    UV_REVISION,
    UV_TYPE,
    UV_DATA,
    UV_CORRELATION_ID,
    UV_COMMITTED_AT,
    UV_LAST_KEY,
    UV_LAST_TYPE,
    UV_LAST_COMMITTED_AT,
    UV_LAST_CORRELATION_ID,
    UV_STRINGS
};

void bind_event_upvalues(lua_State *L) {
    static const char *const names[] = {"key",  "revision",       "type",
                                        "data", "correlation_id", "committed_at"};
    luaL_checkstack(L, BIND_EVENT_UPVALUES, "pushing event upvalues");
    for (int i = 0; i < 6; i++) lua_pushstring(L, names[i]);
    for (int i = 6; i < UV_STRINGS; i++) lua_pushnil(L);
    lua_createtable(L, JSON_STRINGS, 0);
}

/* Pushes s, reusing the string in upvalue `uv` when it is the same bytes:
 * a memcmp instead of hashing and interning the string again. */
static void push_cached(lua_State *L, const char *s, bind_cached *c, int uv) {
    size_t len = strlen(s);
    if (c->valid && c->len == len && memcmp(c->text, s, len) == 0) {
        lua_pushvalue(L, lua_upvalueindex(uv));
        return;
    }
    lua_pushlstring(L, s, len);
    if (len <= sizeof c->text) {
        memcpy(c->text, s, len);
        c->len = len;
        c->valid = true;
        lua_pushvalue(L, -1);
        lua_replace(L, lua_upvalueindex(uv));
    }
}

void bind_push_event_cached(lua_State *L, const store_event *ev, bind_event_cache *cache) {
    int f = cache->first;
    lua_createtable(L, 0, ev->correlation_id ? 6 : 5);
    lua_pushvalue(L, lua_upvalueindex(f + UV_KEY));
    push_cached(L, ev->key, &cache->key, f + UV_LAST_KEY);
    lua_rawset(L, -3);
    lua_pushvalue(L, lua_upvalueindex(f + UV_REVISION));
    lua_pushlstring(L, ev->revision, strlen(ev->revision));
    lua_rawset(L, -3);
    lua_pushvalue(L, lua_upvalueindex(f + UV_TYPE));
    push_cached(L, ev->type, &cache->type, f + UV_LAST_TYPE);
    lua_rawset(L, -3);
    lua_pushvalue(L, lua_upvalueindex(f + UV_DATA));
    char msg[160];
    if (json_decode_cached(L, ev->data, ev->data_len, &cache->strings,
                           lua_upvalueindex(f + UV_STRINGS), msg, sizeof msg))
        luaL_error(L, "stored JSON is corrupt: %s", msg);
    lua_rawset(L, -3);
    if (ev->correlation_id) {
        lua_pushvalue(L, lua_upvalueindex(f + UV_CORRELATION_ID));
        push_cached(L, ev->correlation_id, &cache->correlation_id, f + UV_LAST_CORRELATION_ID);
        lua_rawset(L, -3);
    }
    lua_pushvalue(L, lua_upvalueindex(f + UV_COMMITTED_AT));
    push_cached(L, ev->committed_at, &cache->committed_at, f + UV_LAST_COMMITTED_AT);
    lua_rawset(L, -3);
}
