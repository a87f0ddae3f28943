/*
 * http_test.c - checks store/http.c against a scripted HTTP server on
 * loopback (a thread here): the headers and signature sent, connection
 * reuse, which failures are retried and which are not, backoff with
 * jitter, the attempt and time bounds, CRC checks, error and cancellation
 * parsing. With AWS_ENDPOINT_URL pointing at DynamoDB Local on loopback
 * (scripts/dynamodb-local.sh start), it also runs a live round: tables,
 * items through ddb_value, transactions and their cancellation reasons.
 * Uses pthreads, sockets, jansson.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "ddb_value.h"
#include "rpc.h"
#include "sigv4.h"
#include "test.h"

#define MAX_STEPS 16

/* One scripted answer. */
typedef struct canned {
    int status;       /* HTTP status; 0: drop the connection instead */
    const char *body; /* JSON body */
    const char *crc;  /* NULL: the right x-amz-crc32; "none": omit; else this */
} canned;

/* The scripted server and what it saw. */
typedef struct server {
    int fd;                   /* listening socket */
    int port;                 /* its port on 127.0.0.1 */
    pthread_t thread;         /* serves until stop */
    volatile bool stop;       /* set by the test to end the thread */
    canned script[MAX_STEPS]; /* answers, in order */
    int nscript;              /* answers scripted */
    char *seen[MAX_STEPS];    /* raw requests received */
    int nseen;                /* requests received */
    int connections;          /* connections accepted */
} server;

static bool wait_readable(server *s, int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (!s->stop) {
        int n = poll(&p, 1, 50);
        if (n > 0) return true;
    }
    return false;
}

/* Reads one request (headers, then Content-Length bytes); NULL on EOF. */
static char *read_request(server *s, int fd) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    long want = -1;
    for (;;) {
        if (want < 0) {
            buf[n] = '\0';
            char *end = n ? strstr(buf, "\r\n\r\n") : NULL;
            if (end) {
                long cl = 0;
                for (char *p = buf; p < end; p++)
                    if ((p == buf || p[-1] == '\n') && !strncasecmp(p, "content-length:", 15))
                        cl = strtol(p + 15, NULL, 10);
                want = (long)(end + 4 - buf) + cl;
            }
        }
        if (want >= 0 && (long)n >= want) {
            buf[n] = '\0';
            return buf;
        }
        if (n + 4096 + 1 > cap) buf = realloc(buf, cap *= 2);
        if (!wait_readable(s, fd)) break;
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r <= 0) break;
        n += (size_t)r;
    }
    free(buf);
    return NULL;
}

static void *serve(void *arg) {
    server *s = arg;
    int step = 0;
    while (!s->stop) {
        if (!wait_readable(s, s->fd)) break;
        int fd = accept(s->fd, NULL, NULL);
        if (fd < 0) continue;
        s->connections++;
        for (;;) {
            char *req = read_request(s, fd);
            if (!req) break;
            if (s->nseen < MAX_STEPS)
                s->seen[s->nseen++] = req;
            else
                free(req);
            canned c = step < s->nscript ? s->script[step] : (canned){500, "{}", NULL};
            step++;
            if (c.status == 0) break; /* drop the connection without a word */
            char head[512], crc[64] = "";
            size_t blen = strlen(c.body);
            if (!c.crc)
                snprintf(crc, sizeof crc, "x-amz-crc32: %u\r\n", http_crc32(c.body, blen));
            else if (strcmp(c.crc, "none"))
                snprintf(crc, sizeof crc, "x-amz-crc32: %s\r\n", c.crc);
            int hn = snprintf(head, sizeof head,
                              "HTTP/1.1 %d X\r\nContent-Type: application/x-amz-json-1.0\r\n"
                              "%sContent-Length: %zu\r\n\r\n",
                              c.status, crc, blen);
            if (write(fd, head, (size_t)hn) < 0 || write(fd, c.body, blen) < 0) break;
        }
        close(fd);
    }
    return NULL;
}

static void server_start(server *s, const canned *script, int n) {
    memset(s, 0, sizeof *s);
    memcpy(s->script, script, sizeof *script * (size_t)n);
    s->nscript = n;
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (bind(s->fd, (struct sockaddr *)&a, sizeof a) || listen(s->fd, 8) ||
        getsockname(s->fd, (struct sockaddr *)&a, &alen)) {
        perror("server");
        exit(2);
    }
    s->port = ntohs(a.sin_port);
    pthread_create(&s->thread, NULL, serve, s);
}

