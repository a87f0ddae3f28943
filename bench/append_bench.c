/*
 * append_bench.c - durable single-event appends through the store, next to
 * the same transaction written against raw SQLite (BEGIN IMMEDIATE, read
 * the last revision, INSERT, COMMIT; WAL, synchronous=FULL, same schema).
 * Not a test (the Makefile builds only *_test.c); build and run with
 *
 *   make build/libaeonstore.a
 *   cc -O2 -Istore bench/append_bench.c build/libaeonstore.a \
 *      -lsqlite3 -ljansson -o build/append_bench
 *   build/append_bench [N] [DIR|memory] # default 2000 appends in /tmp
 *
 * Each variant runs in 5 interleaved rounds; the best wall-clock rate is
 * shown (the disk is shared, so slower rounds measure the neighbours), and
 * the median CPU time per append, which fsync waits do not count in.
 * "memory" runs both on in-memory databases: no I/O, CPU overhead only.
 */
#include "store.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char data[] =
    "{\"name\":\"counter\",\"amount\":12345,\"note\":\"about two hundred bytes of "
    "event data, which is what a small domain event weighs once encoded as JSON "
    "text..........................................\"}";

#define ROUNDS 5

/* One variant's rounds. */
typedef struct result {
    double rate[ROUNDS]; /* appends per wall-clock second */
    double cpu[ROUNDS];  /* CPU microseconds per append */
} result;

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall0, cpu0;

static void start(void) {
    wall0 = clock_s(CLOCK_MONOTONIC);
    cpu0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
}

static void stop(result *r, int round, int n) {
    r->rate[round] = n / (clock_s(CLOCK_MONOTONIC) - wall0);
    r->cpu[round] = (clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu0) * 1e6 / n;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void show(const char *name, result *r) {
    qsort(r->rate, ROUNDS, sizeof *r->rate, cmp_double);
    qsort(r->cpu, ROUNDS, sizeof *r->cpu, cmp_double);
    printf("  %-28s %8.0f appends/s best, %6.1f us CPU/append median\n", name, r->rate[ROUNDS - 1],
           r->cpu[ROUNDS / 2]);
}

static void fresh(const char *path) {
    if (strcmp(path, ":memory:") == 0 || strcmp(path, "memory:") == 0) return;
    char p[600];
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        unlink(p);
    }
}

/* mode 0: no options; 1: expected revision (the key's head); 2: idempotency key */
static void bench_store(const char *path, int n, int mode, result *res, int round) {
    store *s = NULL;
    char *err = NULL, key[32], token[32], head[STORE_REVISION_SIZE];
    fresh(path);
    if (store_open(path, NULL, &s, &err) != STORE_OK) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    store_pending ev = {"incremented", data, sizeof data - 1, NULL};
    start();
    for (int i = 0; i < n; i++) {
        store_append_opts o = {NULL, NULL};
        store_append_result r;
        snprintf(key, sizeof key, "counter/%d", i % 1000);
        if (mode == 1) {
            if (s->ops->head(s, key, head, &err) != STORE_OK) goto fail;
            o.expected_revision = head;
        } else if (mode == 2) {
            snprintf(token, sizeof token, "request-%d", i);
            o.idempotency_key = token;
        }
        if (s->ops->append(s, key, &ev, 1, &o, &r, &err) != STORE_OK || r.outcome != STORE_APPENDED)
            goto fail;
    }
    stop(res, round, n);
    store_close(s);
    return;
fail:
    fprintf(stderr, "append: %s\n", err ? err : "not appended");
    exit(1);
}

static void bench_raw(const char *path, int n, result *res, int round) {
    sqlite3 *db;
    sqlite3_stmt *begin, *commit, *last, *ins;
    fresh(path);
    sqlite3_open(path, &db);
    sqlite3_exec(db,
                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
                 "CREATE TABLE events(revision TEXT NOT NULL PRIMARY KEY, key TEXT NOT NULL,"
                 " type TEXT NOT NULL, data TEXT NOT NULL, correlation_id TEXT,"
                 " committed_at TEXT NOT NULL) WITHOUT ROWID;"
                 "CREATE INDEX events_by_key ON events(key, revision)",
                 NULL, NULL, NULL);
    sqlite3_prepare_v2(db, "BEGIN IMMEDIATE", -1, &begin, NULL);
    sqlite3_prepare_v2(db, "COMMIT", -1, &commit, NULL);
    sqlite3_prepare_v2(db, "SELECT MAX(revision) FROM events", -1, &last, NULL);
    sqlite3_prepare_v2(
        db,
        "INSERT INTO events (revision, key, type, data, correlation_id, committed_at)"
        " VALUES(?1, ?2, ?3, ?4, NULL, ?5)",
        -1, &ins, NULL);
    start();
    for (int i = 0; i < n; i++) {
        char rev[32], key[32];
        snprintf(rev, sizeof rev, "01ARYZ6S41%016d", i);
        snprintf(key, sizeof key, "counter/%d", i % 1000);
        sqlite3_step(begin), sqlite3_reset(begin);
        sqlite3_step(last), sqlite3_reset(last);
        sqlite3_bind_text(ins, 1, rev, 26, SQLITE_STATIC);
        sqlite3_bind_text(ins, 2, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 3, "incremented", -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 4, data, sizeof data - 1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 5, "2026-11-26T20:29:24.016Z", -1, SQLITE_STATIC);
        if (sqlite3_step(ins) != SQLITE_DONE) {
            fprintf(stderr, "raw insert: %s\n", sqlite3_errmsg(db));
            exit(1);
        }
        sqlite3_reset(ins);
        sqlite3_step(commit), sqlite3_reset(commit);
    }
    stop(res, round, n);
    sqlite3_finalize(begin), sqlite3_finalize(commit), sqlite3_finalize(last);
    sqlite3_finalize(ins);
    sqlite3_close(db);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 2000;
    bool memory = argc > 2 && strcmp(argv[2], "memory") == 0;
    char path[512], raw_path[512];
    snprintf(path, sizeof path, "%s/aeon-bench.db", argc > 2 ? argv[2] : "/tmp");
    strcpy(raw_path, path);
    if (memory) strcpy(path, "memory:"), strcpy(raw_path, ":memory:");
    printf("%d %s single-event appends, %zu-byte data, 1000 keys\n", n,
           memory ? "in-memory" : "durable", sizeof data - 1);
    result raw, plain, expected, token;
    for (int round = 0; round < ROUNDS; round++) {
        bench_raw(raw_path, n, &raw, round);
        bench_store(path, n, 0, &plain, round);
        bench_store(path, n, 1, &expected, round);
        bench_store(path, n, 2, &token, round);
    }
    show("raw SQLite", &raw);
    show("store", &plain);
    show("store, expected revision", &expected);
    show("store, idempotency key", &token);
    fresh(path);
    return 0;
}
