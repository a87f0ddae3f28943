/*
 * bind_view.c - read models for Lua (API.md section 4): store:view(name)
 * and the view handle with get, put, revision, advance, clear and list;
 * store:supports to ask which features (subscriptions, views, transactions)
 * a backend has, and whether a handle's data is shared.
 *
 * Provides bind_view_open, called by luaopen_aeon_core. Uses the view
 * slots of store.h through bind.h, and json.h for documents. A backend that
 * leaves a slot NULL gets nil, "<backend> does not support views yet".
 *
 * A view holds nothing of the backend: it is a name and its store (the
 * uservalues), so it is closed exactly when its store is.
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "bind.h"
#include "revision.h"
#include "store.h"

#define VIEW_MT "aeon.view"

/* The view at idx: its store (raising if closed) and its name. */
static store *check_view(lua_State *L, int idx, const char **name) {
    luaL_checkudata(L, idx, VIEW_MT);
    lua_getiuservalue(L, idx, 1);
    store *s = bind_check_store(L, -1);
    lua_getiuservalue(L, idx, 2);
    *name = lua_tostring(L, -1); /* anchored by the view */
    lua_pop(L, 2);
    return s;
}

/* store:view(name) */
static int l_view(lua_State *L) {
    store *s = bind_check_store(L, 1);
    bind_check_text(L, 2, "view name", 0);
    if (!bind_has_views(s->ops)) return bind_unsupported(L, s, "views");
    lua_newuserdatauv(L, 1, 2);
    luaL_setmetatable(L, VIEW_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, -2, 2);
    return 1;
}

/* view:get(id) -> doc, revision; nil when there is none. */
static int l_get(lua_State *L) {
    const char *view;
    store *s = check_view(L, 1, &view);
    const char *id = bind_check_text(L, 2, "document id", 0);
    char *doc = NULL, rev[STORE_REVISION_SIZE];
    size_t len = 0;
    bool found = false;
    char *err = NULL;
    store_status st = s->ops->view_get(s, view, id, &doc, &len, rev, &found, &err);
    if (st != STORE_OK) return bind_fail(L, st, err);
    if (!found) {
        lua_pushnil(L);
        return 1;
    }
    char msg[160];
    const char *bad = json_decode(L, doc, len, msg, sizeof msg);
    free(doc);
    if (bad) luaL_error(L, "stored view document is corrupt: %s", msg);
    lua_pushstring(L, rev);
    return 2;
}

/* view:put(id, doc, revision) -> true, or false when the stored document
 * has a newer revision. */
static int l_put(lua_State *L) {
    const char *view;
    store *s = check_view(L, 1, &view);
    const char *id = bind_check_text(L, 2, "document id", 0);
    luaL_checkany(L, 3);
    const char *rev = luaL_checkstring(L, 4);
    if (!revision_valid(rev)) luaL_error(L, "view put: '%s' is not a revision", rev);
    json_buf buf = {0};
    bind_encode(L, 3, &buf, "view document");
    bool stored = false;
    char *err = NULL;
    store_status st = s->ops->view_put(s, view, id, buf.data, buf.len, rev, &stored, &err);
    json_buf_free(&buf);
    if (st != STORE_OK) return bind_fail(L, st, err);
    lua_pushboolean(L, stored);
    return 1;
}

/* view:revision() -> the revision the view has seen, or aeon.START. */
static int l_revision(lua_State *L) {
    const char *view;
    store *s = check_view(L, 1, &view);
    char rev[STORE_REVISION_SIZE];
    char *err = NULL;
    store_status st = s->ops->view_revision(s, view, rev, &err);
    if (st != STORE_OK) return bind_fail(L, st, err);
    lua_pushstring(L, rev);
    return 1;
}

/* view:advance(revision): the view has seen everything up to it. */
static int l_advance(lua_State *L) {
    const char *view;
    store *s = check_view(L, 1, &view);
    const char *rev = luaL_checkstring(L, 2);
    if (!revision_valid(rev)) luaL_error(L, "view advance: '%s' is not a revision", rev);
    char *err = NULL;
    store_status st = s->ops->view_advance(s, view, rev, &err);
    if (st != STORE_OK) return bind_fail(L, st, err);
    lua_pushboolean(L, 1);
    return 1;
}

/* The `limit` field of the options table at index 2: an integer from 1 to
 * `max`, or `dflt` when it is absent; raises naming `what` otherwise. */
static lua_Integer opt_limit(lua_State *L, const char *what, lua_Integer max, lua_Integer dflt) {
    lua_Integer limit = dflt;
    if (lua_getfield(L, 2, "limit") != LUA_TNIL) {
        int isint = 0;
        limit = lua_tointegerx(L, -1, &isint);
        if (!isint || limit < 1 || limit > max)
            luaL_error(L, "%s: limit must be an integer from 1 to %d", what, (int)max);
    }
    lua_pop(L, 1);
    return limit;
}