/* Ends the thread; what it saw stays readable until server_free. */
static void server_stop(server *s) {
    s->stop = true;
    pthread_join(s->thread, NULL);
    close(s->fd);
}

static void server_free(server *s) {
    for (int i = 0; i < s->nseen; i++) free(s->seen[i]);
    s->nseen = 0;
}

/* ------------------------------------------------------------------ */
/* A fake clock that sleeping moves, and fixed "randomness".           */

typedef struct fake {
    uint64_t now;              /* ms */
    uint8_t byte;              /* every random byte */
    uint64_t slept[MAX_STEPS]; /* each wait asked for */
    int nslept;                /* waits */
} fake;

static uint64_t fake_now(void *ctx) { return ((fake *)ctx)->now; }

static void fake_random(void *ctx, uint8_t *out, size_t len) {
    memset(out, ((fake *)ctx)->byte, len);
}

static void fake_sleep(void *ctx, uint64_t ms) {
    fake *f = ctx;
    if (f->nslept < MAX_STEPS) f->slept[f->nslept++] = ms;
    f->now += ms;
}

static http_client *client_for(int port, fake *f, store_env *env, int attempts, long budget,
                               http_api api) {
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    *env = (store_env){fake_now, fake_random, f};
    http_config cfg = {
        .endpoint = url,
        .api = api,
        .region = "eu-west-1",
        .creds = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL},
        .max_attempts = attempts,
        .retry_budget_ms = budget,
        .base_delay_ms = 100,
        .max_delay_ms = 1000,
        .request_timeout_ms = 5000,
        .env = env,
        .sleep_ms = fake_sleep,
        .sleep_ctx = f,
    };
    http_client *c = NULL;
    char *err = NULL;
    CHECK_MSG(http_open(&cfg, &c, &err) == STORE_OK, "http_open: %s", err ? err : "");
    free(err);
    return c;
}

/* Starts a fake DynamoDB answering `script` and a client of it. */
static http_client *begin(server *s, const canned *script, int n, fake *f, store_env *env,
                          int attempts, long budget) {
    server_start(s, script, n);
    return client_for(s->port, f, env, attempts, budget, HTTP_DYNAMODB);
}

/* Ends what begin started: the last answer, the client, the fake and what
 * it saw. */
static void finish(server *s, http_client *c, http_response *r) {
    http_response_free(r);
    http_close(c);
    server_stop(s);
    server_free(s);
}

/* The value of a header in a raw request (static buffer). */
static const char *header_of(const char *req, const char *name) {
    static char v[1024];
    size_t n = strlen(name);
    for (const char *p = req; p && *p; p = strstr(p, "\r\n") ? strstr(p, "\r\n") + 2 : NULL) {
        if (!strncmp(p, "\r\n", 2)) break;
        if (!strncasecmp(p, name, n) && p[n] == ':') {
            const char *s = p + n + 1, *e = strstr(s, "\r\n");
            while (*s == ' ') s++;
            snprintf(v, sizeof v, "%.*s", (int)(e - s), s);
            return v;
        }
    }
    return NULL;
}

static const char *body_of(const char *req) {
    const char *b = strstr(req, "\r\n\r\n");
    return b ? b + 4 : "";
}

/* ------------------------------------------------------------------ */

