/*
 * sqlite_test.c - the SQLite backend through store.h: URI dispatch, appends,
 * heads, reads with every option, conflicts, idempotency, append_many,
 * snapshots, admin, cursors interleaved with appends on one handle and
 * across handles, concurrent processes, kill -9, and 100k events read with
 * flat memory. A fixed clock makes revisions exact where it matters.
 *
 * AEON_TEST_EVENTS overrides the 100k (e.g. smaller under valgrind).
 */
#include "test.h"
#include "filter.h"
#include "revision.h"
#include "store.h"

#include <dirent.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Harness                                                             */

/* A clock the test sets, and random bytes that count up. */
typedef struct fake {
    uint64_t now; /* what now_ms returns */
    uint8_t next; /* next random byte */
} fake;

static uint64_t fake_now(void *ctx) { return ((fake *)ctx)->now; }

static void fake_random(void *ctx, uint8_t *out, size_t len) {
    fake *f = ctx;
    for (size_t i = 0; i < len; i++) out[i] = f->next++;
}

static store *open_env(const char *uri, const store_env *env) {
    store *s = NULL;
    store_options opts = {env, NULL, NULL};
    OK(store_open(uri, &opts, &s, &err));
    return s;
}

static store *open_fake(const char *uri, fake *f) {
    store_env env = {fake_now, fake_random, f};
    return open_env(uri, &env);
}

/* Appends one event whose data is {"i":i}. */
static store_append_result append_i(store *s, const char *key, int i, const char *expected,
                                    const char *token) {
    char data[32];
    snprintf(data, sizeof data, "{\"i\":%d}", i);
    store_pending ev = {"numbered", data, strlen(data), NULL};
    store_append_opts o = {expected, token};
    store_append_result r;
    OK(s->ops->append(s, key, &ev, 1, &o, &r, &err));
    return r;
}

/* Appends events {"i":from} ... {"i":to-1} in one call. */
static store_append_result append_range(store *s, const char *key, int from, int to) {
    store_pending evs[64];
    char data[64][32];
    int n = 0;
    for (int i = from; i < to && n < 64; i++, n++) {
        snprintf(data[n], sizeof data[n], "{\"i\":%d}", i);
        evs[n] = (store_pending){"numbered", data[n], strlen(data[n]), NULL};
    }
    store_append_result r;
    OK(s->ops->append(s, key, evs, (size_t)n, NULL, &r, &err));
    return r;
}

/* Reads and returns the i of each event, in order; revisions must strictly
 * increase (or decrease, backward) as they come. */
static int read_i(store *s, const char *key, const store_read_opts *o, int *out, int max) {
    store_cursor *c = NULL;
    const store_event *ev;
    char prev[STORE_REVISION_SIZE] = "";
    int n = 0;
    bool ordered = true;
    OK(s->ops->read(s, key, o, &c, &err));
    if (c == NULL) return -1;
    for (;;) {
        store_status st = CALL(s->ops->next(c, &ev, &err));
        CHECK(st == STORE_OK);
        if (st != STORE_OK || ev == NULL) break;
        if (prev[0] != '\0')
            ordered &= (o != NULL && o->backward) ? strcmp(ev->revision, prev) < 0
                                                  : strcmp(ev->revision, prev) > 0;
        strcpy(prev, ev->revision);
        int i = -1;
        sscanf(ev->data, "{\"i\":%d}", &i);
        if (n < max) out[n] = i;
        n++;
    }
    CHECK(ordered);
    s->ops->cursor_close(c);
    return n;
}

#define READS(s, key, opts, ...)                                                                   \
    do {                                                                                           \
        int got_[64];                                                                              \
        int want_[] = {__VA_ARGS__};                                                               \
        int n_ = read_i((s), (key), (opts), got_, 64);                                             \
        CHECK(test_ints_are(got_, n_, want_ + 1, (int)(sizeof want_ / sizeof *want_) - 1));        \
    } while (0)
/* READS(s, key, opts, -1, expected...): the leading -1 lets the list be empty. */

static int count_events(store *s, const char *key) {
    int buf[1];
    return read_i(s, key, NULL, buf, 0);
}

