/*
 * metrics.h - the server's counters, gauges and latency histogram, and their
 * Prometheus text rendering for GET /metrics.
 *
 * Provides process-wide recording functions any thread may call (the HTTP
 * thread for requests, workers for appends and conflicts, projection threads
 * for their lag) and metrics_render. Route labels are chosen by the caller
 * from a bounded set (the app's handler names, "/health", "/metrics",
 * "unmatched"), so clients cannot grow the tables; past METRICS_MAX_ROUTES
 * everything counts as "other". Uses buf.h.
 */
#ifndef AEON_METRICS_H
#define AEON_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#define METRICS_MAX_ROUTES 256
#define METRICS_MAX_PROJECTIONS 64

/* Values the server owns and hands over at render time. */
typedef struct metrics_gauges {
    long in_flight;  /* requests received and not yet answered */
    long queued;     /* requests waiting for a worker */
    int workers;     /* request worker threads */
    int projections; /* projection threads running */
    bool draining;   /* shutting down: no longer accepting */
} metrics_gauges;

/* Marks the server's start (aeon_start_time_seconds). */
void metrics_start(void);

/* A request answered with `status` after `seconds`. */
void metrics_request(const char *route, int status, double seconds);

/* A request that ended without an answer: "timeout", "client_closed" (gone) or
 * "error". */
void metrics_aborted(const char *reason);

/* An append (or append_many) that committed `events` events. */
void metrics_appended(long long events);

/* An append refused by an expected-revision check. */
void metrics_conflict(void);

/* A handler that raised (or ran past its budget). */
void metrics_script_error(void);

/* A --watch reload that succeeded or failed. */
void metrics_reload(bool ok);

/* What a projection runner reports: how many events and how many seconds
 * its view is behind the store. */
void metrics_projection_lag(const char *projection, double events, double seconds);

/* A projection's build of a new version of its view (aeon.project): events
 * done, events still to go (lag) and the ETA in seconds (below 0: not known
 * yet); version 0 when no build is running, which takes its gauges out of
 * /metrics. */
void metrics_projection_build(const char *projection, int version, double events, double to_go,
                              double eta);

/* The Prometheus text exposition (format 0.0.4), malloc'd; NULL when out of
 * memory. */
char *metrics_render(const metrics_gauges *g, size_t *len);

#endif
