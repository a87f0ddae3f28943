/*
 * worker.c - request workers and projection threads (see worker.h).
 *
 * Every thread here owns one Lua state at a time, made by state_new: the
 * standard libraries, the Lua library's paths, aeon.core and aeon.host
 * preloaded, then aeon.cli.worker's boot(config, role), which loads the app and
 * (except for a probe) opens the thread's own store connection. The state's
 * extra space points at the thread's record, so the count hook can find its
 * budget without a lookup.
 */
#include "worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "bind.h"
#include "buf.h"
#include "host.h"
#include "log.h"
#include "metrics.h"
#include "hostlib.h"

/* The count hook runs every this many VM instructions: often enough to stop
 * a runaway loop within microseconds, rarely enough to cost nothing. */
#define HOOK_EVERY 1000
/* Projections only need interrupting at shutdown. */
#define PROJECTION_HOOK_EVERY 10000
/* Back-off between restarts of a failing projection, in seconds. */
#define BACKOFF_MIN 1.0
#define BACKOFF_MAX 30.0

/* What a thread's stop flag is, for aeon.host.stopping(). */
static _Thread_local const atomic_bool *thread_stop;

bool worker_stopping(void) { return thread_stop && atomic_load(thread_stop); }

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *dup_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

char *worker_error_body(const char *message, const char *request_id, size_t *len) {
    buf b = {0};
    buf_puts(&b, "{\"error\":");
    buf_json_string(&b, message, strlen(message));
    if (request_id) {
        buf_puts(&b, ",\"request_id\":");
        buf_json_string(&b, request_id, strlen(request_id));
    }
    buf_puts(&b, "}");
    return buf_take(&b, len);
}

/* A line for a host_call error, with one more field when `field` is set. */
static void log_failure(log_level level, const char *msg, const char *error,
                        const char *field, const char *value) {
    log_line l;
    if (!log_begin(&l, level, msg)) return;
    if (field) log_str(&l, field, value);
    log_lua_error(&l, error);
    log_end(&l);
}

/* ------------------------------------------------------------------ */
/* Lua states                                                          */

/* Runs inside host_call: builds the state and calls
 * require("aeon.cli.worker").boot(config, role); leaves boot's answer. */
static int boot(lua_State *L) {
    const worker_options *opt = lua_touserdata(L, 1);
    const char *role = lua_tostring(L, 2);
    luaL_openlibs(L);

    lua_getglobal(L, "package");
    lua_pushstring(L, opt->lua_path);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, opt->lua_cpath);
    lua_setfield(L, -2, "cpath");
    lua_pop(L, 1);
    host_preload(L);

    lua_getglobal(L, "require");
    lua_pushliteral(L, "aeon.cli.worker");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "boot");
    lua_createtable(L, 0, 2);
    lua_pushstring(L, opt->app_path);
    lua_setfield(L, -2, "app");
    lua_pushstring(L, opt->store_uri);
    lua_setfield(L, -2, "store");
    lua_pushstring(L, role);
    lua_call(L, 2, 1);
    if (!lua_istable(L, -1)) luaL_error(L, "aeon.cli.worker.boot returned no table");
    return 1;
}

/* Error objects may be tables ({ message = ... }); make them text. */
static char *error_text(lua_State *L) {
    const char *msg = NULL;
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "message");
        msg = lua_tostring(L, -1);
        char *out = dup_string(msg ? msg : "(error without a message)");
        lua_pop(L, 1);
        return out;
    }
    msg = lua_tostring(L, -1);
    return dup_string(msg ? msg : "(error object is not a string)");
}

/* A new state for `role` ("request", "projection" or "probe") with boot's
 * answer table on top of its stack, `self` in its extra space. NULL with
 * *err (malloc'd) when the app or the store would not load. */
