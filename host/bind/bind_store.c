/*
 * bind_store.c - the native module aeon.core: store handles, cursors,
 * filters, exact JSON, and a sleep for backing off, for Lua. Subscriptions
 * (bind_sub.c), views (bind_view.c) and transactions (bind_txn.c) add their
 * methods to the store's at load.
 *
 * Provides luaopen_aeon_core, loadable from plain lua5.4 and busted as
 * build/aeon/core.so and preloaded inside aeon-host. Turns Lua arguments into
 * store.h calls and store results into Lua values; uses json.h for event data.
 *
 * Two error channels, as in liolib.c: an expected failure (I/O, a backend
 * limit) returns nil, message; a programming mistake (a non-string key, an
 * event without a type, an unknown option) raises.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "bind.h"
#include "json.h"
#include "filter.h"
#include "revision.h"
#include "store.h"

#define STORE_MT BIND_STORE_MT
#define CURSOR_MT "aeon.cursor"
#define FILTER_MT "aeon.filter"

typedef struct lcursor lcursor;

/* A store handle as Lua sees it. */
typedef struct lstore {
    store *s;             /* NULL once closed */
    lcursor *cursors;     /* open cursors, closed with the store */
    bind_child *children; /* open subscriptions, released with the store */
    bind_txn txn;         /* its transaction, as the binding knows it */
} lstore;

/* A read in progress. Its uservalue is the lstore, which keeps the store
 * alive as long as the cursor. */
struct lcursor {
    store_cursor *c;        /* NULL once exhausted or closed */
    lstore *owner;          /* the store it reads */
    lcursor *next;          /* sibling in owner->cursors */
    bind_event_cache cache; /* strings its iterator reuses */
};

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static lstore *check_lstore(lua_State *L, int idx) {
    lstore *ls = luaL_checkudata(L, idx, STORE_MT);
    if (!ls->s) luaL_error(L, "store is closed");
    return ls;
}

store *bind_check_store(lua_State *L, int idx) { return check_lstore(L, idx)->s; }

store *bind_store_txn(lua_State *L, int idx, bind_txn **txn) {
    lstore *ls = luaL_checkudata(L, idx, STORE_MT);
    *txn = &ls->txn;
    return ls->s;
}

void bind_adopt(lua_State *L, int idx, bind_child *c) {
    lstore *ls = check_lstore(L, idx);
    c->owner = ls;
    c->next = ls->children;
    ls->children = c;
}

void bind_release(bind_child *c) {
    lstore *ls = c->owner;
    if (!ls) return;
    c->release(c);
    bind_child **pp = &ls->children;
    while (*pp && *pp != c) pp = &(*pp)->next;
    if (*pp) *pp = c->next;
    c->owner = NULL;
}

int bind_unsupported(lua_State *L, const store *s, const char *what) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s does not support %s yet", s->ops->name, what);
    return 2;
}

/* Whether any store of this process reported damage: what the server's
 * /health and the command line's exit status go by. */
static atomic_bool damage_seen;

bool bind_damage_seen(void) { return atomic_load(&damage_seen); }

static void note(store_status st) {
    if (st == STORE_DAMAGED) atomic_store(&damage_seen, true);
}

/* Reports a store failure the way the contract says: raise for a caller's
 * mistake, nil + message otherwise. Frees err. */
int bind_fail(lua_State *L, store_status st, char *err) {
    note(st);
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
        if (!ok) {
            luaL_error(L, "%s: unknown option '%s'", fn, luaL_tolstring(L, -1, NULL));
        }
    }
}

/* Field `name` of the table at idx as a revision bound, or NULL. */
static const char *opt_revision(lua_State *L, int idx, const char *name) {
    if (lua_isnoneornil(L, idx)) return NULL;
    lua_getfield(L, idx, name);
    const char *r = NULL;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING || !revision_bound_valid(lua_tostring(L, -1)))
            luaL_error(L, "option '%s' must be a revision, aeon.START or aeon.END", name);
        r = lua_tostring(L, -1); /* anchored by the options table */
    }
    lua_pop(L, 1);
    return r;
}

static const char *opt_string(lua_State *L, int idx, const char *name) {
    if (lua_isnoneornil(L, idx)) return NULL;
    lua_getfield(L, idx, name);
    const char *r = NULL;
    if (!lua_isnil(L, -1)) r = bind_check_text(L, -1, name, 0);
    lua_pop(L, 1);
    return r;
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
    if (json_decode(L, text, len, msg, sizeof msg)) luaL_error(L, "stored JSON is corrupt: %s", msg);
}

