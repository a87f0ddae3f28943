/*
 * bench.c - aeon-bench, the program `make bench` measures with: a Lua 5.4
 * interpreter with aeon.core linked in (as in aeon-host) and a native
 * module `bench` for what a benchmark needs below Lua:
 *
 *   bench.now(), bench.cpu()        monotonic and process-CPU seconds
 *   bench.rss()                     VmRSS, VmHWM in KiB
 *   bench.fsync(dir, n)             seconds for n 4 KiB writes + fdatasync
 *   bench.raw_batch(db, appends, per, data)
 *                                   seconds for raw SQLite to insert the rows
 *                                   a batched append inserts (same schema and
 *                                   pragmas, one prepared INSERT)
 *   bench.raw_copy(src, dst, per)   seconds and rows for raw SQLite to insert
 *                                   src's event rows into a fresh store dst,
 *                                   per rows a transaction
 *   bench.store_batch(db, appends, per, data)
 *                                   the same rows through store.h's append
 *   bench.fixture(db, n, nkeys)     writes n events over nkeys keys, fast
 *   bench.warm(db)                  a fresh store with its WAL at working size
 *   bench.events(n, nkeys)          a generic-for iterator yielding the
 *                                   fixture's events as Lua tables, built by
 *                                   bind_push_event_cached, no store
 *   bench.threads(n, script, ...)   runs script in n threads, one Lua state
 *                                   each; see l_threads
 *   bench.http_counts()             DynamoDB requests by operation, and
 *                                   connections opened, so far
 *   bench.ddb_ping(table, n)        seconds for n GetItem round trips
 *   bench.ddb_raw(table, n, per)    seconds for n plain event items, per a
 *                                   TransactWriteItems
 *   bench.ddb_fill(table, key, n)   writes n event items on key, 25 a
 *                                   BatchWriteItem, and their slice marker
 *
 * Usage: aeon-bench SCRIPT [ARGS...], run from the repository root (the
 * Lua library, apps/ and bench/ are found relative to it). bench/run.lua
 * drives it and prints the table. Uses Lua, SQLite, store.h and bind.h; it
 * also builds against trees from before bind_push_event_cached, for the
 * before-and-after figures of bench/RESULTS.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <sqlite3.h>

#include "bind.h"
#include "host.h"
#include "revision.h"
#include "store.h"

#define LUA_PATHS "lua/?.lua;lua/?/init.lua;apps/?.lua;bench/?.lua;"
#define FSYNC_PAGES 64 /* the fsync file cycles over this many 4 KiB pages */

static int luaopen_bench(lua_State *L);

/* ------------------------------------------------------------------ */
/* Clocks and memory                                                   */

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int l_now(lua_State *L) {
    lua_pushnumber(L, clock_s(CLOCK_MONOTONIC));
    return 1;
}

static int l_cpu(lua_State *L) {
    lua_pushnumber(L, clock_s(CLOCK_PROCESS_CPUTIME_ID));
    return 1;
}

/* VmRSS and VmHWM (the peak) from /proc/self/status, in KiB. */
static int l_rss(lua_State *L) {
    FILE *f = fopen("/proc/self/status", "r");
    long rss = -1, hwm = -1;
    char line[256];
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        sscanf(line, "VmRSS: %ld", &rss);
        sscanf(line, "VmHWM: %ld", &hwm);
    }
    if (f != NULL) fclose(f);
    lua_pushinteger(L, rss);
    lua_pushinteger(L, hwm);
    return 2;
}

/* ------------------------------------------------------------------ */
/* The disk's limit                                                    */

/* A durable commit in WAL mode is some page writes and one fdatasync of
 * the WAL, which SQLite rewrites from its start after each checkpoint, so
 * the file does not grow and fdatasync has no metadata to flush. This
 * does the least of that: one 4 KiB page over a preallocated region, then
 * fdatasync. */
static int l_fsync(lua_State *L) {
    const char *dir = luaL_checkstring(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2);
    char path[4096], page[4096];
    snprintf(path, sizeof path, "%s/fsync-bench.tmp", dir);
    memset(page, 'x', sizeof page);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return luaL_error(L, "%s: %s", path, strerror(errno));
    for (int i = 0; i < FSYNC_PAGES; i++)
        if (write(fd, page, sizeof page) != (ssize_t)sizeof page)
            return luaL_error(L, "%s: %s", path, strerror(errno));
    fsync(fd);
    double t0 = clock_s(CLOCK_MONOTONIC);
    for (lua_Integer i = 0; i < n; i++) {
        off_t at = (off_t)(i % FSYNC_PAGES) * (off_t)sizeof page;
        if (pwrite(fd, page, sizeof page, at) != (ssize_t)sizeof page || fdatasync(fd) != 0)
            return luaL_error(L, "%s: %s", path, strerror(errno));
    }
    double secs = clock_s(CLOCK_MONOTONIC) - t0;
    close(fd);
    unlink(path);
    lua_pushnumber(L, secs);
    return 1;
}

