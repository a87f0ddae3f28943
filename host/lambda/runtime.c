/*
 * runtime.c - aeon.lambda: the Lambda Runtime API client and the budget of
 * one invocation (see runtime.h).
 *
 *   lambda.client(api)                  -> client for "host:port"
 *                                          ($AWS_LAMBDA_RUNTIME_API)
 *   client:next()                       -> id, event (JSON text), info
 *                                          | nil, message
 *   client:respond(id, body)            -> true | nil, message
 *   client:fail(id, type, message)      -> true | nil, message
 *   client:init_error(type, message)    -> true | nil, message
 *   lambda.within(deadline_ms, f, ...)  -> ok, stopped, f's results or its error
 *   lambda.now_ms()                     -> milliseconds since the Unix epoch
 *   lambda.stream(...), lambda.tables(...)  DynamoDB's side: stream.c
 *
 * The Runtime API (version 2018-06-01, as AWS documents it for custom
 * runtimes): GET /runtime/invocation/next blocks until an invocation comes
 * and names it in Lambda-Runtime-Aws-Request-Id, its deadline in
 * Lambda-Runtime-Deadline-Ms; POST /runtime/invocation/ID/response carries
 * the answer, POST /runtime/invocation/ID/error and /runtime/init/error a
 * JSON {"errorMessage", "errorType", "stackTrace"}; each answers 202. One
 * CURL easy handle per client keeps the loopback connection alive.
 *
 * within() runs f under the budget serve's workers use (host/server/
 * worker.c): a count hook that raises once the deadline passes, so the
 * handler unwinds as from any error, and yields out of a handler that
 * caught that error and ran on (aeon.cli.serve runs handlers in a
 * coroutine, which it then abandons). Coroutines made inside f inherit the
 * hook. Uses libcurl, bind.h (bind_class), buf.h, host.h and Lua.
 */
#include "runtime.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <lauxlib.h>

#include "bind.h"
#include "buf.h"
#include "host.h"

#define CLIENT_MT "aeon.lambda.client"
/* Events are at most 6 MB (synchronous invocations); room for more. */
#define BODY_MAX ((size_t)32 << 20)
/* Answers are posted to a loopback server that answers at once. */
#define POST_TIMEOUT_MS 30000L
/* As in worker.c: often enough to stop a loop within microseconds. */
#define HOOK_EVERY 1000

/* The invocation headers kept from the last next(), by index. */
enum { H_ID, H_DEADLINE, H_ARN, H_TRACE, H_CLIENT_CONTEXT, H_COGNITO, H_COUNT };

static const char *const header_names[H_COUNT] = {
    "Lambda-Runtime-Aws-Request-Id",       "Lambda-Runtime-Deadline-Ms",
    "Lambda-Runtime-Invoked-Function-Arn", "Lambda-Runtime-Trace-Id",
    "Lambda-Runtime-Client-Context",       "Lambda-Runtime-Cognito-Identity",
};

typedef struct client {
    CURL *curl;                  /* the one handle; keeps the connection */
    char *base;                  /* "http://host:port/2018-06-01/runtime" */
    buf body;                    /* the answer being received */
    bool too_big;                /* the answer passed BODY_MAX */
    char *headers[H_COUNT];      /* the last next()'s, malloc'd or NULL */
    char error[CURL_ERROR_SIZE]; /* curl's words for the last failure */
} client;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

static void curl_init(void) { curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT); }

static size_t on_body(char *data, size_t size, size_t n, void *ctx) {
    client *c = ctx;
    size_t add = size * n;
    if (c->body.len + add > BODY_MAX) {
        c->too_big = true;
        return 0; /* curl stops with CURLE_WRITE_ERROR */
    }
    buf_put(&c->body, data, add);
    return c->body.failed ? 0 : add;
}

/* Keeps the Lambda-Runtime-* headers; curl hands them one line at a time,
 * "Name: value\r\n". */
static size_t on_header(char *data, size_t size, size_t n, void *ctx) {
    client *c = ctx;
    size_t len = size * n;
    for (int i = 0; i < H_COUNT; i++) {
        size_t k = strlen(header_names[i]);
        if (len <= k || data[k] != ':' || strncasecmp(data, header_names[i], k) != 0) continue;
        const char *v = data + k + 1, *end = data + len;
        while (v < end && (*v == ' ' || *v == '\t')) v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ')) end--;
        char *copy = malloc((size_t)(end - v) + 1);
        if (!copy) return 0;
        memcpy(copy, v, (size_t)(end - v));
        copy[end - v] = '\0';
        free(c->headers[i]);
        c->headers[i] = copy;
    }
    return len;
}

static void clear_headers(client *c) {
    for (int i = 0; i < H_COUNT; i++) {
        free(c->headers[i]);
        c->headers[i] = NULL;
    }
}

static client *check_client(lua_State *L) {
    client *c = luaL_checkudata(L, 1, CLIENT_MT);
    if (!c->curl) luaL_error(L, "the Runtime API client is closed");
    return c;
}

