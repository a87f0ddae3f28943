/*
 * server.c - the HTTP server on libmicrohttpd (see server.h).
 *
 * A request's life: the gate (gate.h) accepts the connection and reads the
 * head before libmicrohttpd does, refusing in JSON what libmicrohttpd would
 * refuse in HTML; then libmicrohttpd calls on_uri with the request line as
 * sent (checked there, before libmicrohttpd decodes it), then on_request
 * when the headers are in; screen_strict() refuses what could be read two
 * ways (400, closing the connection), and screen() decides from the headers
 * alone whether the answer is already known (404, 405, 401, or 413 from
 * Content-Length). The body is collected (or discarded)
 * up to --max-body. Then /health and /metrics are answered on the spot, and
 * a command or query becomes a worker_job: the connection is suspended, the
 * job queued, and the worker's done() resumes it; libmicrohttpd calls
 * on_request once more and the answer is queued. on_completed writes the
 * access log line, records metrics, hands a kept-alive connection back to
 * the gate for its next head, and frees the request. Connections are
 * limited in all and per client address by libmicrohttpd; on_connection
 * keeps a list of them so the signal thread can cut one whose headers take
 * longer than --header-timeout. The app is loaded (start-up, --watch) on a
 * thread of its own, so that a load stuck in C cannot hold the signals.
 *
 * Uses libmicrohttpd, worker.h, log.h, metrics.h, buf.h and POSIX signals.
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/tcp.h>
#include <microhttpd.h>

#include "bind.h"
#include "buf.h"
#include "gate.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "worker.h"

/* Jobs waiting for a worker at most; past this a request is answered 503
 * at once rather than left to wait behind thousands of others. */
#define QUEUE_LIMIT 4096
/* A chunked body over --max-body is read and dropped so that the client can
 * be answered 413; past this many times the limit the connection is cut. */
#define DISCARD_FACTOR 16
/* How often --watch looks at the app's files, and how long they must stay
 * unchanged before a reload (editors write in several steps). */
#define WATCH_TICK 0.25
#define WATCH_SETTLE 0.2
/* After the workers are done, how long resumed requests get to be sent. */
#define FLUSH_SECONDS 2.0
/* A load still running this long past --max-time is stuck outside Lua. */
#define PROBE_SLACK 1.0
/* Descriptors kept back from --max-connections for everything else. */
#define FD_RESERVE 128
#define LABEL_SIZE 160
#define REQUEST_ID_SIZE 17

typedef enum route {
    ROUTE_NONE,    /* nothing here: 404 */
    ROUTE_HEALTH,  /* GET /health */
    ROUTE_METRICS, /* GET /metrics */
    ROUTE_COMMAND, /* POST /commands/NAME */
    ROUTE_QUERY,   /* GET /queries/NAME */
} route;

typedef enum request_state {
    REQ_READING, /* headers in, body arriving */
    REQ_QUEUED,  /* suspended, with a worker or waiting for one */
} request_state;

/* A file --watch looks at. */
typedef struct watched {
    char *path;            /* as the app loaded it */
    bool present;          /* it existed at the last look */
    struct timespec mtime; /* its modification time then */
    off_t size;            /* its size then */
    ino_t ino;             /* its inode then (editors replace files) */
} watched;

/* A connection, from accept to close, for --header-timeout: libmicrohttpd
 * times out only silence, so a client that sends its headers a byte at a
 * time would keep a connection for ever. */
typedef struct tracked {
    struct tracked *prev, *next; /* the server's list */
    int fd;                      /* its socket */
    bool waiting;                /* no complete headers since `since` */
    bool cut;                    /* already shut down */
    double since;                /* accepted, or its last request completed */
    unsigned long long consumed; /* bytes its completed requests took */
} tracked;

typedef struct server {
    const server_config *cfg;   /* what to serve, how */
    struct MHD_Daemon *daemon;  /* the HTTP side */
    gate *gate;                 /* accepts, and reads each head first */
    worker_pool *pool;          /* request workers */
    projector *projections;     /* projection threads */
    atomic_long in_flight;      /* requests begun and not completed */
    atomic_bool draining;       /* shutting down: answers close */
    pthread_mutex_t app_lock;   /* guards app and projections */
    worker_app_info app;        /* handler names (route labels), files */
    uint32_t id_prefix;         /* random, per process */
    atomic_uint id_seq;         /* request counter */
    pthread_mutex_t error_lock; /* guards last_error */
    char last_error[256];       /* libmicrohttpd's last complaint */
    pthread_mutex_t links_lock; /* guards links */
    tracked links;              /* open connections (a ring, head) */
    int stuck_projections;      /* runners left stuck in C */
    int stuck_workers;          /* request workers left stuck in C */
    watched *files;             /* --watch: the app's files */
    size_t nfiles;              /* entries in files */
} server;

/* One HTTP request, from its headers to its completion. */
typedef struct request {
    worker_job job;              /* what a worker sees; first member */
    server *srv;                 /* the server it came to */
    struct MHD_Connection *conn; /* its connection */
    request_state state;         /* where it is */
    route route;                 /* what the URL names */
    char id[REQUEST_ID_SIZE];    /* request id, in answers and logs */
    char method[12];             /* for the access log */
    char *path;                  /* URL path, decoded, no query string */
    const char *name;            /* COMMAND/QUERY: points into path */
    char label[LABEL_SIZE];      /* route label for metrics */
    bool begun;                  /* on_request has seen its headers */
    const char *bad_url;         /* why the raw URL is refused, or NULL */
    int early;                   /* status known from the headers, or 0 */
    const char *early_msg;       /* its message */
    const char *allow;           /* 405: the methods allowed */
    bool close;                  /* close the connection after answering */
    bool keep_alive;             /* the client keeps the connection for more */
    bool gone;                   /* the client left before its answer */
    buf body;                    /* the body, up to --max-body */
    size_t received;             /* body bytes received, kept or not */
    bool too_large;              /* the body passed --max-body */
    worker_param *params;        /* QUERY: ?name=value pairs, copied */
    size_t nparams;              /* entries in params */
    size_t cparams;              /* slots in params */
    int status;                  /* the status queued, 0 until then */
    size_t bytes_out;            /* body bytes of the answer */
    struct timespec start;       /* when the headers were in */
} request;

static void set_waiting(struct server *s, struct MHD_Connection *c, bool waiting);

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double since(const struct timespec *t) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)(ts.tv_sec - t->tv_sec) + (double)(ts.tv_nsec - t->tv_nsec) / 1e9;
}