static void test_request_shape(void) {
    server s;
    fake f = {.now = 1440938160000ULL, .byte = 0x80};
    store_env env;
    canned script[] = {{200, "{\"TableNames\":[\"a\"]}", NULL}, {200, "{\"Count\":0}", NULL}};
    http_client *c = begin(&s, script, 2, &f, &env, 3, 10000);
    http_response r = {0};
    char *err = NULL;
    const char *body = "{\"Limit\":1,\"s\":\"caf\xc3\xa9\"}";
    CHECK_MSG(http_call(c, "ListTables", body, strlen(body), true, &r, &err) == STORE_OK,
              "call: %s", err ? err : "");
    CHECK_MSG(r.status == 200 && r.attempts == 1 && !r.error, "200 in one attempt");
    CHECK_MSG(json_is_array(json_object_get(r.json, "TableNames")), "answer parsed");
    CHECK_MSG(r.body && !strcmp(r.body, "{\"TableNames\":[\"a\"]}"), "answer body kept");
    f.now += 1000;
    CHECK_MSG(http_call(c, "Query", "{}", 2, true, &r, &err) == STORE_OK, "second call");
    http_response_free(&r);
    http_close(c);
    server_stop(&s);
    CHECK_MSG(s.connections == 1, "one connection for two calls (kept alive), got %d",
              s.connections);
    CHECK_MSG(s.nseen == 2, "two requests seen");
    if (s.nseen < 1) return;
    const char *req = s.seen[0];
    CHECK_MSG(!strncmp(req, "POST / HTTP/1.1\r\n", 17), "POST / HTTP/1.1");
    char host[64];
    snprintf(host, sizeof host, "127.0.0.1:%d", s.port);
    CHECK_STR_AS(header_of(req, "Host"), host, "Host");
    CHECK_STR_AS(header_of(req, "X-Amz-Target"), "DynamoDB_20120810.ListTables", "target");
    CHECK_STR_AS(header_of(req, "Content-Type"), "application/x-amz-json-1.0", "content type");
    CHECK_STR_AS(header_of(req, "X-Amz-Date"), "20150830T123600Z", "date from the injected clock");
    CHECK_MSG(header_of(req, "Expect") == NULL, "no Expect: 100-continue");
    CHECK_MSG(header_of(req, "X-Amz-Security-Token") == NULL, "no token header without a token");
    CHECK_STR_AS(body_of(req), body, "body sent as given");

    /* What was sent is what was signed: sign the received parts again. */
    char target[128], date[32];
    snprintf(target, sizeof target, "%s", header_of(req, "X-Amz-Target"));
    snprintf(date, sizeof date, "%s", header_of(req, "X-Amz-Date"));
    sigv4_header hs[] = {{"content-type", "application/x-amz-json-1.0"},
                         {"host", host},
                         {"x-amz-target", target}};
    sigv4_request sr = {.method = "POST",
                        .path = "/",
                        .headers = hs,
                        .nheaders = 3,
                        .payload = body_of(req),
                        .payload_len = strlen(body_of(req))};
    sigv4_credentials cred = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL};
    sigv4_signed sig = {0};
    CHECK_MSG(sigv4_sign(&sr, &cred, "eu-west-1", "dynamodb", 1440938160000ULL, &sig, &err) ==
                  STORE_OK,
              "re-sign");
    CHECK_STR_AS(header_of(req, "Authorization"), sig.authorization, "Authorization");
    sigv4_signed_free(&sig);
    CHECK_STR_AS(header_of(s.seen[1], "X-Amz-Date"), "20150830T123601Z",
                 "each call signed at its own time");
    server_free(&s);
    free(err);
}

static void test_streams_and_token(void) {
    server s;
    fake f = {.now = 1440938160000ULL};
    canned script[] = {{200, "{\"Streams\":[]}", NULL}};
    server_start(&s, script, 1);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s.port);
    store_env env = {fake_now, fake_random, &f};
    http_config cfg = {.endpoint = url,
                       .api = HTTP_STREAMS,
                       .region = "us-east-1",
                       .creds = {"AKIDEXAMPLE", "secret", "TOKEN/+="},
                       .env = &env};
    http_client *c = NULL;
    http_response r = {0};
    char *err = NULL;
    CHECK_MSG(http_open(&cfg, &c, &err) == STORE_OK, "open streams client");
    CHECK_MSG(c && http_call(c, "ListStreams", "{}", 2, true, &r, &err) == STORE_OK,
              "streams call");
    http_response_free(&r);
    http_close(c);
    server_stop(&s);
    CHECK_MSG(s.nseen == 1, "one streams request");
    if (s.nseen == 1) {
        CHECK_STR_AS(header_of(s.seen[0], "X-Amz-Target"), "DynamoDBStreams_20120810.ListStreams",
                     "streams target");
        CHECK_STR_AS(header_of(s.seen[0], "X-Amz-Security-Token"), "TOKEN/+=", "token sent");
        const char *a = header_of(s.seen[0], "Authorization");
        CHECK_MSG(a && strstr(a, "/us-east-1/dynamodb/aws4_request") &&
                      strstr(a, "SignedHeaders=content-type;host;x-amz-date;"
                                "x-amz-security-token;x-amz-target,"),
                  "streams sign as dynamodb, token signed: %s", a ? a : "");
    }
    server_free(&s);
    free(err);
}