/* ------------------------------------------------------------------ */
/* Filters: aeon.filter.eq(v) and friends make operator nodes marked with */
/* the FILTER_MT metatable; a plain table is an attribute path.          */

static const char *const FILTER_OPS[] = {"prefix", "eq", "ne", "gt", "gte", "lt", "lte", NULL};
static const store_filter_kind FILTER_KINDS[] = {FILTER_PREFIX, FILTER_EQ, FILTER_NE, FILTER_GT,
                                                 FILTER_GTE, FILTER_LT, FILTER_LTE};

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

static const char *const EVENT_ATTRIBUTES[] = {"key", "type", "correlation_id", "committed_at",
                                               "data", NULL};

static store_filter *build_filter(lua_State *L, filter_arena *a, int idx, int depth);

static store_filter *build_op(lua_State *L, filter_arena *a, int idx, int depth) {
    store_filter *f = arena_alloc(L, a, sizeof *f);
    lua_getfield(L, idx, "op");
    const char *op = lua_tostring(L, -1);
    lua_pop(L, 1);
    if (!op) luaL_error(L, "filter: operator node without an op");
    if (strcmp(op, "exists") == 0) { f->kind = FILTER_EXISTS; return f; }
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
    while (lua_next(L, idx)) { n++; lua_pop(L, 1); }
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
                luaL_error(L, "filter: unknown event attribute '%s' (use key, type, "
                              "correlation_id, committed_at or data)", name);
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
    filter_arena *a = lua_newuserdatauv(L, sizeof *a, 0);
    memset(a, 0, sizeof *a);
    if (luaL_newmetatable(L, "aeon.filter_arena")) {
        lua_pushcfunction(L, arena_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
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

/* ------------------------------------------------------------------ */
/* Store                                                               */

/* aeon.open(uri [, {region=, endpoint=}]): the options reach the backend
 * (DynamoDB's signing region and URL); strings stay anchored in the table. */
static int l_open(lua_State *L) {
    const char *uri = luaL_checkstring(L, 1);
    bind_check_options(L, 2, (const char *const[]){"region", "endpoint", NULL}, "aeon.open");
    store_options opts = {
        .env = NULL,
        .region = opt_string(L, 2, "region"),
        .endpoint = opt_string(L, 2, "endpoint"),
    };
    lstore *ls = lua_newuserdatauv(L, sizeof *ls, 0);
    ls->s = NULL;
    ls->cursors = NULL;
    ls->children = NULL;
    ls->txn = (bind_txn){0};
    luaL_setmetatable(L, STORE_MT);
    char *err = NULL;
    store_status st = store_open(uri, &opts, &ls->s, &err);
    if (st != STORE_OK) {
        lua_pushnil(L);
        lua_pushstring(L, err ? err : "out of memory");
        free(err);
        return 2;
    }
    return 1;
}

static void cursor_release(lcursor *lc);

static int l_close(lua_State *L) {
    lstore *ls = luaL_checkudata(L, 1, STORE_MT);
    while (ls->cursors) cursor_release(ls->cursors);
    while (ls->children) bind_release(ls->children);
    if (ls->txn.open) bind_txn_closed(L, 1);
    store_close(ls->s);
    ls->s = NULL;
    return 0;
}

/* Pushes an append result table. */
static void push_result(lua_State *L, const store_append_result *r, const char *failed_key) {
    lua_createtable(L, 0, 4);
    switch (r->outcome) {
    case STORE_APPENDED:
        lua_pushliteral(L, "appended");
        lua_setfield(L, -2, "type");
        lua_pushinteger(L, (lua_Integer)r->count);
        lua_setfield(L, -2, "count");
        lua_pushstring(L, r->revision);
        lua_setfield(L, -2, "revision");
        break;
    case STORE_UNCHANGED:
        lua_pushliteral(L, "unchanged");
        lua_setfield(L, -2, "type");
        break;
    case STORE_CONFLICT:
        lua_pushliteral(L, "conflict");
        lua_setfield(L, -2, "type");
        lua_pushstring(L, r->expected);
        lua_setfield(L, -2, "expected_revision");
        lua_pushstring(L, r->actual);
        lua_setfield(L, -2, "actual_revision");
        if (failed_key) {
            lua_pushstring(L, failed_key);
            lua_setfield(L, -2, "key");
        }
        break;
    }
}

/* Pending events collected from a Lua array: data of all events in one
 * buffer, pointers fixed up after the buffer stops moving. */
typedef struct pending_set {
    store_pending *events; /* malloc'd */
    size_t *offsets;       /* start of each event's data in buf */
    size_t count;          /* events */
    json_buf buf;          /* every event's data, back to back */
} pending_set;

static int pending_gc(lua_State *L) {
    pending_set *p = lua_touserdata(L, 1);
    free(p->events);
    free(p->offsets);
    json_buf_free(&p->buf);
    p->events = NULL;
    p->offsets = NULL;
    return 0;
}

/* Reads the events array at idx into a pending_set userdata pushed on the
 * stack (freed when collected, so a raise leaks nothing). */
static pending_set *check_events(lua_State *L, int idx) {
    static const char *const fields[] = {"type", "data", "correlation_id", NULL};
    luaL_checktype(L, idx, LUA_TTABLE);
    pending_set *p = lua_newuserdatauv(L, sizeof *p, 0);
    memset(p, 0, sizeof *p);
    if (luaL_newmetatable(L, "aeon.pending")) {
        lua_pushcfunction(L, pending_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    size_t n = lua_rawlen(L, idx);
    p->events = calloc(n ? n : 1, sizeof *p->events);
    p->offsets = calloc(n ? n : 1, sizeof *p->offsets);
    if (!p->events || !p->offsets) luaL_error(L, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char what[48];
        snprintf(what, sizeof what, "event %zu", i + 1);
        lua_rawgeti(L, idx, (lua_Integer)i + 1);
        int ev = lua_gettop(L);
        if (!lua_istable(L, ev)) luaL_error(L, "%s must be a table", what);
        bind_check_options(L, ev, fields, what);
        lua_getfield(L, ev, "type");
        if (lua_isnil(L, -1)) luaL_error(L, "%s has no type", what);
        p->events[i].type = bind_check_text(L, -1, "event type", 0);
        lua_pop(L, 1);
        lua_getfield(L, ev, "correlation_id");
        if (!lua_isnil(L, -1)) p->events[i].correlation_id = bind_check_text(L, -1, "correlation_id", 0);
        lua_pop(L, 1);
        p->offsets[i] = p->buf.len;
        lua_getfield(L, ev, "data");
        if (lua_isnil(L, -1)) {
            if (json_buf_put(&p->buf, "{}", 2)) luaL_error(L, "out of memory");
        } else {
            char msg[256];
            if (json_encode(L, -1, &p->buf, msg, sizeof msg))
                luaL_error(L, "%s: data %s", what, msg);
        }
        p->events[i].data_len = p->buf.len - p->offsets[i];
        lua_pop(L, 2); /* data, event: strings stay anchored in the caller's table */
        p->count++;
    }
    for (size_t i = 0; i < n; i++) p->events[i].data = p->buf.data + p->offsets[i];
    return p;
}

static int l_append(lua_State *L) {
    static const char *const known[] = {"expected_revision", "idempotency_key", NULL};
    store *s = bind_check_store(L, 1);
    const char *key = bind_check_text(L, 2, "key", 0);
    bind_check_options(L, 4, known, "append");
    store_append_opts opts = {
        .expected_revision = opt_revision(L, 4, "expected_revision"),
        .idempotency_key = opt_string(L, 4, "idempotency_key"),
    };
    if (opts.expected_revision && strcmp(opts.expected_revision, STORE_END) == 0)
        luaL_error(L, "expected_revision cannot be aeon.END");
    pending_set *p = check_events(L, 3);
    store_append_result r;
    char *err = NULL;
    store_status st = s->ops->append(s, key, p->events, p->count, &opts, &r, &err);
    if (st != STORE_OK) return bind_fail(L, st, err);
    push_result(L, &r, NULL);
    return 1;
}

static int l_append_many(lua_State *L) {
    static const char *const fields[] = {"key", "events", "expected_revision", NULL};
    static const char *const known[] = {"idempotency_key", NULL};
    store *s = bind_check_store(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    bind_check_options(L, 3, known, "append_many");
    const char *token = opt_string(L, 3, "idempotency_key");
    size_t n = lua_rawlen(L, 2);
    store_batch *b = lua_newuserdatauv(L, (n ? n : 1) * sizeof *b, 0);
    for (size_t i = 0; i < n; i++) {
        luaL_checkstack(L, 8, "append_many: too many entries");
        lua_rawgeti(L, 2, (lua_Integer)i + 1);
        int t = lua_gettop(L);
        if (!lua_istable(L, t)) luaL_error(L, "append_many: entry %zu must be a table", i + 1);
        bind_check_options(L, t, fields, "append_many entry");
        lua_getfield(L, t, "key");
        b[i].key = bind_check_text(L, -1, "key", 0);
        lua_pop(L, 1);
        b[i].expected_revision = opt_revision(L, t, "expected_revision");
        lua_getfield(L, t, "events");
        pending_set *p = check_events(L, lua_gettop(L));
        b[i].events = p->events;
        b[i].count = p->count;
        /* Keep the entry, its events and their pending set on the stack. */
    }
    store_append_result r;
    char *err = NULL;
    store_status st = s->ops->append_many(s, b, n, token, &r, &err);
    if (st != STORE_OK) return bind_fail(L, st, err);
    push_result(L, &r, r.outcome == STORE_CONFLICT && r.failed < n ? b[r.failed].key : NULL);
    return 1;
}

static int l_head(lua_State *L) {
    store *s = bind_check_store(L, 1);
    const char *key = bind_check_text(L, 2, "key", 0);
    char rev[STORE_REVISION_SIZE];
    char *err = NULL;
    store_status st = s->ops->head(s, key, rev, &err);
    if (st != STORE_OK) return bind_fail(L, st, err);
    lua_pushstring(L, rev);
    return 1;
}

/* ------------------------------------------------------------------ */
/* Cursors                                                             */

/* Closes the backend cursor (while its store is still open) and unlinks
 * it from the store, so the store can close in any order with its cursors. */
static void cursor_release(lcursor *lc) {
    if (!lc->owner) return;
    if (lc->c) lc->owner->s->ops->cursor_close(lc->c);
    lc->c = NULL;
    lcursor **pp = &lc->owner->cursors;
    while (*pp && *pp != lc) pp = &(*pp)->next;
    if (*pp) *pp = lc->next;
    lc->owner = NULL;
}

static int cursor_gc(lua_State *L) {
    cursor_release(luaL_checkudata(L, 1, CURSOR_MT));
    return 0;
}

/* Pushes a committed event as a Lua table. */
void bind_push_event(lua_State *L, const store_event *ev) {
    lua_createtable(L, 0, 6);
    lua_pushstring(L, ev->key);
    lua_setfield(L, -2, "key");
    lua_pushstring(L, ev->revision);
    lua_setfield(L, -2, "revision");
    lua_pushstring(L, ev->type);
    lua_setfield(L, -2, "type");
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
enum { UV_KEY, UV_REVISION, UV_TYPE, UV_DATA, UV_CORRELATION_ID, UV_COMMITTED_AT,
       UV_LAST_KEY, UV_LAST_TYPE, UV_LAST_COMMITTED_AT, UV_LAST_CORRELATION_ID, UV_STRINGS };

void bind_event_upvalues(lua_State *L) {
    static const char *const names[] = {"key", "revision", "type", "data", "correlation_id",
                                        "committed_at"};
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

/* Upvalue 1 is the lcursor, set by open_read, so no type check is needed
 * per event; the rest are bind_event_upvalues'. */
static int cursor_next(lua_State *L) {
    lcursor *lc = lua_touserdata(L, lua_upvalueindex(1));
    if (!lc->owner) return 0; /* exhausted, or its store was closed */
    store *s = lc->owner->s;
    const store_event *ev = NULL;
    char *err = NULL;
    store_status st = s->ops->next(lc->c, &ev, &err);
    if (st != STORE_OK) {
        note(st);
        cursor_release(lc);
        lua_pushstring(L, err ? err : "out of memory");
        free(err);
        return lua_error(L);
    }
    if (!ev) {
        cursor_release(lc);
        return 0;
    }
    bind_push_event_cached(L, ev, &lc->cache);
    return 1;
}

/* store:read(key, opts) and store:read_all(opts): both return an iterator
 * for a generic for, with the cursor as its to-be-closed value so a `break`
 * releases it at once. */
static int open_read(lua_State *L, lstore *ls, const char *key, int optidx) {
    static const char *const known[] = {"from", "after", "to", "before", "limit", "direction",
                                        "filter", NULL};
    bind_check_options(L, optidx, known, key ? "read" : "read_all");
    store_read_opts o = {.limit = -1};
    const char *from = opt_revision(L, optidx, "from"), *after = opt_revision(L, optidx, "after");
    const char *to = opt_revision(L, optidx, "to"), *before = opt_revision(L, optidx, "before");
    if (from && after) luaL_error(L, "give 'from' or 'after', not both");
    if (to && before) luaL_error(L, "give 'to' or 'before', not both");
    o.from = from ? from : after;
    o.from_exclusive = after != NULL;
    o.to = to ? to : before;
    o.to_exclusive = before != NULL;
    if (!lua_isnoneornil(L, optidx)) {
        lua_getfield(L, optidx, "limit");
        if (!lua_isnil(L, -1)) {
            if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0)
                luaL_error(L, "option 'limit' must be a non-negative integer");
            o.limit = lua_tointeger(L, -1);
        }
        lua_pop(L, 1);
        lua_getfield(L, optidx, "direction");
        if (!lua_isnil(L, -1)) {
            const char *d = lua_tostring(L, -1);
            if (!d || (strcmp(d, "forward") != 0 && strcmp(d, "backward") != 0))
                luaL_error(L, "option 'direction' must be \"forward\" or \"backward\"");
            o.backward = d[0] == 'b';
        }
        lua_pop(L, 1);
        /* No filter, no arena: reads without one are the common case. */
        if (lua_getfield(L, optidx, "filter") != LUA_TNIL)
            o.filter = bind_check_filter(L, lua_gettop(L));
    }
    lcursor *lc = lua_newuserdatauv(L, sizeof *lc, 1);
    memset(lc, 0, sizeof *lc);
    luaL_setmetatable(L, CURSOR_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    char *err = NULL;
    store_status st = ls->s->ops->read(ls->s, key, &o, &lc->c, &err);
    if (st != STORE_OK) return bind_fail(L, st, err);
    lc->owner = ls;
    lc->next = ls->cursors;
    ls->cursors = lc;
    lua_pushvalue(L, -1);
    bind_event_upvalues(L);
    lc->cache.first = 2;
    lua_pushcclosure(L, cursor_next, 1 + BIND_EVENT_UPVALUES);
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushvalue(L, -4);
    return 4;
}

static int l_read(lua_State *L) {
    lstore *ls = check_lstore(L, 1);
    const char *key = bind_check_text(L, 2, "key", 0);
    return open_read(L, ls, key, 3);
}

static int l_read_all(lua_State *L) {
    lstore *ls = check_lstore(L, 1);
    return open_read(L, ls, NULL, 2);
}

/* ------------------------------------------------------------------ */
/* Snapshots and administration                                        */

static int l_save_snapshot(lua_State *L) {
    store *s = bind_check_store(L, 1);
    const char *key = bind_check_text(L, 2, "key", 0);
    const char *rev = luaL_checkstring(L, 3);
    if (!revision_valid(rev)) luaL_error(L, "save_snapshot: '%s' is not a revision", rev);
    luaL_checkany(L, 4);
    json_buf buf = {0};
    bind_encode(L, 4, &buf, "snapshot state");
    bool saved = false;
    char *err = NULL;
    store_status st = s->ops->save_snapshot(s, key, rev, buf.data, buf.len, &saved, &err);
    json_buf_free(&buf);
    if (st != STORE_OK) return bind_fail(L, st, err);
    lua_pushboolean(L, saved);
    return 1;
}

static int l_snapshot(lua_State *L) {
    store *s = bind_check_store(L, 1);
    const char *key = bind_check_text(L, 2, "key", 0);
    store_snapshot snap;
    bool found = false;
    char *err = NULL;
    store_status st = s->ops->snapshot(s, key, &snap, &found, &err);
    if (st != STORE_OK) return bind_fail(L, st, err);
    if (!found) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, 0, 2);
    lua_pushstring(L, snap.revision);
    lua_setfield(L, -2, "revision");
    char msg[160];
    const char *bad = json_decode(L, snap.state, snap.state_len, msg, sizeof msg);
    free(snap.state);
    if (bad) luaL_error(L, "stored snapshot is corrupt: %s", msg);
    lua_setfield(L, -2, "state");
    return 1;
}

static int l_admin(lua_State *L) {
    static const char *const actions[] = {"deploy", "destroy", "info", "check", NULL};
    static const store_admin codes[] = {STORE_DEPLOY, STORE_DESTROY, STORE_INFO, STORE_CHECK};
    store *s = bind_check_store(L, 1);
    int a = luaL_checkoption(L, 2, NULL, actions);
    char *out = NULL, *err = NULL;
    store_status st = s->ops->admin(s, codes[a], &out, &err);
    if (st != STORE_OK) return bind_fail(L, st, err);
    char msg[160];
    const char *bad = json_decode(L, out, strlen(out), msg, sizeof msg);
    free(out);
    if (bad) luaL_error(L, "store admin answered bad JSON: %s", msg);
    return 1;
}

/* store:damaged() -> true once the backend found its data damaged (every
 * call fails from then on); false on a closed store. */
static int l_damaged(lua_State *L) {
    lstore *ls = luaL_checkudata(L, 1, STORE_MT);
    lua_pushboolean(L, ls->s && ls->s->damaged);
    return 1;
}

static int l_backend(lua_State *L) {
    lua_pushstring(L, bind_check_store(L, 1)->ops->name);
    return 1;
}

static int l_tostring(lua_State *L) {
    lstore *ls = luaL_checkudata(L, 1, STORE_MT);
    if (ls->s) lua_pushfstring(L, "aeon.store (%s: %p)", ls->s->ops->name, (void *)ls);
    else lua_pushliteral(L, "aeon.store (closed)");
    return 1;
}

/* ------------------------------------------------------------------ */
/* JSON for Lua                                                        */

static int l_json_encode(lua_State *L) {
    luaL_checkany(L, 1);
    json_buf buf = {0};
    bind_encode(L, 1, &buf, "json.encode");
    lua_pushlstring(L, buf.data ? buf.data : "", buf.len);
    json_buf_free(&buf);
    return 1;
}

/* Malformed JSON is input, not a programming mistake: nil, message. */
static int l_json_decode(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    char msg[160];
    if (json_decode(L, s, len, msg, sizeof msg)) {
        lua_pushnil(L);
        lua_pushstring(L, msg);
        return 2;
    }
    return 1;
}

static int l_revision_valid(lua_State *L) {
    lua_pushboolean(L, lua_type(L, 1) == LUA_TSTRING && revision_valid(lua_tostring(L, 1)));
    return 1;
}

/* The aggregate runner backs off between conflicting attempts; Lua has no
 * sleep of its own and spawning sleep(1) per retry would cost more than the
 * wait. Sleeps the whole time even when a signal interrupts it. */
static int l_sleep(lua_State *L) {
    lua_Number secs = luaL_checknumber(L, 1);
    luaL_argcheck(L, secs >= 0 && secs <= 3600, 1, "seconds must be between 0 and 3600");
    struct timespec t = {.tv_sec = (time_t)secs};
    t.tv_nsec = (long)((secs - (lua_Number)t.tv_sec) * 1e9);
    while (nanosleep(&t, &t) != 0 && errno == EINTR) {}
    return 0;
}

/* ------------------------------------------------------------------ */

static const luaL_Reg store_methods[] = {
    {"append", l_append},
    {"append_many", l_append_many},
    {"head", l_head},
    {"read", l_read},
    {"read_all", l_read_all},
    {"save_snapshot", l_save_snapshot},
    {"snapshot", l_snapshot},
    {"admin", l_admin},
    {"backend", l_backend},
    {"damaged", l_damaged},
    {"close", l_close},
    {NULL, NULL},
};

static const luaL_Reg core_functions[] = {
    {"open", l_open},
    {"json_encode", l_json_encode},
    {"json_decode", l_json_decode},
    {"revision_valid", l_revision_valid},
    {"sleep", l_sleep},
    {NULL, NULL},
};

int luaopen_aeon_core(lua_State *L) {
    luaL_newmetatable(L, STORE_MT);
    luaL_newlib(L, store_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);

    luaL_newmetatable(L, CURSOR_MT);
    lua_pushcfunction(L, cursor_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, cursor_gc);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);

    luaL_newmetatable(L, FILTER_MT);
    lua_pop(L, 1);

    luaL_newlib(L, core_functions);
    lua_pushliteral(L, STORE_START);
    lua_setfield(L, -2, "START");
    lua_pushliteral(L, STORE_END);
    lua_setfield(L, -2, "END");
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    lua_createtable(L, 0, 10);
    static const char *const ops[] = {"prefix", "eq", "ne", "gt", "gte", "lt", "lte",
                                      "exists", "all_of", "any_of", NULL};
    for (int i = 0; ops[i]; i++) {
        lua_pushstring(L, ops[i]);
        lua_pushcclosure(L, filter_op, 1);
        lua_setfield(L, -2, ops[i]);
    }
    lua_setfield(L, -2, "filter");
    bind_sub_open(L);
    bind_view_open(L);
    bind_txn_open(L);
    return 1;
}
