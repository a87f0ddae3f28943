/*
 * hostlib.c - aeon.host, the Lua face of the server (see hostlib.h).
 *
 * Provides luaopen_aeon_host, preloaded by aeon-host into its main state and
 * into every worker and projection state:
 *
 *   host.serve(config [, on_listening])  -> 0 | nil, message, kind
 *   host.log(level, message [, fields])  one JSON line on stderr
 *   host.log_enabled(level)              -> boolean
 *   host.appended(events)                an append committed `events` events
 *   host.conflict()                      an append met a conflict
 *   host.projection_lag(name, events, seconds)
 *   host.projection_build(name, version, events, lag, eta)   a build's progress
 *                                           (version 0: none running)
 *   host.stopping()                      -> true when this thread's runner
 *                                           should commit and return
 *   host.now()                           -> wall-clock seconds, fractional
 *   host.set_log_level(level)
 *   host.worker_broken(problem | nil)    this request worker cannot serve
 *                                           (its store will not reopen)
 *   host.load_deadline(seconds, line)    -> cancel(): unless cancel() is
 *                                           called within `seconds`, `line`
 *                                           goes to stderr and the process
 *                                           exits 4 (a load stuck in C)
 *
 * aeon.cli.serve builds `config` from the command line (with every field: the
 * defaults are aeon.cli.options'); projection runners call
 * stopping() and projection_lag(). Uses server.h (server_run), log.h,
 * metrics.h, json.h and host.h.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "bind.h"
#include "host.h"
#include "hostlib.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "worker.h"

/* ------------------------------------------------------------------ */
/* serve                                                               */

typedef struct listening_ctx {
    lua_State *L; /* the state that called serve */
    int fn;       /* stack index of on_listening, or 0 */
} listening_ctx;

static void on_listening(void *ctx, const char *url) {
    listening_ctx *c = ctx;
    if (!c->fn) return;
    lua_pushvalue(c->L, c->fn);
    lua_pushstring(c->L, url);
    if (host_call(c->L, 1, 0) != LUA_OK) {
        log_error_msg(LOG_WARN, "on_listening failed", lua_tostring(c->L, -1));
        lua_pop(c->L, 1);
    }
}

/* The config's fields. The defaults live in one place, aeon.cli.options
 * (SERVE, DEFAULT_STORE), which fills in every field; here a missing one
 * is a programming mistake, not a default. */
static const char *opt_string(lua_State *L, const char *field, int required) {
    lua_getfield(L, 1, field);
    if (lua_isnil(L, -1) && required) luaL_error(L, "config.%s is required", field);
    const char *s = lua_isnil(L, -1) ? NULL : luaL_checkstring(L, -1);
    lua_pop(L, 1); /* the string stays alive: config holds it */
    return s;
}

static lua_Number need_number(lua_State *L, const char *field) {
    lua_getfield(L, 1, field);
    if (lua_isnil(L, -1)) luaL_error(L, "config.%s is required", field);
    lua_Number n = luaL_checknumber(L, -1);
    lua_pop(L, 1);
    return n;
}

