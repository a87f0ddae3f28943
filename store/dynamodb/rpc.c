/*
 * http.c - the DynamoDB JSON protocol over libcurl (see http.h).
 *
 * Provides http_client and http_call: one CURL easy handle per client, so
 * curl keeps the connection alive between calls; each attempt re-signed
 * (SigV4, fresh X-Amz-Date) over a byte-identical body; answers parsed with
 * jansson; retries with capped exponential backoff and full jitter. Uses
 * sigv4.h, libcurl, jansson, pthread_once for curl's global init.
 */
#include "rpc.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#define BODY_MAX ((size_t)64 << 20) /* no DynamoDB answer comes near this */
#define USER_AGENT "aeon-host/0.1"

/* What to do after an attempt. */
typedef enum verdict {
    DONE,          /* an answer for the caller */
    RETRY,         /* the request had no effect: try again */
    RETRY_IF_SAFE, /* outcome unknown: again only if the caller allows */
    FAIL,          /* no point trying again (TLS verification, bad URL, ...) */
} verdict;

struct http_client {
    CURL *curl;                          /* the one handle; keeps the connection */
    char *url;                           /* endpoint + "/" */
    char *host;                          /* Host header as sent and signed */
    const char *prefix;                  /* X-Amz-Target prefix, with the '.' */
    char *region;                        /* signing region */
    char *access_key;                    /* AWS_ACCESS_KEY_ID, owned copy */
    char *secret_key;                    /* owned copy, wiped on close */
    char *session_token;                 /* owned copy; NULL when none */
    long request_timeout_ms;             /* per attempt */
    long retry_budget_ms;                /* per call */
    long base_delay_ms;                  /* first backoff cap */
    long max_delay_ms;                   /* largest backoff */
    int max_attempts;                    /* per call */
    store_env env;                       /* clock and randomness */
    void (*sleep_ms)(void *, uint64_t);  /* how to wait */
    void *sleep_ctx;                     /* passed to sleep_ms */
    char curl_error[CURL_ERROR_SIZE];    /* curl's words for the last failure */
    char *buf;                           /* the answer being received */
    size_t len;                          /* bytes in buf */
    size_t cap;                          /* bytes allocated for buf */
    bool too_big;                        /* the answer passed BODY_MAX */
    bool has_crc;                        /* the answer carried x-amz-crc32 */
    uint32_t crc;                        /* its value */
    http_count counts[HTTP_COUNTED_OPS]; /* requests sent, per operation */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

static void curl_init(void) { curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT); }

/* zlib's CRC-32, four bits at a time: small, and fast enough for 1 MB pages. */
uint32_t http_crc32(const void *data, size_t len) {
    static const uint32_t t[16] = {
        0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4,
        0x4db26158, 0x5005713c, 0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
        0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
    };
    const unsigned char *p = data;
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < len; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ t[crc & 15];
        crc = (crc >> 4) ^ t[crc & 15];
    }
    return crc ^ 0xffffffffu;
}

static size_t on_body(char *data, size_t size, size_t n, void *ctx) {
    http_client *c = ctx;
    size_t add = size * n;
    if (c->len + add + 1 > BODY_MAX) {
        c->too_big = true;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    if (c->len + add + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + add + 1) cap *= 2;
        char *b = realloc(c->buf, cap);
        if (!b) return 0;
        c->buf = b;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, data, add);
    c->len += add;
    c->buf[c->len] = '\0';
    return add;
}

static size_t on_header(char *data, size_t size, size_t n, void *ctx) {
    http_client *c = ctx;
    size_t len = size * n;
    static const char name[] = "x-amz-crc32:";
    if (len > sizeof name - 1 && !strncasecmp(data, name, sizeof name - 1)) {
        char v[16];
        size_t m = len - (sizeof name - 1);
        if (m >= sizeof v) m = sizeof v - 1;
        memcpy(v, data + sizeof name - 1, m);
        v[m] = '\0';
        char *end = NULL;
        unsigned long long crc = strtoull(v, &end, 10);
        c->has_crc = end != v && crc <= 0xffffffffull;
        c->crc = (uint32_t)crc;
    }
    return len;
}

