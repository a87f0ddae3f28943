/*
 * bind_sub.c - subscriptions for Lua (API.md section 4): store:subscribe,
 * store:reset_subscription and the subscription handle with poll,
 * poll_notification, ack, checkpoint and close. Also core.monotonic, the
 * clock the projection runner times its backoffs with (core.sleep, from
 * bind_store.c, does the waiting).
 *
 * Provides bind_sub_open, called by luaopen_aeon_core. Uses the
 * subscription slots of store.h through bind.h; a backend that leaves them
 * NULL gets nil, "<backend> does not support subscriptions yet".
 *
 * A subscription holds part of its store's backend handle, so it is a
 * bind_child of the store: closing the store releases it first. Its
 * uservalue is the store, which keeps the store alive as long as it.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "bind.h"
#include "lease.h"
#include "revision.h"
#include "store.h"

#define SUB_MT "aeon.subscription"
#define DEFAULT_MAX 100     /* events a poll hands out when not told */
#define MAX_TIMEOUT 86400.0 /* seconds a poll may be asked to wait, at most */

typedef struct lsub {
    bind_child link; /* first: in the store's children */
    store_sub *sub;  /* NULL once closed */
    const store *s;  /* the backend handle, for its ops */
} lsub;

static void sub_release(bind_child *c) {
    lsub *ls = (lsub *)c;
    if (ls->sub) ls->s->ops->sub_close(ls->sub);
    ls->sub = NULL;
}

static lsub *check_sub(lua_State *L, int idx) {
    lsub *ls = luaL_checkudata(L, idx, SUB_MT);
    if (!ls->sub) luaL_error(L, "subscription is closed");
    return ls;
}

/* Field `name` of the options at idx as a list of patterns: a string or an
 * array of strings. The strings stay anchored by the options table; the
 * pointer array is a userdata left on the stack. */
static const char *const *opt_patterns(lua_State *L, int idx, const char *name, size_t *n) {
    *n = 0;
    if (lua_isnoneornil(L, idx)) return NULL;
    lua_getfield(L, idx, name);
    int t = lua_gettop(L);
    const char **v = NULL;
    if (lua_type(L, t) == LUA_TSTRING) {
        v = lua_newuserdatauv(L, sizeof *v, 0);
        v[0] = bind_check_text(L, t, name, 0);
        *n = 1;
    } else if (lua_istable(L, t)) {
        size_t len = lua_rawlen(L, t);
        v = lua_newuserdatauv(L, (len ? len : 1) * sizeof *v, 0);
        for (size_t i = 0; i < len; i++) {
            lua_rawgeti(L, t, (lua_Integer)i + 1);
            char what[48];
            snprintf(what, sizeof what, "%s pattern %zu", name, i + 1);
            v[i] = bind_check_text(L, -1, what, 0);
            lua_pop(L, 1);
        }
        *n = len;
    } else if (!lua_isnil(L, t)) {
        luaL_error(L, "subscribe: option '%s' must be a pattern or a list of patterns", name);
    }
    lua_remove(L, t); /* the userdata, if any, stays; the table is the caller's */
    return v;
}

/* store:subscribe(name, { key = patterns, type = patterns, filter = f,
 * start = aeon.START | aeon.END | revision, lease = seconds, wait = bool });
 * name nil: ephemeral. */