/* ------------------------------------------------------------------ */
/* Batched appends: raw SQLite next to the store                       */

/* The key of event i of a fixture with nkeys keys, and its data: the
 * counter app's event, whose name is the counter's. */
static void fixture_key(lua_Integer i, lua_Integer nkeys, char *key, size_t size) {
    if (nkeys == 1)
        snprintf(key, size, "counter/replay");
    else
        snprintf(key, size, "counter/%lld", (long long)(i % nkeys));
}

static size_t fixture_data(const char *key, char *data, size_t size) {
    int n = snprintf(data, size, "{\"type\":\"incremented\",\"name\":\"%s\"}",
                     key + strlen("counter/"));
    return (size_t)n < size ? (size_t)n : size - 1;
}

/* Makes a fresh store file through store.h, so raw SQLite gets exactly the
 * store's schema and journal mode. */
static void fresh_store(lua_State *L, const char *path) {
    const char *suffix[] = {"", "-wal", "-shm"};
    char p[4096];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        unlink(p);
    }
    store *s = NULL;
    char *err = NULL;
    if (store_open(path, NULL, &s, &err) != STORE_OK) {
        lua_pushstring(L, err != NULL ? err : "out of memory");
        free(err);
        lua_error(L);
    }
    store_close(s);
}

static void raw_exec(lua_State *L, sqlite3 *db, const char *sql) {
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        luaL_error(L, "raw SQLite: %s: %s", sql, sqlite3_errmsg(db));
}

/* A fresh store whose WAL is at its working size, as in a host that has
 * been running: grown past the checkpoint threshold (1000 pages) and
 * checkpointed, so SQLite reuses the file from its start and a commit's
 * fdatasync has no file size to flush (while the WAL grows, fdatasync
 * measured twice as slow). The connection returned keeps the WAL: the last
 * one to close deletes it. */
static sqlite3 *warm_store(lua_State *L, const char *path) {
    sqlite3 *db = NULL;
    fresh_store(L, path);
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
        luaL_error(L, "warming %s: %s", path, sqlite3_errmsg(db));
    raw_exec(L, db, "PRAGMA synchronous = OFF");
    raw_exec(L, db,
             "CREATE TABLE bench_warmup (b BLOB);"
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
             " WHERE i < 1200) INSERT INTO bench_warmup SELECT zeroblob(4000) FROM n;"
             "DROP TABLE bench_warmup;"
             "PRAGMA wal_checkpoint(PASSIVE);");
    return db;
}

static int warm_gc(lua_State *L) {
    sqlite3 **db = lua_touserdata(L, 1);
    sqlite3_close(*db);
    *db = NULL;
    return 0;
}

/* bench.warm(db): warm_store for Lua; the store stays warm as long as the
 * value returned is alive. */
static int l_warm(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    sqlite3 **db = lua_newuserdatauv(L, sizeof *db, 0);
    *db = NULL;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, warm_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    *db = warm_store(L, path);
    return 1;
}

/* The rows of `appends` appends of `per` events each, keys cycling over
 * ten, inserted as the least a durable batched append must do: BEGIN
 * IMMEDIATE, one prepared INSERT per row, COMMIT, with the store's pragmas
 * (WAL, synchronous=FULL). Revisions count up from a fixed one. */