static void test_retries(void) {
    server s;
    fake f = {.now = 1000000, .byte = 0xff}; /* jitter at the top of each range */
    store_env env;
    canned script[] = {
        {0, NULL, NULL}, /* a new connection dropped without an answer */
        {400,
         "{\"__type\":\"com.amazonaws.dynamodb.v20120810#"
         "ProvisionedThroughputExceededException\",\"message\":\"slow down\"}",
         NULL},
        {500, "{\"__type\":\"com.amazonaws.dynamodb.v20120810#InternalServerError\"}", NULL},
        {200, "{\"ok\":1}", "12345"}, /* damaged */
        {200, "{\"ok\":2}", NULL},
    };
    http_client *c = begin(&s, script, 5, &f, &env, 10, 60000);
    http_response r = {0};
    char *err = NULL;
    const char *body = "{\"ClientRequestToken\":\"t\"}";
    CHECK_MSG(http_call(c, "TransactWriteItems", body, strlen(body), true, &r, &err) == STORE_OK,
              "retried to success: %s", err ? err : "");
    CHECK_MSG(r.attempts == 5 && r.status == 200, "five attempts, got %d", r.attempts);
    CHECK_MSG(json_integer_value(json_object_get(r.json, "ok")) == 2, "last answer kept");
    /* Waits: full jitter under min(1000, 100 * 2^(n-1)); random bytes 0xff
     * put each just under its cap. */
    uint64_t caps[] = {100, 200, 400, 800};
    CHECK_MSG(f.nslept == 4, "four waits, got %d", f.nslept);
    for (int i = 0; i < 4 && i < f.nslept; i++)
        CHECK_MSG(f.slept[i] < caps[i] && f.slept[i] >= caps[i] - 1, "wait %d: %llu under %llu", i,
                  (unsigned long long)f.slept[i], (unsigned long long)caps[i]);
    http_response_free(&r);
    http_close(c);
    server_stop(&s);
    CHECK_MSG(s.nseen == 5, "five requests seen, got %d", s.nseen);
    for (int i = 1; i < s.nseen; i++) {
        CHECK_STR_AS(body_of(s.seen[i]), body, "each retry sends the same body");
        char d0[32];
        snprintf(d0, sizeof d0, "%s", header_of(s.seen[i - 1], "X-Amz-Date"));
        CHECK_MSG(strcmp(d0, header_of(s.seen[i], "X-Amz-Date")) <= 0, "re-signed later");
    }
    CHECK_MSG(s.connections == 2, "a new connection only after the drop, got %d", s.connections);
    server_free(&s);
    free(err);

    /* A kept-alive connection that closes without a byte of answer: curl
     * itself resends once on a fresh connection (the keep-alive race). */
    f = (fake){.now = 1000000, .byte = 0xff};
    canned race[] = {{200, "{}", NULL}, {0, NULL, NULL}, {200, "{\"n\":3}", NULL}};
    c = begin(&s, race, 3, &f, &env, 10, 60000);
    err = NULL;
    CHECK_MSG(http_call(c, "GetItem", "{}", 2, false, &r, &err) == STORE_OK, "race: first call");
    CHECK_MSG(http_call(c, "GetItem", "{}", 2, false, &r, &err) == STORE_OK && r.attempts == 1 &&
                  json_integer_value(json_object_get(r.json, "n")) == 3,
              "race: curl resent on a fresh connection: %s", err ? err : "");
    http_response_free(&r);
    http_close(c);
    server_stop(&s);
    CHECK_MSG(s.nseen == 3 && s.connections == 2, "race: 3 requests over 2 connections");
    server_free(&s);
    free(err);

    /* Jitter is random: zero bytes give zero waits. */
    f = (fake){.now = 1000000, .byte = 0};
    canned twice[] = {{400, "{\"__type\":\"x#ThrottlingException\"}", NULL}, {200, "{}", NULL}};
    c = begin(&s, twice, 2, &f, &env, 10, 60000);
    err = NULL;
    CHECK_MSG(http_call(c, "GetItem", "{}", 2, false, &r, &err) == STORE_OK,
              "throttling is retried even when not retry-safe");
    CHECK_MSG(f.nslept == 1 && f.slept[0] == 0, "zero jitter, zero wait");
    finish(&s, c, &r);
    free(err);
}

