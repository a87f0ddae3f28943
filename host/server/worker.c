/*
 * worker.c - request workers and projection threads (see worker.h).
 *
 * Every thread here owns one Lua state at a time, made by state_new: the
 * standard libraries, the Lua library's paths, aeon.core and aeon.host
 * preloaded, then aeon.cli.worker's boot(config, role), which loads the app and
 * (except for a probe) opens the thread's own store connection. The state's
 * extra space points at the thread's record, so the count hook can find its
 * budget without a lookup; the hook is set before the app loads, so every
 * coroutine inherits it. Each state allocates through heap_alloc, which
 * holds it to --max-memory. A watchdog thread per pool answers for a worker
 * stuck in C past its deadline and puts a fresh worker in its slot; the
 * stuck thread ends, discarding its work, once back in Lua. At shutdown it
 * leaves such a worker (in a handler or loading the app) to the process
 * exit, and projector_stop leaves a projection stuck in C the same way, so
 * that shutdown never waits on C without bound.
 */
#include "worker.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
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

/* A Lua state's memory: what it holds and the most it may (--max-memory). */
typedef struct heap {
    size_t used;   /* bytes the state holds */
    size_t limit;  /* at most, 0: no limit */
    bool exceeded; /* an allocation was refused since this was cleared */
} heap;

/* What a thread's stop flag is, for aeon.host.stopping(). */
static _Thread_local const atomic_bool *thread_stop;

bool worker_stopping(void) { return thread_stop && atomic_load(thread_stop); }

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The time `seconds` from now on the monotonic clock, for a timed wait
 * on a condition variable made by cond_init_monotonic. */
