/*
 * bind_filter.c - filters for aeon.core: aeon.filter.eq(v) and friends
 * make operator nodes, and bind_check_filter turns a Lua filter table into
 * the store_filter tree of filter.h for a read or a subscription. Provides
 * bind_check_filter and bind_filter_open. Uses filter.h.
 */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "bind.h"
#include "filter.h"
#include "store.h"

#define FILTER_MT "aeon.filter"

/* ------------------------------------------------------------------ */
/* Filters: aeon.filter.eq(v) and friends make operator nodes marked with */
/* the FILTER_MT metatable; a plain table is an attribute path.          */

static const char *const FILTER_OPS[] = {"prefix", "eq", "ne", "gt", "gte", "lt", "lte", NULL};
static const store_filter_kind FILTER_KINDS[] = {FILTER_PREFIX, FILTER_EQ, FILTER_NE, FILTER_GT,
                                                 FILTER_GTE,    FILTER_LT, FILTER_LTE};

/* Nodes are allocated in a block list owned by a userdata on the Lua stack,
 * so a raise halfway through frees them with the userdata. */
typedef struct filter_arena {
    void **blocks; /* malloc'd allocations */
    size_t n, cap; /* used and allocated entries */
} filter_arena;

static int arena_gc(lua_State *L) {
    filter_arena *a = lua_touserdata(L, 1);
    for (size_t i = 0; i < a->n; i++) free(a->blocks[i]);
    free(a->blocks);
    a->blocks = NULL;
    a->n = a->cap = 0;
    return 0;
}

static void *arena_alloc(lua_State *L, filter_arena *a, size_t size) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        void **b = realloc(a->blocks, cap * sizeof *b);
        if (!b) luaL_error(L, "out of memory");
        a->blocks = b;
        a->cap = cap;
    }
    void *p = calloc(1, size);
    if (!p) luaL_error(L, "out of memory");
    a->blocks[a->n++] = p;
    return p;
}

static int is_filter_op(lua_State *L, int idx) {
    if (!lua_getmetatable(L, idx)) return 0;
    luaL_getmetatable(L, FILTER_MT);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same;
}

static const char *const EVENT_ATTRIBUTES[] = {"key",          "type", "correlation_id",
                                               "committed_at", "data", NULL};

static store_filter *build_filter(lua_State *L, filter_arena *a, int idx, int depth);

static store_filter *build_op(lua_State *L, filter_arena *a, int idx, int depth) {
    store_filter *f = arena_alloc(L, a, sizeof *f);
    lua_getfield(L, idx, "op");
    const char *op = lua_tostring(L, -1);
    lua_pop(L, 1);
    if (!op) luaL_error(L, "filter: operator node without an op");
    if (strcmp(op, "exists") == 0) {
        f->kind = FILTER_EXISTS;
        return f;
    }
    if (strcmp(op, "all_of") == 0 || strcmp(op, "any_of") == 0) {
        f->kind = op[1] == 'l' ? FILTER_ALL : FILTER_ANY;
        f->nchildren = lua_rawlen(L, idx);
        f->children = arena_alloc(L, a, (f->nchildren + 1) * sizeof *f->children);
        for (size_t i = 0; i < f->nchildren; i++) {
            lua_rawgeti(L, idx, (lua_Integer)i + 1);
            f->children[i] = build_filter(L, a, lua_gettop(L), depth);
            lua_pop(L, 1);
        }
        return f;
    }
    int k = -1;
    for (int i = 0; FILTER_OPS[i]; i++)
        if (strcmp(op, FILTER_OPS[i]) == 0) k = i;
    if (k < 0) luaL_error(L, "filter: unknown operator '%s'", op);
    f->kind = FILTER_KINDS[k];
    lua_getfield(L, idx, "value");
    switch (lua_type(L, -1)) {
    case LUA_TSTRING:
        f->value.kind = SCALAR_STRING;
        f->value.string = bind_check_text(L, -1, "filter value", 1);
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, -1)) {
            f->value.kind = SCALAR_INTEGER;
            f->value.integer = lua_tointeger(L, -1);
        } else {
            f->value.kind = SCALAR_FLOAT;
            f->value.number = lua_tonumber(L, -1);
        }
        break;
    case LUA_TBOOLEAN:
        f->value.kind = SCALAR_BOOLEAN;
        f->value.boolean = lua_toboolean(L, -1);
        break;
    default:
        luaL_error(L, "filter: %s needs a string, number or boolean, got %s", op,
                   luaL_typename(L, -1));
    }
    lua_pop(L, 1); /* strings stay anchored by the operator table */
    return f;
}