static int l_serve(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    listening_ctx ctx = {.L = L, .fn = lua_isfunction(L, 2) ? 2 : 0};
    server_config cfg = {
        .listen = opt_string(L, "listen", 1),
        .worker =
            {
                .app_path = opt_string(L, "app", 1),
                .store_uri = opt_string(L, "store", 1),
                .lua_path = opt_string(L, "lua_path", 1),
                .lua_cpath = opt_string(L, "lua_cpath", 1),
                .workers = (int)need_number(L, "workers"),
                .queue_limit = 4096,
                .max_instructions = (long long)need_number(L, "max_instructions"),
                .max_seconds = need_number(L, "max_time"),
                .max_memory = (size_t)need_number(L, "max_memory"),
            },
        .app_name = opt_string(L, "app_name", 1),
        .max_body = (size_t)need_number(L, "max_body"),
        .idle_timeout = (unsigned)need_number(L, "timeout"),
        .header_timeout = need_number(L, "header_timeout"),
        .body_timeout = need_number(L, "body_timeout"),
        .max_connections = (unsigned)need_number(L, "max_connections"),
        .max_client_connections = (unsigned)need_number(L, "max_client_connections"),
        .drain_seconds = need_number(L, "drain"),
        .token = opt_string(L, "token", 0),
        .on_listening = on_listening,
        .ctx = &ctx,
    };
    lua_getfield(L, 1, "watch");
    cfg.watch = lua_toboolean(L, -1);
    lua_getfield(L, 1, "metrics_loopback");
    cfg.metrics_loopback = lua_toboolean(L, -1);
    lua_pop(L, 2);
    luaL_argcheck(L, cfg.worker.workers >= 1 && cfg.worker.workers <= 1024, 1,
                  "config.workers must be 1 to 1024");
    if (cfg.token && !*cfg.token) cfg.token = NULL;

    char *err = NULL;
    server_status st = server_run(&cfg, &err);
    if (st == SERVER_OK) {
        lua_pushinteger(L, HOST_EXIT_OK);
        return 1;
    }
    static const char *const kinds[] = {[SERVER_NOMEM] = "io",
                                        [SERVER_USAGE] = "usage",
                                        [SERVER_IO] = "io",
                                        [SERVER_SCRIPT] = "script",
                                        [SERVER_STUCK] = "script"};
    lua_pushnil(L);
    lua_pushstring(L, err ? err : "out of memory");
    lua_pushstring(L, kinds[st]);
    free(err);
    return 3;
}

/* ------------------------------------------------------------------ */
/* logs and metrics                                                    */

static log_level check_level(lua_State *L, int idx) {
    log_level level;
    const char *name = luaL_checkstring(L, idx);
    if (!log_parse_level(name, &level))
        luaL_argerror(L, idx, "level must be debug, info, warn or error");
    return level;
}

static void log_field(lua_State *L, log_line *l, const char *key, int idx) {
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        log_strn(l, key, s, len);
        break;
    }
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            log_int(l, key, (long long)lua_tointeger(L, idx));
        else
            log_num(l, key, lua_tonumber(L, idx));
        break;
    case LUA_TBOOLEAN:
        log_bool(l, key, lua_toboolean(L, idx));
        break;
    case LUA_TTABLE: {
        json_buf jb = {0};
        char msg[160];
        if (!json_encode(L, idx, &jb, msg, sizeof msg))
            log_raw(l, key, jb.data, jb.len);
        else
            log_str(l, key, luaL_tolstring(L, idx, NULL)), lua_pop(L, 1);
        json_buf_free(&jb);
        break;
    }
    default:
        log_str(l, key, luaL_tolstring(L, idx, NULL));
        lua_pop(L, 1);
    }
}

static int l_log(lua_State *L) {
    log_level level = check_level(L, 1);
    const char *msg = luaL_checkstring(L, 2);
    if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
    log_line l;
    if (!log_begin(&l, level, msg)) return 0;
    if (lua_istable(L, 3)) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            if (lua_type(L, -2) == LUA_TSTRING) {
                const char *key = lua_tostring(L, -2);
                if (strcmp(key, "ts") && strcmp(key, "level") && strcmp(key, "msg"))
                    log_field(L, &l, key, lua_gettop(L));
            }
            lua_pop(L, 1);
        }
    }
    log_end(&l);
    return 0;
}

static int l_log_enabled(lua_State *L) {
    lua_pushboolean(L, log_enabled(check_level(L, 1)));
    return 1;
}

static int l_set_log_level(lua_State *L) {
    log_set_level(check_level(L, 1));
    return 0;
}

static int l_appended(lua_State *L) {
    metrics_appended((long long)luaL_optinteger(L, 1, 1));
    return 0;
}

static int l_conflict(lua_State *L) {
    (void)L;
    metrics_conflict();
    return 0;
}

static int l_projection_lag(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    lua_Number events = luaL_checknumber(L, 2);
    lua_Number seconds = luaL_optnumber(L, 3, 0);
    metrics_projection_lag(name, events, seconds);
    return 0;
}

static int l_projection_build(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    lua_Integer version = luaL_checkinteger(L, 2);
    metrics_projection_build(name, version < 0 || version > 1000000 ? 0 : (int)version,
                             luaL_optnumber(L, 3, 0), luaL_optnumber(L, 4, 0),
                             luaL_optnumber(L, 5, 0));
    return 0;
}