/* One request to the Runtime API. 0 with *status and c->body filled;
 * -1 with the reason pushed on L's stack. */
static int request(lua_State *L, client *c, const char *path, const char *body, size_t len,
                   const char *error_type, long *status) {
    char url[1024];
    int n = snprintf(url, sizeof url, "%s%s", c->base, path);
    if (n < 0 || (size_t)n >= sizeof url) {
        lua_pushliteral(L, "the Runtime API URL is too long");
        return -1;
    }
    buf_free(&c->body);
    c->too_big = false;
    c->error[0] = '\0';
    CURL *h = c->curl;
    struct curl_slist *hdrs = NULL, *more = NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, POST_TIMEOUT_MS);
        /* No "Expect: 100-continue" wait on large answers. */
        hdrs = curl_slist_append(NULL, "Content-Type: application/json");
        if (hdrs && (more = curl_slist_append(hdrs, "Expect:"))) hdrs = more;
        if (hdrs && error_type) {
            char line[300];
            snprintf(line, sizeof line, "Lambda-Runtime-Function-Error-Type: %s", error_type);
            if ((more = curl_slist_append(hdrs, line))) hdrs = more;
        }
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        /* next blocks until Lambda has an invocation: no time limit. */
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 0L);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    if (rc != CURLE_OK) {
        lua_pushfstring(L, "the Runtime API at %s did not answer %s: %s", c->base, path,
                        c->too_big    ? "the answer is over 32 MiB"
                        : c->error[0] ? c->error
                                      : curl_easy_strerror(rc));
        return -1;
    }
    if (c->body.failed) {
        lua_pushliteral(L, "out of memory reading the Runtime API's answer");
        return -1;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    return 0;
}

/* A POST that Lambda answers 202 (any 2xx is taken). */
static int post(lua_State *L, client *c, const char *path, const char *body, size_t len,
                const char *error_type) {
    long status = 0;
    if (request(L, c, path, body, len, error_type, &status) != 0) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    if (status < 200 || status > 299) {
        lua_pushnil(L);
        lua_pushfstring(L, "the Runtime API answered %d to POST %s: %s", (int)status, path,
                        c->body.data ? c->body.data : "");
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* "/invocation/ID/WHAT" with the id escaped: it comes from the network. */
static const char *invocation_path(lua_State *L, client *c, int idx, const char *what) {
    size_t len;
    const char *id = luaL_checklstring(L, idx, &len);
    luaL_argcheck(L, len > 0, idx, "an invocation id");
    char *esc = curl_easy_escape(c->curl, id, (int)len);
    if (!esc) luaL_error(L, "out of memory");
    lua_pushfstring(L, "/invocation/%s/%s", esc, what);
    curl_free(esc);
    return lua_tostring(L, -1);
}

/* {"errorMessage": ..., "errorType": ..., "stackTrace": []} */
static char *error_body(const char *type, const char *message, size_t *len) {
    buf b = {0};
    buf_puts(&b, "{\"errorMessage\":");
    buf_json_string(&b, message, strlen(message));
    buf_puts(&b, ",\"errorType\":");
    buf_json_string(&b, type, strlen(type));
    buf_puts(&b, ",\"stackTrace\":[]}");
    return buf_take(&b, len);
}

static int post_error(lua_State *L, client *c, const char *path, int type_idx) {
    const char *type = luaL_checkstring(L, type_idx);
    const char *message = luaL_checkstring(L, type_idx + 1);
    size_t len = 0;
    char *body = error_body(type, message, &len);
    if (!body) return luaL_error(L, "out of memory");
    int n = post(L, c, path, body, len, type);
    free(body);
    return n;
}

/* ------------------------------------------------------------------ */
/* The client's methods                                                */

static int l_next(lua_State *L) {
    client *c = check_client(L);
    clear_headers(c);
    long status = 0;
    if (request(L, c, "/invocation/next", NULL, 0, NULL, &status) != 0) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    if (status != 200 || !c->headers[H_ID] || !*c->headers[H_ID]) {
        lua_pushnil(L);
        lua_pushfstring(L, "the Runtime API answered %d to GET /invocation/next%s: %s", (int)status,
                        c->headers[H_ID] ? "" : " without a request id",
                        c->body.data ? c->body.data : "");
        return 2;
    }
    /* The documented duty of a custom runtime: the X-Ray trace header goes
     * into the environment for the SDKs. */
    if (c->headers[H_TRACE])
        setenv("_X_AMZN_TRACE_ID", c->headers[H_TRACE], 1);
    else
        unsetenv("_X_AMZN_TRACE_ID");

    lua_pushstring(L, c->headers[H_ID]);
    lua_pushlstring(L, c->body.data ? c->body.data : "", c->body.len);
    lua_createtable(L, 0, H_COUNT);
    if (c->headers[H_DEADLINE]) {
        char *end = NULL;
        long long ms = strtoll(c->headers[H_DEADLINE], &end, 10);
        if (end != c->headers[H_DEADLINE] && *end == '\0') {
            lua_pushinteger(L, (lua_Integer)ms);
            lua_setfield(L, -2, "deadline_ms");
        }
    }
    static const char *const fields[H_COUNT] = {[H_ARN] = "function_arn",
                                                [H_TRACE] = "trace_id",
                                                [H_CLIENT_CONTEXT] = "client_context",
                                                [H_COGNITO] = "cognito_identity"};
    for (int i = H_ARN; i < H_COUNT; i++) {
        if (!c->headers[i]) continue;
        lua_pushstring(L, c->headers[i]);
        lua_setfield(L, -2, fields[i]);
    }
    return 3;
}

static int l_respond(lua_State *L) {
    client *c = check_client(L);
    size_t len;
    const char *body = luaL_checklstring(L, 3, &len);
    const char *path = invocation_path(L, c, 2, "response");
    return post(L, c, path, body, len, NULL);
}

static int l_fail(lua_State *L) {
    client *c = check_client(L);
    const char *path = invocation_path(L, c, 2, "error");
    lua_insert(L, 2); /* the path stays alive below the arguments */
    return post_error(L, c, path, 4);
}

static int l_init_error(lua_State *L) {
    client *c = check_client(L);
    return post_error(L, c, "/init/error", 2);
}

static int l_close(lua_State *L) {
    client *c = luaL_checkudata(L, 1, CLIENT_MT);
    if (c->curl) curl_easy_cleanup(c->curl);
    c->curl = NULL;
    clear_headers(c);
    buf_free(&c->body);
    free(c->base);
    c->base = NULL;
    return 0;
}

static int l_client(lua_State *L) {
    size_t len;
    const char *api = luaL_checklstring(L, 1, &len);
    luaL_argcheck(L, len > 0 && len < 512 && !strpbrk(api, "/ \t\r\n"), 1,
                  "the Runtime API's host:port, as in $AWS_LAMBDA_RUNTIME_API");
    pthread_once(&curl_once, curl_init);
    if (curl_init_result != CURLE_OK)
        return luaL_error(L, "cannot start libcurl: %s", curl_easy_strerror(curl_init_result));
    client *c = lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    luaL_setmetatable(L, CLIENT_MT);
    size_t n = len + sizeof "http:///2018-06-01/runtime";
    if (!(c->base = malloc(n)) || !(c->curl = curl_easy_init()))
        return luaL_error(L, "out of memory");
    snprintf(c->base, n, "http://%s/2018-06-01/runtime", api);
    CURL *h = c->curl;
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*"); /* the API is local; no proxy applies */
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->error);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "aeon-host/lambda");
    return 1;
}