static void test_not_retried(void) {
    server s;
    fake f = {.now = 1000000, .byte = 0x40};
    store_env env;
    http_response r = {0};
    char *err = NULL;

    /* A 5xx on a call that is not safe to repeat: reported, not retried. */
    canned five[] = {{503, "{\"__type\":\"x#ServiceUnavailable\"}", NULL}};
    http_client *c = begin(&s, five, 1, &f, &env, 10, 60000);
    CHECK_MSG(http_call(c, "PutItem", "{}", 2, false, &r, &err) == STORE_IO && r.attempts == 1 &&
                  r.status == 503 && err && strstr(err, "may have been applied") &&
                  strstr(err, "ServiceUnavailable"),
              "503 not retried when unsafe: %s", err ? err : "");
    finish(&s, c, &r);
    free(err);
    err = NULL;

    /* Errors that are the answer: a failed condition, a cancelled transaction. */
    canned final[] = {
        {400,
         "{\"__type\":\"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException\","
         "\"Message\":\"The conditional request failed\"}",
         "none"},
        {400,
         "{\"__type\":\"com.amazonaws.dynamodb.v20120810#TransactionCanceledException\","
         "\"CancellationReasons\":[{\"Code\":\"None\"},{\"Item\":{\"revision\":{\"S\":\"R1\"}},"
         "\"Code\":\"ConditionalCheckFailed\",\"Message\":\"The conditional request failed\"}],"
         "\"Message\":\"Transaction cancelled [None, ConditionalCheckFailed]\"}",
         NULL},
        {400,
         "{\"__type\":\"com.amazon.coral.validate#ValidationException\","
         "\"Message\":\"Item size has exceeded the maximum allowed size\"}",
         NULL},
    };
    c = begin(&s, final, 3, &f, &env, 10, 60000);
    CHECK_MSG(http_call(c, "PutItem", "{}", 2, true, &r, &err) == STORE_OK && r.attempts == 1 &&
                  r.status == 400 && r.error &&
                  !strcmp(r.error, "ConditionalCheckFailedException") && r.message &&
                  !strcmp(r.message, "The conditional request failed"),
              "condition failure is an answer");
    CHECK_MSG(http_cancellation_reasons(&r) == NULL, "no reasons on another error");
    CHECK_MSG(http_call(c, "TransactWriteItems", "{}", 2, true, &r, &err) == STORE_OK &&
                  r.attempts == 1 && r.error && !strcmp(r.error, "TransactionCanceledException"),
              "cancelled transaction is an answer");
    CHECK_MSG(json_array_size(http_cancellation_reasons(&r)) == 2, "two reasons");
    CHECK_STR_AS(http_cancellation_code(&r, 0), "None", "reason 0");
    CHECK_STR_AS(http_cancellation_code(&r, 1), "ConditionalCheckFailed", "reason 1");
    CHECK_MSG(http_cancellation_code(&r, 2) == NULL, "no reason 2");
    const json_t *item = json_object_get(json_array_get(http_cancellation_reasons(&r), 1), "Item");
    CHECK_STR_AS(json_string_value(json_object_get(json_object_get(item, "revision"), "S")), "R1",
                 "the item that failed its check");
    CHECK_MSG(http_call(c, "PutItem", "{}", 2, true, &r, &err) == STORE_OK, "validation answer");
    CHECK_MSG(http_fail(&r, "PutItem", &err) == STORE_LIMIT && err &&
                  strstr(err, "dynamodb PutItem: ValidationException: Item size"),
              "size limit maps to STORE_LIMIT: %s", err ? err : "");
    free(err);
    err = NULL;
    finish(&s, c, &r);

    /* A cancelled transaction that only met contention is retried. */
    canned conflict[] = {
        {400,
         "{\"__type\":\"x#TransactionCanceledException\",\"CancellationReasons\":"
         "[{\"Code\":\"None\"},{\"Code\":\"TransactionConflict\"}]}",
         NULL},
        {400, "{\"__type\":\"x#TransactionConflictException\"}", NULL},
        {200, "{}", NULL},
    };
    c = begin(&s, conflict, 3, &f, &env, 10, 60000);
    CHECK_MSG(http_call(c, "TransactWriteItems", "{}", 2, false, &r, &err) == STORE_OK &&
                  r.attempts == 3 && r.status == 200,
              "conflicts retried: attempts %d", r.attempts);
    finish(&s, c, &r);
    free(err);
}

/* A 2xx that is not JSON is an answer cut short (curl may end a response at
 * a closed connection without an error when its headers were cut): the
 * outcome is unknown, so it is retried only when safe. */