static lua_State *state_new(const worker_options *opt, const char *role, void *self, char **err) {
    lua_State *L = luaL_newstate();
    if (!L) {
        *err = dup_string("cannot create a Lua state: out of memory");
        return NULL;
    }
    *(void **)lua_getextraspace(L) = self;
    lua_pushcfunction(L, boot);
    lua_pushlightuserdata(L, (void *)opt);
    lua_pushstring(L, role);
    if (host_call(L, 2, 1) != LUA_OK) {
        *err = error_text(L);
        lua_close(L);
        return NULL;
    }
    return L;
}

/* The strings of the array field `name` of the table on top, malloc'd. */
static int string_list(lua_State *L, const char *name, char ***out, size_t *n) {
    *out = NULL;
    *n = 0;
    lua_getfield(L, -1, name);
    size_t len = lua_istable(L, -1) ? (size_t)lua_rawlen(L, -1) : 0;
    if (len) {
        *out = calloc(len, sizeof **out);
        if (!*out) goto fail;
        for (size_t i = 0; i < len; i++) {
            lua_rawgeti(L, -1, (lua_Integer)i + 1);
            const char *s = lua_tostring(L, -1);
            (*out)[i] = dup_string(s ? s : "");
            lua_pop(L, 1);
            if (!(*out)[i]) goto fail;
            (*n)++;
        }
    }
    lua_pop(L, 1);
    return 0;
fail:
    lua_pop(L, 1);
    return -1;
}

static void free_list(char **list, size_t n) {
    for (size_t i = 0; i < n; i++) free(list[i]);
    free(list);
}

void worker_app_info_free(worker_app_info *info) {
    free(info->name);
    free_list(info->commands, info->ncommands);
    free_list(info->queries, info->nqueries);
    free_list(info->projections, info->nprojections);
    free_list(info->files, info->nfiles);
    *info = (worker_app_info){0};
}

int worker_probe(const worker_options *opt, worker_app_info *info, char **err) {
    *info = (worker_app_info){0};
    lua_State *L = state_new(opt, "probe", NULL, err);
    if (!L) return -1;
    int status = -1;
    lua_getfield(L, -1, "name");
    info->name = dup_string(lua_tostring(L, -1) ? lua_tostring(L, -1) : "app");
    lua_pop(L, 1);
    if (!info->name || string_list(L, "commands", &info->commands, &info->ncommands) ||
        string_list(L, "queries", &info->queries, &info->nqueries) ||
        string_list(L, "projections", &info->projections, &info->nprojections) ||
        string_list(L, "files", &info->files, &info->nfiles)) {
        *err = dup_string("out of memory");
        worker_app_info_free(info);
        goto done;
    }
    status = 0;
done:
    lua_close(L);
    return status;
}

/* ------------------------------------------------------------------ */
/* Request workers                                                     */

typedef enum stop_reason {
    STOP_NONE,
    STOP_INSTRUCTIONS, /* ran past --max-instructions */
    STOP_TIME,         /* ran past --max-time */
    STOP_SHUTDOWN,     /* the server is past its shutdown deadline */
} stop_reason;

typedef struct worker {
    worker_pool *pool;      /* the pool it serves */
    pthread_t thread;       /* its thread */
    lua_State *L;           /* its state; only this thread touches it */
    int handle;             /* registry ref of aeon.cli.worker's handler */
    unsigned generation;    /* the app version its state was loaded from */
    long long used;         /* instructions the current job has run */
    double deadline;        /* when the current job's time is up */
    stop_reason stopped;    /* why the hook stopped the current job */
    int index;              /* for logs */
} worker;

struct worker_pool {
    worker_options opt;       /* copied; strings borrowed */
    pthread_mutex_t lock;     /* guards everything below */
    pthread_cond_t wake;      /* a job, a reload or the stop */
    worker_job *head;         /* oldest queued job */
    worker_job *tail;         /* newest queued job */
    size_t depth;             /* jobs queued */
    unsigned generation;      /* bumped by worker_pool_reload */
    atomic_bool stopping;     /* no more jobs; finish the queue */
    atomic_bool force;        /* past the deadline: stop handlers */
    int started;              /* threads started */
    worker *workers;          /* opt.workers of them */
};