/* ------------------------------------------------------------------ */
/* The budget of one invocation                                        */

typedef struct budget {
    long long deadline_ms; /* epoch milliseconds the handler must stop by */
    bool stopped;          /* the hook has stopped the handler */
} budget;

/* The budget being enforced; aeon-host lambda runs one state on one thread. */
static budget *current;

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void deadline_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    budget *b = current;
    if (!b) return;
    if (b->stopped) {
        host_stop_again(L);
        return;
    }
    if (now_ms() >= b->deadline_ms) {
        b->stopped = true;
        luaL_error(L, "stopped: the invocation ran past its deadline");
    }
}

static int l_within(lua_State *L) {
    budget b = {.deadline_ms = (long long)luaL_checkinteger(L, 1), .stopped = false};
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_remove(L, 1);
    int nargs = lua_gettop(L) - 1;
    budget *outer = current;
    current = &b;
    lua_sethook(L, deadline_hook, LUA_MASKCOUNT, HOOK_EVERY);
    int st = host_call(L, nargs, LUA_MULTRET);
    if (outer)
        lua_sethook(L, deadline_hook, LUA_MASKCOUNT, HOOK_EVERY);
    else
        lua_sethook(L, NULL, 0, 0);
    current = outer;
    lua_pushboolean(L, st == LUA_OK);
    lua_pushboolean(L, b.stopped);
    lua_rotate(L, 1, 2);
    return lua_gettop(L);
}

static int l_now_ms(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)now_ms());
    return 1;
}

static const luaL_Reg client_methods[] = {
    {"next", l_next},   {"respond", l_respond}, {"fail", l_fail}, {"init_error", l_init_error},
    {"close", l_close}, {NULL, NULL},
};

static const luaL_Reg functions[] = {
    {"client", l_client},
    {"within", l_within},
    {"now_ms", l_now_ms},
    {NULL, NULL},
};

int luaopen_aeon_lambda(lua_State *L) {
    bind_class(L, CLIENT_MT, client_methods, l_close, NULL);
    luaL_newlib(L, functions);
    lambda_stream_open(L);
    return 1;
}