/* A malloc'd message for *err. */
static char *dup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *dup_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *out = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!out) return NULL;
    va_start(ap, fmt);
    vsnprintf(out, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return out;
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */

static bool has_name(char *const *names, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0) return true;
    return false;
}

/* The metrics label: only names the app has become labels, so a client
 * probing random URLs cannot grow the metrics. */
static void set_label(server *s, request *r) {
    const char *fixed = "unmatched";
    if (r->route == ROUTE_HEALTH)
        fixed = "/health";
    else if (r->route == ROUTE_METRICS)
        fixed = "/metrics";
    else if (r->route == ROUTE_COMMAND || r->route == ROUTE_QUERY) {
        pthread_mutex_lock(&s->app_lock);
        bool known = r->route == ROUTE_COMMAND
                         ? has_name(s->app.commands, s->app.ncommands, r->name)
                         : has_name(s->app.queries, s->app.nqueries, r->name);
        pthread_mutex_unlock(&s->app_lock);
        int n = snprintf(r->label, sizeof r->label, "%s%s",
                         r->route == ROUTE_COMMAND ? "/commands/" : "/queries/", r->name);
        if (known && n > 0 && (size_t)n < sizeof r->label) return;
    }
    snprintf(r->label, sizeof r->label, "%s", fixed);
}

static route parse_route(const char *path, const char **name) {
    *name = NULL;
    if (strcmp(path, "/health") == 0) return ROUTE_HEALTH;
    if (strcmp(path, "/metrics") == 0) return ROUTE_METRICS;
    route r = ROUTE_NONE;
    const char *rest = NULL;
    if (strncmp(path, "/commands/", 10) == 0)
        r = ROUTE_COMMAND, rest = path + 10;
    else if (strncmp(path, "/queries/", 9) == 0)
        r = ROUTE_QUERY, rest = path + 9;
    if (!rest || !*rest || strchr(rest, '/')) return ROUTE_NONE;
    *name = rest;
    return r;
}

/* Compares the bearer token in constant time, so its length and contents
 * cannot be found by timing answers. */
static bool authorized(const char *token, struct MHD_Connection *c) {
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) return false;
    h += 7;
    while (*h == ' ') h++;
    size_t n = strlen(h), m = strlen(token);
    unsigned diff = n != m;
    for (size_t i = 0; i < m; i++)
        diff |= (unsigned char)token[i] ^ (unsigned char)(i < n ? h[i] : 0);
    return diff == 0;
}

/* The client connects from a loopback address (127.0.0.0/8, ::1). */
static bool loopback(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (!ci || !ci->client_addr) return false;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr) >> 24) ==
               127;
    if (sa->sa_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr);
    return false;
}

/* What the headers alone decide. */
static void screen(server *s, request *r) {
    bool get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
    bool post = strcmp(r->method, "POST") == 0;
    switch (r->route) {
    case ROUTE_NONE:
        r->early = 404;
        r->early_msg = "no such route: use POST /commands/NAME, GET /queries/NAME, GET /health "
                       "or GET /metrics";
        return;
    case ROUTE_COMMAND:
        if (!post) {
            r->early = 405;
            r->early_msg = "commands take POST with a JSON object body";
            r->allow = "POST";
            return;
        }
        break;
    case ROUTE_QUERY:
    case ROUTE_HEALTH:
    case ROUTE_METRICS:
        if (!get) {
            r->early = 405;
            r->early_msg = r->route == ROUTE_QUERY ? "queries take GET with ?name=value parameters"
                                                   : "this route takes GET";
            r->allow = "GET, HEAD";
            return;
        }
        break;
    }
    bool guarded = r->route == ROUTE_COMMAND || r->route == ROUTE_QUERY ||
                   (r->route == ROUTE_METRICS && !(s->cfg->metrics_loopback && loopback(r->conn)));
    if (guarded && s->cfg->token && !authorized(s->cfg->token, r->conn)) {
        r->early = 401;
        r->early_msg = "missing or wrong bearer token (Authorization: Bearer TOKEN)";
    }
}

static enum MHD_Result add_param(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value) {
    (void)kind;
    request *r = cls;
    if (!key) return MHD_YES;
    if (r->nparams == r->cparams) {
        size_t cap = r->cparams ? r->cparams * 2 : 8;
        worker_param *p = realloc(r->params, cap * sizeof *p);
        if (!p) return MHD_NO;
        r->params = p;
        r->cparams = cap;
    }
    char *k = strdup(key), *v = strdup(value ? value : "");
    if (!k || !v) {
        free(k);
        free(v);
        return MHD_NO;
    }
    r->params[r->nparams++] = (worker_param){.name = k, .value = v};
    return MHD_YES;
}

static void request_free(request *r) {
    if (!r) return;
    for (size_t i = 0; i < r->nparams; i++) {
        free((char *)r->params[i].name);
        free((char *)r->params[i].value);
    }
    free(r->params);
    free(r->job.answer);
    buf_free(&r->body);
    free(r->path);
    free(r);
}

/* Made when libmicrohttpd has the request line (on_uri), so the URL can be
 * checked as the client sent it, before libmicrohttpd decodes it (its
 * decoding stops at a NUL and lets bad escapes through). */
static void new_request_id(server *s, char id[REQUEST_ID_SIZE]) {
    snprintf(id, REQUEST_ID_SIZE, "%08x%08x", s->id_prefix, atomic_fetch_add(&s->id_seq, 1));
}

static request *request_new(server *s, struct MHD_Connection *c) {
    request *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->srv = s;
    r->conn = c;
    clock_gettime(CLOCK_MONOTONIC, &r->start);
    new_request_id(s, r->id);
    return r;
}

/* The client means to send another request on the connection once this
 * one is answered, as libmicrohttpd reads it (HTTP/1.1 unless it says
 * close, HTTP/1.0 only with keep-alive), and nothing is left of the body
 * that libmicrohttpd would have to drop. */
static bool wants_keep_alive(struct MHD_Connection *c, const char *version) {
    const char *conn = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONNECTION);
    if (MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING))
        return false;
    if (strcmp(version, MHD_HTTP_VERSION_1_1) == 0) return !conn || strcasecmp(conn, "close") != 0;
    return conn && strcasecmp(conn, "keep-alive") == 0;
}

