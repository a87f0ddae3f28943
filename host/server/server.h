/*
 * server.h - the HTTP server: aeon-host serve (API.md section 5).
 *
 * Provides server_run, which serves an app until SIGINT or SIGTERM (the
 * aeon.host module, hostlib.h, starts it for aeon.cli.serve). Uses libmicrohttpd for
 * HTTP, worker.h for the threads that run Lua, log.h and metrics.h.
 *
 * Threads: one libmicrohttpd thread does all network I/O (epoll) and answers
 * what needs no Lua (/health, /metrics, 404, 405, 401, 413) itself; a
 * command or query is queued to the worker pool with its connection
 * suspended, and resumed when a worker has the answer. The calling thread
 * waits for signals and, with --watch, polls the app's files.
 */
#ifndef AEON_SERVER_H
#define AEON_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include <lua.h>

#include "worker.h"

/* Why server_run did not serve; maps to aeon-host's exit statuses. */
typedef enum server_status {
    SERVER_OK = 0, /* served, then shut down cleanly on a signal */
    SERVER_NOMEM,  /* out of memory */
    SERVER_USAGE,  /* a bad option (the listen address) */
    SERVER_IO,     /* could not listen, or a store would not open */
    SERVER_SCRIPT, /* the app would not load */
    SERVER_STUCK,  /* served and shut down, leaving a worker or a
                          projection stuck in C (logged) to the process exit */
} server_status;

typedef struct server_config {
    const char *listen;                               /* "ADDR:PORT", "[V6]:PORT", ":PORT"; port 0
                                    picks a free one */
    worker_options worker;                            /* the app, the store, workers, budgets */
    const char *app_name;                             /* for /health and logs */
    size_t max_body;                                  /* bytes; larger bodies are answered 413 */
    unsigned idle_timeout;                            /* seconds a connection may stall */
    double header_timeout;                            /* seconds to send complete headers, from
                                    opening or the last answer; 0: none */
    double body_timeout;                              /* seconds from headers to the whole body */
    unsigned max_connections;                         /* open connections at most */
    unsigned max_client_connections;                  /* per client address */
    double drain_seconds;                             /* shutdown waits this long for requests
                                    in flight, then for projections */
    const char *token;                                /* bearer token for commands and queries,
                                    NULL: none; never logged */
    bool metrics_loopback;                            /* /metrics open to loopback clients even
                                    with a token */
    bool watch;                                       /* reload the app when its files change */
    void (*on_listening)(void *ctx, const char *url); /* once serving */
    void *ctx;                                        /* passed to on_listening */
} server_config;

/* Serves until SIGINT or SIGTERM, then stops accepting, finishes the
 * requests in flight, stops the projections and returns SERVER_OK
 * (SERVER_STUCK with *err when a worker or a projection would not stop). Returns
 * another status with *err (malloc'd) when it cannot start. Blocks SIGINT
 * and SIGTERM while it runs (restoring the mask after). */
server_status server_run(const server_config *cfg, char **err);

#endif