/* Stops a handler past its budget. The first time, it raises, so the
 * handler unwinds as from any error and its traceback is logged. A handler
 * that catches that error and runs on is, the next time, yielded out of:
 * aeon.cli.worker runs every handler in a coroutine, which it then abandons. */
static void budget_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    worker *w = *(worker **)lua_getextraspace(L);
    if (!w) return;
    w->used += HOOK_EVERY;
    if (w->stopped != STOP_NONE) {
        if (lua_isyieldable(L)) {
            lua_yield(L, 0);
            return;
        }
        luaL_error(L, "stopped");
    }
    if (atomic_load(&w->pool->force)) {
        w->stopped = STOP_SHUTDOWN;
        luaL_error(L, "stopped: the server is shutting down");
    }
    long long max = w->pool->opt.max_instructions;
    if (max > 0 && w->used > max) {
        w->stopped = STOP_INSTRUCTIONS;
        luaL_error(L, "stopped: the request ran more than %I instructions (--max-instructions)",
                   (lua_Integer)max);
    }
    if (w->pool->opt.max_seconds > 0 && now_seconds() > w->deadline) {
        w->stopped = STOP_TIME;
        luaL_error(L, "stopped: the request ran longer than %f seconds (--max-time)",
                   (lua_Number)w->pool->opt.max_seconds);
    }
}

/* Loads a state for `w` and keeps its handler. */
static lua_State *request_state(worker *w, int *handle, char **err) {
    lua_State *L = state_new(&w->pool->opt, "request", w, err);
    if (!L) return NULL;
    lua_getfield(L, -1, "handle");
    if (!lua_isfunction(L, -1)) {
        *err = dup_string("aeon.cli.worker.boot gave no handler");
        lua_close(L);
        return NULL;
    }
    *handle = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, 0);
    return L;
}

static void set_answer(worker_job *job, int status, const char *message) {
    job->status = status;
    job->answer = worker_error_body(message, job->request_id, &job->answer_len);
}