static store_filter *build_filter(lua_State *L, filter_arena *a, int idx, int depth) {
    if (lua_type(L, idx) != LUA_TTABLE)
        luaL_error(L, "filter: expected a table or an aeon.filter operator, got %s",
                   luaL_typename(L, idx));
    if (depth > 32) luaL_error(L, "filter: nested too deep");
    if (!lua_checkstack(L, 4)) luaL_error(L, "filter: Lua stack exhausted");
    if (is_filter_op(L, idx)) return build_op(L, a, idx, depth);

    /* An attribute table: every attribute must match. */
    store_filter *all = arena_alloc(L, a, sizeof *all);
    all->kind = FILTER_ALL;
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        n++;
        lua_pop(L, 1);
    }
    all->children = arena_alloc(L, a, (n + 1) * sizeof *all->children);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "filter: attribute names must be strings");
        const char *name = lua_tostring(L, -2);
        if (depth == 0) {
            int known = 0;
            for (int i = 0; EVENT_ATTRIBUTES[i]; i++)
                if (strcmp(name, EVENT_ATTRIBUTES[i]) == 0) known = 1;
            if (!known)
                luaL_error(L,
                           "filter: unknown event attribute '%s' (use key, type, "
                           "correlation_id, committed_at or data)",
                           name);
        }
        store_filter *field = arena_alloc(L, a, sizeof *field);
        field->kind = FILTER_FIELD;
        field->name = name; /* anchored: keys of the caller's table */
        field->children = arena_alloc(L, a, sizeof *field->children);
        field->nchildren = 1;
        field->children[0] = build_filter(L, a, lua_gettop(L), depth + 1);
        all->children[all->nchildren++] = field;
        lua_pop(L, 1);
    }
    return all;
}

/* Builds the filter at idx (nil: none). Leaves the arena userdata on the
 * stack; it frees the nodes when collected. */
const store_filter *bind_check_filter(lua_State *L, int idx) {
    filter_arena *a = bind_scratch(L, sizeof *a, "aeon.filter_arena", arena_gc);
    if (lua_isnoneornil(L, idx)) return NULL;
    store_filter *f = build_filter(L, a, idx, 0);
    const char *why = filter_check(f);
    if (why) luaL_error(L, "filter: %s", why);
    return f;
}

static int filter_op(lua_State *L) {
    const char *op = lua_tostring(L, lua_upvalueindex(1));
    int nargs = lua_gettop(L);
    lua_createtable(L, nargs, 2);
    lua_pushstring(L, op);
    lua_setfield(L, -2, "op");
    if (strcmp(op, "all_of") == 0 || strcmp(op, "any_of") == 0) {
        if (nargs == 0) luaL_error(L, "%s needs at least one filter", op);
        for (int i = 1; i <= nargs; i++) {
            luaL_checktype(L, i, LUA_TTABLE);
            lua_pushvalue(L, i);
            lua_rawseti(L, -2, i);
        }
    } else if (strcmp(op, "exists") != 0) {
        int t = lua_type(L, 1);
        if (t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TBOOLEAN)
            luaL_error(L, "aeon.filter.%s needs a string, number or boolean, got %s", op,
                       luaL_typename(L, 1));
        lua_pushvalue(L, 1);
        lua_setfield(L, -2, "value");
    }
    luaL_setmetatable(L, FILTER_MT);
    return 1;
}

void bind_filter_open(lua_State *L) {
    bind_class(L, FILTER_MT, NULL, NULL, NULL);
    static const char *const ops[] = {"prefix", "eq",     "ne",     "gt",     "gte", "lt",
                                      "lte",    "exists", "all_of", "any_of", NULL};
    lua_createtable(L, 0, 10);
    for (int i = 0; ops[i]; i++) {
        lua_pushstring(L, ops[i]);
        lua_pushcclosure(L, filter_op, 1);
        lua_setfield(L, -2, ops[i]);
    }
    lua_setfield(L, -2, "filter");
}