static void test_cut_short(void) {
    server s;
    fake f = {.now = 1000000, .byte = 0};
    store_env env;
    http_response r = {0};
    char *err = NULL;
    canned script[] = {{200, "", "none"}, {200, "{\"ok\":1}", NULL}, {200, "{\"x", NULL}};
    http_client *c = begin(&s, script, 3, &f, &env, 10, 60000);
    CHECK_MSG(http_call(c, "TransactWriteItems", "{}", 2, true, &r, &err) == STORE_OK &&
                  r.attempts == 2 && json_integer_value(json_object_get(r.json, "ok")) == 1,
              "empty 200 retried when safe: %s", err ? err : "");
    CHECK_MSG(http_call(c, "PutItem", "{}", 2, false, &r, &err) == STORE_IO && r.attempts == 1 &&
                  err && strstr(err, "cut short") && strstr(err, "may have been applied"),
              "truncated 200 not retried when unsafe: %s", err ? err : "");
    finish(&s, c, &r);
    free(err);
}

static void test_bounds(void) {
    server s;
    fake f = {.now = 1000000, .byte = 0xff};
    store_env env;
    http_response r = {0};
    char *err = NULL;
    canned throttled = {400, "{\"__type\":\"x#ThrottlingException\",\"message\":\"Rate exceeded\"}",
                        NULL};
    canned script[MAX_STEPS];
    for (int i = 0; i < MAX_STEPS; i++) script[i] = throttled;

    /* Bounded in attempts. */
    http_client *c = begin(&s, script, MAX_STEPS, &f, &env, 3, 60000);
    CHECK_MSG(http_call(c, "Query", "{}", 2, true, &r, &err) == STORE_IO && r.attempts == 3 &&
                  err && strstr(err, "ThrottlingException: Rate exceeded") &&
                  strstr(err, "after 3 attempts"),
              "gives up after 3 attempts: %s", err ? err : "");
    CHECK_MSG(r.status == 400 && r.error, "last answer kept after giving up");
    free(err);
    err = NULL;
    finish(&s, c, &r);

    /* Bounded in time: waits of ~100, 200, 400 ms fit 1 s, 800 does not. */
    f = (fake){.now = 1000000, .byte = 0xff};
    c = begin(&s, script, MAX_STEPS, &f, &env, 10, 1000);
    CHECK_MSG(http_call(c, "Query", "{}", 2, true, &r, &err) == STORE_IO && r.attempts == 4 &&
                  f.nslept == 3,
              "gives up within the budget: attempts %d, waits %d: %s", r.attempts, f.nslept,
              err ? err : "");
    free(err);
    err = NULL;
    finish(&s, c, &r);

    /* Nobody listening: retried (nothing was sent), then reported. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &alen);
    close(fd); /* a port with no listener */
    f = (fake){.now = 1000000, .byte = 0x10};
    c = client_for(ntohs(a.sin_port), &f, &env, 3, 60000, HTTP_DYNAMODB);
    CHECK_MSG(http_call(c, "GetItem", "{}", 2, false, &r, &err) == STORE_IO && r.attempts == 3 &&
                  r.status == 0 && err && strstr(err, "after 3 attempts"),
              "connection refused retried even when unsafe: %s", err ? err : "");
    free(err);
    err = NULL;
    http_response_free(&r);
    http_close(c);
}

