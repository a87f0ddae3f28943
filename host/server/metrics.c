/*
 * metrics.c - counters and histograms behind a lock (see metrics.h).
 *
 * One mutex guards everything: an observation is a few additions, far
 * cheaper than the Lua call and the store write that every request makes, so
 * finer locking would buy nothing measurable.
 */
#include "metrics.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"

#define MAX_STATUSES 16
#define ROUTE_LEN 160

/* Latency buckets in seconds (upper bounds; +Inf is implicit). */
static const double BUCKETS[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                 0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKETS (sizeof BUCKETS / sizeof BUCKETS[0])

typedef struct route_stats {
    char route[ROUTE_LEN];         /* label value */
    int status[MAX_STATUSES];      /* statuses seen, 0 = free slot */
    uint64_t count[MAX_STATUSES];  /* requests per status */
    uint64_t bucket[NBUCKETS + 1]; /* per-bucket counts, last is +Inf */
    double sum;                    /* seconds, all requests */
    uint64_t total;                /* requests */
} route_stats;

typedef struct lag {
    char name[ROUTE_LEN];     /* projection */
    double events;            /* events behind */
    double seconds;           /* seconds behind */
    int build;                /* version being built, 0: none */
    double built, to_go, eta; /* its events done, lag and ETA */
} lag;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static route_stats routes[METRICS_MAX_ROUTES];
static size_t nroutes;
static lag lags[METRICS_MAX_PROJECTIONS];
static size_t nlags;
static uint64_t appends, events_appended, conflicts, script_errors;
static uint64_t reloads_ok, reloads_failed;
static uint64_t aborted_timeout, aborted_client, aborted_error;
static time_t started;

void metrics_start(void) {
    pthread_mutex_lock(&lock);
    started = time(NULL);
    pthread_mutex_unlock(&lock);
}

static route_stats *route_for(const char *name) {
    for (size_t i = 0; i < nroutes; i++)
        if (strcmp(routes[i].route, name) == 0) return &routes[i];
    if (nroutes == METRICS_MAX_ROUTES - 1 && strcmp(name, "other") != 0) return route_for("other");
    route_stats *r = &routes[nroutes++];
    snprintf(r->route, sizeof r->route, "%s", name);
    return r;
}

void metrics_request(const char *route, int status, double seconds) {
    pthread_mutex_lock(&lock);
    route_stats *r = route_for(route);
    int slot = MAX_STATUSES - 1;
    for (int i = 0; i < MAX_STATUSES; i++) {
        if (r->status[i] == status || r->status[i] == 0) {
            slot = i;
            break;
        }
    }
    r->status[slot] = status;
    r->count[slot]++;
    size_t b = 0;
    while (b < NBUCKETS && seconds > BUCKETS[b]) b++;
    r->bucket[b]++;
    r->sum += seconds;
    r->total++;
    pthread_mutex_unlock(&lock);
}

void metrics_aborted(const char *reason) {
    pthread_mutex_lock(&lock);
    if (strcmp(reason, "timeout") == 0)
        aborted_timeout++;
    else if (strcmp(reason, "client_closed") == 0)
        aborted_client++;
    else
        aborted_error++;
    pthread_mutex_unlock(&lock);
}

void metrics_appended(long long events) {
    pthread_mutex_lock(&lock);
    appends++;
    events_appended += events > 0 ? (uint64_t)events : 0;
    pthread_mutex_unlock(&lock);
}

void metrics_conflict(void) {
    pthread_mutex_lock(&lock);
    conflicts++;
    pthread_mutex_unlock(&lock);
}

void metrics_script_error(void) {
    pthread_mutex_lock(&lock);
    script_errors++;
    pthread_mutex_unlock(&lock);
}

void metrics_reload(bool ok) {
    pthread_mutex_lock(&lock);
    if (ok)
        reloads_ok++;
    else
        reloads_failed++;
    pthread_mutex_unlock(&lock);
}

/* The projection's slot, made on first use; NULL when all are taken.
 * Called with the lock held. */
static lag *lag_for(const char *projection) {
    for (size_t i = 0; i < nlags; i++)
        if (strcmp(lags[i].name, projection) == 0) return &lags[i];
    if (nlags == METRICS_MAX_PROJECTIONS) return NULL;
    lag *l = &lags[nlags++];
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", projection);
    return l;
}

void metrics_projection_lag(const char *projection, double events, double seconds) {
    pthread_mutex_lock(&lock);
    lag *l = lag_for(projection);
    if (l) {
        l->events = events;
        l->seconds = seconds;
    }
    pthread_mutex_unlock(&lock);
}

void metrics_projection_build(const char *projection, int version, double events, double to_go,
                              double eta) {
    pthread_mutex_lock(&lock);
    lag *l = lag_for(projection);
    if (l) {
        l->build = version;
        l->built = events;
        l->to_go = to_go;
        l->eta = eta;
    }
    pthread_mutex_unlock(&lock);
}

/* A label value: backslash, double quote and newline escaped, as the text
 * format requires. */
static void label(buf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '\\')
            buf_puts(b, "\\\\");
        else if (*s == '"')
            buf_puts(b, "\\\"");
        else if (*s == '\n')
            buf_puts(b, "\\n");
        else
            buf_put(b, s, 1);
    }
}