static void default_sleep(void *ctx, uint64_t ms) {
    (void)ctx;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* Splits "scheme://authority[/]" into the URL to POST to and the Host
 * header, dropping a default port from the latter as botocore does. */
static store_status parse_endpoint(const char *endpoint, char **url, char **host, bool *loopback,
                                   char **err) {
    const char *rest;
    bool https;
    if (!endpoint || !*endpoint) return store_fail(err, STORE_INVALID, "dynamodb: no endpoint");
    if (!strncasecmp(endpoint, "https://", 8)) {
        https = true;
        rest = endpoint + 8;
    } else if (!strncasecmp(endpoint, "http://", 7)) {
        https = false;
        rest = endpoint + 7;
    } else {
        return store_fail(err, STORE_INVALID,
                          "dynamodb: endpoint %s is not an http:// or https:// URL", endpoint);
    }
    size_t alen = strcspn(rest, "/?#");
    if (alen == 0 || alen > 262 || memchr(rest, '@', alen) ||
        (rest[alen] && strcmp(rest + alen, "/")))
        return store_fail(err, STORE_INVALID,
                          "dynamodb: endpoint %s must be scheme://host[:port] with no "
                          "path, query or user",
                          endpoint);
    size_t hlen = alen;
    const char *dflt = https ? ":443" : ":80";
    size_t dlen = strlen(dflt);
    if (hlen > dlen && !strncmp(rest + hlen - dlen, dflt, dlen)) hlen -= dlen;
    *host = strndup(rest, hlen);
    *url = malloc((size_t)(rest - endpoint) + alen + 2);
    if (!*host || !*url) {
        free(*host);
        free(*url);
        *host = *url = NULL;
        return store_fail(err, STORE_NOMEM, "dynamodb: out of memory");
    }
    memcpy(*url, endpoint, (size_t)(rest - endpoint) + alen);
    strcpy(*url + (rest - endpoint) + alen, "/");
    *loopback = !strncmp(*host, "127.", 4) || !strncasecmp(*host, "localhost", 9) ||
                !strncmp(*host, "[::1]", 5);
    return STORE_OK;
}

void http_close(http_client *c) {
    if (!c) return;
    if (c->curl) curl_easy_cleanup(c->curl);
    free(c->url);
    free(c->host);
    free(c->region);
    free(c->access_key);
    if (c->secret_key) {
        memset(c->secret_key, 0, strlen(c->secret_key));
        free(c->secret_key);
    }
    free(c->session_token);
    free(c->buf);
    free(c);
}

store_status http_open(const http_config *cfg, http_client **out, char **err) {
    http_client *c = NULL;
    store_status st = STORE_NOMEM;
    bool loopback = false;

    *out = NULL;
    if (!cfg || !cfg->env || !cfg->env->now_ms || !cfg->env->random)
        return store_fail(err, STORE_INVALID, "dynamodb: no configuration or store_env");
    if (!cfg->region || !*cfg->region)
        return store_fail(err, STORE_INVALID,
                          "dynamodb: no region (set AWS_REGION or AWS_DEFAULT_REGION)");
    if (!cfg->creds.access_key || !*cfg->creds.access_key || !cfg->creds.secret_key ||
        !*cfg->creds.secret_key)
        return store_fail(err, STORE_INVALID,
                          "dynamodb: no credentials (set AWS_ACCESS_KEY_ID and "
                          "AWS_SECRET_ACCESS_KEY, or a profile)");
    pthread_once(&curl_once, curl_init);
    if (curl_init_result != CURLE_OK)
        return store_fail(err, STORE_IO, "dynamodb: libcurl would not initialise: %s",
                          curl_easy_strerror(curl_init_result));
    if (!(c = calloc(1, sizeof *c))) return store_fail(err, STORE_NOMEM, "dynamodb: out of memory");
    if ((st = parse_endpoint(cfg->endpoint, &c->url, &c->host, &loopback, err)) != STORE_OK)
        goto fail;
    st = STORE_NOMEM;
    c->prefix = cfg->api == HTTP_STREAMS ? "DynamoDBStreams_20120810." : "DynamoDB_20120810.";
    c->region = strdup(cfg->region);
    c->access_key = strdup(cfg->creds.access_key);
    c->secret_key = strdup(cfg->creds.secret_key);
    if (cfg->creds.session_token && *cfg->creds.session_token &&
        !(c->session_token = strdup(cfg->creds.session_token)))
        goto nomem;
    if (!c->region || !c->access_key || !c->secret_key) goto nomem;
    c->request_timeout_ms = cfg->request_timeout_ms > 0 ? cfg->request_timeout_ms : 15000;
    c->retry_budget_ms = cfg->retry_budget_ms > 0 ? cfg->retry_budget_ms : 30000;
    c->base_delay_ms = cfg->base_delay_ms > 0 ? cfg->base_delay_ms : 50;
    c->max_delay_ms = cfg->max_delay_ms > 0 ? cfg->max_delay_ms : 5000;
    c->max_attempts = cfg->max_attempts > 0 ? cfg->max_attempts : 10;
    c->env = *cfg->env;
    c->sleep_ms = cfg->sleep_ms ? cfg->sleep_ms : default_sleep;
    c->sleep_ctx = cfg->sleep_ctx;

    if (!(c->curl = curl_easy_init())) goto nomem;
    CURL *h = c->curl;
    long connect_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 3000;
    if (curl_easy_setopt(h, CURLOPT_URL, c->url) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK)
        goto nomem;
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* timeouts without SIGALRM */
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_USERAGENT, USER_AGENT);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->curl_error);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
    if (loopback) /* DynamoDB Local: never through an http_proxy */
        curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    /* The AWS SDKs' setting for the CA bundle: libcurl's own default is a
     * path fixed when it was built, which another system may not have (the
     * Debian build's on Amazon Linux, under Lambda). */
    const char *ca = getenv("AWS_CA_BUNDLE");
    if (ca && *ca) curl_easy_setopt(h, CURLOPT_CAINFO, ca);
    *out = c;
    return STORE_OK;