static int l_subscribe(lua_State *L) {
    static const char *const known[] = {"key", "type", "filter", "start", "lease", "wait", NULL};
    store *s = bind_check_store(L, 1);
    const char *name = NULL;
    if (!lua_isnoneornil(L, 2)) name = bind_check_text(L, 2, "subscription name", 0);
    bind_check_options(L, 3, known, "subscribe");
    store_sub_opts o = {0};
    o.keys = opt_patterns(L, 3, "key", &o.nkeys);
    o.types = opt_patterns(L, 3, "type", &o.ntypes);
    if (!lua_isnoneornil(L, 3)) {
        lua_getfield(L, 3, "start");
        if (!lua_isnil(L, -1)) {
            if (lua_type(L, -1) != LUA_TSTRING || !revision_bound_valid(lua_tostring(L, -1)))
                luaL_error(L,
                           "subscribe: option 'start' must be a revision, aeon.START or aeon.END");
            o.start = lua_tostring(L, -1); /* anchored by the options table */
        }
        lua_pop(L, 1);
        lua_getfield(L, 3, "lease");
        if (!lua_isnil(L, -1)) {
            if (!lua_isnumber(L, -1))
                luaL_error(L, "subscribe: option 'lease' must be a number of seconds");
            lua_Number sec = lua_tonumber(L, -1);
            if (!(sec * 1000 >= LEASE_MIN_MS && sec * 1000 <= LEASE_MAX_MS))
                luaL_error(L, "subscribe: option 'lease' must be between %f and %d seconds",
                           LEASE_MIN_MS / 1000.0, LEASE_MAX_MS / 1000);
            o.lease_ms = (int64_t)(sec * 1000 + 0.5);
        }
        lua_pop(L, 1);
        lua_getfield(L, 3, "wait");
        if (!lua_isnil(L, -1)) {
            if (!lua_isboolean(L, -1)) luaL_error(L, "subscribe: option 'wait' must be a boolean");
            o.nowait = !lua_toboolean(L, -1);
        }
        lua_pop(L, 1);
        lua_getfield(L, 3, "filter");
        o.filter = bind_check_filter(L, lua_gettop(L));
    }
    if (!bind_has_subscriptions(s->ops)) return bind_unsupported(L, s, "subscriptions");

    lsub *ls = lua_newuserdatauv(L, sizeof *ls, 1);
    memset(ls, 0, sizeof *ls);
    ls->link.release = sub_release;
    ls->s = s;
    luaL_setmetatable(L, SUB_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    char *err = NULL;
    store_status st = s->ops->subscribe(s, name, &o, &ls->sub, &err);
    if (st != STORE_OK) return bind_fail(L, st, err);
    bind_adopt(L, 1, &ls->link);
    return 1;
}

/* store:reset_subscription(name): the next subscriber starts over. */
static int l_reset_subscription(lua_State *L) {
    store *s = bind_check_store(L, 1);
    const char *name = bind_check_text(L, 2, "subscription name", 0);
    if (!bind_has_subscriptions(s->ops)) return bind_unsupported(L, s, "subscriptions");
    char *err = NULL;
    store_status st = s->ops->sub_reset(s, name, &err);
    if (st != STORE_OK) return bind_fail(L, st, err);
    lua_pushboolean(L, 1);
    return 1;
}

/* How a poll's batch is handed to Lua: pushes it and returns how many
 * values it pushed. */
typedef int push_batch(lua_State *L, const store_event *evs, size_t n, const char *position);

/* One poll for sub:poll and sub:poll_notification: the timeout and max
 * arguments, the poll, then the batch as `push` hands it over; nil and a
 * message when the poll fails. */
static int poll_with(lua_State *L, push_batch *push) {
    lsub *ls = check_sub(L, 1);
    lua_Number timeout = luaL_optnumber(L, 2, 0);
    luaL_argcheck(L, timeout >= 0 && timeout <= MAX_TIMEOUT, 2,
                  "timeout must be between 0 and 86400 seconds");
    lua_Integer max = luaL_optinteger(L, 3, DEFAULT_MAX);
    luaL_argcheck(L, max >= 1, 3, "max must be at least 1");
    const store_event *evs = NULL;
    size_t n = 0;
    char position[STORE_REVISION_SIZE];
    char *err = NULL;
    store_status st = ls->s->ops->poll(ls->sub, (int64_t)(timeout * 1000 + 0.5), (size_t)max, &evs,
                                       &n, position, &err);
    if (st != STORE_OK) return bind_fail(L, st, err);
    return push(L, evs, n, position);
}

/* events, position */
static int push_events(lua_State *L, const store_event *evs, size_t n, const char *position) {
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        bind_push_event(L, &evs[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_pushstring(L, position);
    return 2;
}

/* { revision = position, events = { { key, type }, ... } } */
static int push_notification(lua_State *L, const store_event *evs, size_t n, const char *position) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, position);
    lua_setfield(L, -2, "revision");
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, evs[i].key);
        lua_setfield(L, -2, "key");
        lua_pushstring(L, evs[i].type);
        lua_setfield(L, -2, "type");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "events");
    return 1;
}