static int l_raw_batch(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    lua_Integer appends = luaL_checkinteger(L, 2), per = luaL_checkinteger(L, 3);
    size_t data_len;
    const char *data = luaL_checklstring(L, 4, &data_len);

    sqlite3 *db = warm_store(L, path);
    sqlite3_stmt *begin = NULL, *commit = NULL, *ins = NULL;
    raw_exec(L, db, "PRAGMA journal_mode = WAL");
    raw_exec(L, db, "PRAGMA synchronous = FULL");
    if (sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT INTO events (revision, key, type, data, "
                           "correlation_id, committed_at) VALUES (?1, ?2, ?3, ?4, NULL, ?5)",
                           -1, &ins, NULL) != SQLITE_OK)
        return luaL_error(L, "raw SQLite: %s", sqlite3_errmsg(db));
    char rev[STORE_REVISION_SIZE], at[STORE_TIMESTAMP_SIZE], key[64];
    revision_after(NULL, NULL, rev);
    revision_timestamp(store_env_default.now_ms(NULL), at);

    double t0 = clock_s(CLOCK_MONOTONIC);
    for (lua_Integer a = 0; a < appends; a++) {
        snprintf(key, sizeof key, "counter/batch-%lld", (long long)(a % 10));
        sqlite3_step(begin);
        sqlite3_reset(begin);
        for (lua_Integer j = 0; j < per; j++) {
            revision_next(rev, rev);
            sqlite3_bind_text(ins, 1, rev, STORE_REVISION_LEN, SQLITE_STATIC);
            sqlite3_bind_text(ins, 2, key, -1, SQLITE_STATIC);
            sqlite3_bind_text(ins, 3, "incremented", -1, SQLITE_STATIC);
            sqlite3_bind_text(ins, 4, data, (int)data_len, SQLITE_STATIC);
            sqlite3_bind_text(ins, 5, at, -1, SQLITE_STATIC);
            if (sqlite3_step(ins) != SQLITE_DONE)
                return luaL_error(L, "raw SQLite insert: %s", sqlite3_errmsg(db));
            sqlite3_reset(ins);
        }
        if (sqlite3_step(commit) != SQLITE_DONE)
            return luaL_error(L, "raw SQLite commit: %s", sqlite3_errmsg(db));
        sqlite3_reset(commit);
    }
    double secs = clock_s(CLOCK_MONOTONIC) - t0;
    sqlite3_finalize(begin);
    sqlite3_finalize(commit);
    sqlite3_finalize(ins);
    sqlite3_close(db);
    lua_pushnumber(L, secs);
    return 1;
}

/* bench.raw_copy(src, dst, per): seconds for raw SQLite to insert every
 * event row of the store src into a fresh store dst, `per` rows a
 * transaction, with the store's schema and pragmas (WAL,
 * synchronous=FULL) and one prepared INSERT: the least a copy into SQLite
 * must write, for the same rows. */