/* The rest, once the headers are in. */
static int request_begin(request *r, const char *url, const char *method, const char *version) {
    r->begun = true;
    r->keep_alive = wants_keep_alive(r->conn, version);
    snprintf(r->method, sizeof r->method, "%s", method);
    if (!(r->path = strdup(url))) return -1;
    r->route = parse_route(r->path, &r->name);
    set_label(r->srv, r);
    if (r->route == ROUTE_QUERY &&
        MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, add_param, r) < 0)
        return -1;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Strict HTTP                                                         */

static int hex_digit(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Why the raw URL (path and query) is refused, or NULL: every escape must
 * be %XX, and what they decode to must be UTF-8 without NUL, so that the
 * handler sees exactly what was sent. '&' and '=' are ASCII, so checking
 * the decoded whole checks every name and value. */
static const char *check_url(const char *uri) {
    size_t n = strlen(uri);
    char *decoded = malloc(n + 1);
    if (!decoded) return "out of memory";
    size_t o = 0;
    const char *why = NULL;
    for (size_t i = 0; i < n && !why; i++) {
        if (uri[i] != '%') {
            decoded[o++] = uri[i];
            continue;
        }
        int hi = hex_digit((unsigned char)uri[i + 1]); /* the NUL ends it */
        int lo = hi >= 0 ? hex_digit((unsigned char)uri[i + 2]) : -1;
        if (hi < 0 || lo < 0)
            why = "bad percent-encoding in the URL (use %XX)";
        else if (!(decoded[o++] = (char)(hi * 16 + lo)))
            why = "the URL holds a NUL byte (%00)";
        i += 2;
    }
    if (!why && !json_utf8_valid(decoded, o)) why = "the URL is not valid UTF-8";
    free(decoded);
    return why;
}

/* What the header walk found. */
typedef struct header_check {
    int content_lengths;    /* Content-Length headers */
    bool transfer_encoding; /* a Transfer-Encoding header */
    const char *why;        /* the first fault, or NULL */
} header_check;

static enum MHD_Result check_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    size_t key_size, const char *value, size_t value_size) {
    (void)kind;
    header_check *h = cls;
    if (!key) return MHD_YES;
    if (!value) value = "", value_size = 0;
    if (strlen(key) != key_size || strlen(value) != value_size)
        h->why = "a header holds a NUL byte";
    else if (!json_utf8_valid(key, key_size) || !json_utf8_valid(value, value_size))
        h->why = "a header is not valid UTF-8";
    else if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        h->content_lengths++;
        if (!value_size || strspn(value, "0123456789") != value_size)
            h->why = "Content-Length must be a number";
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0)
        h->transfer_encoding = true;
    return h->why ? MHD_NO : MHD_YES;
}

/* Refuses what two parsers could read two ways (the way requests are
 * smuggled past a proxy): repeated Content-Length, Content-Length beside
 * Transfer-Encoding, and bytes that are not text. The answer closes the
 * connection, so the rest of what was sent is never read as a request. */
static void screen_strict(request *r) {
    header_check h = {0};
    const char *why = r->bad_url;
    if (!why) {
        MHD_get_connection_values_n(r->conn, MHD_HEADER_KIND, check_header, &h);
        why = h.why;
    }
    if (!why && h.content_lengths > 1) why = "more than one Content-Length header";
    if (!why && h.content_lengths && h.transfer_encoding)
        why = "Content-Length together with Transfer-Encoding";
    if (!why) return;
    r->early = 400;
    r->early_msg = why;
    r->close = true;
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c) {
    server *s = cls;
    request *r = request_new(s, c);
    if (!r) return NULL;
    atomic_fetch_add(&s->in_flight, 1);
    r->bad_url = check_url(uri);
    return r;
}

/* ------------------------------------------------------------------ */
/* Answers                                                             */