nomem:
    st = store_fail(err, STORE_NOMEM, "dynamodb: out of memory");
fail:
    http_close(c);
    return st;
}

void http_response_free(http_response *r) {
    if (!r) return;
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

const json_t *http_cancellation_reasons(const http_response *r) {
    if (!r || !r->error || strcmp(r->error, "TransactionCanceledException")) return NULL;
    json_t *a = json_object_get(r->json, "CancellationReasons");
    return json_is_array(a) ? a : NULL;
}

const char *http_cancellation_code(const http_response *r, size_t i) {
    const json_t *a = http_cancellation_reasons(r);
    if (!a || i >= json_array_size(a)) return NULL;
    const char *code = json_string_value(json_object_get(json_array_get(a, i), "Code"));
    return code ? code : "None";
}

/* Reads the error name and message of a JSON answer into r. */
static void parse_answer(http_response *r) {
    /* Strings may hold U+0000: event data can. */
    json_t *j = r->body ? json_loadb(r->body, r->body_len, JSON_ALLOW_NUL, NULL) : NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        return;
    }
    r->json = j;
    if (r->status >= 200 && r->status < 300) return;
    const char *type = json_string_value(json_object_get(j, "__type"));
    if (type) {
        const char *hash = strrchr(type, '#');
        r->error = hash ? hash + 1 : type;
    }
    r->message = json_string_value(json_object_get(j, "Message"));
    if (!r->message) r->message = json_string_value(json_object_get(j, "message"));
}