static void head(buf *b, const char *name, const char *type, const char *help) {
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The stages of metrics_render, each a family or a few, under the lock. */

static void render_requests(buf *b) {
    head(b, "aeon_http_requests_total", "counter", "HTTP requests answered, by route and status.");
    for (size_t i = 0; i < nroutes; i++) {
        for (int s = 0; s < MAX_STATUSES && routes[i].status[s]; s++) {
            buf_puts(b, "aeon_http_requests_total{route=\"");
            label(b, routes[i].route);
            buf_printf(b, "\",status=\"%d\"} %llu\n", routes[i].status[s],
                       (unsigned long long)routes[i].count[s]);
        }
    }
}

static void render_durations(buf *b) {
    head(b, "aeon_http_request_duration_seconds", "histogram",
         "Time from the request's headers to its answer, by route.");
    for (size_t i = 0; i < nroutes; i++) {
        uint64_t cum = 0;
        for (size_t k = 0; k <= NBUCKETS; k++) {
            cum += routes[i].bucket[k];
            buf_puts(b, "aeon_http_request_duration_seconds_bucket{route=\"");
            label(b, routes[i].route);
            if (k < NBUCKETS)
                buf_printf(b, "\",le=\"%g\"} %llu\n", BUCKETS[k], (unsigned long long)cum);
            else
                buf_printf(b, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
        }
        buf_puts(b, "aeon_http_request_duration_seconds_sum{route=\"");
        label(b, routes[i].route);
        buf_printf(b, "\"} %.6f\n", routes[i].sum);
        buf_puts(b, "aeon_http_request_duration_seconds_count{route=\"");
        label(b, routes[i].route);
        buf_printf(b, "\"} %llu\n", (unsigned long long)routes[i].total);
    }
}

static void render_gauges(buf *b, const metrics_gauges *g) {
    head(b, "aeon_http_requests_aborted_total", "counter",
         "Requests that ended without an answer: the client stalled (timeout) or left "
         "(client_closed).");
    buf_printf(b, "aeon_http_requests_aborted_total{reason=\"timeout\"} %llu\n",
               (unsigned long long)aborted_timeout);
    buf_printf(b, "aeon_http_requests_aborted_total{reason=\"client_closed\"} %llu\n",
               (unsigned long long)aborted_client);
    buf_printf(b, "aeon_http_requests_aborted_total{reason=\"error\"} %llu\n",
               (unsigned long long)aborted_error);

    head(b, "aeon_http_requests_in_flight", "gauge", "Requests received and not yet answered.");
    buf_printf(b, "aeon_http_requests_in_flight %ld\n", g->in_flight);
    head(b, "aeon_http_queue_depth", "gauge", "Requests waiting for a free worker.");
    buf_printf(b, "aeon_http_queue_depth %ld\n", g->queued);
    head(b, "aeon_workers", "gauge",
         "Request worker threads, each with its own Lua state and store.");
    buf_printf(b, "aeon_workers %d\n", g->workers);
    head(b, "aeon_projections_running", "gauge", "Projection threads running.");
    buf_printf(b, "aeon_projections_running %d\n", g->projections);
    head(b, "aeon_draining", "gauge", "1 while shutting down.");
    buf_printf(b, "aeon_draining %d\n", g->draining ? 1 : 0);
}

static void render_counters(buf *b) {
    head(b, "aeon_appends_total", "counter", "Appends that committed events.");
    buf_printf(b, "aeon_appends_total %llu\n", (unsigned long long)appends);
    head(b, "aeon_events_appended_total", "counter", "Events committed by appends.");
    buf_printf(b, "aeon_events_appended_total %llu\n", (unsigned long long)events_appended);
    head(b, "aeon_append_conflicts_total", "counter",
         "Appends refused by an optimistic-concurrency check.");
    buf_printf(b, "aeon_append_conflicts_total %llu\n", (unsigned long long)conflicts);
    head(b, "aeon_script_errors_total", "counter",
         "Handlers that raised an error or ran past their budget.");
    buf_printf(b, "aeon_script_errors_total %llu\n", (unsigned long long)script_errors);
    head(b, "aeon_reloads_total", "counter", "--watch reloads, by result.");
    buf_printf(b, "aeon_reloads_total{result=\"ok\"} %llu\n", (unsigned long long)reloads_ok);
    buf_printf(b, "aeon_reloads_total{result=\"failed\"} %llu\n",
               (unsigned long long)reloads_failed);
}

/* One lag gauge per projection: events behind, or (seconds) how old the
 * oldest of them is. */
static void render_lag(buf *b, const char *name, bool seconds, const char *help) {
    head(b, name, "gauge", help);
    for (size_t i = 0; i < nlags; i++) {
        buf_printf(b, "%s{projection=\"", name);
        label(b, lags[i].name);
        buf_printf(b, "\"} %.17g\n", seconds ? lags[i].seconds : lags[i].events);
    }
}

/* One gauge per build in progress (which = 0: events done, 1: lag, 2:
 * ETA), labelled with the projection and the version being built. */
static void render_build(buf *b, const char *name, int which, const char *help) {
    head(b, name, "gauge", help);
    for (size_t i = 0; i < nlags; i++) {
        /* An ETA below 0 is not known yet (no pace measured): no sample. */
        if (lags[i].build == 0 || (which == 2 && lags[i].eta < 0)) continue;
        buf_printf(b, "%s{projection=\"", name);
        label(b, lags[i].name);
        buf_printf(b, "\",version=\"%d\"} %.17g\n", lags[i].build,
                   which == 0   ? lags[i].built
                   : which == 1 ? lags[i].to_go
                                : lags[i].eta);
    }
}

char *metrics_render(const metrics_gauges *g, size_t *len) {
    buf b = {0};
    pthread_mutex_lock(&lock);
    render_requests(&b);
    render_durations(&b);
    render_gauges(&b, g);
    render_counters(&b);
    render_lag(&b, "aeon_projection_lag_events", false,
               "Events committed that the projection has not yet applied, as it last reported.");
    render_lag(&b, "aeon_projection_lag_seconds", true,
               "Age of the oldest event the projection has not yet applied, as it last reported.");
    render_build(&b, "aeon_projection_build_events", 0,
                 "Events a build of a new version of a projection's view has applied so far.");
    render_build(&b, "aeon_projection_build_lag_events", 1,
                 "Events the build still has to apply to catch up (counted up to 10000).");
    render_build(&b, "aeon_projection_build_eta_seconds", 2,
                 "Seconds until the build catches up, at its pace so far.");
    head(&b, "aeon_start_time_seconds", "gauge", "When the server started, Unix time.");
    buf_printf(&b, "aeon_start_time_seconds %lld\n", (long long)(started ? started : time(NULL)));
    pthread_mutex_unlock(&lock);
    return buf_take(&b, len);
}