/* Queues `body` (malloc'd, taken over; NULL for none) with `status`. */
static enum MHD_Result send_answer(request *r, int status, char *body, size_t len, const char *type,
                                   int retry_after) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(body ? len : 0, body ? body : (void *)"",
                                        body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (r->allow && status == 405) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"aeon\"");
    if (retry_after > 0) {
        char secs[16];
        snprintf(secs, sizeof secs, "%d", retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, secs);
    }
    if (r->close || atomic_load(&r->srv->draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->status = status;
    r->bytes_out = body ? len : 0;
    return ok;
}

static enum MHD_Result send_error(request *r, int status, const char *message, int retry_after) {
    size_t len = 0;
    char *body = worker_error_body(message, r->id, &len);
    return send_answer(r, status, body, len, "application/json", retry_after);
}

static int projections_running(server *s) {
    pthread_mutex_lock(&s->app_lock);
    int n = projector_running(s->projections);
    pthread_mutex_unlock(&s->app_lock);
    return n;
}

static enum MHD_Result send_health(request *r) {
    server *s = r->srv;
    bool draining = atomic_load(&s->draining);
    bool damaged = bind_damage_seen(); /* a worker found the store file damaged */
    int stuck = 0, unhealthy = 0;
    worker_pool_health(s->pool, &stuck, &unhealthy);
    /* Degraded still serves (200) while any worker can; a balancer should
     * stop sending here only when none can. A damaged store file serves no
     * one well: 503 until it is checked. */
    int status = damaged || draining || unhealthy >= s->cfg->worker.workers ? 503 : 200;
    buf b = {0};
    buf_printf(&b, "{\"status\":\"%s\",\"app\":",
               damaged              ? "damaged"
               : draining           ? "draining"
               : unhealthy || stuck ? "degraded"
                                    : "ok");
    pthread_mutex_lock(&s->app_lock);
    buf_json_string(&b, s->app.name, strlen(s->app.name));
    pthread_mutex_unlock(&s->app_lock);
    buf_printf(&b,
               ",\"workers\":%d,\"unhealthy_workers\":%d,\"stuck_workers\":%d,"
               "\"projections\":%d,\"in_flight\":%ld}",
               s->cfg->worker.workers, unhealthy, stuck, projections_running(s),
               atomic_load(&s->in_flight));
    size_t len = 0;
    char *body = buf_take(&b, &len);
    return send_answer(r, status, body, len, "application/json", 0);
}

static enum MHD_Result send_metrics(request *r) {
    server *s = r->srv;
    metrics_gauges g = {
        .in_flight = atomic_load(&s->in_flight),
        .queued = s->pool ? (long)worker_pool_depth(s->pool) : 0,
        .workers = s->cfg->worker.workers,
        .projections = projections_running(s),
        .draining = atomic_load(&s->draining),
    };
    size_t len = 0;
    char *body = metrics_render(&g, &len);
    if (!body) return send_error(r, 503, "out of memory", 1);
    return send_answer(r, 200, body, len, "text/plain; version=0.0.4; charset=utf-8", 0);
}

/* A worker has the answer: wake the connection up. Runs on the worker's
 * thread; libmicrohttpd's resume is made for that. */
static void job_done(worker_job *job) {
    request *r = job->ctx;
    MHD_resume_connection(r->conn);
}

static enum MHD_Result dispatch(request *r) {
    server *s = r->srv;
    r->job = (worker_job){
        .kind = r->route == ROUTE_COMMAND ? WORKER_COMMAND : WORKER_QUERY,
        .name = r->name,
        .body = r->body.data,
        .body_len = r->body.len,
        .params = r->params,
        .nparams = r->nparams,
        .request_id = r->id,
        .done = job_done,
        .ctx = r,
    };
    r->state = REQ_QUEUED;
    /* Suspend before queueing: a quick worker may resume it at once. */
    MHD_suspend_connection(r->conn);
    if (worker_pool_submit(s->pool, &r->job) != 0) {
        bool stopping = atomic_load(&s->draining);
        r->job.status = 503;
        r->job.retry_after = 1;
        r->job.answer =
            worker_error_body(stopping ? "the server is shutting down"
                                       : "the server is busy: too many requests waiting",
                              r->id, &r->job.answer_len);
        MHD_resume_connection(r->conn);
    }
    return MHD_YES;
}

/* The client hung up while its request ran: its socket reads as ended.
 * (Bytes waiting, a pipelined request, mean it is still there.) */
static bool client_left(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    char byte;
    return ci && recv(ci->connect_fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

static enum MHD_Result send_job(request *r) {
    /* Writing into a closed connection often succeeds, and would count
     * the request as answered. */
    if (client_left(r->conn)) {
        r->gone = true;
        return MHD_NO;
    }
    char *answer = r->job.answer;
    r->job.answer = NULL;
    if (!answer) return send_error(r, 503, "out of memory", 1);
    return send_answer(r, r->job.status, answer, r->job.answer_len, "application/json",
                       r->job.retry_after);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    server *s = cls;
    request *r = *con_cls;
    size_t max = s->cfg->max_body;

    if (!r) return MHD_NO; /* on_uri ran out of memory */
    if (!r->begun) {
        if (request_begin(r, url, method, version) != 0) return MHD_NO;
        set_waiting(s, c, false);
        screen_strict(r);
        if (r->close) return send_error(r, r->early, r->early_msg, 0);
        screen(s, r);
        /* A body declared too large is refused before it is sent (a client
         * that asked for 100-continue never sends it). */
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > max) {
            if (r->early) return send_error(r, r->early, r->early_msg, 0);
            return send_error(r, 413, "the body is larger than the limit (--max-body)", 0);
        }
        return MHD_YES;
    }

    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        /* A body sent a byte at a time is cut once it takes too long. */
        if (s->cfg->body_timeout > 0 && since(&r->start) > s->cfg->body_timeout) return MHD_NO;
        r->received += n;
        if (r->received / DISCARD_FACTOR > max) return MHD_NO;     /* a flood: hang up */
        if (r->early || r->route != ROUTE_COMMAND) return MHD_YES; /* not needed */
        if (r->received > max) {
            r->too_large = true;
            buf_free(&r->body);
            return MHD_YES;
        }
        buf_put(&r->body, upload, n);
        return r->body.failed ? MHD_NO : MHD_YES;
    }

    if (r->state == REQ_QUEUED) return send_job(r);
    if (r->early) return send_error(r, r->early, r->early_msg, 0);
    if (r->too_large)
        return send_error(r, 413, "the body is larger than the limit (--max-body)", 0);
    switch (r->route) {
    case ROUTE_HEALTH:
        return send_health(r);
    case ROUTE_METRICS:
        return send_metrics(r);
    case ROUTE_COMMAND:
    case ROUTE_QUERY:
        return dispatch(r);
    case ROUTE_NONE:
        break;
    }
    return send_error(r, 404, "no such route", 0);
}

/* A client that hangs up before its answer is sent shows as a read error,
 * an abort, or (once the answer is being written) an error on a request
 * that has one: all of them are the client leaving. */
static const char *abort_reason(const request *r, enum MHD_RequestTerminationCode toe) {
    switch (toe) {
    case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:
        return "timeout";
    case MHD_REQUEST_TERMINATED_CLIENT_ABORT:
    case MHD_REQUEST_TERMINATED_READ_ERROR:
        return "client_closed";
    case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN:
        return "shutdown";
    default:
        return r->gone || r->status || r->state == REQ_QUEUED ? "client_closed" : "error";
    }
}

static void sockaddr_text(const struct sockaddr *sa, char *out, size_t size) {
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)size);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)size);
}

static void remote_address(struct MHD_Connection *c, char *out, size_t size) {
    *out = 0;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) sockaddr_text(ci->client_addr, out, size);
}

/* After an answer on a kept-alive connection, the connection waits in the
 * gate, which reads the next head before libmicrohttpd does. Only when
 * libmicrohttpd holds none of the client's bytes: those of a request sent
 * before this answer came (pipelining) are already read, and libmicrohttpd
 * parses them as they are. What it has read is the bytes the socket
 * received less those still unread in it; what the requests took is their
 * heads and bodies (a chunked body's framing is not counted: such a
 * connection is never held). */