/* "Name: value", malloc'd. */
static char *header_line(const char *name, const char *value) {
    size_t n = strlen(name) + strlen(value) + 3;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s: %s", name, value);
    return s;
}

static store_status rpc_nomem(char **err) {
    return store_fail(err, STORE_NOMEM, "dynamodb: out of memory");
}

/* Appends a header line to *hs; false on no memory (*hs stays whole). */
static bool add_header(struct curl_slist **hs, const char *line) {
    struct curl_slist *t = curl_slist_append(*hs, line);
    if (t) *hs = t;
    return t != NULL;
}

/* Signs the request and builds its header list in *hs (the caller frees
 * it, also on failure). */
static store_status signed_headers(http_client *c, const char *target, const char *body, size_t len,
                                   struct curl_slist **hs, char **err) {
    sigv4_signed sig = {0};
    char line[256], hostline[300], dateline[64];
    char *authz = NULL, *token = NULL;
    sigv4_header sh[] = {
        {"Content-Type", "application/x-amz-json-1.0"},
        {"Host", c->host},
        {"X-Amz-Target", target},
    };
    sigv4_request req = {
        .method = "POST",
        .path = "/",
        .query = "",
        .headers = sh,
        .nheaders = sizeof sh / sizeof *sh,
        .payload = body,
        .payload_len = len,
    };
    sigv4_credentials cred = {c->access_key, c->secret_key, c->session_token};

    store_status st =
        sigv4_sign(&req, &cred, c->region, "dynamodb", c->env.now_ms(c->env.ctx), &sig, err);
    if (st != STORE_OK) return st;
    snprintf(line, sizeof line, "X-Amz-Target: %s", target);
    snprintf(hostline, sizeof hostline, "Host: %s", c->host);
    snprintf(dateline, sizeof dateline, "X-Amz-Date: %s", sig.amz_date);
    const char *fixed[] = {
        "Content-Type: application/x-amz-json-1.0",
        line,
        hostline,
        dateline,
        "Expect:", /* no 100-continue round trip */
        "Accept:", /* curl's default says nothing DynamoDB needs */
    };
    bool ok = (authz = header_line("Authorization", sig.authorization)) != NULL &&
              (!c->session_token ||
               (token = header_line("X-Amz-Security-Token", c->session_token)) != NULL);
    for (size_t i = 0; ok && i < sizeof fixed / sizeof *fixed; i++) ok = add_header(hs, fixed[i]);
    ok = ok && (!token || add_header(hs, token)) && add_header(hs, authz);
    sigv4_signed_free(&sig);
    free(authz);
    free(token);
    return ok ? STORE_OK : rpc_nomem(err);
}

/* One signed POST. Fills r from the answer; *cc tells how the transfer
 * went; *sent whether any of the request left. */
static store_status attempt(http_client *c, const char *target, const char *body, size_t len,
                            long timeout_ms, http_response *r, CURLcode *cc, bool *sent,
                            char **err) {
    struct curl_slist *hs = NULL;
    http_response_free(r);
    store_status st = signed_headers(c, target, body, len, &hs, err);
    if (st != STORE_OK) {
        curl_slist_free_all(hs);
        return st;
    }

    c->len = 0;
    c->too_big = false;
    c->has_crc = false;
    c->curl_error[0] = '\0';
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    *cc = curl_easy_perform(c->curl);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hs);

    long code = 0, request_size = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(c->curl, CURLINFO_REQUEST_SIZE, &request_size);
    *sent = request_size > 0;
    r->status = *cc == CURLE_OK ? code : 0;
    if (*cc == CURLE_OK) {
        if (!c->buf && !(c->buf = calloc(1, 1))) return rpc_nomem(err);
        r->body = c->buf; /* hand the buffer over; the next attempt grows a new one */
        r->body_len = c->len;
        c->buf = NULL;
        c->len = c->cap = 0;
        parse_answer(r);
    }
    return STORE_OK;
}