static int l_raw_copy(lua_State *L) {
    const char *src = luaL_checkstring(L, 1), *dst = luaL_checkstring(L, 2);
    lua_Integer per = luaL_checkinteger(L, 3);
    sqlite3 *in = NULL, *out = NULL;
    sqlite3_stmt *sel = NULL, *ins = NULL;
    fresh_store(L, dst);
    if (sqlite3_open_v2(src, &in, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_open_v2(dst, &out, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        return luaL_error(L, "raw copy: cannot open %s or %s", src, dst);
    raw_exec(L, out, "PRAGMA synchronous = FULL");
    if (sqlite3_prepare_v2(in,
                           "SELECT revision, key, type, data, correlation_id, "
                           "committed_at, more FROM events ORDER BY revision",
                           -1, &sel, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(out,
                           "INSERT INTO events (revision, key, type, data, "
                           "correlation_id, committed_at, more) VALUES (?1, ?2, ?3, ?4, ?5,"
                           " ?6, ?7)",
                           -1, &ins, NULL) != SQLITE_OK)
        return luaL_error(L, "raw copy: %s", sqlite3_errmsg(sel ? out : in));
    double t0 = clock_s(CLOCK_MONOTONIC);
    int rc = SQLITE_ROW;
    lua_Integer rows = 0;
    while (rc == SQLITE_ROW) {
        raw_exec(L, out, "BEGIN IMMEDIATE");
        for (lua_Integer j = 0; j < per && (rc = sqlite3_step(sel)) == SQLITE_ROW; j++) {
            for (int c = 0; c < 7; c++)
                sqlite3_bind_value(ins, c + 1, sqlite3_column_value(sel, c));
            if (sqlite3_step(ins) != SQLITE_DONE)
                return luaL_error(L, "raw copy insert: %s", sqlite3_errmsg(out));
            sqlite3_reset(ins);
            rows++;
        }
        raw_exec(L, out, "COMMIT");
    }
    double secs = clock_s(CLOCK_MONOTONIC) - t0;
    sqlite3_finalize(sel);
    sqlite3_finalize(ins);
    sqlite3_close(in);
    sqlite3_close(out);
    lua_pushnumber(L, secs);
    lua_pushinteger(L, rows);
    return 2;
}

/* The same appends through store.h (the C API, no Lua values). */
static int l_store_batch(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    lua_Integer appends = luaL_checkinteger(L, 2), per = luaL_checkinteger(L, 3);
    size_t data_len;
    const char *data = luaL_checklstring(L, 4, &data_len);
    sqlite3 *warm = warm_store(L, path);

    store *s = NULL;
    char *err = NULL, key[64];
    if (store_open(path, NULL, &s, &err) != STORE_OK) goto fail;
    store_pending *ev = lua_newuserdatauv(L, (size_t)per * sizeof *ev, 0);
    for (lua_Integer j = 0; j < per; j++)
        ev[j] = (store_pending){"incremented", data, data_len, NULL};
    double t0 = clock_s(CLOCK_MONOTONIC);
    for (lua_Integer a = 0; a < appends; a++) {
        store_append_result r;
        snprintf(key, sizeof key, "counter/batch-%lld", (long long)(a % 10));
        if (s->ops->append(s, key, ev, (size_t)per, NULL, &r, &err) != STORE_OK) goto fail;
    }
    double secs = clock_s(CLOCK_MONOTONIC) - t0;
    store_close(s);
    sqlite3_close(warm);
    lua_pushnumber(L, secs);
    return 1;
fail:
    store_close(s);
    sqlite3_close(warm);
    lua_pushstring(L, err != NULL ? err : "out of memory");
    free(err);
    return lua_error(L);
}

/* ------------------------------------------------------------------ */
/* Fixtures and the no-store event source                              */

/* Writes n events over nkeys keys (event i on key i % nkeys) into a fresh
 * store, with the rows an append would write. Setup only, so it trades
 * durability for speed: synchronous=OFF and 100,000 rows per transaction;
 * then the WAL is checkpointed into the database and truncated. */
static int l_fixture(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2), nkeys = luaL_checkinteger(L, 3);
    luaL_argcheck(L, nkeys >= 1, 3, "at least one key");
    fresh_store(L, path);

    sqlite3 *db = NULL;
    sqlite3_stmt *ins = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
        return luaL_error(L, "fixture: %s", sqlite3_errmsg(db));
    raw_exec(L, db, "PRAGMA synchronous = OFF");
    raw_exec(L, db, "PRAGMA cache_size = -65536");
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO events (revision, key, type, data, "
                           "correlation_id, committed_at) VALUES (?1, ?2, ?3, ?4, NULL, ?5)",
                           -1, &ins, NULL) != SQLITE_OK)
        return luaL_error(L, "fixture: %s", sqlite3_errmsg(db));
    char rev[STORE_REVISION_SIZE], at[STORE_TIMESTAMP_SIZE], key[64], data[128];
    revision_after(NULL, NULL, rev);
    revision_timestamp(store_env_default.now_ms(NULL), at);
    raw_exec(L, db, "BEGIN IMMEDIATE");
    for (lua_Integer i = 0; i < n; i++) {
        if (i > 0 && i % 100000 == 0) {
            raw_exec(L, db, "COMMIT");
            raw_exec(L, db, "BEGIN IMMEDIATE");
        }
        fixture_key(i, nkeys, key, sizeof key);
        size_t len = fixture_data(key, data, sizeof data);
        sqlite3_bind_text(ins, 1, rev, STORE_REVISION_LEN, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 3, "incremented", -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 4, data, (int)len, SQLITE_STATIC);
        sqlite3_bind_text(ins, 5, at, -1, SQLITE_STATIC);
        if (sqlite3_step(ins) != SQLITE_DONE)
            return luaL_error(L, "fixture insert: %s", sqlite3_errmsg(db));
        sqlite3_reset(ins);
        revision_next(rev, rev);
    }
    raw_exec(L, db, "COMMIT");
    raw_exec(L, db, "PRAGMA wal_checkpoint(TRUNCATE)");
    sqlite3_finalize(ins);
    sqlite3_close(db);
    return 0;
}

/* The state of a bench.events iterator: the fixture's events, made up in
 * memory as the loop asks for them. */
typedef struct source {
    lua_Integer next;                        /* index of the next event */
    lua_Integer n;                           /* events in all */
    lua_Integer nkeys;                       /* keys they cycle over */
    char revision[STORE_REVISION_SIZE];      /* the last revision handed out */
    char committed_at[STORE_TIMESTAMP_SIZE]; /* the same for every event */
    char **keys;                             /* nkeys keys, "counter/..." */
    char **data;                             /* each key's event data, JSON text */
    size_t *data_len;                        /* bytes of each */
#ifdef BIND_EVENT_UPVALUES
    bind_event_cache cache; /* as a cursor's iterator has */
#endif
} source;

static int source_gc(lua_State *L) {
    source *src = lua_touserdata(L, 1);
    for (lua_Integer i = 0; src->keys != NULL && i < src->nkeys; i++) {
        free(src->keys[i]);
        free(src->data[i]);
    }
    free(src->keys);
    free(src->data);
    free(src->data_len);
    src->keys = NULL;
    return 0;
}

/* Each event is pushed the way a cursor's iterator pushes it (the same
 * function and upvalues, data decoded from its JSON text by the same
 * decoder): only the store is missing. */
static int source_next(lua_State *L) {
    source *src = lua_touserdata(L, lua_upvalueindex(1));
    if (src->next >= src->n) return 0;
    lua_Integer k = src->next % src->nkeys;
    revision_next(src->revision, src->revision);
    store_event ev = {
        .key = src->keys[k],
        .type = "incremented",
        .data = src->data[k],
        .data_len = src->data_len[k],
        .correlation_id = NULL,
    };
    memcpy(ev.revision, src->revision, sizeof ev.revision);
    memcpy(ev.committed_at, src->committed_at, sizeof ev.committed_at);
    src->next++;
#ifdef BIND_EVENT_UPVALUES
    bind_push_event_cached(L, &ev, &src->cache);
#else
    bind_push_event(L, &ev); /* a tree from before the cached path */
#endif
    return 1;
}

/* bench.events(n, nkeys) returns iterator, nil, nil, nil: what store:read
 * returns, minus the cursor. */
static int l_events(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1), nkeys = luaL_checkinteger(L, 2);
    luaL_argcheck(L, nkeys >= 1 && nkeys <= 10000000, 2, "between 1 and 10^7 keys");
    source *src = lua_newuserdatauv(L, sizeof *src, 0);
    memset(src, 0, sizeof *src);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, source_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    src->n = n;
    src->nkeys = nkeys;
    src->keys = calloc((size_t)nkeys, sizeof *src->keys);
    src->data = calloc((size_t)nkeys, sizeof *src->data);
    src->data_len = calloc((size_t)nkeys, sizeof *src->data_len);
    if (src->keys == NULL || src->data == NULL || src->data_len == NULL)
        return luaL_error(L, "out of memory");
    for (lua_Integer k = 0; k < nkeys; k++) {
        char key[64], data[128];
        fixture_key(k, nkeys, key, sizeof key);
        src->data_len[k] = fixture_data(key, data, sizeof data);
        src->keys[k] = strdup(key);
        src->data[k] = strdup(data);
        if (src->keys[k] == NULL || src->data[k] == NULL) return luaL_error(L, "out of memory");
    }
    revision_after(NULL, NULL, src->revision);
    revision_timestamp(store_env_default.now_ms(NULL), src->committed_at);
#ifdef BIND_EVENT_UPVALUES
    bind_event_upvalues(L);
    src->cache.first = 2;
    lua_pushcclosure(L, source_next, 1 + BIND_EVENT_UPVALUES);
#else
    lua_pushcclosure(L, source_next, 1);
#endif
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushnil(L);
    return 4;
}

/* ------------------------------------------------------------------ */
/* DynamoDB: requests counted, and the emulator's round trip           */

#ifdef BENCH_COUNT_HTTP
#include <curl/curl.h>

#include "aws_config.h"
#include "rpc.h"

/* The Makefile links aeon-bench with --wrap for http_call, http_call_json
 * and curl_easy_perform, so every request the DynamoDB backend makes, and
 * every connection curl opens for it, passes through here and is counted,
 * without a proxy in the way or a change to the backend. */
enum { OPS = 16 };
static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;
static char op_names[OPS][40]; /* operations seen, "GetItem" ... */
static long op_counts[OPS];    /* requests of each */
static long connections;       /* connections curl opened */

static void count_op(const char *op) {
    pthread_mutex_lock(&count_lock);
    int i = 0;
    while (i < OPS && op_names[i][0] != '\0' && strcmp(op_names[i], op) != 0) i++;
    if (i < OPS) {
        if (op_names[i][0] == '\0') snprintf(op_names[i], sizeof op_names[i], "%s", op);
        op_counts[i]++;
    }
    pthread_mutex_unlock(&count_lock);
}

store_status __real_http_call(http_client *c, const char *op, const char *body, size_t len,
                              bool retry_safe, http_response *r, char **err);
store_status __real_http_call_json(http_client *c, const char *op, const json_t *body,
                                   bool retry_safe, http_response *r, char **err);
CURLcode __real_curl_easy_perform(CURL *curl);

store_status __wrap_http_call(http_client *c, const char *op, const char *body, size_t len,
                              bool retry_safe, http_response *r, char **err) {
    count_op(op);
    return __real_http_call(c, op, body, len, retry_safe, r, err);
}

store_status __wrap_http_call_json(http_client *c, const char *op, const json_t *body,
                                   bool retry_safe, http_response *r, char **err) {
    count_op(op);
    return __real_http_call_json(c, op, body, retry_safe, r, err);
}

CURLcode __wrap_curl_easy_perform(CURL *curl) {
    CURLcode rc = __real_curl_easy_perform(curl);
    long n = 0;
    if (curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &n) == CURLE_OK && n > 0) {
        pthread_mutex_lock(&count_lock);
        connections += n;
        pthread_mutex_unlock(&count_lock);
    }
    return rc;
}