static void run(worker *w, worker_job *job) {
    lua_State *L = w->L;
    int top = lua_gettop(L);
    job->status = 0;
    job->answer = NULL;
    job->retry_after = 0;

    if (!lua_checkstack(L, 8)) {
        set_answer(job, 500, "internal error");
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, w->handle);
    lua_pushstring(L, job->kind == WORKER_COMMAND ? "command" : "query");
    lua_pushstring(L, job->name);
    if (job->body) lua_pushlstring(L, job->body, job->body_len);
    else lua_pushliteral(L, "");
    lua_createtable(L, 0, (int)job->nparams);
    for (size_t i = 0; i < job->nparams; i++) {
        lua_pushstring(L, job->params[i].value);
        lua_setfield(L, -2, job->params[i].name);
    }
    lua_pushstring(L, job->request_id);

    w->used = 0;
    w->stopped = STOP_NONE;
    w->deadline = now_seconds() + w->pool->opt.max_seconds;
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
    int st = host_call(L, 5, 3);
    lua_sethook(L, NULL, 0, 0);
    /* A transaction the handler left open (one stopped or abandoned never
     * reached its own end) must not carry into the next request. */
    int left_open = bind_end_transactions(L);

    if (st == LUA_OK) {
        size_t len = 0;
        const char *body = lua_tolstring(L, top + 2, &len);
        job->status = (int)lua_tointeger(L, top + 1);
        job->retry_after = (int)lua_tointeger(L, top + 3);
        if (job->status < 100 || job->status > 599 || !body) {
            set_answer(job, 500, "internal error");
        } else if ((job->answer = malloc(len + 1))) {
            memcpy(job->answer, body, len + 1);
            job->answer_len = len;
        } else {
            job->status = 503;
        }
    } else {
        /* An error outside the app's handler (aeon.cli.worker itself, or the hook
         * firing again after a handler swallowed its error). */
        char *text = error_text(L);
        log_failure(LOG_ERROR, "request failed", text, "request_id", job->request_id);
        free(text);
        set_answer(job, 500, "internal error");
    }

    const char *rolled_back = left_open ? "; the transaction it left open was rolled back, and "
                                          "nothing written in it is stored"
                                        : "";
    if (left_open) {
        log_line l;
        if (log_begin(&l, LOG_ERROR, "script error")) {
            log_str(&l, "request_id", job->request_id);
            log_str(&l, "error", "the handler left a transaction open: it was rolled back");
            log_end(&l);
        }
        if (w->stopped == STOP_NONE) {
            free(job->answer);
            set_answer(job, 500, "internal error: the handler left a transaction open: it was "
                                 "rolled back, and nothing written in it is stored");
        }
    }
    switch (w->stopped) {
    case STOP_INSTRUCTIONS:
    case STOP_TIME: {
        char msg[320];
        if (w->stopped == STOP_INSTRUCTIONS)
            snprintf(msg, sizeof msg,
                     "the handler was stopped: it ran more than %lld instructions, the budget "
                     "of one request%s",
                     w->pool->opt.max_instructions, rolled_back);
        else
            snprintf(msg, sizeof msg,
                     "the handler was stopped: it ran longer than %g seconds, the budget of one "
                     "request%s",
                     w->pool->opt.max_seconds, rolled_back);
        free(job->answer);
        set_answer(job, 500, msg);
        break;
    }
    case STOP_SHUTDOWN:
        free(job->answer);
        set_answer(job, 503, "the server is shutting down");
        break;
    case STOP_NONE:
        break;
    }
    if (job->status == 500) metrics_script_error();
    lua_settop(L, top);
    /* A handler that failed may have left cursors open; close them now
     * rather than whenever the collector gets round to it. */
    if (st != LUA_OK || w->stopped != STOP_NONE || job->status >= 500)
        lua_gc(L, LUA_GCCOLLECT, 0);
}

/* Swaps in a state loaded from the app's current files. A worker that
 * cannot load keeps serving with the state it has. */
static void reload(worker *w, unsigned generation) {
    char *err = NULL;
    int handle = LUA_NOREF;
    lua_State *L = request_state(w, &handle, &err);
    w->generation = generation;
    if (!L) {
        log_line l;
        if (log_begin(&l, LOG_ERROR, "worker kept the previous version of the app")) {
            log_int(&l, "worker", w->index);
            log_str(&l, "error", err);
            log_end(&l);
        }
        free(err);
        return;
    }
    lua_close(w->L);
    w->L = L;
    w->handle = handle;
    log_line l;
    if (log_begin(&l, LOG_DEBUG, "worker reloaded the app")) {
        log_int(&l, "worker", w->index);
        log_end(&l);
    }
}

static void *worker_main(void *arg) {
    worker *w = arg;
    worker_pool *p = w->pool;
    thread_stop = &p->stopping;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !atomic_load(&p->stopping) && w->generation == p->generation)
            pthread_cond_wait(&p->wake, &p->lock);
        if (w->generation != p->generation && !atomic_load(&p->stopping)) {
            unsigned generation = p->generation;
            pthread_mutex_unlock(&p->lock);
            reload(w, generation);
            pthread_mutex_lock(&p->lock);
            continue;
        }
        worker_job *job = p->head;
        if (!job) {
            if (atomic_load(&p->stopping)) break;
            continue;
        }
        p->head = job->next;
        if (!p->head) p->tail = NULL;
        p->depth--;
        pthread_mutex_unlock(&p->lock);

        if (atomic_load(&p->force)) set_answer(job, 503, "the server is shutting down");
        else run(w, job);
        job->done(job);

        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int worker_pool_start(const worker_options *opt, worker_pool **out, char **err) {
    *out = NULL;
    worker_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->workers = calloc((size_t)opt->workers, sizeof *p->workers))) {
        free(p);
        *err = dup_string("out of memory");
        return -1;
    }
    p->opt = *opt;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    for (int i = 0; i < opt->workers; i++) {
        worker *w = &p->workers[i];
        w->pool = p;
        w->index = i;
        w->handle = LUA_NOREF;
        if (!(w->L = request_state(w, &w->handle, err))) goto fail;
    }
    for (int i = 0; i < opt->workers; i++) {
        int rc = pthread_create(&p->workers[i].thread, NULL, worker_main, &p->workers[i]);
        if (rc) {
            *err = dup_string(strerror(rc));
            goto fail;
        }
        p->started++;
    }
    *out = p;
    return 0;
