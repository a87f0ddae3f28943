/*
 * bind_store.c - store handles and cursors of aeon.core, with aeon.open,
 * exact JSON and a sleep for backing off. Subscriptions (bind_sub.c), views
 * (bind_view.c) and transactions (bind_txn.c) add their methods to the
 * store's at load; init.c opens the units in turn.
 *
 * Provides bind_store_open and the store-handle functions of bind.h
 * (bind_check_store, bind_adopt, bind_release). Turns Lua arguments into
 * store.h calls and store results into Lua values; uses bind.c's helpers.
 *
 * Two error channels, as in liolib.c: an expected failure (I/O, a backend
 * limit) returns nil, message; a programming mistake (a non-string key, an
 * event without a type, an unknown option) raises.
 */
#include <errno.h>
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
    pending_set *p = bind_scratch(L, sizeof *p, "aeon.pending", pending_gc);
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
        if (!lua_isnil(L, -1))
            p->events[i].correlation_id = bind_check_text(L, -1, "correlation_id", 0);
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
        bind_note(st);
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
    static const char *const known[] = {"from",  "after",     "to",     "before",
                                        "limit", "direction", "filter", NULL};
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
    if (ls->s)
        lua_pushfstring(L, "aeon.store (%s: %p)", ls->s->ops->name, (void *)ls);
    else
        lua_pushliteral(L, "aeon.store (closed)");
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
    {"append", l_append},     {"append_many", l_append_many},
    {"head", l_head},         {"read", l_read},
    {"read_all", l_read_all}, {"save_snapshot", l_save_snapshot},
    {"snapshot", l_snapshot}, {"admin", l_admin},
    {"backend", l_backend},   {"damaged", l_damaged},
    {"close", l_close},       {NULL, NULL},
};

static const luaL_Reg core_functions[] = {
    {"open", l_open},
    {"json_encode", l_json_encode},
    {"json_decode", l_json_decode},
    {"revision_valid", l_revision_valid},
    {"sleep", l_sleep},
    {NULL, NULL},
};

void bind_store_open(lua_State *L) {
    bind_class(L, STORE_MT, store_methods, l_close, l_tostring);
    bind_class(L, CURSOR_MT, NULL, cursor_gc, NULL);
    luaL_setfuncs(L, core_functions, 0);
    lua_pushliteral(L, STORE_START);
    lua_setfield(L, -2, "START");
    lua_pushliteral(L, STORE_END);
    lua_setfield(L, -2, "END");
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
}