/* sub:poll([timeout_seconds [, max]]) -> events, position */
static int l_poll(lua_State *L) { return poll_with(L, push_events); }

/* sub:poll_notification([timeout_seconds [, max]]) -> { revision, events =
 * { { key, type }, ... } }, Aeon's notification: what happened, without the
 * data, for apps that read the events themselves. `revision` is the
 * position: reading up to it and acking it covers the batch. */
static int l_poll_notification(lua_State *L) { return poll_with(L, push_notification); }

/* sub:ack(revision) -> true, or false when this consumer does not hold the
 * name's lease or another one moved the checkpoint first (this one then
 * starts again after it). */
static int l_ack(lua_State *L) {
    lsub *ls = check_sub(L, 1);
    const char *rev = luaL_checkstring(L, 2);
    if (!revision_valid(rev)) luaL_error(L, "ack: '%s' is not a revision", rev);
    bool acked = false;
    char *err = NULL;
    store_status st = ls->s->ops->ack(ls->sub, rev, &acked, &err);
    if (st != STORE_OK) return bind_fail(L, st, err);
    lua_pushboolean(L, acked);
    return 1;
}

static int l_checkpoint(lua_State *L) {
    lsub *ls = check_sub(L, 1);
    char rev[STORE_REVISION_SIZE];
    char *err = NULL;
    store_status st = ls->s->ops->checkpoint(ls->sub, rev, &err);
    if (st != STORE_OK) return bind_fail(L, st, err);
    lua_pushstring(L, rev);
    return 1;
}

/* sub:active() -> whether this consumer holds its name's lease (is handed
 * events) rather than standing by; an ephemeral one always does. */
static int l_active(lua_State *L) {
    lsub *ls = check_sub(L, 1);
    lua_pushboolean(L, ls->s->ops->sub_active == NULL || ls->s->ops->sub_active(ls->sub));
    return 1;
}

/* sub:renew() -> true while this consumer holds its name's lease (renewed
 * when a third of it has gone), false once another has taken it over or
 * for a standby; nil, message when the store failed. A consumer whose
 * batch takes long calls it as it goes, and stops handling on false. */
static int l_renew(lua_State *L) {
    lsub *ls = check_sub(L, 1);
    bool held = true;
    char *err = NULL;
    if (ls->s->ops->sub_renew != NULL) {
        store_status st = ls->s->ops->sub_renew(ls->sub, &held, &err);
        if (st != STORE_OK) return bind_fail(L, st, err);
    }
    lua_pushboolean(L, held);
    return 1;
}

static int sub_gc(lua_State *L) {
    lsub *ls = luaL_checkudata(L, 1, SUB_MT);
    bind_release(&ls->link);
    return 0;
}

static int sub_tostring(lua_State *L) {
    lsub *ls = luaL_checkudata(L, 1, SUB_MT);
    if (ls->sub)
        lua_pushfstring(L, "aeon.subscription (%p)", (void *)ls);
    else
        lua_pushliteral(L, "aeon.subscription (closed)");
    return 1;
}

/* ------------------------------------------------------------------ */

/* Seconds on a clock that never jumps, for timing backoffs. */
static int l_monotonic(lua_State *L) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* ------------------------------------------------------------------ */

static const luaL_Reg store_methods[] = {
    {"subscribe", l_subscribe},
    {"reset_subscription", l_reset_subscription},
    {NULL, NULL},
};

static const luaL_Reg sub_methods[] = {
    {"poll", l_poll},     {"poll_notification", l_poll_notification},
    {"ack", l_ack},       {"checkpoint", l_checkpoint},
    {"active", l_active}, {"renew", l_renew},
    {"close", sub_gc},    {NULL, NULL},
};

static const luaL_Reg core_functions[] = {
    {"monotonic", l_monotonic},
    {NULL, NULL},
};

void bind_sub_open(lua_State *L) {
    bind_store_methods(L, store_methods);
    bind_class(L, SUB_MT, sub_methods, sub_gc, sub_tostring);
    luaL_setfuncs(L, core_functions, 0);
}