/* view:clear([{ limit = N }]) -> true when every document and the seen
 * revision are gone; with a limit, at most N of them go per call and false
 * says some are left. */
static int l_clear(lua_State *L) {
    static const char *const known[] = {"limit", NULL};
    const char *view;
    store *s = check_view(L, 1, &view);
    lua_Integer limit = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        bind_check_options(L, 2, known, "view clear");
        limit = opt_limit(L, "view clear", 100000, limit);
    }
    bool done = false;
    char *err = NULL;
    store_status st = s->ops->view_clear(s, view, (size_t)limit, &done, &err);
    if (st != STORE_OK) return bind_fail(L, st, err);
    lua_pushboolean(L, done);
    return 1;
}

/* view:list{ after = ID, limit = N } -> { { id, doc, revision }, ... }:
 * documents in id order after ID (default: from the first), at most N
 * (default 100, at most 1000); fewer than N means there are no more, and
 * the last one's id is where the next page starts. */
static int l_list(lua_State *L) {
    static const char *const known[] = {"after", "limit", NULL};
    const char *view;
    store *s = check_view(L, 1, &view);
    const char *after = NULL;
    lua_Integer limit = 100;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        bind_check_options(L, 2, known, "view list");
        if (lua_getfield(L, 2, "after") != LUA_TNIL) after = bind_check_text(L, -1, "after", 0);
        lua_pop(L, 1);
        limit = opt_limit(L, "view list", 1000, limit);
    }
    if (s->ops->view_list == NULL) return bind_unsupported(L, s, "listing views");
    store_view_doc *docs = NULL;
    size_t n = 0;
    char *err = NULL;
    /* `after` stays anchored in the options table while the store runs. */
    store_status st = s->ops->view_list(s, view, after, (size_t)limit, &docs, &n, &err);
    if (st != STORE_OK) return bind_fail(L, st, err);
    /* Lua tables may raise (memory): the documents are first copied onto
     * the stack as strings, then freed, then decoded. */
    lua_createtable(L, (int)n, 0);
    int list = lua_gettop(L);
    if (!lua_checkstack(L, (int)n * 3 + 4)) {
        store_view_docs_free(docs, n);
        luaL_error(L, "view list: Lua stack exhausted");
    }
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, docs[i].id);
        lua_pushlstring(L, docs[i].doc, docs[i].doc_len);
        lua_pushstring(L, docs[i].revision);
    }
    store_view_docs_free(docs, n);
    for (size_t i = 0; i < n; i++) {
        int base = list + 1 + (int)i * 3;
        lua_createtable(L, 0, 3);
        lua_pushvalue(L, base);
        lua_setfield(L, -2, "id");
        size_t len;
        const char *text = lua_tolstring(L, base + 1, &len);
        char msg[160];
        if (json_decode(L, text, len, msg, sizeof msg))
            luaL_error(L, "stored view document is corrupt: %s", msg);
        lua_setfield(L, -2, "doc");
        lua_pushvalue(L, base + 2);
        lua_setfield(L, -2, "revision");
        lua_rawseti(L, list, (lua_Integer)i + 1);
    }
    lua_settop(L, list);
    return 1;
}

static int l_name(lua_State *L) {
    luaL_checkudata(L, 1, VIEW_MT);
    lua_getiuservalue(L, 1, 2);
    return 1;
}

static int view_tostring(lua_State *L) {
    luaL_checkudata(L, 1, VIEW_MT);
    lua_getiuservalue(L, 1, 2);
    lua_pushfstring(L, "aeon.view (%s)", lua_tostring(L, -1));
    return 1;
}

/* store:supports("subscriptions" | "views" | "transactions" | "sharing")
 * -> boolean. Sharing is the handle's, not the backend's: whether other
 * handles (threads, processes) see what this one writes, which an
 * in-memory database does not. */
static int l_supports(lua_State *L) {
    static const char *const features[] = {"subscriptions", "views", "transactions", "sharing",
                                           NULL};
    store *s = bind_check_store(L, 1);
    int (*const has[])(const store_ops *) = {bind_has_subscriptions, bind_has_views,
                                             bind_has_transactions};
    int f = luaL_checkoption(L, 2, NULL, features);
    lua_pushboolean(L, f == 3 ? !s->solo
                              : has[f](s->ops) &&
                                    (!s->ops->supports || s->ops->supports(s, features[f])));
    return 1;
}

/* ------------------------------------------------------------------ */

static const luaL_Reg store_methods[] = {
    {"view", l_view},
    {"supports", l_supports},
    {NULL, NULL},
};

static const luaL_Reg view_methods[] = {
    {"get", l_get},     {"put", l_put},   {"revision", l_revision}, {"advance", l_advance},
    {"clear", l_clear}, {"list", l_list}, {"name", l_name},         {NULL, NULL},
};

void bind_view_open(lua_State *L) {
    bind_store_methods(L, store_methods);
    bind_class(L, VIEW_MT, view_methods, NULL, view_tostring);
}