fail:
    worker_pool_free(p);
    return -1;
}

int worker_pool_submit(worker_pool *p, worker_job *job) {
    int status = -1;
    pthread_mutex_lock(&p->lock);
    if (!atomic_load(&p->stopping) && p->depth < p->opt.queue_limit) {
        job->next = NULL;
        if (p->tail) p->tail->next = job;
        else p->head = job;
        p->tail = job;
        p->depth++;
        pthread_cond_signal(&p->wake);
        status = 0;
    }
    pthread_mutex_unlock(&p->lock);
    return status;
}

size_t worker_pool_depth(worker_pool *p) {
    pthread_mutex_lock(&p->lock);
    size_t n = p->depth;
    pthread_mutex_unlock(&p->lock);
    return n;
}

void worker_pool_reload(worker_pool *p) {
    pthread_mutex_lock(&p->lock);
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
}

void worker_pool_force(worker_pool *p) {
    if (p) atomic_store(&p->force, true);
}

void worker_pool_stop(worker_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->stopping, true);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->started; i++) pthread_join(p->workers[i].thread, NULL);
    p->started = 0;
    for (int i = 0; i < p->opt.workers; i++) {
        if (p->workers[i].L) lua_close(p->workers[i].L);
        p->workers[i].L = NULL;
    }
}

void worker_pool_free(worker_pool *p) {
    if (!p) return;
    worker_pool_stop(p);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    free(p->workers);
    free(p);
}

/* ------------------------------------------------------------------ */
/* Projections                                                         */

typedef struct projection {
    projector *owner;   /* the set it belongs to */
    pthread_t thread;   /* its thread */
    char *name;         /* the projection it runs */
} projection;

struct projector {
    const worker_options *opt; /* borrowed from the server */
    atomic_bool stop;          /* runners should commit and return */
    atomic_bool force;         /* past the grace: interrupt their Lua */
    pthread_mutex_t lock;      /* guards running, with `changed` */
    pthread_cond_t changed;    /* a thread ended, or stop was asked */
    int running;               /* threads not yet ended */
    size_t n;                  /* projections */
    projection *p;             /* one per name */
};

static void projection_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    projector *owner = *(projector **)lua_getextraspace(L);
    if (owner && atomic_load(&owner->force))
        luaL_error(L, "stopped: the server is shutting down");
}

/* Sleeps up to `seconds`, waking early when the projector is stopped. */
static void pause_unless_stopped(projector *o, double seconds) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double end = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + seconds;
    ts.tv_sec = (time_t)end;
    ts.tv_nsec = (long)((end - (double)ts.tv_sec) * 1e9);
    pthread_mutex_lock(&o->lock);
    while (!atomic_load(&o->stop)) {
        if (pthread_cond_timedwait(&o->changed, &o->lock, &ts) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&o->lock);
}