static void hold_for_next(server *s, struct MHD_Connection *c, const request *r,
                          enum MHD_RequestTerminationCode toe) {
    const union MHD_ConnectionInfo *ki =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    const union MHD_ConnectionInfo *hi =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    tracked *k = ki ? ki->socket_context : NULL;
    if (!k) return;
    k->consumed += hi ? hi->header_size + r->received : 0;
    /* (A client that has sent its end is closed by libmicrohttpd.) */
    if (!s->gate || !hi || toe != MHD_REQUEST_TERMINATED_COMPLETED_OK || !r->status ||
        !r->keep_alive || r->close || atomic_load(&s->draining) || client_left(c))
        return;
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    int unread = 0;
    if (getsockopt(k->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof ti.tcpi_bytes_received ||
        ioctl(k->fd, FIONREAD, &unread) != 0 || unread < 0 ||
        ti.tcpi_bytes_received - (unsigned long long)unread != k->consumed)
        return;
    MHD_suspend_connection(c);
    gate_hold(s->gate, k->fd, c);
}

/* The access log line and the metrics. Headers are never logged (they
 * carry the token), nor query strings (they may carry anything). */
static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    server *s = cls;
    request *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    double secs = since(&r->start);
    bool ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && r->status;
    if (ok)
        metrics_request(r->label, r->status, secs);
    else
        metrics_aborted(abort_reason(r, toe));

    log_line l;
    if (log_begin(&l, ok ? LOG_INFO : LOG_WARN, ok ? "request" : "request aborted")) {
        char remote[INET6_ADDRSTRLEN];
        remote_address(c, remote, sizeof remote);
        log_str(&l, "request_id", r->id);
        if (r->begun) { /* else libmicrohttpd refused the headers itself */
            log_str(&l, "method", r->method);
            log_str(&l, "path", r->path);
        }
        log_str(&l, "route", r->label);
        if (r->status) log_int(&l, "status", r->status);
        if (!ok) log_str(&l, "reason", abort_reason(r, toe));
        log_num(&l, "duration_ms", (double)(long long)(secs * 1e6) / 1e3);
        log_int(&l, "bytes_in", (long long)r->received);
        log_int(&l, "bytes_out", (long long)r->bytes_out);
        if (*remote) log_str(&l, "remote", remote);
        log_end(&l);
    }
    set_waiting(s, c, true);
    hold_for_next(s, c, r, toe);
    request_free(r);
    atomic_fetch_sub(&s->in_flight, 1);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    server *s = cls;
    tracked *k = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci || !(k = calloc(1, sizeof *k))) return;
        k->fd = ci->connect_fd;
        k->waiting = true;
        k->since = now_seconds();
        pthread_mutex_lock(&s->links_lock);
        k->next = s->links.next;
        k->prev = &s->links;
        s->links.next->prev = k;
        s->links.next = k;
        pthread_mutex_unlock(&s->links_lock);
        *socket_context = k;
    } else if (k) {
        pthread_mutex_lock(&s->links_lock);
        k->prev->next = k->next;
        k->next->prev = k->prev;
        pthread_mutex_unlock(&s->links_lock);
        free(k);
        *socket_context = NULL;
    }
}

/* Marks the connection as waiting for headers (or not). */
static void set_waiting(server *s, struct MHD_Connection *c, bool waiting) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    tracked *k = ci ? ci->socket_context : NULL;
    if (!k) return;
    pthread_mutex_lock(&s->links_lock);
    k->waiting = waiting;
    k->since = now_seconds();
    pthread_mutex_unlock(&s->links_lock);
}

/* Cuts connections that have not sent complete headers within
 * --header-timeout of opening (or of their last answer). shutdown() from
 * this thread is safe: the socket stays open until libmicrohttpd, on its
 * thread, closes it after taking it off the list under the same lock. */
static void cut_slow_headers(server *s) {
    double now = now_seconds(), limit = s->cfg->header_timeout;
    if (limit <= 0) return;
    pthread_mutex_lock(&s->links_lock);
    for (tracked *k = s->links.next; k != &s->links; k = k->next) {
        if (k->waiting && !k->cut && now - k->since > limit) {
            shutdown(k->fd, SHUT_RDWR);
            k->cut = true;
        }
    }
    pthread_mutex_unlock(&s->links_lock);
}

/* The gate's callbacks (gate.h): a good first head goes to libmicrohttpd,
 * a held connection back to it, and a refused head gets the answer every
 * other error gets, with its own request id, log line and count. */
static void gate_admit(void *ctx, int fd, const struct sockaddr *addr, socklen_t len) {
    server *s = ctx;
    MHD_add_connection(s->daemon, fd, addr, len); /* on failure it closes fd */
}

static void gate_resume(void *ctx, void *conn) {
    (void)ctx;
    MHD_resume_connection(conn);
}

static size_t gate_refuse(void *ctx, int status, const char *why, int fd, char *out, size_t size) {
    server *s = ctx;
    char id[REQUEST_ID_SIZE], remote[INET6_ADDRSTRLEN] = "";
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof ss;
    new_request_id(s, id);
    if (getpeername(fd, (struct sockaddr *)&ss, &sslen) == 0)
        sockaddr_text((const struct sockaddr *)&ss, remote, sizeof remote);
    size_t len = 0;
    char *body = worker_error_body(why, id, &len);
    int n = snprintf(out, size,
                     "HTTP/1.1 %d %s\r\n"                 /* the status line */
                     "Content-Type: application/json\r\n" /* as every answer */
                     "Content-Length: %zu\r\n"            /* the JSON body's */
                     "X-Request-Id: %s\r\n"               /* as in the log */
                     "Cache-Control: no-store\r\n"        /* as every answer */
                     "Connection: close\r\n\r\n%s",       /* nothing more is read */
                     status, MHD_get_reason_phrase_for((unsigned)status), body ? len : 0, id,
                     body ? body : "");
    free(body);
    metrics_request("unmatched", status, 0);
    log_line l;
    if (log_begin(&l, LOG_INFO, "request")) {
        log_str(&l, "request_id", id);
        log_str(&l, "route", "unmatched");
        log_int(&l, "status", status);
        log_str(&l, "error", why);
        if (*remote) log_str(&l, "remote", remote);
        log_end(&l);
    }
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

/* libmicrohttpd's own messages become log lines; the last one is kept to
 * explain a failure to start (a port in use). */
static void on_mhd_message(void *cls, const char *fmt, va_list ap) {
    server *s = cls;
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' ')) msg[--n] = 0;
    pthread_mutex_lock(&s->error_lock);
    snprintf(s->last_error, sizeof s->last_error, "%s", msg);
    pthread_mutex_unlock(&s->error_lock);
    log_line l;
    if (log_begin(&l, LOG_DEBUG, "libmicrohttpd")) {
        log_str(&l, "detail", msg);
        log_end(&l);
    }
}

/* ------------------------------------------------------------------ */
/* Listening                                                           */

/* "ADDR:PORT", "[V6]:PORT", ":PORT" (every interface) or "PORT"
 * (loopback). */
static server_status parse_listen(const char *spec, struct sockaddr_storage *ss, socklen_t *sslen,
                                  char **err) {
    char host[256] = "127.0.0.1";
    const char *port = spec;
    const char *colon = strrchr(spec, ':');
    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (!close || close[1] != ':') goto bad;
        snprintf(host, sizeof host, "%.*s", (int)(close - spec - 1), spec + 1);
        port = close + 2;
    } else if (colon) {
        if (colon - spec >= (long)sizeof host) goto bad;
        snprintf(host, sizeof host, "%.*s", (int)(colon - spec), spec);
        if (!*host) snprintf(host, sizeof host, "0.0.0.0");
        port = colon + 1;
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (!*port || *end || p < 0 || p > 65535) goto bad;

    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc || !res) {
        *err = dup_printf("--listen %s: cannot resolve %s: %s", spec, host, gai_strerror(rc));
        return SERVER_USAGE;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sslen = res->ai_addrlen;
    freeaddrinfo(res);
    return SERVER_OK;
bad:
    *err = dup_printf("--listen needs ADDR:PORT, [IPV6]:PORT or :PORT, not '%s'", spec);
    return SERVER_USAGE;
}