/* The real clock and randomness, for the live checks. */
static uint64_t real_now(void *ctx) {
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void real_random(void *ctx, uint8_t *out, size_t len) {
    (void)ctx;
    for (size_t i = 0; i < len; i++) out[i] = (uint8_t)rand();
}

static const store_env real_env = {real_now, real_random, NULL};

static void test_config(void) {
    const char *bad[] = {"ftp://x",      "http://", "http://h/path", "http://u@h", "h:8000",
                         "http://h?x=1", NULL};
    for (int i = 0; bad[i]; i++) {
        http_config cfg = {.endpoint = bad[i],
                           .region = "r",
                           .creds = {"a", "s", NULL},
                           .env = &real_env};
        http_client *c = NULL;
        char *err = NULL;
        CHECK_MSG(http_open(&cfg, &c, &err) == STORE_INVALID && !c && err, "endpoint %s refused",
                  bad[i]);
        free(err);
    }
    http_config nocred = {.endpoint = "http://h",
                          .region = "r",
                          .creds = {"a", "", NULL},
                          .env = &real_env};
    http_client *c = NULL;
    char *err = NULL;
    CHECK_MSG(http_open(&nocred, &c, &err) == STORE_INVALID && err && strstr(err, "credentials"),
              "no secret refused");
    free(err);
    err = NULL;
    http_config noregion = {.endpoint = "http://h", .creds = {"a", "s", NULL}, .env = &real_env};
    CHECK_MSG(http_open(&noregion, &c, &err) == STORE_INVALID && err && strstr(err, "region"),
              "no region refused");
    free(err);
    err = NULL;
    http_config noenv = {.endpoint = "http://h", .region = "r", .creds = {"a", "s", NULL}};
    CHECK_MSG(http_open(&noenv, &c, &err) == STORE_INVALID && err, "no store_env refused");
    free(err);
    CHECK_MSG(http_crc32("123456789", 9) == 0xcbf43926u, "CRC-32 check value");
    CHECK_MSG(http_crc32("{\"Streams\":[]}", 14) == 1490112021u,
              "CRC-32 as DynamoDB Local sent it");
}

/* ------------------------------------------------------------------ */
/* Live, against DynamoDB Local                                        */

static json_t *jparse(const char *text) {
    json_t *j = json_loads(text, 0, NULL);
    if (!j) fprintf(stderr, "bad test JSON: %s\n", text);
    return j;
}

static bool live_call(http_client *c, const char *op, const char *text, http_response *r) {
    json_t *j = jparse(text);
    char *err = NULL;
    store_status st = http_call_json(c, op, j, true, r, &err);
    json_decref(j);
    CHECK_MSG(st == STORE_OK, "live %s: %s", op, err ? err : "");
    free(err);
    return st == STORE_OK;
}

static void test_live(const char *endpoint) {
    http_config cfg = {.endpoint = endpoint,
                       .region = "us-east-1",
                       .creds = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL},
                       .env = &real_env};
    http_client *c = NULL;
    http_response r = {0};
    char *err = NULL, table[64], text[2048];
    if (http_open(&cfg, &c, &err) != STORE_OK) {
        CHECK_MSG(0, "live open: %s", err);
        free(err);
        return;
    }
    snprintf(table, sizeof table, "aeon-http-test-%ld", (long)getpid());
    snprintf(text, sizeof text,
             "{\"TableName\":\"%s\",\"BillingMode\":\"PAY_PER_REQUEST\","
             "\"AttributeDefinitions\":[{\"AttributeName\":\"pk\",\"AttributeType\":\"S\"}],"
             "\"KeySchema\":[{\"AttributeName\":\"pk\",\"KeyType\":\"HASH\"}]}",
             table);
    if (!live_call(c, "CreateTable", text, &r) || r.status != 200) {
        CHECK_MSG(0, "live CreateTable: %s", r.body ? r.body : "");
        goto done;
    }

    /* An event's data through ddb_value, stored, and read back consistently. */
    const char *data = "{\"n\":1,\"f\":1.0,\"big\":1e20,\"pi\":3.141592653589793,"
                       "\"tiny\":1e-130,\"max\":9223372036854775807,\"s\":\"caf\\u00e9 \\u0000\","
                       "\"e\":\"\",\"l\":[[],{},null,true,2.5,-0.0],\"o\":{\"x/y\":{\"~\":3.0}}}";
    const char *want = "{\"big\":1e20,\"e\":\"\",\"f\":1.0,\"l\":[[],{},null,true,2.5,0.0],"
                       "\"max\":9223372036854775807,\"n\":1,\"o\":{\"x/y\":{\"~\":3.0}},"
                       "\"pi\":3.1415926535897931,\"s\":\"caf\xc3\xa9 \\u0000\","
                       "\"tiny\":1.0000000000000001e-130}";
    json_t *av = NULL, *floats = NULL;
    CHECK_MSG(ddb_value_from_json(data, strlen(data), &av, &floats, &err) == STORE_OK, "marshal");
    json_t *put = json_pack("{s:s,s:{s:{s:s},s:O,s:O}}", "TableName", table, "Item", "pk", "S",
                            "e1", "data", av, "dataFloats", floats);
    char *e2 = NULL;
    CHECK_MSG(http_call_json(c, "PutItem", put, true, &r, &e2) == STORE_OK && r.status == 200,
              "live PutItem: %s %s", e2 ? e2 : "", r.body ? r.body : "");
    free(e2);
    json_decref(put);
    snprintf(text, sizeof text,
             "{\"TableName\":\"%s\",\"Key\":{\"pk\":{\"S\":\"e1\"}},\"ConsistentRead\":true}",
             table);
    if (live_call(c, "GetItem", text, &r)) {
        json_t *item = json_object_get(r.json, "Item");
        if (!item) fprintf(stderr, "GetItem answered %s\n", r.body);
        /* DynamoDB normalises numbers: 1.0 comes back as "1". */
        const char *fN = json_string_value(
            json_object_get(json_object_get(json_object_get(json_object_get(item, "data"), "M"),
                                            "f"),
                            "N"));
        CHECK_STR_AS(fN, "1", "DynamoDB hands 1.0 back as N \"1\"");
        char *out = NULL;
        CHECK_MSG(ddb_value_to_json(json_object_get(item, "data"),
                                    json_object_get(item, "dataFloats"), &out, NULL,
                                    &err) == STORE_OK,
                  "unmarshal");
        CHECK_STR_AS(out, want, "live round trip of event data");
        free(out);
    }
    json_decref(av);
    json_decref(floats);

    /* A transaction with a token; its repeat; a failed condition. */
    snprintf(text, sizeof text,
             "{\"ClientRequestToken\":\"tok-%ld\",\"ReturnConsumedCapacity\":\"TOTAL\","
             "\"TransactItems\":[{\"Put\":{\"TableName\":\"%s\",\"Item\":{\"pk\":{\"S\":\"head\"},"
             "\"revision\":{\"S\":\"R1\"}},\"ConditionExpression\":\"attribute_not_exists(#r)\","
             "\"ExpressionAttributeNames\":{\"#r\":\"revision\"}}}]}",
             (long)getpid(), table);
    if (live_call(c, "TransactWriteItems", text, &r)) {
        CHECK_MSG(r.status == 200, "transaction commits");
        json_t *cc = json_array_get(json_object_get(r.json, "ConsumedCapacity"), 0);
        CHECK_MSG(json_number_value(json_object_get(cc, "WriteCapacityUnits")) > 0,
                  "first commit consumes write capacity");
    }
    if (live_call(c, "TransactWriteItems", text, &r)) {
        CHECK_MSG(r.status == 200, "idempotent repeat succeeds");
        json_t *cc = json_array_get(json_object_get(r.json, "ConsumedCapacity"), 0);
        CHECK_MSG(json_object_get(cc, "WriteCapacityUnits") == NULL &&
                      json_number_value(json_object_get(cc, "ReadCapacityUnits")) > 0,
                  "an idempotent repeat consumes only read capacity: %s", r.body);
    }
    snprintf(
        text, sizeof text,
        "{\"TransactItems\":[{\"Put\":{\"TableName\":\"%s\",\"Item\":{\"pk\":{\"S\":\"other\"}}}},"
        "{\"Put\":{\"TableName\":\"%s\",\"Item\":{\"pk\":{\"S\":\"head\"},"
        "\"revision\":{\"S\":\"R2\"}},\"ConditionExpression\":\"#r = :e\","
        "\"ExpressionAttributeNames\":{\"#r\":\"revision\"},"
        "\"ExpressionAttributeValues\":{\":e\":{\"S\":\"R0\"}},"
        "\"ReturnValuesOnConditionCheckFailure\":\"ALL_OLD\"}}]}",
        table, table);
    if (live_call(c, "TransactWriteItems", text, &r)) {
        CHECK_MSG(r.status == 400 && r.error && !strcmp(r.error, "TransactionCanceledException"),
                  "conflict cancels: %s", r.body);
        CHECK_STR_AS(http_cancellation_code(&r, 0), "None", "live reason 0");
        CHECK_STR_AS(http_cancellation_code(&r, 1), "ConditionalCheckFailed", "live reason 1");
        const json_t *it =
            json_object_get(json_array_get(http_cancellation_reasons(&r), 1), "Item");
        CHECK_STR_AS(json_string_value(json_object_get(json_object_get(it, "revision"), "S")), "R1",
                     "live: the head that failed the check");
    }
    snprintf(text, sizeof text, "{\"TableName\":\"%s\"}", table);
    live_call(c, "DeleteTable", text, &r);
done:
    http_response_free(&r);
    http_close(c);
    free(err);
}

int main(void) {
    test_config();
    test_request_shape();
    test_streams_and_token();
    test_retries();
    test_not_retried();
    test_cut_short();
    test_bounds();
    const char *ep = test_local_endpoint();
    if (ep != NULL) test_live(ep);
    return test_report();
}
