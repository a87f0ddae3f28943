/*
 * worker.h - the threads that run app code: request workers and projection
 * runners, each with its own Lua state and its own store connection.
 *
 * Provides a pool of request workers fed by a bounded queue of jobs (the HTTP
 * thread submits a job and is called back when its answer is ready), the
 * projection threads, and worker_probe, which loads the app into a
 * throwaway state to learn its handlers and files. Lua states are never
 * shared between threads: every state is made by state_new, used by one
 * thread, and closed by it.
 *
 * The Lua side of every state is aeon.cli.worker's boot(config, role); every call
 * into it goes through host_call. Request handlers run under a budget: a
 * count hook stops a handler that runs past --max-instructions or
 * --max-time, every state's allocator refuses memory past --max-memory,
 * and a watchdog answers for a worker stuck in C past its deadline and
 * replaces it with a fresh one. Uses host.h, bind.h (aeon.core), server.h (aeon.host), log.h,
 * metrics.h and pthreads.
 */
#ifndef AEON_WORKER_H
#define AEON_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum worker_kind {
    WORKER_COMMAND, /* POST /commands/NAME */
    WORKER_QUERY,   /* GET /queries/NAME */
} worker_kind;

/* One ?name=value pair of a query. */
typedef struct worker_param {
    const char *name;  /* decoded name */
    const char *value; /* decoded value; "" when absent */
} worker_param;

/* A request handed to a worker. The submitter owns it; the worker fills the
 * answer and calls done, after which it never touches the job again. */
typedef struct worker_job {
    worker_kind kind;                     /* command or query */
    const char *name;                     /* the handler named in the URL */
    const char *body;                     /* command: the body (JSON text) or NULL */
    size_t body_len;                      /* bytes in body */
    const worker_param *params;           /* query: its parameters */
    size_t nparams;                       /* entries in params */
    const char *request_id;               /* for answers and logs */
    int status;                           /* answer: HTTP status */
    char *answer;                         /* answer: JSON body, malloc'd */
    size_t answer_len;                    /* bytes in answer */
    int retry_after;                      /* answer: seconds for Retry-After, 0: none */
    void (*done)(struct worker_job *job); /* called on the worker's thread */
    void *ctx;                            /* the submitter's, untouched */
    struct worker_job *next;              /* the queue's link */
} worker_job;

/* What every Lua state needs to load the app. Strings are borrowed: they
 * must outlive the pool and the projections. */
typedef struct worker_options {
    const char *app_path;       /* the app file */
    const char *store_uri;      /* every state opens its own connection */
    const char *lua_path;       /* package.path for new states */
    const char *lua_cpath;      /* package.cpath for new states */
    int workers;                /* request workers */
    size_t queue_limit;         /* jobs waiting at most; more are refused */
    long long max_instructions; /* per request, 0: no limit */
    double max_seconds;         /* per request, 0: no limit */
    size_t max_memory;          /* bytes per Lua state, 0: no limit */
} worker_options;

/* What loading the app says about it; every string malloc'd. */
typedef struct worker_app_info {
    char *name;          /* the app's name */
    char **commands;     /* command names, sorted */
    size_t ncommands;    /* entries in commands */
    char **queries;      /* query names, sorted */
    size_t nqueries;     /* entries in queries */
    char **projections;  /* projections the runner can run, sorted */
    size_t nprojections; /* entries in projections */
    char **files;        /* the Lua files the app loaded, for --watch */
    size_t nfiles;       /* entries in files */
} worker_app_info;

/* Loads the app into a state with no store and reads its names and files.
 * 0 on success; -1 with *err (malloc'd, with the traceback) when it does not
 * load. */
int worker_probe(const worker_options *opt, worker_app_info *info, char **err);

void worker_app_info_free(worker_app_info *info);

/* A JSON error body {"error": message, "request_id": id}, malloc'd. */
char *worker_error_body(const char *message, const char *request_id, size_t *len);

/* True on a thread whose runner should stop: a projection being stopped, or
 * a worker of a pool that is shutting down. aeon.host's stopping(). */
bool worker_stopping(void);

/* ------------------------------------------------------------------ */

typedef struct worker_pool worker_pool;

/* Makes every worker's state (so an app or store that fails, fails here,
 * before anything is served), then starts the threads. */
int worker_pool_start(const worker_options *opt, worker_pool **out, char **err);

/* Queues a job. -1 when the queue is full or the pool is stopping: the
 * caller answers 503 itself. */
int worker_pool_submit(worker_pool *p, worker_job *job);

/* Jobs waiting for a worker. */
size_t worker_pool_depth(worker_pool *p);

/* The app's files changed and load: each worker makes a new state between
 * jobs, keeping its old one if the new one fails. */
void worker_pool_reload(worker_pool *p);

/* Workers taken out while stuck in C (replaced, their threads not yet
 * back), and slots that cannot serve (a store that will not reopen, a
 * replacement that cannot load). */
void worker_pool_health(worker_pool *p, int *stuck, int *broken);

/* On a request worker's thread: its store is closed and would not reopen
 * (true), or serves again (false). aeon.host's worker_broken(). */
void worker_set_broken(bool broken);

/* Past the shutdown deadline: handlers still running are stopped and queued
 * jobs are answered 503 without running. */
void worker_pool_force(worker_pool *p);

/* Runs the jobs already queued, then waits for the threads, which close
 * their states (never for one stuck in C once forced). The pool stays valid (submit refuses from then on) until
 * worker_pool_free, so the HTTP thread may still call it. Safe on NULL. */
void worker_pool_stop(worker_pool *p);

/* Starts main(arg) on a detached thread (nothing joins it; it frees what
 * it owns); 0 or pthread_create's error. */
int worker_detach(pthread_t *thread, void *(*main)(void *), void *arg);

/* Stops the pool if it still runs, and frees it. Returns how many threads
 * it left stuck in C (their records are left to the process exit with
 * them; 0: all ended). Safe on NULL. */
int worker_pool_free(worker_pool *p);

/* ------------------------------------------------------------------ */

typedef struct projector projector;

/* Starts one thread per projection name; each makes its own state and runs
 * aeon.cli.worker's projection entry, restarting it with a back-off when it
 * fails. */
int projector_start(const worker_options *opt, char *const *names, size_t n, projector **out,
                    char **err);

/* Threads still running. */
int projector_running(projector *p);

/* Asks every runner to stop (aeon.host.stopping() turns true) and waits up
 * to `grace` seconds for them to commit and return; after that, their Lua
 * code is interrupted, and a runner still not back a second later is stuck
 * in C: it is logged and left to the process exit. Returns how many were
 * left (0: all joined and freed). Safe on NULL. */
int projector_stop(projector *p, double grace);

#endif