/* Binds and listens on the address before any worker or projection starts,
 * so that a port in use is said plainly ("127.0.0.1:8080 is already in
 * use") and nothing has run; libmicrohttpd is then handed the socket. */
static server_status bind_listen(const struct sockaddr_storage *ss, socklen_t sslen, int *fd,
                                 char **err) {
    char addr[INET6_ADDRSTRLEN] = "?";
    unsigned port;
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, addr, sizeof addr);
        port = ntohs(a->sin6_port);
    } else {
        const struct sockaddr_in *a = (const void *)ss;
        inet_ntop(AF_INET, &a->sin_addr, addr, sizeof addr);
        port = ntohs(a->sin_port);
    }
    const char *lb = ss->ss_family == AF_INET6 ? "[" : "", *rb = *lb ? "]" : "";
    int on = 1;
    *fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*fd < 0) {
        *err = dup_printf("cannot listen on %s%s%s:%u: %s", lb, addr, rb, port, strerror(errno));
        return SERVER_IO;
    }
    /* As libmicrohttpd does itself: a restart may rebind at once. */
    setsockopt(*fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (bind(*fd, (const struct sockaddr *)ss, sslen) == 0 && listen(*fd, SOMAXCONN) == 0)
        return SERVER_OK;
    int e = errno;
    close(*fd);
    *fd = -1;
    if (e == EADDRINUSE)
        *err = dup_printf("%s%s%s:%u is already in use", lb, addr, rb, port);
    else
        *err = dup_printf("cannot listen on %s%s%s:%u: %s", lb, addr, rb, port, strerror(e));
    return SERVER_IO;
}

/* The port a listening socket got (the one asked for, or the one port 0
 * picked). */
static unsigned bound_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) return 0;
    if (ss.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)(const void *)&ss)->sin6_port);
    return ntohs(((const struct sockaddr_in *)(const void *)&ss)->sin_port);
}

/* The URL to show: a wildcard address is shown as loopback, which is what
 * one tries from the same machine. */
static void url_of(const struct sockaddr_storage *ss, unsigned port, char *out, size_t size) {
    char addr[INET6_ADDRSTRLEN] = "127.0.0.1";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)ss;
        if (IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr))
            snprintf(addr, sizeof addr, "::1");
        else
            inet_ntop(AF_INET6, &a->sin6_addr, addr, sizeof addr);
        snprintf(out, size, "http://[%s]:%u", addr, port);
        return;
    }
    const struct sockaddr_in *a = (const void *)ss;
    if (a->sin_addr.s_addr != htonl(INADDR_ANY))
        inet_ntop(AF_INET, &a->sin_addr, addr, sizeof addr);
    snprintf(out, size, "http://%s:%u", addr, port);
}

/* ------------------------------------------------------------------ */
/* --watch                                                             */

static void look(watched *w) {
    struct stat st;
    w->present = stat(w->path, &st) == 0;
    if (!w->present) return;
    w->mtime = st.st_mtim;
    w->size = st.st_size;
    w->ino = st.st_ino;
}

static void watch_free(server *s) {
    for (size_t i = 0; i < s->nfiles; i++) free(s->files[i].path);
    free(s->files);
    s->files = NULL;
    s->nfiles = 0;
}

static void watch_set(server *s, char *const *files, size_t n) {
    watch_free(s);
    if (!n || !(s->files = calloc(n, sizeof *s->files))) return;
    for (size_t i = 0; i < n; i++) {
        if (!(s->files[s->nfiles].path = strdup(files[i]))) break;
        look(&s->files[s->nfiles++]);
    }
}

/* True when any file differs from the last look (and remembers the new
 * look). */
static bool watch_changed(server *s) {
    bool changed = false;
    for (size_t i = 0; i < s->nfiles; i++) {
        watched before = s->files[i];
        look(&s->files[i]);
        watched *w = &s->files[i];
        if (w->present != before.present ||
            (w->present &&
             (w->size != before.size || w->ino != before.ino ||
              w->mtime.tv_sec != before.mtime.tv_sec || w->mtime.tv_nsec != before.mtime.tv_nsec)))
            changed = true;
    }
    return changed;
}

/* A load of the app on a thread of its own, so that one stuck in C (where
 * its hook cannot stop it) cannot keep this thread from its signals. */
typedef struct probe {
    const worker_options *opt; /* what to load */
    pthread_mutex_t lock;      /* guards the rest */
    pthread_cond_t done_cond;  /* done was set */
    bool done;                 /* the load returned */
    bool abandoned;            /* the waiter left: the thread frees it all */
    int rc;                    /* worker_probe's */
    worker_app_info info;      /* its answer */
    char *err;                 /* its error */
} probe;

static void probe_free(probe *p) {
    worker_app_info_free(&p->info);
    free(p->err);
    pthread_cond_destroy(&p->done_cond);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static void *probe_main(void *arg) {
    probe *p = arg;
    p->rc = worker_probe(p->opt, &p->info, &p->err);
    pthread_mutex_lock(&p->lock);
    p->done = true;
    bool abandoned = p->abandoned;
    pthread_cond_signal(&p->done_cond);
    pthread_mutex_unlock(&p->lock);
    if (abandoned) probe_free(p);
    return NULL;
}

static bool signal_pending(void) {
    sigset_t pending;
    return sigpending(&pending) == 0 &&
           (sigismember(&pending, SIGTERM) || sigismember(&pending, SIGINT));
}

/* worker_probe, given up on when SIGINT or SIGTERM is pending (left pending
 * for the caller) or when it outlives its time budget by PROBE_SLACK. */
static int probe_app(const worker_options *opt, worker_app_info *info, char **err) {
    probe *p = calloc(1, sizeof *p);
    if (!p) return (*err = strdup("out of memory")), -1;
    p->opt = opt;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->done_cond, NULL);
    pthread_t t;
    int rc = worker_detach(&t, probe_main, p);
    if (rc) {
        probe_free(p);
        return (*err = strdup(strerror(rc))), -1;
    }
    double deadline = opt->max_seconds > 0 ? now_seconds() + opt->max_seconds + PROBE_SLACK : 0;
    const char *why = NULL;
    pthread_mutex_lock(&p->lock);
    while (!p->done && !why) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&p->done_cond, &p->lock, &ts);
        if (p->done) break;
        if (signal_pending())
            why = "loading the app was stopped: the server is shutting down";
        else if (deadline && now_seconds() > deadline)
            why = "loading the app was stopped: it is stuck past its time budget (--max-time), "
                  "outside Lua";
    }
    if (why) {
        p->abandoned = true;
        pthread_mutex_unlock(&p->lock);
        *err = strdup(why);
        return -1;
    }
    pthread_mutex_unlock(&p->lock);
    rc = p->rc;
    *info = p->info;
    *err = p->err;
    p->info = (worker_app_info){0};
    p->err = NULL;
    probe_free(p);
    return rc;
}