static struct timespec monotonic_after(double seconds) {
    double at = now_seconds() + seconds;
    struct timespec ts;
    ts.tv_sec = (time_t)at;
    ts.tv_nsec = (long)((at - (double)ts.tv_sec) * 1e9);
    return ts;
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
static void log_failure(log_level level, const char *msg, const char *error, const char *field,
                        const char *value) {
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

/* Every allocation of a state goes through here, so that --max-memory holds
 * whatever the app does: past the limit the allocation fails and Lua raises
 * its memory error, which unwinds the handler like any error. Only the
 * state's own thread allocates, so no lock. */
static void *heap_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    heap *h = ud;
    size_t old = ptr ? osize : 0; /* without ptr, osize is a type tag */
    if (nsize == 0) {
        free(ptr);
        h->used -= old;
        return NULL;
    }
    if (h->limit && nsize > old && h->used - old + nsize > h->limit) {
        h->exceeded = true;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p) h->used = h->used - old + nsize;
    return p;
}

/* Lua's own panic function, for a state made with lua_newstate. */
static int panic(lua_State *L) {
    const char *msg = lua_tostring(L, -1);
    log_error_msg(LOG_ERROR, "unprotected error in a Lua state", msg ? msg : "(not a string)");
    return 0;
}

/* A new state for `role` ("request", "projection" or "probe") with boot's
 * answer table on top of its stack, `self` in its extra space, its memory
 * counted in `h` (limited to --max-memory) and `hook` (if any) set before
 * the app loads, so every coroutine the app makes, even while loading,
 * inherits it. NULL with *err (malloc'd) when the app or the store would
 * not load. */
static lua_State *state_new(const worker_options *opt, const char *role, void *self, heap *h,
                            lua_Hook hook, int every, char **err) {
    *h = (heap){.limit = opt->max_memory};
    lua_State *L = lua_newstate(heap_alloc, h);
    if (!L) {
        *err = dup_string("cannot create a Lua state: out of memory");
        return NULL;
    }
    lua_atpanic(L, panic);
    *(void **)lua_getextraspace(L) = self;
    if (hook) lua_sethook(L, hook, LUA_MASKCOUNT, every);
    lua_pushcfunction(L, boot);
    lua_pushlightuserdata(L, (void *)opt);
    lua_pushstring(L, role);
    if (host_call(L, 2, 1) != LUA_OK) {
        *err = h->exceeded
                   ? dup_string("loading the app went past its memory budget (--max-memory)")
                   : error_text(L);
        lua_close(L);
        return NULL;
    }
    h->exceeded = false;
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

/* A load (start-up and every --watch reload) runs under the budget of a
 * request, and stops for SIGINT/SIGTERM, which wait, blocked, for the
 * thread that loads: so a file that loops never keeps the server from
 * shutting down. */
typedef struct load_budget {
    const worker_options *opt; /* the budgets */
    long long used;            /* instructions so far */
    double deadline;           /* when its time is up */
    char why[160];             /* why it was stopped, "" until then */
} load_budget;

#define LOAD_HOOK_EVERY 10000

static void load_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    load_budget *b = *(load_budget **)lua_getextraspace(L);
    if (!b) return;
    if (!*b->why) {
        sigset_t pending;
        b->used += LOAD_HOOK_EVERY;
        long long max = b->opt->max_instructions;
        if (sigpending(&pending) == 0 &&
            (sigismember(&pending, SIGTERM) || sigismember(&pending, SIGINT)))
            snprintf(b->why, sizeof b->why,
                     "loading the app was stopped: the server is shutting down");
        else if (max > 0 && b->used > max)
            snprintf(b->why, sizeof b->why,
                     "loading the app was stopped: it ran more than %lld instructions "
                     "(--max-instructions)",
                     max);
        else if (b->opt->max_seconds > 0 && now_seconds() > b->deadline)
            snprintf(b->why, sizeof b->why,
                     "loading the app was stopped: it ran longer than %g seconds (--max-time)",
                     b->opt->max_seconds);
        if (!*b->why) return;
    }
    /* From now on at every instruction, so that code catching the error
     * cannot run on. */
    lua_sethook(L, load_hook, LUA_MASKCOUNT, 1);
    luaL_error(L, "%s", b->why);
}

int worker_probe(const worker_options *opt, worker_app_info *info, char **err) {
    *info = (worker_app_info){0};
    heap h;
    load_budget b = {.opt = opt, .deadline = now_seconds() + opt->max_seconds};
    lua_State *L = state_new(opt, "probe", &b, &h, load_hook, LOAD_HOOK_EVERY, err);
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
    worker_pool *pool;   /* the pool it serves */
    pthread_t thread;    /* its thread (detached) */
    lua_State *L;        /* its state; only this thread touches it */
    int handle;          /* registry ref of aeon.cli.worker's handler */
    unsigned generation; /* the app version its state was loaded from */
    heap heap;           /* its state's memory */
    bool active;         /* a job runs: the hook counts */
    long long used;      /* instructions the current job has run */
    double deadline;     /* when the current job's time is up */
    stop_reason stopped; /* why the hook stopped the current job */
    worker_job *job;     /* (pool lock) the job it runs, until answered */
    bool loading;        /* (pool lock) making a state (a replacement's
                               first, or a reload's) */
    bool taken;          /* (pool lock) the watchdog answered its job and
                               replaced it, or gave up on its load at
                               shutdown: it ends once back from C */
    atomic_bool broken;  /* its store is closed and will not reopen */
    int index;           /* for logs */
} worker;

/* The request worker this thread is, for worker_set_broken. */
static _Thread_local worker *this_worker;

struct worker_pool {
    worker_options opt;   /* copied; strings borrowed */
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t wake;  /* a job, a reload or the stop */
    pthread_cond_t ended; /* a thread ended */
    pthread_cond_t tick;  /* wakes the watchdog to stop (monotonic) */
    worker_job *head;     /* oldest queued job */
    worker_job *tail;     /* newest queued job */
    size_t depth;         /* jobs queued */
    unsigned generation;  /* bumped by worker_pool_reload */
    atomic_bool stopping; /* no more jobs; finish the queue */
    atomic_bool force;    /* past the deadline: stop handlers */
    double force_at;      /* when force was set */
    int alive;            /* serving threads not yet ended */
    int stuck;            /* threads taken out, still in C */
    bool watching;        /* the watchdog runs */
    bool watch_stop;      /* the watchdog should end */
    pthread_t watchdog;   /* its thread */
    worker **workers;     /* opt.workers slots */
};

/* A worker that holds its job this long past its deadline (or past the
 * shutdown deadline) is not getting back to Lua, where the hook would stop
 * it: it is stuck in C (a pattern that backtracks for ever, a huge
 * string.rep). How often the watchdog looks. */
#define STUCK_AFTER 0.5
#define WATCH_EVERY 0.1
/* Allocations this large or larger are mapped on their own, so that they
 * go back to the system when freed. */
#define MMAP_THRESHOLD (1024 * 1024)
/* A replacement that cannot load its state tries again after this long. */
#define RETRY_STATE 1.0

/* What a worker answers, kept apart from the job until it is known that
 * the job is still its to answer. */
typedef struct answer {
    int status;
    char *body;
    size_t len;
    int retry_after;
} answer;

/* Stops a handler past its budget. The first time, it raises, so the
 * handler unwinds as from any error and its traceback is logged. A handler
 * that catches that error and runs on is, the next time, yielded out of:
 * aeon.cli.worker runs every handler in a coroutine, which it then abandons.
 * The hook is set for the state's life and inherited by every coroutine;
 * between jobs it does nothing. */
static void budget_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    worker *w = *(worker **)lua_getextraspace(L);
    if (!w || !w->active) return;
    w->used += HOOK_EVERY;
    if (w->stopped != STOP_NONE) {
        host_stop_again(L);
        return;
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

/* The watchdog took this worker out (it ends as soon as it is back). */
static bool is_taken(worker *w) {
    pthread_mutex_lock(&w->pool->lock);
    bool taken = w->taken;
    pthread_mutex_unlock(&w->pool->lock);
    return taken;
}

/* Loads a state for `w`, under a request's budget, and keeps its handler.
 * At shutdown the watchdog may give up on a load stuck in C: then NULL, with
 * the worker taken out. */
static lua_State *request_state(worker *w, int *handle, heap *h, char **err) {
    worker_pool *p = w->pool;
    pthread_mutex_lock(&p->lock);
    w->used = 0;
    w->stopped = STOP_NONE;
    w->deadline = now_seconds() + p->opt.max_seconds;
    w->loading = true;
    pthread_mutex_unlock(&p->lock);
    w->active = true;
    lua_State *L = state_new(&p->opt, "request", w, h, budget_hook, HOOK_EVERY, err);
    w->active = false;
    pthread_mutex_lock(&p->lock);
    w->loading = false;
    bool taken = w->taken;
    pthread_mutex_unlock(&p->lock);
    /* The watchdog gave up on this load at shutdown: nothing of it is
     * wanted. */
    if (taken && L) {
        lua_close(L);
        L = NULL;
        *err = dup_string("the server is shutting down");
    }
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

static void set_answer(answer *a, int status, const char *message, const char *request_id) {
    free(a->body);
    a->status = status;
    a->body = worker_error_body(message, request_id, &a->len);
}

/* A condition variable whose timed waits run on the monotonic clock, so
 * a change of the wall clock neither cuts nor stretches them. */
static void cond_init_monotonic(pthread_cond_t *c) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(c, &attr);
    pthread_condattr_destroy(&attr);
}

/* Gives the state back its memory after a job that failed: a full
 * collection closes what the handler left open, and malloc_trim hands the
 * freed pages to the system, so a request that built a huge string does
 * not leave the process that big. */
static void recover(worker *w, bool trim) {
    lua_gc(w->L, LUA_GCCOLLECT, 0);
    if (trim) malloc_trim(0);
}

/* Pushes the handler and its five arguments: kind, name, body, params and
 * the request id. False when the stack cannot grow. */
static bool push_job(lua_State *L, int handle, const worker_job *job, const char *id) {
    if (!lua_checkstack(L, 8)) return false;
    lua_rawgeti(L, LUA_REGISTRYINDEX, handle);
    lua_pushstring(L, job->kind == WORKER_COMMAND ? "command" : "query");
    lua_pushstring(L, job->name);
    if (job->body)
        lua_pushlstring(L, job->body, job->body_len);
    else
        lua_pushliteral(L, "");
    lua_createtable(L, 0, (int)job->nparams);
    for (size_t i = 0; i < job->nparams; i++) {
        lua_pushstring(L, job->params[i].value);
        lua_setfield(L, -2, job->params[i].name);
    }
    lua_pushstring(L, id);
    return true;
}

/* The answer from what the call left above `top`: status, body and
 * retry_after when it returned (st is LUA_OK), else an internal error. */
static void take_answer(lua_State *L, int top, int st, const char *id, answer *out) {
    if (st != LUA_OK) {
        /* An error outside the app's handler (aeon.cli.worker itself, or the hook
         * firing again after a handler swallowed its error). */
        char *text = error_text(L);
        log_failure(LOG_ERROR, "request failed", text, "request_id", id);
        free(text);
        set_answer(out, 500, "internal error", id);
        return;
    }
    size_t len = 0;
    const char *body = lua_tolstring(L, top + 2, &len);
    out->status = (int)lua_tointeger(L, top + 1);
    out->retry_after = (int)lua_tointeger(L, top + 3);
    if (out->status < 100 || out->status > 599 || !body) {
        set_answer(out, 500, "internal error", id);
    } else if ((out->body = malloc(len + 1))) {
        memcpy(out->body, body, len + 1);
        out->len = len;
    } else {
        out->status = 503;
    }
}

/* A transaction the handler left open was rolled back: logged, and the
 * answer, unless the handler was stopped (that answer says more). */
static void answer_left_open(const worker *w, const char *id, answer *out) {
    log_line l;
    if (log_begin(&l, LOG_ERROR, "script error")) {
        log_str(&l, "request_id", id);
        log_str(&l, "error", "the handler left a transaction open: it was rolled back");
        log_end(&l);
    }
    if (w->stopped == STOP_NONE)
        set_answer(out, 500,
                   "internal error: the handler left a transaction open: it was "
                   "rolled back, and nothing written in it is stored",
                   id);
}

/* The answer of a handler the hook stopped (its budget, the shutdown), or
 * that went over the memory budget. */
static void answer_stopped(const worker *w, bool memory, bool left_open, const char *id,
                           answer *out) {
    const char *rolled_back = left_open ? "; the transaction it left open was rolled back, and "
                                          "nothing written in it is stored"
                                        : "";
    char msg[320];
    switch (w->stopped) {
    case STOP_INSTRUCTIONS:
    case STOP_TIME:
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
        set_answer(out, 500, msg, id);
        break;
    case STOP_SHUTDOWN:
        set_answer(out, 503, "the server is shutting down", id);
        break;
    case STOP_NONE:
        if (memory) {
            log_line l;
            if (log_begin(&l, LOG_ERROR, "memory budget exceeded")) {
                log_str(&l, "request_id", id);
                log_int(&l, "max_memory", (long long)w->pool->opt.max_memory);
                log_end(&l);
            }
            set_answer(out, 500, "memory budget exceeded (--max-memory)", id);
        }
        break;
    }
}

/* Runs one job on the worker's state, under the request's budgets: push
 * it, call the handler, take its answer, then say what the budgets or a
 * transaction left open changed of it. */
static void run(worker *w, const worker_job *job, answer *out) {
    lua_State *L = w->L;
    int top = lua_gettop(L);
    /* The job may be answered by the watchdog while this runs; nothing of
     * it is read once the handler starts. */
    char id[64];
    snprintf(id, sizeof id, "%s", job->request_id);
    *out = (answer){0};
    if (!push_job(L, w->handle, job, id)) {
        set_answer(out, 500, "internal error", id);
        return;
    }

    w->used = 0;
    w->stopped = STOP_NONE;
    w->heap.exceeded = false;
    w->deadline = now_seconds() + w->pool->opt.max_seconds;
    w->active = true;
    int st = host_call(L, 5, 3);
    w->active = false;
    bool memory = w->heap.exceeded;
    /* A transaction the handler left open (one stopped or abandoned never
     * reached its own end) must not carry into the next request. */
    int left_open = bind_end_transactions(L);

    take_answer(L, top, st, id, out);
    if (left_open) answer_left_open(w, id, out);
    answer_stopped(w, memory, left_open, id, out);
    if (out->status == 500) metrics_script_error();
    lua_settop(L, top);
    w->heap.exceeded = false;
    /* A handler that failed may have left cursors open; close them now
     * rather than whenever the collector gets round to it. */
    if (st != LUA_OK || w->stopped != STOP_NONE || out->status >= 500) recover(w, memory);
}

/* Swaps in a state loaded from the app's current files. A worker that
 * cannot load keeps serving with the state it has. */
static void reload(worker *w, unsigned generation) {
    char *err = NULL;
    int handle = LUA_NOREF;
    heap *h = malloc(sizeof *h);
    lua_State *L = h ? request_state(w, &handle, h, &err) : NULL;
    w->generation = generation;
    if (!L) {
        log_line l;
        if (!is_taken(w) &&
            log_begin(&l, LOG_ERROR, "worker kept the previous version of the app")) {
            log_int(&l, "worker", w->index);
            log_str(&l, "error", err ? err : "out of memory");
            log_end(&l);
        }
        free(err);
        free(h);
        return;
    }
    /* The new state counts in its own heap record; it takes the worker's
     * once the old state is closed. */
    lua_close(w->L);
    w->heap = *h;
    lua_setallocf(L, heap_alloc, &w->heap);
    free(h);
    w->L = L;
    w->handle = handle;
    log_line l;
    if (log_begin(&l, LOG_DEBUG, "worker reloaded the app")) {
        log_int(&l, "worker", w->index);
        log_end(&l);
    }
}

static void deliver(worker_job *job, answer *a) {
    job->status = a->status;
    job->answer = a->body;
    job->answer_len = a->len;
    job->retry_after = a->retry_after;
    if (!job->answer) job->status = 503;
    job->done(job);
}

/* A replacement makes its own state, trying again while it cannot (a store
 * that will not open); 0 once it has one, -1 when the pool stops first. */
static int fresh_state(worker *w) {
    worker_pool *p = w->pool;
    while (!w->L) {
        char *err = NULL;
        w->L = request_state(w, &w->handle, &w->heap, &err);
        if (w->L) break;
        if (is_taken(w)) {
            free(err);
            return -1;
        }
        log_error_msg(LOG_ERROR, "a replacement worker cannot load the app", err);
        free(err);
        atomic_store(&w->broken, true);
        for (double until = now_seconds() + RETRY_STATE; now_seconds() < until;) {
            if (atomic_load(&p->stopping)) return -1;
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    atomic_store(&w->broken, false);
    return 0;
}

/* Ends a thread: its state closed on it, the pool told. A thread the
 * watchdog took out frees its record too, since its slot has a new one. */
static void *worker_end(worker *w, bool taken) {
    worker_pool *p = w->pool;
    if (w->L) lua_close(w->L);
    w->L = NULL;
    pthread_mutex_lock(&p->lock);
    if (taken)
        p->stuck--;
    else
        p->alive--;
    pthread_cond_broadcast(&p->ended);
    pthread_mutex_unlock(&p->lock);
    if (taken) free(w);
    return NULL;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    worker_pool *p = w->pool;
    thread_stop = &p->stopping;
    this_worker = w;
    if (fresh_state(w) != 0) return worker_end(w, is_taken(w));
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !atomic_load(&p->stopping) && w->generation == p->generation)
            pthread_cond_wait(&p->wake, &p->lock);
        if (w->generation != p->generation && !atomic_load(&p->stopping)) {
            unsigned generation = p->generation;
            pthread_mutex_unlock(&p->lock);
            reload(w, generation);
            pthread_mutex_lock(&p->lock);
            if (w->taken) {
                pthread_mutex_unlock(&p->lock);
                return worker_end(w, true);
            }
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
        w->job = job;
        w->deadline = now_seconds() + p->opt.max_seconds;
        pthread_mutex_unlock(&p->lock);

        answer a = {0};
        if (atomic_load(&p->force))
            set_answer(&a, 503, "the server is shutting down", job->request_id);
        else
            run(w, job, &a);

        pthread_mutex_lock(&p->lock);
        if (w->taken) {
            pthread_mutex_unlock(&p->lock);
            free(a.body);
            return worker_end(w, true);
        }
        w->job = NULL;
        pthread_mutex_unlock(&p->lock);
        deliver(job, &a);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return worker_end(w, false);
}

int worker_detach(pthread_t *thread, void *(*main)(void *), void *arg) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(thread, &attr, main, arg);
    pthread_attr_destroy(&attr);
    return rc;
}

static int start_thread(worker *w) { return worker_detach(&w->thread, worker_main, w); }

/* Under the lock: answers the job of the worker in slot i with 503 (a
 * worker stuck loading the app has none), takes the worker out (its thread
 * ends when it gets back from C) and, unless the pool is shutting down,
 * puts a fresh one in its slot, which makes its own state and store. */
static void take_out(worker_pool *p, int i, bool shutdown) {
    worker *w = p->workers[i];
    worker_job *job = w->job;
    w->job = NULL;
    w->taken = true;
    p->alive--;
    p->stuck++;
    log_line l;
    if (log_begin(&l, LOG_ERROR,
                  !job       ? "worker stuck loading the app at shutdown; leaving it"
                  : shutdown ? "worker stuck at shutdown; leaving it"
                             : "worker stuck past its time budget; replacing it")) {
        log_int(&l, "worker", w->index);
        if (job) log_str(&l, "request_id", job->request_id);
        log_end(&l);
    }
    worker *fresh = shutdown ? NULL : calloc(1, sizeof *fresh);
    p->workers[i] = fresh;
    if (fresh) {
        fresh->pool = p;
        fresh->index = w->index;
        fresh->handle = LUA_NOREF;
        fresh->generation = p->generation;
        if (start_thread(fresh) == 0) {
            p->alive++;
        } else {
            log_msg(LOG_ERROR, "cannot start a replacement worker");
            free(fresh);
            p->workers[i] = NULL;
        }
    }
    /* worker_pool_stop may be waiting for this slot's thread: it is no
     * longer waited for. */
    pthread_cond_broadcast(&p->ended);
    if (!job) return;
    answer a = {0};
    set_answer(&a, 503,
               shutdown ? "the server is shutting down"
                        : "the handler is stuck past its time budget (--max-time); its worker "
                          "was replaced",
               job->request_id);
    metrics_script_error();
    deliver(job, &a); /* resume is safe from any thread */
}

/* Watches for workers stuck in C past their deadline. The hook cannot stop
 * them (it runs only between Lua instructions); answering for them and
 * replacing them keeps the pool serving. */
static void *watchdog_main(void *arg) {
    worker_pool *p = arg;
    pthread_mutex_lock(&p->lock);
    while (!p->watch_stop) {
        struct timespec ts = monotonic_after(WATCH_EVERY);
        pthread_cond_timedwait(&p->tick, &p->lock, &ts);
        double now = now_seconds();
        bool force = atomic_load(&p->force) && now > p->force_at + STUCK_AFTER;
        for (int i = 0; i < p->opt.workers; i++) {
            worker *w = p->workers[i];
            if (!w || w->taken) continue;
            /* A load stuck in C is left alone while serving (its slot keeps
             * its old state or stays empty), and given up on at shutdown. */
            if (w->loading && force)
                take_out(p, i, true);
            else if (w->job &&
                     (force || (p->opt.max_seconds > 0 && now > w->deadline + STUCK_AFTER)))
                take_out(p, i, force || atomic_load(&p->stopping));
        }
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
    /* A fixed threshold: glibc would otherwise raise it after the first
     * large free (up to 32 MiB), and a handler's huge strings would then
     * come from the heap and stay in the process after it failed. */
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->ended, NULL);
    cond_init_monotonic(&p->tick);
    for (int i = 0; i < opt->workers; i++) {
        worker *w = calloc(1, sizeof *w);
        if (!w) {
            *err = dup_string("out of memory");
            goto fail;
        }
        p->workers[i] = w;
        w->pool = p;
        w->index = i;
        w->handle = LUA_NOREF;
        if (!(w->L = request_state(w, &w->handle, &w->heap, err))) goto fail;
    }
    for (int i = 0; i < opt->workers; i++) {
        pthread_mutex_lock(&p->lock);
        int rc = start_thread(p->workers[i]);
        if (!rc) p->alive++;
        pthread_mutex_unlock(&p->lock);
        if (rc) {
            *err = dup_string(strerror(rc));
            goto fail;
        }
    }
    int rc = pthread_create(&p->watchdog, NULL, watchdog_main, p);
    if (rc) {
        *err = dup_string(strerror(rc));
        goto fail;
    }
    p->watching = true;
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
        if (p->tail)
            p->tail->next = job;
        else
            p->head = job;
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

void worker_set_broken(bool broken) {
    if (this_worker) atomic_store(&this_worker->broken, broken);
}

void worker_pool_health(worker_pool *p, int *stuck, int *broken) {
    *stuck = *broken = 0;
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    *stuck = p->stuck;
    for (int i = 0; i < p->opt.workers; i++)
        *broken += !p->workers[i] || atomic_load(&p->workers[i]->broken);
    pthread_mutex_unlock(&p->lock);
}

void worker_pool_force(worker_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    p->force_at = now_seconds();
    atomic_store(&p->force, true);
    pthread_mutex_unlock(&p->lock);
}

/* Waits for the serving threads to end (each closes its own state); a
 * thread stuck in C is answered for and left by the watchdog once the pool
 * is forced, so this never waits on one. */
void worker_pool_stop(worker_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->stopping, true);
    pthread_cond_broadcast(&p->wake);
    while (p->alive > 0) pthread_cond_wait(&p->ended, &p->lock);
    p->watch_stop = true;
    pthread_cond_signal(&p->tick);
    bool watching = p->watching;
    p->watching = false;
    pthread_mutex_unlock(&p->lock);
    if (watching) pthread_join(p->watchdog, NULL);
}

int worker_pool_free(worker_pool *p) {
    if (!p) return 0;
    worker_pool_stop(p);
    pthread_mutex_lock(&p->lock);
    int stuck = p->stuck;
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->opt.workers; i++) {
        worker *w = p->workers[i];
        if (w && w->L) lua_close(w->L); /* made, never started */
        free(w);
        p->workers[i] = NULL;
    }
    /* A thread still stuck in C holds the pool; it is left to the exit. */
    if (stuck > 0) {
        log_line l;
        if (log_begin(&l, LOG_WARN, "leaving workers stuck in C to the process exit")) {
            log_int(&l, "workers", stuck);
            log_end(&l);
        }
        return stuck;
    }
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->ended);
    pthread_cond_destroy(&p->tick);
    pthread_mutex_destroy(&p->lock);
    free(p->workers);
    free(p);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Projections                                                         */

typedef struct projection {
    projector *owner; /* the set it belongs to */
    pthread_t thread; /* its thread */
    char *name;       /* the projection it runs */
    bool ended;       /* (owner's lock) its thread is done with it */
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
    if (owner && atomic_load(&owner->force)) luaL_error(L, "stopped: the server is shutting down");
}

/* Sleeps up to `seconds`, waking early when the projector is stopped. */
static void pause_unless_stopped(projector *o, double seconds) {
    struct timespec ts = monotonic_after(seconds);
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
        heap h;
        lua_State *L =
            state_new(o->opt, "projection", o, &h, projection_hook, PROJECTION_HOOK_EVERY, &err);
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
    pr->ended = true;
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
    cond_init_monotonic(&o->changed);
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

/* Waits on `o->changed` (its lock held) until no thread runs or `seconds`
 * pass. */
static void wait_running(projector *o, double seconds) {
    struct timespec ts = monotonic_after(seconds);
    while (o->running > 0) {
        if (pthread_cond_timedwait(&o->changed, &o->lock, &ts) == ETIMEDOUT) break;
    }
}

int projector_stop(projector *o, double grace) {
    if (!o) return 0;
    pthread_mutex_lock(&o->lock);
    atomic_store(&o->stop, true);
    pthread_cond_broadcast(&o->changed);
    wait_running(o, grace);
    if (o->running > 0) {
        log_line l;
        if (log_begin(&l, LOG_WARN, "projections did not stop in time; interrupting them")) {
            log_int(&l, "running", o->running);
            log_end(&l);
        }
        atomic_store(&o->force, true);
        /* Interrupted Lua stops at once; one still running after this is in
         * C, where the hook cannot reach it. */
        wait_running(o, STUCK_AFTER * 2);
    }
    int stuck = o->running;
    for (size_t i = 0; i < o->n; i++) {
        if (o->p[i].ended) continue;
        log_line l;
        if (log_begin(&l, LOG_ERROR, "projection stuck in C at shutdown; leaving it")) {
            log_str(&l, "projection", o->p[i].name);
            log_end(&l);
        }
    }
    pthread_mutex_unlock(&o->lock);
    if (stuck > 0) {
        /* Its thread still uses the set: both are left to the process
         * exit (the ones that ended are released). */
        for (size_t i = 0; i < o->n; i++) pthread_detach(o->p[i].thread);
        return stuck;
    }
    for (size_t i = 0; i < o->n; i++) {
        pthread_join(o->p[i].thread, NULL);
        free(o->p[i].name);
    }
    pthread_cond_destroy(&o->changed);
    pthread_mutex_destroy(&o->lock);
    free(o->p);
    free(o);
    return 0;
}