static bool is_throttle(const char *e) {
    return e && (!strcmp(e, "ProvisionedThroughputExceededException") ||
                 !strcmp(e, "ThrottlingException") || !strcmp(e, "RequestLimitExceeded") ||
                 !strcmp(e, "TransactionConflictException") ||
                 !strcmp(e, "TransactionInProgressException"));
}

/* A cancelled transaction is worth repeating when nothing but contention
 * stopped it: every reason is None, a conflict or throttling. */
static bool cancelled_by_contention(const http_response *r) {
    const json_t *a = http_cancellation_reasons(r);
    bool any = false;
    for (size_t i = 0; a && i < json_array_size(a); i++) {
        const char *code = http_cancellation_code(r, i);
        if (!strcmp(code, "None")) continue;
        if (strcmp(code, "TransactionConflict") && strcmp(code, "ThrottlingError") &&
            strcmp(code, "ProvisionedThroughputExceeded"))
            return false;
        any = true;
    }
    return any;
}

static verdict judge(const http_client *c, CURLcode cc, bool sent, const http_response *r) {
    switch (cc) {
    case CURLE_OK:
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        /* Nothing of the request left: it cannot have had an effect. */
        return sent ? RETRY_IF_SAFE : RETRY;
    default:
        return FAIL;
    }
    if (c->has_crc && c->crc != http_crc32(r->body, r->body_len))
        return RETRY_IF_SAFE; /* damaged on the way: what did the server do? */
    /* DynamoDB answers every success with a JSON object; anything else is
     * an answer cut short (curl can end a response at a closed connection
     * without an error when the headers were cut): outcome unknown. */
    if (r->status >= 200 && r->status < 300) return r->json != NULL ? DONE : RETRY_IF_SAFE;
    if (is_throttle(r->error) || r->status == 429) return RETRY;
    if (r->error && !strcmp(r->error, "TransactionCanceledException"))
        return cancelled_by_contention(r) ? RETRY : DONE;
    if (r->status >= 500) return RETRY_IF_SAFE;
    return DONE;
}

/* One line on what went wrong in the last attempt. */
static void describe(const http_client *c, CURLcode cc, const http_response *r, char *out,
                     size_t n) {
    if (cc != CURLE_OK)
        snprintf(out, n, "%s (%s)", c->too_big ? "answer too large" : curl_easy_strerror(cc),
                 c->curl_error[0] ? c->curl_error : c->url);
    else if (c->has_crc && c->crc != http_crc32(r->body, r->body_len))
        snprintf(out, n, "answer damaged in transit (x-amz-crc32 mismatch, HTTP %ld)", r->status);
    else if (r->status >= 200 && r->status < 300 && !r->json)
        snprintf(out, n, "answer cut short or not JSON (HTTP %ld, %zu bytes)", r->status,
                 r->body_len);
    else if (r->error && !strcmp(r->error, "TransactionCanceledException"))
        snprintf(out, n, "TransactionCanceledException: %s (HTTP %ld)",
                 r->message ? r->message : "", r->status);
    else if (r->error)
        snprintf(out, n, "%s%s%s (HTTP %ld)", r->error, r->message ? ": " : "",
                 r->message ? r->message : "", r->status);
    else
        snprintf(out, n, "HTTP %ld", r->status);
}

/* The wait before attempt n+1: full jitter over [0, min(max, base * 2^(n-1))). */
static uint64_t backoff(http_client *c, int n) {
    uint64_t cap = (uint64_t)c->base_delay_ms << (n - 1 < 30 ? n - 1 : 30);
    if (cap > (uint64_t)c->max_delay_ms) cap = (uint64_t)c->max_delay_ms;
    uint8_t b[4] = {0};
    c->env.random(c->env.ctx, b, sizeof b);
    uint32_t r = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    return (cap * r) >> 32;
}