/* Loads the changed app once here; only if it loads do the workers and
 * projections move to it, so a broken file never takes the server down. */
static void reload(server *s) {
    const server_config *cfg = s->cfg;
    worker_app_info info;
    char *err = NULL;
    if (probe_app(&cfg->worker, &info, &err) != 0) {
        log_line l;
        if (log_begin(&l, LOG_ERROR, "reload failed; still serving the previous version")) {
            log_lua_error(&l, err);
            log_end(&l);
        }
        free(err);
        metrics_reload(false);
        return;
    }
    pthread_mutex_lock(&s->app_lock);
    worker_app_info old = s->app;
    s->app = info;
    pthread_mutex_unlock(&s->app_lock);
    worker_app_info_free(&old);
    watch_set(s, s->app.files, s->app.nfiles);
    worker_pool_reload(s->pool);

    /* The HTTP thread reads s->projections for /health and /metrics. */
    pthread_mutex_lock(&s->app_lock);
    projector *old_projections = s->projections;
    s->projections = NULL;
    pthread_mutex_unlock(&s->app_lock);
    s->stuck_projections += projector_stop(old_projections, cfg->drain_seconds);
    projector *fresh = NULL;
    if (projector_start(&cfg->worker, s->app.projections, s->app.nprojections, &fresh, &err) != 0) {
        log_error_msg(LOG_ERROR, "cannot restart projections", err);
        free(err);
    }
    pthread_mutex_lock(&s->app_lock);
    s->projections = fresh;
    pthread_mutex_unlock(&s->app_lock);
    metrics_reload(true);
    log_line l;
    if (log_begin(&l, LOG_INFO, "reloaded the app")) {
        log_str(&l, "app", s->app.name);
        log_int(&l, "files", (long long)s->nfiles);
        log_end(&l);
    }
}

/* ------------------------------------------------------------------ */
/* Running and stopping                                                */

/* The global connection limit the process can keep: the soft descriptor
 * limit is raised to the hard one (many systems start at 1024), and the
 * limit leaves room for the stores, the app's files and the listener. */
static unsigned connection_limit(unsigned wanted) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return wanted;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) getrlimit(RLIMIT_NOFILE, &rl);
    }
    rlim_t room = rl.rlim_cur > FD_RESERVE * 2 ? rl.rlim_cur - FD_RESERVE : rl.rlim_cur / 2;
    return (rlim_t)wanted > room ? (unsigned)room : wanted;
}

/* Waits up to `seconds` for SIGINT or SIGTERM; returns it, or 0. */
static int wait_signal(const sigset_t *set, double seconds) {
    struct timespec ts = {.tv_sec = (time_t)seconds,
                          .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
    for (;;) {
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig > 0) return sig;
        if (errno != EINTR) return 0;
    }
}

static const char *signal_name(int sig) {
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "signal";
}

/* Stop accepting, let requests in flight finish (up to the drain time; a
 * second signal cuts it short), then stop workers, the HTTP side and the
 * projections, which commit what they have. */
static void drain(server *s, const sigset_t *signals, int sig) {
    const server_config *cfg = s->cfg;
    log_line l;
    if (log_begin(&l, LOG_INFO, "shutting down")) {
        log_str(&l, "signal", signal_name(sig));
        log_int(&l, "in_flight", atomic_load(&s->in_flight));
        log_end(&l);
    }
    atomic_store(&s->draining, true);
    /* The listening socket is shut down at once, so that new connections
     * are refused rather than left in its backlog, unanswered, for the
     * whole drain; kept-alive connections waiting between requests close. */
    gate_stop(s->gate);

    double deadline = now_seconds() + cfg->drain_seconds;
    while (atomic_load(&s->in_flight) > 0 && now_seconds() < deadline) {
        int again = wait_signal(signals, 0.02);
        if (again) {
            log_error_msg(LOG_WARN, "second signal: not waiting for requests in flight",
                          signal_name(again));
            break;
        }
    }
    long left = atomic_load(&s->in_flight);
    if (left > 0 && log_begin(&l, LOG_WARN, "stopping requests still in flight")) {
        log_int(&l, "in_flight", left);
        log_end(&l);
    }
    /* From here nothing waits without bound: handlers still running are
     * stopped, and the watchdog leaves a worker stuck in C (in a handler,
     * or loading the app) to the process exit. */
    worker_pool_force(s->pool);
    /* Every job is answered once this returns; the HTTP thread may still
     * submit (and be refused) until the daemon stops, so the pool is freed
     * only after that. */
    worker_pool_stop(s->pool);
    double flush = now_seconds() + FLUSH_SECONDS;
    while (atomic_load(&s->in_flight) > 0 && now_seconds() < flush) wait_signal(signals, 0.01);
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    s->stuck_workers = worker_pool_free(s->pool);
    s->pool = NULL;

    s->stuck_projections += projector_stop(s->projections, cfg->drain_seconds);
    s->projections = NULL;
    log_msg(LOG_INFO, "stopped");
}

/* Starts the HTTP daemon, then the gate on the bound socket *listen_fd,
 * which is the gate's from then on (*listen_fd becomes -1; gate_free closes
 * it). The daemon listens on nothing: the gate accepts, and hands it each
 * connection whose head it takes. *max_connections: the limit it runs
 * with. */