/* bench.http_counts(): { [operation] = requests, connections = n } so far. */
static int l_http_counts(lua_State *L) {
    lua_newtable(L);
    pthread_mutex_lock(&count_lock);
    for (int i = 0; i < OPS && op_names[i][0] != '\0'; i++) {
        lua_pushinteger(L, op_counts[i]);
        lua_setfield(L, -2, op_names[i]);
    }
    lua_pushinteger(L, connections);
    lua_setfield(L, -2, "connections");
    pthread_mutex_unlock(&count_lock);
    return 1;
}

/* Makes the body of the next request into buf (cap bytes); returns its
 * length. */
typedef size_t (*body_maker)(void *ctx, char *buf, size_t cap);

/* Seconds for `calls` requests of `op`, one at a time on one kept-alive
 * connection, through the same client (rpc.c, SigV4) and settings (the
 * environment) as the backend. Raises on any failure. */
static int timed_calls(lua_State *L, const char *op, lua_Integer calls, body_maker make, void *ctx,
                       size_t cap) {
    aws_settings aws = {0};
    http_client *c = NULL;
    http_response r = {0};
    char *err = NULL, *body = malloc(cap);
    if (body == NULL || aws_settings_load(NULL, NULL, NULL, NULL, &aws, &err) != STORE_OK)
        goto fail;
    http_config cfg = {.endpoint = aws.endpoint,
                       .api = HTTP_DYNAMODB,
                       .region = aws.region,
                       .creds = {aws.access_key, aws.secret_key, aws.session_token},
                       .env = &store_env_default};
    if (http_open(&cfg, &c, &err) != STORE_OK) goto fail;
    double t0 = clock_s(CLOCK_MONOTONIC);
    for (lua_Integer i = 0; i < calls; i++) {
        size_t len = make(ctx, body, cap);
        if (__real_http_call(c, op, body, len, true, &r, &err) != STORE_OK) goto fail;
        if (r.error != NULL) {
            err = strdup(r.error);
            goto fail;
        }
    }
    double secs = clock_s(CLOCK_MONOTONIC) - t0;
    free(body);
    http_response_free(&r);
    http_close(c);
    aws_settings_free(&aws);
    lua_pushnumber(L, secs);
    return 1;
fail:
    free(body);
    http_response_free(&r);
    http_close(c);
    aws_settings_free(&aws);
    lua_pushstring(L, err != NULL ? err : "out of memory");
    free(err);
    return lua_error(L);
}