/* One more request of op; operations past the table's size go uncounted. */
static void count_request(http_client *c, const char *op) {
    for (int i = 0; i < HTTP_COUNTED_OPS; i++) {
        http_count *k = &c->counts[i];
        if (k->op[0] == '\0') snprintf(k->op, sizeof k->op, "%s", op);
        if (strcmp(k->op, op) == 0) {
            k->requests++;
            return;
        }
    }
}

uint64_t http_requests(const http_client *c, const char *op) {
    uint64_t n = 0;
    for (int i = 0; c != NULL && i < HTTP_COUNTED_OPS && c->counts[i].op[0] != '\0'; i++)
        if (op == NULL || strcmp(c->counts[i].op, op) == 0) n += c->counts[i].requests;
    return n;
}

store_status http_call(http_client *c, const char *op, const char *body, size_t len,
                       bool retry_safe, http_response *r, char **err) {
    char target[128], why[512];
    if (!c || !op || !*op || strlen(op) > 64 || (!body && len))
        return store_fail(err, STORE_INVALID, "dynamodb: bad call");
    snprintf(target, sizeof target, "%s%s", c->prefix, op);
    http_response_free(r);

    uint64_t start = c->env.now_ms(c->env.ctx);
    for (int n = 1;; n++) {
        uint64_t now = c->env.now_ms(c->env.ctx);
        uint64_t spent = now > start ? now - start : 0;
        long left = spent < (uint64_t)c->retry_budget_ms ? c->retry_budget_ms - (long)spent : 1;
        long timeout = c->request_timeout_ms < left ? c->request_timeout_ms : left;
        CURLcode cc = CURLE_OK;
        bool sent = false;
        count_request(c, op);
        store_status st = attempt(c, target, body, len, timeout, r, &cc, &sent, err);
        r->attempts = n;
        if (st != STORE_OK) return st;
        verdict v = judge(c, cc, sent, r);
        if (v == DONE) return STORE_OK;
        describe(c, cc, r, why, sizeof why);
        if (v == FAIL) return store_fail(err, STORE_IO, "dynamodb %s: %s", op, why);
        if (v == RETRY_IF_SAFE && !retry_safe)
            return store_fail(err, STORE_IO,
                              "dynamodb %s: %s; not retried, the request may have been "
                              "applied",
                              op, why);
        uint64_t wait = backoff(c, n);
        now = c->env.now_ms(c->env.ctx);
        spent = now > start ? now - start : 0;
        if (n >= c->max_attempts || spent + wait >= (uint64_t)c->retry_budget_ms)
            return store_fail(err, STORE_IO, "dynamodb %s: %s, after %d attempt%s in %.1f s", op,
                              why, n, n == 1 ? "" : "s", (double)spent / 1000.0);
        c->sleep_ms(c->sleep_ctx, wait);
    }
}

store_status http_call_json(http_client *c, const char *op, const json_t *body, bool retry_safe,
                            http_response *r, char **err) {
    char *text = json_dumps(body, JSON_COMPACT);
    if (!text)
        return store_fail(err, body ? STORE_NOMEM : STORE_INVALID,
                          "dynamodb %s: cannot serialise the request", op ? op : "?");
    store_status st = http_call(c, op, text, strlen(text), retry_safe, r, err);
    free(text);
    return st;
}

store_status http_fail(const http_response *r, const char *op, char **err) {
    const char *e = r ? r->error : NULL, *m = r && r->message ? r->message : "";
    long status = r ? r->status : 0;
    if (e && (!strcmp(e, "ItemCollectionSizeLimitExceededException") ||
              (!strcmp(e, "ValidationException") && strstr(m, "size"))))
        return store_fail(err, STORE_LIMIT, "dynamodb %s: %s: %s (HTTP %ld)", op, e, m, status);
    if (e)
        return store_fail(err, STORE_IO, "dynamodb %s: %s%s%s (HTTP %ld)", op, e, *m ? ": " : "", m,
                          status);
    return store_fail(err, STORE_IO, "dynamodb %s: unexpected answer (HTTP %ld)", op, status);
}