static server_status start_daemon(server *s, int *listen_fd, unsigned *max_connections,
                                  char **err) {
    const server_config *cfg = s->cfg;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;
    *max_connections = connection_limit(cfg->max_connections);
    s->daemon =
        MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                         (size_t)GATE_POOL, MHD_OPTION_CONNECTION_TIMEOUT, cfg->idle_timeout,
                         MHD_OPTION_CONNECTION_LIMIT, *max_connections,
                         MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->max_client_connections,
                         MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_URI_LOG_CALLBACK,
                         on_uri, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_message, s, MHD_OPTION_END);
    if (!s->daemon) {
        pthread_mutex_lock(&s->error_lock);
        *err = dup_printf("cannot listen on %s%s%s", cfg->listen, *s->last_error ? ": " : "",
                          s->last_error);
        pthread_mutex_unlock(&s->error_lock);
        return SERVER_IO;
    }
    gate_config gc = {
        .listen_fd = *listen_fd,
        .header_timeout = cfg->header_timeout,
        .idle_timeout = cfg->idle_timeout,
        .max_connections = *max_connections,
        .max_client_addresses = cfg->max_client_connections,
        .admit = gate_admit,
        .resume = gate_resume,
        .refuse = gate_refuse,
        .ctx = s,
    };
    if (gate_start(&gc, &s->gate, err) != 0) return SERVER_IO;
    *listen_fd = -1;
    return SERVER_OK;
}

/* The "listening" line, and the embedder's on_listening. */
static void announce(const server *s, const char *url, unsigned max_connections) {
    const server_config *cfg = s->cfg;
    log_line l;
    if (log_begin(&l, LOG_INFO, "listening")) {
        log_str(&l, "url", url);
        log_str(&l, "app", s->app.name);
        log_int(&l, "workers", cfg->worker.workers);
        log_int(&l, "projections", (long long)s->app.nprojections);
        log_bool(&l, "auth", cfg->token != NULL);
        log_bool(&l, "watch", cfg->watch);
        log_int(&l, "max_connections", max_connections);
        log_int(&l, "max_client_connections", cfg->max_client_connections);
        log_end(&l);
    }
    if (cfg->on_listening) cfg->on_listening(cfg->ctx, url);
}

/* Serves until SIGINT or SIGTERM, which it returns: cuts slow headers
 * short and, with --watch, reloads the app once its files have settled. */
static int serve_until_signal(server *s, const sigset_t *signals) {
    int sig = 0;
    double settle_from = 0;
    while (!sig) {
        sig = wait_signal(signals, WATCH_TICK);
        cut_slow_headers(s);
        if (sig || !s->cfg->watch) continue;
        if (watch_changed(s))
            settle_from = now_seconds();
        else if (settle_from && now_seconds() - settle_from >= WATCH_SETTLE) {
            settle_from = 0;
            reload(s);
        }
    }
    return sig;
}

/* SERVER_OK, or SERVER_STUCK with *err when a worker or a projection was
 * left stuck in C: what it was doing is lost, which the exit status says. */
static server_status left_stuck(const server *s, char **err) {
    int w = s->stuck_workers, p = s->stuck_projections;
    if (w == 0 && p == 0) return SERVER_OK;
    char workers[48] = "", projections[48] = "";
    if (w) snprintf(workers, sizeof workers, "%d worker%s", w, w == 1 ? "" : "s");
    if (p) snprintf(projections, sizeof projections, "%d projection%s", p, p == 1 ? "" : "s");
    *err = dup_printf("stopped, leaving %s%s%s stuck in C (outside Lua, where nothing can "
                      "interrupt it) to the process exit",
                      workers, w && p ? " and " : "", projections);
    return SERVER_STUCK;
}

/* The pipeline: parse and bind --listen, probe the app, start the workers
 * and projections, the daemon, announce, serve, drain; one cleanup. */
server_status server_run(const server_config *cfg, char **err) {
    server_status status = SERVER_NOMEM;
    server s = {.cfg = cfg};
    struct sockaddr_storage addr;
    socklen_t addrlen = 0;
    int listen_fd = -1, bound = -1; /* ours until the daemon has it, then the daemon's */
    sigset_t signals, old_mask;
    struct sigaction ignore = {.sa_handler = SIG_IGN}, old_pipe;
    *err = NULL;

    pthread_mutex_init(&s.app_lock, NULL);
    pthread_mutex_init(&s.error_lock, NULL);
    pthread_mutex_init(&s.links_lock, NULL);
    s.links.next = s.links.prev = &s.links;
    /* Every thread started from here on inherits the blocked mask, so the
     * signals wait for sigtimedwait in this thread. */
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, &old_mask);
    sigaction(SIGPIPE, &ignore, &old_pipe);
    if (getrandom(&s.id_prefix, sizeof s.id_prefix, 0) != (ssize_t)sizeof s.id_prefix)
        s.id_prefix = (uint32_t)time(NULL) ^ (uint32_t)getpid();

    if ((status = parse_listen(cfg->listen, &addr, &addrlen, err)) != SERVER_OK) goto done;
    if ((status = bind_listen(&addr, addrlen, &listen_fd, err)) != SERVER_OK) goto done;
    status = SERVER_NOMEM;
    if (probe_app(&cfg->worker, &s.app, err) != 0) {
        status = SERVER_SCRIPT;
        goto done;
    }
    if (cfg->watch) watch_set(&s, s.app.files, s.app.nfiles);
    if (worker_pool_start(&cfg->worker, &s.pool, err) != 0) {
        status = SERVER_IO;
        goto done;
    }
    if (projector_start(&cfg->worker, s.app.projections, s.app.nprojections, &s.projections, err)) {
        status = SERVER_NOMEM;
        goto done;
    }

    unsigned max_connections = 0;
    bound = listen_fd;
    if ((status = start_daemon(&s, &listen_fd, &max_connections, err)) != SERVER_OK) goto done;
    char url[128];
    url_of(&addr, bound_port(bound), url, sizeof url);
    metrics_start();
    announce(&s, url, max_connections);
    int sig = serve_until_signal(&s, &signals);
    drain(&s, &signals, sig);
    status = left_stuck(&s, err);

done:
    gate_stop(s.gate);
    if (s.daemon) MHD_stop_daemon(s.daemon);
    gate_free(s.gate);
    if (listen_fd >= 0) close(listen_fd);
    worker_pool_free(s.pool);
    projector_stop(s.projections, 0);
    worker_app_info_free(&s.app);
    watch_free(&s);
    pthread_mutex_destroy(&s.app_lock);
    pthread_mutex_destroy(&s.error_lock);
    pthread_mutex_destroy(&s.links_lock);
    sigaction(SIGPIPE, &old_pipe, NULL);
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    if (status == SERVER_NOMEM && !*err) *err = strdup("out of memory");
    return status;
}