static size_t ping_body(void *ctx, char *buf, size_t cap) {
    return (size_t)snprintf(buf, cap,
                            "{\"TableName\":\"%s\",\"Key\":{\"pk\":"
                            "{\"S\":\"bench/ping\"},\"sk\":{\"S\":\"head\"}},"
                            "\"ConsistentRead\":true}",
                            (const char *)ctx);
}

/* bench.ddb_ping(table, n): seconds for n consistent GetItem round trips:
 * what the emulator does at best for one request at a time. */
static int l_ddb_ping(lua_State *L) {
    const char *table = luaL_checkstring(L, 1);
    return timed_calls(L, "GetItem", luaL_checkinteger(L, 2), ping_body, (void *)table, 512);
}

/* The next `per` plain event items (Aeon's layout, the counter's data). */
typedef struct raw_items {
    const char *table;             /* the events table */
    lua_Integer per;               /* items a transaction */
    char rev[STORE_REVISION_SIZE]; /* the last revision used */
    char at[STORE_TIMESTAMP_SIZE]; /* committedAt of all */
} raw_items;

static size_t raw_body(void *ctx, char *buf, size_t cap) {
    raw_items *w = ctx;
    size_t len = (size_t)snprintf(buf, cap, "{\"TransactItems\":[");
    for (lua_Integer j = 0; j < w->per; j++) {
        revision_next(w->rev, w->rev);
        len += (size_t)snprintf(
            buf + len, cap - len,
            "%s{\"Put\":{\"TableName\":\"%s\",\"Item\":{\"key\":{\"S\":\"counter/raw-%lld\"},"
            "\"revision\":{\"S\":\"%s\"},\"slice\":{\"S\":\"%.5s\"},\"committedAt\":{\"S\":"
            "\"%s\"},\"type\":{\"S\":\"incremented\"},\"correlationId\":{\"NULL\":true},"
            "\"data\":{\"M\":{\"type\":{\"S\":\"incremented\"},\"name\":{\"S\":\"raw-%lld\"}}}}}}",
            j ? "," : "", w->table, (long long)(j % 10), w->rev, w->rev, w->at,
            (long long)(j % 10));
    }
    return len + (size_t)snprintf(buf + len, cap - len, "]}");
}

/* The next 25 event items of bench.ddb_fill, as a BatchWriteItem, then
 * the slice marker they need, as a PutItem of the metadata table. */