/* Wall-clock seconds with a fraction, for ages of committed events (Lua's
 * os.time has whole seconds only). */
static int l_now(lua_State *L) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

static int l_stopping(lua_State *L) {
    lua_pushboolean(L, worker_stopping());
    return 1;
}

/* worker_broken(problem): a request worker's store will not reopen (nil:
 * it serves again); /health says degraded meanwhile. */
static int l_worker_broken(lua_State *L) {
    bool broken = !lua_isnoneornil(L, 1);
    if (broken) log_error_msg(LOG_ERROR, "worker cannot serve", luaL_tolstring(L, 1, NULL));
    worker_set_broken(broken);
    return 0;
}

/* A deadline for a load in the command-line process: the count hook stops
 * a load looping in Lua, but not one stuck in C (a pattern that backtracks
 * for ever), and this thread's state cannot be abandoned as a worker's is.
 * Nothing is serving yet, so the process ends, saying why. */
typedef struct deadline {
    pthread_mutex_t lock; /* guards cancelled */
    pthread_cond_t wake;  /* cancelled was set */
    bool cancelled;       /* the load returned in time */
    struct timespec at;   /* when it ends the process (CLOCK_REALTIME) */
    char *line;           /* what it says then */
} deadline;

static void *deadline_main(void *arg) {
    deadline *d = arg;
    pthread_mutex_lock(&d->lock);
    while (!d->cancelled)
        if (pthread_cond_timedwait(&d->wake, &d->lock, &d->at) != 0 && !d->cancelled) {
            fprintf(stderr, "%s\n", d->line);
            fflush(stderr);
            _exit(HOST_EXIT_SCRIPT);
        }
    pthread_mutex_unlock(&d->lock);
    pthread_cond_destroy(&d->wake);
    pthread_mutex_destroy(&d->lock);
    free(d->line);
    free(d);
    return NULL;
}

/* cancel(): the load is back; the deadline's thread ends and frees it. */
static int l_deadline_cancel(lua_State *L) {
    deadline *d = lua_touserdata(L, lua_upvalueindex(1));
    if (!d) return 0;
    pthread_mutex_lock(&d->lock);
    d->cancelled = true;
    pthread_cond_signal(&d->wake);
    pthread_mutex_unlock(&d->lock);
    lua_pushnil(L);
    lua_replace(L, lua_upvalueindex(1)); /* a second call does nothing */
    return 0;
}

static int l_load_deadline(lua_State *L) {
    double seconds = luaL_checknumber(L, 1);
    const char *line = luaL_checkstring(L, 2);
    deadline *d = calloc(1, sizeof *d);
    if (!d || !(d->line = strdup(line))) {
        free(d);
        return luaL_error(L, "out of memory");
    }
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->wake, NULL);
    clock_gettime(CLOCK_REALTIME, &d->at);
    d->at.tv_sec += (time_t)seconds;
    d->at.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
    if (d->at.tv_nsec >= 1000000000L) d->at.tv_sec++, d->at.tv_nsec -= 1000000000L;
    pthread_t t;
    int rc = worker_detach(&t, deadline_main, d);
    if (rc != 0) {
        pthread_cond_destroy(&d->wake);
        pthread_mutex_destroy(&d->lock);
        free(d->line);
        free(d);
        return luaL_error(L, "cannot start a load deadline: %s", strerror(rc));
    }
    lua_pushlightuserdata(L, d);
    lua_pushcclosure(L, l_deadline_cancel, 1);
    return 1;
}

static const luaL_Reg functions[] = {
    {"serve", l_serve},
    {"log", l_log},
    {"log_enabled", l_log_enabled},
    {"set_log_level", l_set_log_level},
    {"appended", l_appended},
    {"conflict", l_conflict},
    {"projection_lag", l_projection_lag},
    {"projection_build", l_projection_build},
    {"stopping", l_stopping},
    {"now", l_now},
    {"worker_broken", l_worker_broken},
    {"load_deadline", l_load_deadline},
    {NULL, NULL},
};

void host_preload(lua_State *L) {
    bind_preload(L, "aeon.core", luaopen_aeon_core);
    bind_preload(L, "aeon.host", luaopen_aeon_host);
}

int luaopen_aeon_host(lua_State *L) {
    luaL_newlib(L, functions);
    return 1;
}