static void head_is(store *s, const char *key, const char *want) {
    char h[STORE_REVISION_SIZE];
    OK(s->ops->head(s, key, h, &err));
    CHECK_STR(h, want);
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */

static void test_open_and_text(void) {
    store *s = NULL;
    OK(store_open("memory:", NULL, &s, &err));
    CHECK(s != NULL && strcmp(s->ops->name, "sqlite") == 0);
    store_close(s);
    store_close(NULL);

    /* DynamoDB URIs go to that backend (dynamodb_test.c); these are malformed. */
    FAILS(store_open("dynamodb:e", NULL, &s, &err), STORE_INVALID);
    CHECK(s == NULL && strstr(err, "dynamodb") != NULL);
    FAILS(store_open(" {\"name\":\"x\"}", NULL, &s, &err), STORE_INVALID);
    FAILS(store_open("events", NULL, &s, &err), STORE_INVALID);
    FAILS(store_open("sqlite:", NULL, &s, &err), STORE_INVALID);
    FAILS(store_open(NULL, NULL, &s, &err), STORE_INVALID);
    FAILS(store_open("sqlite:/nonexistent-dir/x.db", NULL, &s, &err), STORE_IO);
    CHECK(s == NULL);

    struct stat st;
    s = open_env(test_path("plain.db"), NULL);
    CHECK(s != NULL && stat(test_path("plain.db"), &st) == 0);
    store_close(s);
    char uri[160];
    snprintf(uri, sizeof uri, "sqlite:%s", test_path("named"));
    s = open_env(uri, NULL);
    CHECK(s != NULL && stat(test_path("named"), &st) == 0);
    store_close(s);

    CHECK(store_check_text("counter/1", false) == NULL);
    CHECK(store_check_text("", true) == NULL);
    CHECK(store_check_text("", false) != NULL);
    CHECK(store_check_text(NULL, true) != NULL);
    CHECK(store_check_text("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", false) == NULL);
    CHECK(store_check_text("\xf4\x8f\xbf\xbf", false) == NULL); /* U+10FFFF */
    CHECK(store_check_text("\xed\x9f\xbf", false) == NULL);     /* U+D7FF */
    CHECK(store_check_text("\xc0\x80", false) != NULL);         /* overlong NUL */
    CHECK(store_check_text("\xc1\xbf", false) != NULL);         /* overlong */
    CHECK(store_check_text("\xe0\x80\x80", false) != NULL);     /* overlong */
    CHECK(store_check_text("\xe0\x9f\xbf", false) != NULL);     /* overlong */
    CHECK(store_check_text("\xf0\x8f\xbf\xbf", false) != NULL); /* overlong */
    CHECK(store_check_text("\xed\xa0\x80", false) != NULL);     /* surrogate */
    CHECK(store_check_text("\xed\xbf\xbf", false) != NULL);     /* surrogate */
    CHECK(store_check_text("\xf4\x90\x80\x80", false) != NULL); /* > U+10FFFF */
    CHECK(store_check_text("\xf5\x80\x80\x80", false) != NULL);
    CHECK(store_check_text("\x80", false) != NULL);  /* lone continuation */
    CHECK(store_check_text("a\xc3", false) != NULL); /* truncated */
    CHECK(store_check_text("\xe2\x82", false) != NULL);
    CHECK(store_check_text("\xe2\x82x", false) != NULL);
    CHECK(store_check_text("\xff", false) != NULL);
}

static void test_append_and_read(void) {
    fake f = {1469918176385, 0};
    store *s = open_fake("memory:", &f);
    store_append_result r;

    head_is(s, "a", STORE_START);
    store_pending evs[3] = {
        {"opened",
         "{\"name\":\"caf\xc3\xa9\",\"big\":9223372036854775807,\"x\":0.10000000000000001}", 0,
         NULL},
        {"renamed", "[]", 2, "req-1"},
        {"closed", "null", 4, NULL},
    };
    evs[0].data_len = strlen(evs[0].data);
    OK(s->ops->append(s, "a", evs, 3, NULL, &r, &err));
    CHECK(r.outcome == STORE_APPENDED && r.count == 3);

    /* The first revision comes from the clock and random bytes 0..9, the
     * next ones follow by one. */
    char want[3][STORE_REVISION_SIZE];
    const uint8_t bytes[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    revision_make(f.now, bytes, want[0]);
    revision_next(want[0], want[1]);
    revision_next(want[1], want[2]);
    CHECK_STR(r.revision, want[2]);
    head_is(s, "a", want[2]);
    head_is(s, "b", STORE_START);

    store_cursor *c = NULL;
    const store_event *ev;
    OK(s->ops->read(s, "a", NULL, &c, &err));
    for (int i = 0; i < 3; i++) {
        OK(s->ops->next(c, &ev, &err));
        CHECK(ev != NULL);
        if (ev == NULL) break;
        CHECK_STR(ev->key, "a");
        CHECK_STR(ev->type, evs[i].type);
        CHECK(ev->data_len == evs[i].data_len && memcmp(ev->data, evs[i].data, ev->data_len) == 0);
        CHECK((ev->correlation_id == NULL) == (evs[i].correlation_id == NULL));
        CHECK_STR(ev->revision, want[i]);
        CHECK_STR(ev->committed_at, "2016-07-30T22:36:16.385Z");
    }
    CHECK(ev != NULL && ev->correlation_id == NULL);
    OK(s->ops->next(c, &ev, &err));
    CHECK(ev == NULL);
    OK(s->ops->next(c, &ev, &err)); /* stays at the end */
    CHECK(ev == NULL);
    s->ops->cursor_close(c);

    /* Same millisecond, another key: revisions go on from the store's last. */
    r = append_i(s, "b", 7, NULL, NULL);
    char want_b[STORE_REVISION_SIZE];
    revision_next(want[2], want_b);
    CHECK_STR(r.revision, want_b);
    /* The clock going back changes nothing; going ahead starts afresh. */
    f.now -= 5000;
    r = append_i(s, "b", 8, NULL, NULL);
    CHECK(strcmp(r.revision, want_b) > 0 && revision_time(r.revision) == 1469918176385);
    f.now += 10000;
    r = append_i(s, "b", 9, NULL, NULL);
    CHECK(revision_time(r.revision) == f.now);

    /* read_all: global revision order. */
    store_read_opts all = {.limit = -1};
    int got[8];
    CHECK(read_i(s, NULL, &all, got, 8) == 6);
    CHECK(got[3] == 7 && got[4] == 8 && got[5] == 9);
    store_close(s);
}

static void test_read_options(void) {
    fake f = {1700000000000, 0};
    store *s = open_fake("memory:", &f);
    char rev[6][STORE_REVISION_SIZE];
    for (int i = 1; i <= 5; i++) {
        f.now++;
        strcpy(rev[i], append_i(s, "k", i, NULL, NULL).revision);
        append_i(s, "other", 100 + i, NULL, NULL);
    }

    READS(s, "k", NULL, -1, 1, 2, 3, 4, 5);
    READS(s, "k", (&(store_read_opts){.limit = -1, .backward = true}), -1, 5, 4, 3, 2, 1);
    READS(s, "k", (&(store_read_opts){.from = rev[3], .limit = -1}), -1, 3, 4, 5);
    READS(s, "k", (&(store_read_opts){.from = rev[3], .from_exclusive = true, .limit = -1}), -1, 4,
          5);
    READS(s, "k", (&(store_read_opts){.to = rev[3], .limit = -1}), -1, 1, 2, 3);
    READS(s, "k", (&(store_read_opts){.to = rev[3], .to_exclusive = true, .limit = -1}), -1, 1, 2);
    READS(s, "k", (&(store_read_opts){.from = rev[2], .to = rev[4], .limit = -1, .backward = true}),
          -1, 4, 3, 2);
    READS(s, "k",
          (&(store_read_opts){.from = rev[2],
                              .from_exclusive = true,
                              .to = rev[4],
                              .to_exclusive = true,
                              .limit = -1}),
          -1, 3);
    READS(s, "k", (&(store_read_opts){.from = rev[4], .to = rev[2], .limit = -1}), -1);
    READS(s, "k", (&(store_read_opts){.from = STORE_START, .to = STORE_END, .limit = -1}), -1, 1, 2,
          3, 4, 5);
    READS(s, "k",
          (&(store_read_opts){.from = STORE_START,
                              .from_exclusive = true,
                              .to = STORE_END,
                              .to_exclusive = true,
                              .limit = -1}),
          -1, 1, 2, 3, 4, 5);
    READS(s, "k", (&(store_read_opts){.from = STORE_END, .limit = -1}), -1);
    READS(s, "k", (&(store_read_opts){.to = STORE_START, .limit = -1}), -1);
    READS(s, "k", (&(store_read_opts){.limit = 2}), -1, 1, 2);
    READS(s, "k", (&(store_read_opts){.limit = 2, .backward = true}), -1, 5, 4);
    READS(s, "k", (&(store_read_opts){.limit = 0}), -1);
    READS(s, "nobody", NULL, -1);

    /* limit counts matching events. */
    store_filter ge2 = {.kind = FILTER_GTE, .value = {.kind = SCALAR_INTEGER, .integer = 2}};
    store_filter *ge2k[] = {&ge2};
    store_filter i = {.kind = FILTER_FIELD, .name = "i", .children = ge2k, .nchildren = 1};
    store_filter *ik[] = {&i};
    store_filter data = {.kind = FILTER_FIELD, .name = "data", .children = ik, .nchildren = 1};
    READS(s, "k", (&(store_read_opts){.limit = 2, .filter = &data}), -1, 2, 3);
    READS(s, "k", (&(store_read_opts){.limit = 3, .filter = &data, .backward = true}), -1, 5, 4, 3);
    ge2.value.integer = 104;
    READS(s, NULL, (&(store_read_opts){.limit = 5, .filter = &data}), -1, 104, 105);

    /* read_all with bounds interleaves keys by revision. */
    READS(s, NULL, (&(store_read_opts){.from = rev[4], .limit = -1}), -1, 4, 104, 5, 105);
    READS(s, NULL,
          (&(store_read_opts){.to = rev[2], .to_exclusive = true, .limit = -1, .backward = true}),
          -1, 101, 1);

    store_cursor *c = NULL;
    FAILS(s->ops->read(s, "k", (&(store_read_opts){.from = "yesterday", .limit = -1}), &c, &err),
          STORE_INVALID);
    FAILS(s->ops->read(s, "k", (&(store_read_opts){.to = "", .limit = -1}), &c, &err),
          STORE_INVALID);
    FAILS(s->ops->read(s, "", NULL, &c, &err), STORE_INVALID);
    store_filter bad = {.kind = FILTER_PREFIX, .value = {.kind = SCALAR_INTEGER}};
    FAILS(s->ops->read(s, "k", (&(store_read_opts){.limit = -1, .filter = &bad}), &c, &err),
          STORE_INVALID);
    CHECK(c == NULL);

    /* The cursor copies its options: they may go away right after read. */
    store_read_opts *o = calloc(1, sizeof *o);
    char *from = strdup(rev[2]);
    o->from = from;
    o->limit = -1;
    o->filter = &data;
    ge2.value.integer = 3;
    OK(s->ops->read(s, "k", o, &c, &err));
    memset(from, 'x', strlen(from));
    free(from);
    free(o);
    ge2.value.integer = 99;
    const store_event *ev;
    int n = 0;
    while (CALL(s->ops->next(c, &ev, &err)) == STORE_OK && ev != NULL) n++;
    CHECK(n == 3);
    s->ops->cursor_close(c);
    s->ops->cursor_close(NULL);
    store_close(s);
}

static void test_conflicts_and_validation(void) {
    fake f = {1700000000000, 0};
    store *s = open_fake("memory:", &f);
    store_append_result r;

    r = append_i(s, "a", 1, STORE_START, NULL);
    CHECK(r.outcome == STORE_APPENDED);
    char h1[STORE_REVISION_SIZE];
    strcpy(h1, r.revision);

    r = append_i(s, "a", 2, STORE_START, NULL);
    CHECK(r.outcome == STORE_CONFLICT);
    CHECK_STR(r.expected, STORE_START);
    CHECK_STR(r.actual, h1);
    head_is(s, "a", h1);
    CHECK(count_events(s, "a") == 1);

    r = append_i(s, "a", 2, h1, NULL);
    CHECK(r.outcome == STORE_APPENDED);
    char h2[STORE_REVISION_SIZE];
    strcpy(h2, r.revision);
    r = append_i(s, "a", 3, h1, NULL); /* stale */
    CHECK(r.outcome == STORE_CONFLICT);
    CHECK_STR(r.expected, h1);
    CHECK_STR(r.actual, h2);
    r = append_i(s, "empty", 1, h2, NULL); /* a revision on an empty key */
    CHECK(r.outcome == STORE_CONFLICT);
    CHECK_STR(r.actual, STORE_START);
    CHECK(count_events(s, NULL) == 2);

    /* Refused before touching the database. */
    store_pending ok = {"t", "{}", 2, NULL};
    store_pending bad[] = {
        {"", "{}", 2, NULL},
        {NULL, "{}", 2, NULL},
        {"\xc0\xaf", "{}", 2, NULL},
        {"t", "{}", 0, NULL},
        {"t", NULL, 2, NULL},
        {"t", "{}", 2, ""},
        {"t", "{}", 2, "\xed\xa0\x80"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        store_pending two[2] = {ok, bad[i]};
        FAILS(s->ops->append(s, "a", two, 2, NULL, &r, &err), STORE_INVALID);
        CHECK(strstr(err, "event 2") != NULL);
    }
    FAILS(s->ops->append(s, "", &ok, 1, NULL, &r, &err), STORE_INVALID);
    FAILS(s->ops->append(s, NULL, &ok, 1, NULL, &r, &err), STORE_INVALID);
    FAILS(s->ops->append(s, "a\xff", &ok, 1, NULL, &r, &err), STORE_INVALID);
    FAILS(s->ops->append(s, "a", NULL, 1, NULL, &r, &err), STORE_INVALID);
    FAILS(s->ops->append(s, "a", &ok, 1, (&(store_append_opts){STORE_END, NULL}), &r, &err),
          STORE_INVALID);
    FAILS(s->ops->append(s, "a", &ok, 1, (&(store_append_opts){"01ARYZ", NULL}), &r, &err),
          STORE_INVALID);
    FAILS(s->ops->append(s, "a", &ok, 1, (&(store_append_opts){NULL, ""}), &r, &err),
          STORE_INVALID);
    CHECK(count_events(s, NULL) == 2);

    OK(s->ops->append(s, "a", NULL, 0, NULL, &r, &err));
    CHECK(r.outcome == STORE_UNCHANGED && r.count == 0);
    char head[STORE_REVISION_SIZE];
    FAILS(s->ops->head(s, "", head, &err), STORE_INVALID);
    store_close(s);
}

static void test_idempotency(void) {
    fake f = {1700000000000, 0};
    const char *path = test_path("idem.db");
    store *s = open_fake(path, &f);
    store_append_result r;

    r = append_i(s, "a", 1, NULL, "tok-1");
    CHECK(r.outcome == STORE_APPENDED);
    r = append_i(s, "a", 1, NULL, "tok-1");
    CHECK(r.outcome == STORE_UNCHANGED);
    r = append_i(s, "b", 1, NULL, "tok-1"); /* a token is one request, whatever the key */
    CHECK(r.outcome == STORE_UNCHANGED);
    /* A retry of an append that succeeded is unchanged, not a conflict. */
    r = append_i(s, "a", 1, STORE_START, "tok-1");
    CHECK(r.outcome == STORE_UNCHANGED);
    CHECK(count_events(s, NULL) == 1);

    /* A conflict records nothing: the corrected retry goes through. */
    r = append_i(s, "a", 2, STORE_START, "tok-2");
    CHECK(r.outcome == STORE_CONFLICT);
    char head[STORE_REVISION_SIZE];
    OK(s->ops->head(s, "a", head, &err));
    r = append_i(s, "a", 2, head, "tok-2");
    CHECK(r.outcome == STORE_APPENDED);

    f.now += STORE_IDEMPOTENCY_MS - 1;
    r = append_i(s, "a", 1, NULL, "tok-1");
    CHECK(r.outcome == STORE_UNCHANGED);
    f.now += 1;
    r = append_i(s, "a", 1, NULL, "tok-1");
    CHECK(r.outcome == STORE_APPENDED);
    CHECK(count_events(s, NULL) == 3);
    store_close(s);

    /* Expired keys are pruned as new ones are recorded (a fresh handle
     * prunes on its first). */
    f.now += STORE_IDEMPOTENCY_MS + 1;
    s = open_fake(path, &f);
    r = append_i(s, "a", 3, NULL, "tok-3");
    CHECK(r.outcome == STORE_APPENDED);
    store_close(s);
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK(sqlite3_prepare_v2(db, "SELECT group_concat(token) FROM idempotency", -1, &q, NULL) ==
          SQLITE_OK);
    CHECK(sqlite3_step(q) == SQLITE_ROW);
    CHECK_STR((const char *)sqlite3_column_text(q, 0), "tok-3");
    sqlite3_finalize(q);
    sqlite3_close(db);
}

static void test_append_many(void) {
    fake f = {1700000000000, 0};
    store *s = open_fake("memory:", &f);
    store_append_result r;
    store_pending a[2] = {{"t", "{\"i\":1}", 7, NULL}, {"t", "{\"i\":2}", 7, NULL}};
    store_pending b[1] = {{"t", "{\"i\":3}", 7, NULL}};

    store_batch ok[2] = {{"a", a, 2, STORE_START}, {"b", b, 1, NULL}};
    OK(s->ops->append_many(s, ok, 2, NULL, &r, &err));
    CHECK(r.outcome == STORE_APPENDED && r.count == 3);
    head_is(s, "b", r.revision);
    READS(s, NULL, NULL, -1, 1, 2, 3);
    char ha[STORE_REVISION_SIZE];
    OK(s->ops->head(s, "a", ha, &err));

    /* The second batch's check fails: the first commits nothing. */
    store_batch conflict[2] = {{"c", b, 1, STORE_START}, {"a", a, 1, STORE_START}};
    OK(s->ops->append_many(s, conflict, 2, NULL, &r, &err));
    CHECK(r.outcome == STORE_CONFLICT && r.failed == 1);
    CHECK_STR(r.expected, STORE_START);
    CHECK_STR(r.actual, ha);
    head_is(s, "c", STORE_START);
    CHECK(count_events(s, NULL) == 3);

    /* An empty batch is a guard on its key. */
    store_batch guard[2] = {{"c", b, 1, NULL}, {"a", NULL, 0, STORE_START}};
    OK(s->ops->append_many(s, guard, 2, NULL, &r, &err));
    CHECK(r.outcome == STORE_CONFLICT && r.failed == 1);
    guard[1].expected_revision = ha;
    OK(s->ops->append_many(s, guard, 2, "many-1", &r, &err));
    CHECK(r.outcome == STORE_APPENDED && r.count == 1);
    OK(s->ops->append_many(s, guard, 2, "many-1", &r, &err));
    CHECK(r.outcome == STORE_UNCHANGED);
    CHECK(count_events(s, NULL) == 4);

    store_batch twice[3] = {{"x", b, 1, NULL}, {"y", b, 1, NULL}, {"x", a, 1, NULL}};
    FAILS(s->ops->append_many(s, twice, 3, NULL, &r, &err), STORE_INVALID);
    CHECK(strstr(err, "\"x\"") != NULL);
    store_batch invalid[2] = {{"x", b, 1, NULL},
                              {"y", (store_pending[]){{"", "1", 1, NULL}}, 1, NULL}};
    FAILS(s->ops->append_many(s, invalid, 2, NULL, &r, &err), STORE_INVALID);
    CHECK(strstr(err, "batch 2") != NULL);
    OK(s->ops->append_many(s, NULL, 0, NULL, &r, &err));
    CHECK(r.outcome == STORE_UNCHANGED);
    CHECK(count_events(s, NULL) == 4);
    store_close(s);
}

static void test_snapshots(void) {
    fake f = {1700000000000, 0};
    store *s = open_fake("memory:", &f);
    store_snapshot snap;
    bool found = true, saved = false;
    char r1[STORE_REVISION_SIZE], r2[STORE_REVISION_SIZE], r3[STORE_REVISION_SIZE];
    strcpy(r1, append_i(s, "a", 1, NULL, NULL).revision);
    strcpy(r2, append_i(s, "a", 2, NULL, NULL).revision);
    strcpy(r3, append_i(s, "a", 3, NULL, NULL).revision);

    OK(s->ops->snapshot(s, "a", &snap, &found, &err));
    CHECK(!found && snap.state == NULL);

    OK(s->ops->save_snapshot(s, "a", r2, "{\"n\":2}", 7, &saved, &err));
    CHECK(saved);
    OK(s->ops->snapshot(s, "a", &snap, &found, &err));
    CHECK(found && snap.state_len == 7 && strcmp(snap.state, "{\"n\":2}") == 0);
    CHECK_STR(snap.revision, r2);
    free(snap.state);

    OK(s->ops->save_snapshot(s, "a", r1, "{\"n\":1}", 7, &saved, &err)); /* older */
    CHECK(!saved);
    OK(s->ops->save_snapshot(s, "a", r2, "{\"m\":2}", 7, &saved, &err)); /* equal */
    CHECK(saved);
    OK(s->ops->snapshot(s, "a", &snap, &found, &err));
    CHECK(found && strcmp(snap.state, "{\"m\":2}") == 0);
    free(snap.state);
    OK(s->ops->save_snapshot(s, "a", r3, "{\"n\":3}", 7, &saved, &err)); /* newer */
    CHECK(saved);
    OK(s->ops->snapshot(s, "a", &snap, &found, &err));
    CHECK(found && strcmp(snap.state, "{\"n\":3}") == 0);
    CHECK_STR(snap.revision, r3);
    free(snap.state);
    OK(s->ops->snapshot(s, "b", &snap, &found, &err));
    CHECK(!found);

    FAILS(s->ops->save_snapshot(s, "a", "r9", "{}", 2, &saved, &err), STORE_INVALID);
    FAILS(s->ops->save_snapshot(s, "a", STORE_END, "{}", 2, &saved, &err), STORE_INVALID);
    FAILS(s->ops->save_snapshot(s, "a", r3, "", 0, &saved, &err), STORE_INVALID);
    FAILS(s->ops->save_snapshot(s, "", r3, "{}", 2, &saved, &err), STORE_INVALID);
    CHECK(!saved);
    store_close(s);
}

static void test_admin(void) {
    fake f = {1700000000000, 0};
    store *s = open_fake(test_path("admin.db"), &f);
    char *out = NULL;
    append_i(s, "a", 1, NULL, NULL);
    append_i(s, "a", 2, NULL, NULL);
    char last[STORE_REVISION_SIZE], want[128];
    strcpy(last, append_i(s, "b", 3, NULL, NULL).revision);

    OK(s->ops->admin(s, STORE_INFO, &out, &err));
    CHECK(out != NULL && strstr(out, "\"backend\":\"sqlite\"") != NULL);
    CHECK(out != NULL && strstr(out, "\"events\":3") != NULL);
    CHECK(out != NULL && strstr(out, "\"keys\":2") != NULL);
    snprintf(want, sizeof want, "\"last_revision\":\"%s\"", last);
    CHECK(out != NULL && strstr(out, want) != NULL);
    CHECK(out != NULL && strstr(out, "admin.db") != NULL);
    free(out);

    OK(s->ops->admin(s, STORE_DEPLOY, &out, &err));
    CHECK(out != NULL && strstr(out, "\"deployed\":true") != NULL);
    free(out);

    OK(s->ops->admin(s, STORE_DESTROY, &out, &err));
    CHECK(out != NULL && strstr(out, "\"events_deleted\":3") != NULL);
    free(out);
    head_is(s, "a", STORE_START);
    OK(s->ops->admin(s, STORE_INFO, &out, &err));
    CHECK(out != NULL && strstr(out, "\"events\":0") != NULL);
    free(out);
    CHECK(append_i(s, "a", 1, STORE_START, NULL).outcome == STORE_APPENDED);
    FAILS(s->ops->admin(s, (store_admin)42, &out, &err), STORE_INVALID);
    store_close(s);
}

/* A cursor and appends take turns on one handle: the cursor holds no
 * statement or transaction between calls, and sees what was appended
 * after it opened, up to its last page: once a page comes back short the
 * cursor has found the end and ends there. */
static void test_interleave_one_handle(void) {
    fake f = {1700000000000, 0};
    store *s = open_fake("memory:", &f);
    for (int i = 0; i < 600; i += 60) append_range(s, "k", i, i + 60);

    store_cursor *c = NULL, *back = NULL;
    const store_event *ev;
    OK(s->ops->read(s, NULL, NULL, &c, &err));
    OK(s->ops->read(s, "k", (&(store_read_opts){.limit = -1, .backward = true}), &back, &err));
    int n = 0, next_i = 0, bn = 0;
    bool in_order = true;
    while (CALL(s->ops->next(c, &ev, &err)) == STORE_OK && ev != NULL) {
        int i = -1;
        sscanf(ev->data, "{\"i\":%d}", &i);
        in_order &= i == next_i++;
        if (++n % 100 == 0 && n <= 600) {
            /* Mid-page: append, snapshot, head, and step the other cursor. */
            append_range(s, "k", 600 + n / 100 - 1, 600 + n / 100);
            bool saved;
            OK(s->ops->save_snapshot(s, "k", ev->revision, "{}", 2, &saved, &err));
            char h[STORE_REVISION_SIZE];
            OK(s->ops->head(s, "k", h, &err));
            for (int j = 0; j < 150; j++)
                if (CALL(s->ops->next(back, &ev, &err)) == STORE_OK && ev != NULL) bn++;
        }
    }
    /* Pages start at 0, 256 and 512; the last, read at n = 512, held
     * 512..604 (five appends so far) and was short, so the event appended
     * at n = 600 comes after this cursor's end. */
    CHECK(n == 605 && in_order);
    CHECK(bn == 601); /* from the head when it first read: after i = 600 */
    s->ops->cursor_close(c);
    s->ops->cursor_close(back);

    OK(s->ops->read(s, "k", NULL, &c, &err));
    n = 0;
    while (CALL(s->ops->next(c, &ev, &err)) == STORE_OK && ev != NULL) n++;
    CHECK(n == 606); /* a new cursor sees it */
    s->ops->cursor_close(c);
    store_close(s);
}

/* Two handles on one file, as two processes would have. */
static void test_two_handles(void) {
    const char *path = test_path("shared.db");
    store *a = open_env(path, NULL), *b = open_env(path, NULL);
    for (int i = 0; i < 300; i += 60) append_range(a, "k", i, i + 60);
    char h[STORE_REVISION_SIZE];
    OK(a->ops->head(a, "k", h, &err));
    head_is(b, "k", h);

    store_cursor *c = NULL;
    const store_event *ev;
    OK(b->ops->read(b, "k", NULL, &c, &err));
    int n = 0;
    while (CALL(b->ops->next(c, &ev, &err)) == STORE_OK && ev != NULL)
        if (++n == 100) append_range(a, "k", 300, 305);
    CHECK(n == 305);
    b->ops->cursor_close(c);

    /* Both read the head; b appends first; a's append conflicts. */
    OK(a->ops->head(a, "k", h, &err));
    store_append_result rb = append_i(b, "k", 1000, h, NULL);
    CHECK(rb.outcome == STORE_APPENDED);
    store_append_result ra = append_i(a, "k", 1001, h, NULL);
    CHECK(ra.outcome == STORE_CONFLICT);
    CHECK_STR(ra.actual, rb.revision);
    /* Idempotency keys are shared through the file. */
    CHECK(append_i(a, "k", 1, NULL, "shared-token").outcome == STORE_APPENDED);
    CHECK(append_i(b, "k", 1, NULL, "shared-token").outcome == STORE_UNCHANGED);
    store_close(a);
    store_close(b);
}

/* Two processes increment one counter with optimistic concurrency and
 * each appends to its own key: every increment lands exactly once, and
 * each writer's events come back in the order it committed them. */
static void test_processes(void) {
    const char *path = test_path("procs.db");
    enum { WRITERS = 2, EACH = 100 };
    pid_t pids[WRITERS];
    for (int w = 0; w < WRITERS; w++) {
        if ((pids[w] = fork()) == 0) {
            store *s = NULL;
            char *e = NULL, own[16], h[STORE_REVISION_SIZE];
            if (store_open(path, NULL, &s, &e) != STORE_OK) {
                fprintf(stderr, "writer %d: %s\n", w, e);
                _exit(2);
            }
            snprintf(own, sizeof own, "w/%d", w);
            for (int i = 0; i < EACH; i++) {
                char data[32];
                snprintf(data, sizeof data, "{\"i\":%d}", i);
                store_pending ev = {"numbered", data, strlen(data), NULL};
                store_append_result r;
                do {
                    if (s->ops->head(s, "counter", h, &e) != STORE_OK ||
                        s->ops->append(s, "counter", &ev, 1, &(store_append_opts){h, NULL}, &r,
                                       &e) != STORE_OK) {
                        fprintf(stderr, "writer %d: %s\n", w, e);
                        _exit(3);
                    }
                } while (r.outcome == STORE_CONFLICT);
                if (s->ops->append(s, own, &ev, 1, NULL, &r, &e) != STORE_OK) {
                    fprintf(stderr, "writer %d: %s\n", w, e);
                    _exit(4);
                }
            }
            store_close(s);
            _exit(0);
        }
    }
    for (int w = 0; w < WRITERS; w++) {
        int status = -1;
        waitpid(pids[w], &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    store *s = open_env(path, NULL);
    CHECK(count_events(s, "counter") == WRITERS * EACH);
    CHECK(count_events(s, NULL) == 2 * WRITERS * EACH); /* read_i checks the order */
    for (int w = 0; w < WRITERS; w++) {
        char own[16];
        int got[EACH], want[EACH];
        snprintf(own, sizeof own, "w/%d", w);
        for (int i = 0; i < EACH; i++) want[i] = i;
        CHECK(test_ints_are(got, read_i(s, own, NULL, got, EACH), want, EACH));
    }
    store_close(s);
}

/* The crashing writer: appends {"i":i} to "crash" until it is killed,
 * acknowledging each i. */
static void crash_writer(int fd, void *path) {
    store *s = NULL;
    char *e = NULL;
    if (store_open(path, NULL, &s, &e) != STORE_OK) _exit(2);
    for (int i = 0;; i++) {
        char data[32];
        snprintf(data, sizeof data, "{\"i\":%d}", i);
        store_pending ev = {"numbered", data, strlen(data), NULL};
        store_append_result r;
        if (s->ops->append(s, "crash", &ev, 1, NULL, &r, &e) != STORE_OK ||
            write(fd, &i, sizeof i) != (ssize_t)sizeof i)
            _exit(3);
    }
}

static int acked; /* the last i the crashing writer acknowledged */

static bool note_ack(const void *ack, void *ctx) {
    (void)ctx;
    memcpy(&acked, ack, sizeof acked);
    return acked < 300;
}

/* Every append acknowledged before a kill -9 is there after reopening. */
static void test_kill9_writer(void) {
    char *path = test_path("crash.db");
    acked = -1;
    test_kill9(crash_writer, sizeof(int), note_ack, path);

    store *s = open_env(path, NULL);
    int *got = malloc(100000 * sizeof *got);
    int n = read_i(s, "crash", NULL, got, 100000);
    CHECK(n >= acked + 1 && n <= acked + 2 && n <= 100000); /* one more may have committed */
    bool gapless = true;
    for (int k = 0; k < n && k < 100000; k++) gapless &= got[k] == k;
    CHECK(gapless);
    CHECK(append_i(s, "crash", n, NULL, NULL).outcome == STORE_APPENDED);
    free(got);
    store_close(s);
}

static long max_rss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Events too big for a page of 256 rows: pages stop at about 1 MB of text
 * and the next one resumes where the last stopped, both ways. */
static void test_big_events(void) {
    enum { N = 12, SIZE = 300 * 1000 };
    store *s = open_env("memory:", NULL);
    char *big = malloc(SIZE + 1);
    for (int i = 0; i < N; i++) {
        int len = snprintf(big, SIZE, "{\"i\":%d,\"pad\":\"", i);
        memset(big + len, 'a' + i, SIZE - len - 2);
        memcpy(big + SIZE - 2, "\"}", 3);
        store_pending ev = {"big", big, SIZE, NULL};
        store_append_result r;
        OK(s->ops->append(s, "big", &ev, 1, NULL, &r, &err));
    }
    free(big);
    for (int backward = 0; backward < 2; backward++) {
        store_cursor *c = NULL;
        const store_event *ev;
        int n = 0;
        bool right = true;
        OK(s->ops->read(s, "big", (&(store_read_opts){.limit = -1, .backward = backward}), &c,
                        &err));
        while (CALL(s->ops->next(c, &ev, &err)) == STORE_OK && ev != NULL) {
            int i = -1, want = backward ? N - 1 - n : n;
            sscanf(ev->data, "{\"i\":%d", &i);
            right &= i == want && ev->data_len == SIZE && ev->data[SIZE - 3] == 'a' + want;
            n++;
        }
        CHECK(n == N && right);
        s->ops->cursor_close(c);
    }
    store_close(s);
}

/* A long stream read back with flat memory: the peak RSS may not grow by
 * anything like the data read (50 MB). */
static void test_large_stream(void) {
    const char *env = getenv("AEON_TEST_EVENTS");
    int total = env != NULL ? atoi(env) : 100000;
    enum { BATCH = 1000, DATA = 500 };
    store *s = open_env(test_path("large.db"), NULL);
    store_pending *evs = malloc(BATCH * sizeof *evs);
    char *data = malloc((size_t)BATCH * (DATA + 1));
    double t0 = seconds();
    for (int done = 0; done < total; done += BATCH) {
        int n = total - done < BATCH ? total - done : BATCH;
        for (int j = 0; j < n; j++) {
            char *d = data + (size_t)j * (DATA + 1);
            int len = snprintf(d, DATA + 1, "{\"i\":%d,\"pad\":\"", done + j);
            memset(d + len, 'x', DATA - len - 2);
            memcpy(d + DATA - 2, "\"}", 3);
            evs[j] = (store_pending){"numbered", d, DATA, NULL};
        }
        store_append_result r;
        OK(s->ops->append(s, done % 2 ? "odd" : "even", evs, (size_t)n, NULL, &r, &err));
    }
    double t1 = seconds();
    free(evs);
    free(data);

    long rss0 = max_rss_kb();
    store_cursor *c = NULL;
    const store_event *ev;
    char prev[STORE_REVISION_SIZE] = "";
    int n = 0;
    bool ordered = true;
    OK(s->ops->read(s, NULL, NULL, &c, &err));
    while (CALL(s->ops->next(c, &ev, &err)) == STORE_OK && ev != NULL) {
        int i = -1;
        sscanf(ev->data, "{\"i\":%d", &i);
        ordered &= i == n++ && strcmp(ev->revision, prev) > 0 && ev->data_len == DATA;
        strcpy(prev, ev->revision);
    }
    s->ops->cursor_close(c);
    double t2 = seconds();
    long grown = max_rss_kb() - rss0;
    CHECK(n == total && ordered);
    CHECK(grown < 16 * 1024); /* KB */
    fprintf(stderr,
            "  %d events of %d bytes: appended in batches of %d at %.0f events/s, "
            "read at %.0f events/s, peak RSS grew %ld KB while reading\n",
            total, DATA, BATCH, total / (t1 - t0), total / (t2 - t1), grown);
    store_close(s);
}

TEST_MAIN("aeon-sqlite-", test_open_and_text, test_append_and_read, test_read_options,
          test_conflicts_and_validation, test_idempotency, test_append_many, test_snapshots,
          test_admin, test_interleave_one_handle, test_two_handles, test_processes,
          test_kill9_writer, test_big_events, test_large_stream)