typedef struct fill_items {
    const char *table;             /* the events table */
    const char *key;               /* their key */
    lua_Integer left;              /* items still to write */
    bool marked;                   /* the slice marker was sent */
    char metadata[300];            /* the metadata table */
    char rev[STORE_REVISION_SIZE]; /* the last revision used */
    char at[STORE_TIMESTAMP_SIZE]; /* committedAt of all */
} fill_items;

static size_t fill_body(void *ctx, char *buf, size_t cap) {
    fill_items *w = ctx;
    if (w->left == 0) {
        w->marked = true;
        return (size_t)snprintf(buf, cap,
                                "{\"TableName\":\"%s\",\"Item\":{\"pk\":{\"S\":"
                                "\"slice\"},\"sk\":{\"S\":\"%.5s\"}}}",
                                w->metadata, w->rev);
    }
    size_t len = (size_t)snprintf(buf, cap, "{\"RequestItems\":{\"%s\":[", w->table);
    for (int j = 0; j < 25 && w->left > 0; j++, w->left--) {
        revision_next(w->rev, w->rev);
        len += (size_t)snprintf(
            buf + len, cap - len,
            "%s{\"PutRequest\":{\"Item\":{\"key\":{\"S\":\"%s\"},\"revision\":{\"S\":\"%s\"},"
            "\"slice\":{\"S\":\"%.5s\"},\"committedAt\":{\"S\":\"%s\"},\"type\":{\"S\":"
            "\"incremented\"},\"correlationId\":{\"NULL\":true},\"data\":{\"M\":{\"type\":"
            "{\"S\":\"incremented\"},\"name\":{\"S\":\"replay\"}}}}}}",
            j ? "," : "", w->key, w->rev, w->rev, w->at);
    }
    return len + (size_t)snprintf(buf + len, cap - len, "]}}");
}

/* bench.ddb_fill(table, key, n): writes n of the counter's event items on
 * key, 25 a BatchWriteItem, and their slice marker: a fixture for reads
 * (no heads), faster to write than appends on a busy emulator. Seconds. */
static int l_ddb_fill(lua_State *L) {
    fill_items w = {.table = luaL_checkstring(L, 1),
                    .key = luaL_checkstring(L, 2),
                    .left = luaL_checkinteger(L, 3)};
    snprintf(w.metadata, sizeof w.metadata, "%s-metadata", w.table);
    revision_after(NULL, NULL, w.rev);
    revision_timestamp(store_env_default.now_ms(NULL), w.at);
    lua_Integer batches = (w.left + 24) / 25;
    timed_calls(L, "BatchWriteItem", batches, fill_body, &w, 25 * 512 + 256);
    timed_calls(L, "PutItem", 1, fill_body, &w, 1024);
    lua_pushnumber(L, lua_tonumber(L, -1) + lua_tonumber(L, -2));
    return 1;
}

/* bench.ddb_raw(table, n, per): seconds for n plain event items written
 * per a TransactWriteItems: the least a copy into DynamoDB must send, for
 * items of the same size. n is rounded up to whole transactions. */
static int l_ddb_raw(lua_State *L) {
    raw_items w = {.table = luaL_checkstring(L, 1), .per = luaL_checkinteger(L, 3)};
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_argcheck(L, w.per >= 1 && w.per <= 100, 3, "1 to 100 items a transaction");
    revision_after(NULL, NULL, w.rev);
    revision_timestamp(store_env_default.now_ms(NULL), w.at);
    return timed_calls(L, "TransactWriteItems", (n + w.per - 1) / w.per, raw_body, &w,
                       (size_t)w.per * 512 + 256);
}
#endif

/* ------------------------------------------------------------------ */
/* Lua states                                                          */

/* A state as aeon-host makes one: standard libraries, aeon.core preloaded,
 * the Lua library, the apps and bench/ on the path, and `bench`. */
static void setup_state(lua_State *L) {
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s%s", LUA_PATHS, lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);
    bind_preload(L, "aeon.core", luaopen_aeon_core);
    bind_preload(L, "bench", luaopen_bench);
}

/* ------------------------------------------------------------------ */
/* Threads                                                             */

/* One thread of bench.threads. */
typedef struct worker {
    pthread_t thread;         /* the thread */
    int index;                /* 1-based, passed to the script */
    const char *script;       /* the file to run */
    const char **args;        /* extra string arguments */
    int nargs;                /* how many */
    pthread_barrier_t *ready; /* every worker set up, then go */
    double done;              /* monotonic seconds when it finished */
    char error[1024];         /* "" or what went wrong */
} worker;