static void *projection_main(void *arg) {
    projection *pr = arg;
    projector *o = pr->owner;
    thread_stop = &o->stop;
    double backoff = BACKOFF_MIN;
    while (!atomic_load(&o->stop)) {
        char *err = NULL;
        lua_State *L = state_new(o->opt, "projection", o, &err);
        if (!L) {
            log_failure(LOG_ERROR, "projection cannot start", err, "projection", pr->name);
            free(err);
            pause_unless_stopped(o, backoff);
            backoff = backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : backoff * 2;
            continue;
        }
        log_line l;
        if (log_begin(&l, LOG_INFO, "projection started")) {
            log_str(&l, "projection", pr->name);
            log_end(&l);
        }
        lua_sethook(L, projection_hook, LUA_MASKCOUNT, PROJECTION_HOOK_EVERY);
        lua_getfield(L, -1, "project");
        lua_pushstring(L, pr->name);
        double started = now_seconds();
        int st = host_call(L, 1, 0);
        if (st != LUA_OK) {
            err = error_text(L);
            log_failure(atomic_load(&o->stop) ? LOG_WARN : LOG_ERROR, "projection failed", err,
                        "projection", pr->name);
            free(err);
        }
        lua_close(L);
        if (atomic_load(&o->stop)) break;
        if (st == LUA_OK) {
            log_line e;
            if (log_begin(&e, LOG_INFO, "projection finished")) {
                log_str(&e, "projection", pr->name);
                log_end(&e);
            }
            break;
        }
        /* A runner that ran a good while before failing starts over quickly. */
        if (now_seconds() - started > BACKOFF_MAX) backoff = BACKOFF_MIN;
        pause_unless_stopped(o, backoff);
        backoff = backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : backoff * 2;
    }
    pthread_mutex_lock(&o->lock);
    o->running--;
    pthread_cond_broadcast(&o->changed);
    pthread_mutex_unlock(&o->lock);
    return NULL;
}

int projector_start(const worker_options *opt, char *const *names, size_t n, projector **out,
                    char **err) {
    *out = NULL;
    projector *o = calloc(1, sizeof *o);
    if (!o || (n && !(o->p = calloc(n, sizeof *o->p)))) {
        free(o);
        *err = dup_string("out of memory");
        return -1;
    }
    o->opt = opt;
    pthread_mutex_init(&o->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&o->changed, &attr);
    pthread_condattr_destroy(&attr);
    for (size_t i = 0; i < n; i++) {
        projection *pr = &o->p[i];
        pr->owner = o;
        if (!(pr->name = dup_string(names[i]))) {
            *err = dup_string("out of memory");
            goto fail;
        }
        pthread_mutex_lock(&o->lock);
        int rc = pthread_create(&pr->thread, NULL, projection_main, pr);
        if (!rc) o->running++;
        pthread_mutex_unlock(&o->lock);
        if (rc) {
            free(pr->name);
            pr->name = NULL;
            *err = dup_string(strerror(rc));
            goto fail;
        }
        o->n++;
    }
    *out = o;
    return 0;
fail:
    projector_stop(o, 0);
    return -1;
}

int projector_running(projector *o) {
    if (!o) return 0;
    pthread_mutex_lock(&o->lock);
    int n = o->running;
    pthread_mutex_unlock(&o->lock);
    return n;
}

void projector_stop(projector *o, double grace) {
    if (!o) return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double end = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + grace;
    ts.tv_sec = (time_t)end;
    ts.tv_nsec = (long)((end - (double)ts.tv_sec) * 1e9);

    pthread_mutex_lock(&o->lock);
    atomic_store(&o->stop, true);
    pthread_cond_broadcast(&o->changed);
    while (o->running > 0) {
        if (pthread_cond_timedwait(&o->changed, &o->lock, &ts) == ETIMEDOUT) break;
    }
    if (o->running > 0) {
        log_line l;
        if (log_begin(&l, LOG_WARN, "projections did not stop in time; interrupting them")) {
            log_int(&l, "running", o->running);
            log_end(&l);
        }
        atomic_store(&o->force, true);
    }
    pthread_mutex_unlock(&o->lock);
    for (size_t i = 0; i < o->n; i++) {
        pthread_join(o->p[i].thread, NULL);
        free(o->p[i].name);
    }
    pthread_cond_destroy(&o->changed);
    pthread_mutex_destroy(&o->lock);
    free(o->p);
    free(o);
}