static void *work(void *arg) {
    worker *w = arg;
    lua_State *L = luaL_newstate();
    bool waited = false;
    if (L == NULL) {
        snprintf(w->error, sizeof w->error, "out of memory");
        goto done;
    }
    setup_state(L);
    if (luaL_loadfile(L, w->script) != LUA_OK) goto lua_failed;
    lua_pushinteger(L, w->index);
    for (int i = 0; i < w->nargs; i++) lua_pushstring(L, w->args[i]);
    if (host_call(L, 1 + w->nargs, 1) != LUA_OK) goto lua_failed;
    if (!lua_isfunction(L, -1)) {
        snprintf(w->error, sizeof w->error, "%s must return a function", w->script);
        goto done;
    }
    pthread_barrier_wait(w->ready);
    waited = true;
    if (host_call(L, 0, 0) != LUA_OK) goto lua_failed;
    goto done;
lua_failed:
    snprintf(w->error, sizeof w->error, "%s", lua_tostring(L, -1));
done:
    w->done = clock_s(CLOCK_MONOTONIC);
    if (!waited) pthread_barrier_wait(w->ready);
    if (L != NULL) lua_close(L);
    return NULL;
}

/* bench.threads(n, script, ...): n threads each load `script` in a state of
 * their own and call it with (index, ...); it sets up (opens its store, say)
 * and returns a function. When every thread has one, they are released
 * together and call it. Returns the seconds from the release to the last
 * one's return; raises the first error a thread met. */
static int l_threads(lua_State *L) {
    int n = (int)luaL_checkinteger(L, 1);
    const char *script = luaL_checkstring(L, 2);
    int nargs = lua_gettop(L) - 2;
    luaL_argcheck(L, n >= 1 && n <= 256, 1, "between 1 and 256 threads");
    const char **args = lua_newuserdatauv(L, (size_t)(nargs + 1) * sizeof *args, 0);
    for (int i = 0; i < nargs; i++) args[i] = luaL_checkstring(L, 3 + i);
    worker *w = lua_newuserdatauv(L, (size_t)n * sizeof *w, 0);
    pthread_barrier_t ready;
    pthread_barrier_init(&ready, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++) {
        w[i] = (worker){.index = i + 1,
                        .script = script,
                        .args = args,
                        .nargs = nargs,
                        .ready = &ready};
        if (pthread_create(&w[i].thread, NULL, work, &w[i]) != 0)
            return luaL_error(L, "cannot start thread %d", i + 1);
    }
    pthread_barrier_wait(&ready);
    double t0 = clock_s(CLOCK_MONOTONIC), last = t0;
    for (int i = 0; i < n; i++) {
        pthread_join(w[i].thread, NULL);
        if (w[i].done > last) last = w[i].done;
    }
    pthread_barrier_destroy(&ready);
    for (int i = 0; i < n; i++)
        if (w[i].error[0] != '\0') return luaL_error(L, "thread %d: %s", i + 1, w[i].error);
    lua_pushnumber(L, last - t0);
    return 1;
}

/* ------------------------------------------------------------------ */

static int luaopen_bench(lua_State *L) {
    static const luaL_Reg fns[] = {
        {"now", l_now},
        {"cpu", l_cpu},
        {"rss", l_rss},
        {"fsync", l_fsync},
        {"raw_batch", l_raw_batch},
        {"raw_copy", l_raw_copy},
        {"store_batch", l_store_batch},
        {"fixture", l_fixture},
        {"warm", l_warm},
        {"events", l_events},
        {"threads", l_threads},
#ifdef BENCH_COUNT_HTTP
        {"http_counts", l_http_counts},
        {"ddb_ping", l_ddb_ping},
        {"ddb_raw", l_ddb_raw},
        {"ddb_fill", l_ddb_fill},
#endif
        {NULL, NULL},
    };
    luaL_newlib(L, fns);
    return 1;
}

static int pmain(lua_State *L) {
    int argc = (int)lua_tointeger(L, 1);
    char **argv = lua_touserdata(L, 2);
    setup_state(L);
    lua_createtable(L, argc, 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - 1);
    }
    lua_setglobal(L, "arg");
    if (luaL_loadfile(L, argv[1]) != LUA_OK) return lua_error(L);
    for (int i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
    if (host_call(L, argc - 2, 0) != LUA_OK) return lua_error(L);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: aeon-bench SCRIPT [ARGS...]\n");
        return 2;
    }
    lua_State *L = luaL_newstate();
    if (L == NULL) {
        fprintf(stderr, "aeon-bench: out of memory\n");
        return 1;
    }
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    int status = lua_pcall(L, 2, 0, 0);
    if (status != LUA_OK) fprintf(stderr, "aeon-bench: %s\n", lua_tostring(L, -1));
    lua_close(L);
    return status == LUA_OK ? 0 : 1;
}
