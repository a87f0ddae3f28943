/*
 * dynamodb_test.c - the DynamoDB backend through store.h.
 *
 * Always: URIs and Aeon config JSON (names, errors), missing credentials and
 * region, that opening sends nothing. With AWS_ENDPOINT_URL pointing at
 * DynamoDB Local on loopback (scripts/dynamodb-local.sh start; the busted
 * suite runs this under spec/run.sh), also what needs a fake clock, which
 * the Lua binding cannot inject: writers whose clocks are behind the key's
 * head still append above it (with and without an expected revision), a
 * tie of clock and randomness, the token staying the same across those
 * re-numbered attempts, idempotency keys scoped to their store, and a
 * subscription over an index that may lag the table (as AWS's does), and
 * the requests each operation takes: reads in pages as large as DynamoDB
 * makes them, every event once and in order across many small pages
 * (AEON_DYNAMODB_PAGE_ITEMS), the next page fetched ahead and none past a
 * limit.
 */
#include "test.h"
#include "store.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dynamodb.h"
#include "revision.h"

/* A clock shifted by `offset_ms` from the real one, and a random source
 * that is a counter (or constant, to force ties). */
typedef struct fake {
    int64_t offset_ms;  /* added to the real clock */
    uint8_t next;       /* next "random" byte */
    bool constant;      /* always the same bytes */
    uint64_t frozen_ms; /* when not 0, the time itself: it moves only when told */
} fake;

static uint64_t fake_now(void *ctx) {
    fake *f = ctx;
    if (f->frozen_ms != 0) return (uint64_t)((int64_t)f->frozen_ms + f->offset_ms);
    return (uint64_t)((int64_t)store_env_default.now_ms(NULL) + f->offset_ms);
}

static void fake_random(void *ctx, uint8_t *out, size_t len) {
    fake *f = ctx;
    for (size_t i = 0; i < len; i++) out[i] = f->constant ? 0x42 : f->next++;
}

static void reset_err(void) {
    free(err);
    err = NULL;
}

static store *open_with(const char *uri, fake *f) {
    store_env env = {fake_now, fake_random, f};
    store_options opts = {f != NULL ? &env : NULL, NULL, NULL};
    store *s = NULL;
    reset_err();
    if (store_open(uri, &opts, &s, &err) != STORE_OK) {
        fprintf(stderr, "open %s: %s\n", uri, err ? err : "?");
        test_failed++;
        return NULL;
    }
    return s;
}

/* ------------------------------------------------------------------ */

static void test_open_offline(void) {
    store *s = NULL;
    /* Offline: an endpoint nobody listens on; opening sends nothing. */
    setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9", 1);
    setenv("AWS_REGION", "eu-west-1", 1);
    setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);

    reset_err();
    CHECK(store_open("dynamodb:orders", NULL, &s, &err) == STORE_OK);
    CHECK(s != NULL && strcmp(s->ops->name, "dynamodb") == 0);
    store_close(s);
    s = NULL;

    const char *cfg = " {\"name\":\"orders\",\"eventsTable\":\"orders-events\","
                      "\"metadataTable\":\"orders-meta\",\"revisionIndex\":\"rev-ix\"}";
    CHECK(store_open(cfg, NULL, &s, &err) == STORE_OK);
    store_close(s);
    s = NULL;

    /* region and endpoint from the options win */
    store_options opts = {NULL, "ap-south-1", "http://127.0.0.1:10"};
    CHECK(store_open("dynamodb:orders", &opts, &s, &err) == STORE_OK);
    store_close(s);
    s = NULL;
    store_options bad_ep = {NULL, NULL, "ftp://x"};
    CHECK(store_open("dynamodb:orders", &bad_ep, &s, &err) == STORE_INVALID);
    CHECK(err != NULL && strstr(err, "endpoint") != NULL);
    reset_err();

    static const struct {
        const char *uri, *says;
    } bad[] = {
        {"dynamodb:", "must be 3 to 255"},
        {"dynamodb:ab", "must be 3 to 255"},
        {"dynamodb:has space", "may hold only"},
        {"dynamodb:caf\xc3\xa9s", "may hold only"},
        {"{\"name\":\"x\"", "not a JSON object"},
        {"{\"name\":\"x\",\"eventsTable\":\"abc\",\"metadataTable\":\"abc-m\"}", "revisionIndex"},
        {"{\"name\":1,\"eventsTable\":\"abc\",\"metadataTable\":\"abc-m\",\"revisionIndex\":"
         "\"ix1\"}",
         "\"name\" as a string"},
        {"{\"name\":\"x\",\"eventsTable\":\"a b\",\"metadataTable\":\"abc-m\",\"revisionIndex\":"
         "\"ix1\"}",
         "eventsTable"},
        {"[1,2]", "unknown store URI"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        reset_err();
        store_status st = store_open(bad[i].uri, NULL, &s, &err);
        CHECK(st == STORE_INVALID && s == NULL);
        if (err == NULL || strstr(err, bad[i].says) == NULL) {
            test_failed++;
            fprintf(stderr, "open %s: error \"%s\" does not say \"%s\"\n", bad[i].uri,
                    err ? err : "(none)", bad[i].says);
        } else
            test_passed++;
    }
    char long_name[300];
    memset(long_name, 'a', sizeof long_name);
    memcpy(long_name, "dynamodb:", 9);
    long_name[9 + 250] = '\0';
    reset_err();
    CHECK(store_open(long_name, NULL, &s, &err) == STORE_INVALID);
    CHECK(err != NULL && strstr(err, "metadata table") != NULL);

    /* No credentials, no region: the message says where it looked. */
    char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    setenv("HOME", "/nonexistent-home-for-test", 1);
    unsetenv("AWS_ACCESS_KEY_ID");
    reset_err();
    CHECK(store_open("dynamodb:orders", NULL, &s, &err) == STORE_INVALID);
    CHECK(err != NULL && strstr(err, "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID") != NULL);
    unsetenv("AWS_SECRET_ACCESS_KEY");
    reset_err();
    CHECK(store_open("dynamodb:orders", NULL, &s, &err) == STORE_INVALID);
    CHECK(err != NULL && strstr(err, "no AWS credentials") != NULL);
    unsetenv("AWS_REGION");
    unsetenv("AWS_DEFAULT_REGION");
    reset_err();
    CHECK(store_open("dynamodb:orders", NULL, &s, &err) == STORE_INVALID);
    CHECK(err != NULL && strstr(err, "no AWS region") != NULL);
    if (home != NULL) {
        setenv("HOME", home, 1);
        free(home);
    }
}

/* ------------------------------------------------------------------ */
/* Live, against DynamoDB Local                                        */

static void append1(store *s, const char *key, const char *type, const char *expected,
                    const char *token, store_append_result *r) {
    store_pending ev = {type, "{}", 2, NULL};
    store_append_opts o = {expected, token};
    reset_err();
    store_status st = s->ops->append(s, key, &ev, 1, &o, r, &err);
    if (st != STORE_OK) {
        test_failed++;
        fprintf(stderr, "append %s: %s\n", key, err ? err : "?");
        memset(r, 0, sizeof *r);
    }
}

static void head(store *s, const char *key, char out[STORE_REVISION_SIZE]) {
    reset_err();
    if (s->ops->head(s, key, out, &err) != STORE_OK) {
        test_failed++;
        fprintf(stderr, "head %s: %s\n", key, err ? err : "?");
        strcpy(out, "?");
    }
}

static size_t count_events(store *s, const char *key) {
    store_cursor *c = NULL;
    const store_event *ev;
    size_t n = 0;
    reset_err();
    if (s->ops->read(s, key, NULL, &c, &err) != STORE_OK) return 0;
    while (s->ops->next(c, &ev, &err) == STORE_OK && ev != NULL) n++;
    s->ops->cursor_close(c);
    return n;
}

static void test_clock_skew(const char *uri) {
    fake ahead = {0, 1, false, 0}, behind = {-3600 * 1000, 100, false, 0};
    store *a = open_with(uri, &ahead), *b = open_with(uri, &behind);
    store_append_result r1, r2, r3, r4;
    char h[STORE_REVISION_SIZE];
    if (a == NULL || b == NULL) goto done;

    append1(a, "skew", "a1", NULL, NULL, &r1);
    CHECK(r1.outcome == STORE_APPENDED);
    /* b's clock is an hour behind: its own revision would sort below a's. */
    append1(b, "skew", "b1", NULL, NULL, &r2);
    CHECK(r2.outcome == STORE_APPENDED);
    CHECK(strcmp(r2.revision, r1.revision) > 0);
    CHECK(revision_time(r2.revision) == revision_time(r1.revision));
    head(a, "skew", h);
    CHECK_STR(h, r2.revision);

    /* With the head as the expected revision: appended above it, not a conflict. */
    append1(b, "skew", "b2", r2.revision, NULL, &r3);
    CHECK(r3.outcome == STORE_APPENDED);
    CHECK(strcmp(r3.revision, r2.revision) > 0);
    /* A stale expected revision is still a conflict, with the real head. */
    append1(b, "skew", "b3", r1.revision, NULL, &r4);
    CHECK(r4.outcome == STORE_CONFLICT);
    CHECK_STR(r4.actual, r3.revision);
    CHECK_STR(r4.expected, r1.revision);

    /* With an idempotency key the re-numbered attempt keeps its token: the
     * append commits once, and a repeat is unchanged. */
    append1(b, "skew", "b4", NULL, "skewed-request", &r1);
    CHECK(r1.outcome == STORE_APPENDED);
    append1(b, "skew", "b4", NULL, "skewed-request", &r2);
    CHECK(r2.outcome == STORE_UNCHANGED);
    CHECK(count_events(a, "skew") == 4);

    /* Revisions increase across the store (the store head), so a new
     * handle an hour behind, on a fresh key, still appends above them all. */
    append1(b, "fresh", "b", NULL, NULL, &r1);
    CHECK(r1.outcome == STORE_APPENDED && strcmp(r1.revision, r3.revision) > 0);
    fake behind2 = {-3600 * 1000, 200, false, 0};
    store *c2 = open_with(uri, &behind2);
    if (c2 != NULL) {
        char before[STORE_REVISION_SIZE];
        strcpy(before, r1.revision);
        append1(c2, "fresh2", "c", NULL, NULL, &r1);
        CHECK(r1.outcome == STORE_APPENDED);
        CHECK(strcmp(r1.revision, before) > 0);
        store_close(c2);
    }

    /* read back in order */
    store_cursor *c = NULL;
    const store_event *ev;
    char last[STORE_REVISION_SIZE] = "0";
    const char *types[] = {"a1", "b1", "b2", "b4"};
    size_t n = 0;
    reset_err();
    CHECK(a->ops->read(a, "skew", NULL, &c, &err) == STORE_OK);
    while (c != NULL && a->ops->next(c, &ev, &err) == STORE_OK && ev != NULL) {
        CHECK(strcmp(ev->revision, last) > 0);
        CHECK(n < 4 && strcmp(ev->type, types[n]) == 0);
        strcpy(last, ev->revision);
        n++;
    }
    a->ops->cursor_close(c);
    CHECK(n == 4);
done:
    store_close(a);
    store_close(b);
}

static void test_ties(const char *uri) {
    /* Two writers with the same clock and the same "random" bytes make the
     * same revision; the head condition sends the second above the first. */
    fake f1 = {0, 0, true, 0}, f2 = {0, 0, true, 0};
    store *a = open_with(uri, &f1), *b = open_with(uri, &f2);
    store_append_result r1, r2;
    if (a == NULL || b == NULL) goto done;
    for (int i = 0; i < 5; i++) {
        append1(a, "tie", "a", NULL, NULL, &r1);
        append1(b, "tie", "b", NULL, NULL, &r2);
        CHECK(r1.outcome == STORE_APPENDED && r2.outcome == STORE_APPENDED);
        CHECK(strcmp(r2.revision, r1.revision) > 0);
    }
    CHECK(count_events(a, "tie") == 10);
done:
    store_close(a);
    store_close(b);
}

static void test_tokens(const char *uri, const char *other_uri) {
    /* DynamoDB keeps request tokens per account, not per table: the same
     * idempotency key in two stores must commit in both. */
    store *a = open_with(uri, NULL), *b = open_with(other_uri, NULL);
    store_append_result r;
    if (a == NULL || b == NULL) goto done;
    append1(a, "t", "x", NULL, "shared-key", &r);
    CHECK(r.outcome == STORE_APPENDED);
    append1(b, "t", "x", NULL, "shared-key", &r);
    CHECK(r.outcome == STORE_APPENDED);
    append1(a, "t", "x", NULL, "shared-key", &r);
    CHECK(r.outcome == STORE_UNCHANGED);
    /* Any length of key: hashed to DynamoDB's 36 characters. */
    char longkey[200];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    append1(a, "t", "y", NULL, longkey, &r);
    CHECK(r.outcome == STORE_APPENDED);
    append1(a, "t", "y", NULL, longkey, &r);
    CHECK(r.outcome == STORE_UNCHANGED);
    longkey[198] = 'j';
    append1(a, "t", "y", NULL, longkey, &r);
    CHECK(r.outcome == STORE_APPENDED);
    /* the same key used for another append is still the same request */
    append1(a, "other-key", "z", NULL, "shared-key", &r);
    CHECK(r.outcome == STORE_UNCHANGED);
    CHECK(count_events(a, "t") == 3);
    CHECK(count_events(b, "t") == 1);
    CHECK(count_events(a, "other-key") == 0);
done:
    store_close(a);
    store_close(b);
}

/* Polls once without waiting; returns the count, position in pos. */
static size_t poll0(store *s, store_sub *sub, size_t max, char pos[STORE_REVISION_SIZE],
                    const store_event **events) {
    size_t n = 0;
    reset_err();
    if (s->ops->poll(sub, 0, max, events, &n, pos, &err) != STORE_OK) {
        test_failed++;
        fprintf(stderr, "poll: %s\n", err ? err : "?");
        return 0;
    }
    return n;
}

/* With an index that may lag (AWS), a revision read counts as settled only
 * after a while: until then the position stays behind, events read are
 * not handed out twice, and a checkpoint carries what was read above its
 * mark so a restart neither repeats nor skips. */
static void test_settling_index(const char *uri) {
    /* The store's clock stands still but when moved below: how long the
     * polls take on a busy machine does not decide what has settled. */
    fake f = {0};
    f.frozen_ms = store_env_default.now_ms(NULL);
    setenv("AEON_DYNAMODB_INDEX_SETTLE_MS", "400", 1);
    store *s = open_with(uri, &f);
    unsetenv("AEON_DYNAMODB_INDEX_SETTLE_MS");
    store_append_result r[4];
    store_sub *sub = NULL;
    const store_event *ev;
    char pos[STORE_REVISION_SIZE], cp[STORE_REVISION_SIZE];
    if (s == NULL) return;
    store_sub_opts o = {(const char *const[]){"settle/*"}, 1, NULL, 0, NULL, NULL, 0, false};
    reset_err();
    CHECK(s->ops->subscribe(s, "settling", &o, &sub, &err) == STORE_OK);
    if (sub == NULL) goto done;
    for (int i = 0; i < 3; i++) append1(s, "settle/a", "e", NULL, NULL, &r[i]);

    size_t got = poll0(s, sub, 2, pos, &ev);
    CHECK(got == 2);
    if (got == 2) CHECK_STR(ev[0].revision, r[0].revision);
    CHECK_STR(pos, STORE_START); /* read, not settled */
    got = poll0(s, sub, 10, pos, &ev);
    CHECK(got == 1);
    if (got == 1) CHECK_STR(ev[0].revision, r[2].revision);
    CHECK(poll0(s, sub, 10, pos, &ev) == 0); /* nothing twice */
    CHECK_STR(pos, STORE_START);

    /* ack the second event: the checkpoint carries the first two as seen */
    bool acked = false;
    reset_err();
    CHECK(s->ops->ack(sub, r[1].revision, &acked, &err) == STORE_OK && acked);
    CHECK(s->ops->checkpoint(sub, cp, &err) == STORE_OK);
    CHECK_STR(cp, r[1].revision);
    /* A restart from that checkpoint: the first consumer goes first, since
     * while it holds the name's lease a second one only stands by. */
    s->ops->sub_close(sub);
    sub = NULL;
    reset_err();
    CHECK(s->ops->subscribe(s, "settling", &o, &sub, &err) == STORE_OK);
    if (sub == NULL) goto done;
    CHECK(poll0(s, sub, 10, pos, &ev) == 1 && strcmp(ev[0].revision, r[2].revision) == 0);

    /* later, the reads settle and the position moves up to the last one */
    f.frozen_ms += 450;
    /* Nor does the restarted one, once it follows the stream, hand out the
     * events its checkpoint listed as handled (it gave the first two again). */
    CHECK(poll0(s, sub, 10, pos, &ev) == 0);
    CHECK_STR(pos, r[2].revision);
    reset_err();
    CHECK(s->ops->ack(sub, pos, &acked, &err) == STORE_OK && acked);
    append1(s, "settle/b", "e", NULL, NULL, &r[3]);
    CHECK(poll0(s, sub, 10, pos, &ev) == 1 && strcmp(ev[0].revision, r[3].revision) == 0);
    s->ops->sub_close(sub);
    sub = NULL;
    reset_err();
    CHECK(s->ops->subscribe(s, "settling", &o, &sub, &err) == STORE_OK);
    if (sub != NULL)
        CHECK(poll0(s, sub, 10, pos, &ev) == 1 && strcmp(ev[0].revision, r[3].revision) == 0);
done:
    if (sub != NULL) s->ops->sub_close(sub);
    store_close(s);
}

static void admin(const char *uri, store_admin action) {
    store *s = open_with(uri, NULL);
    char *out = NULL;
    if (s == NULL) return;
    reset_err();
    store_status st = s->ops->admin(s, action, &out, &err);
    CHECK(st == STORE_OK);
    if (st != STORE_OK) fprintf(stderr, "admin %s: %s\n", uri, err ? err : "?");
    free(out);
    store_close(s);
}

/* Requests of op the handle sent since the last call for that op. */
static uint64_t sent(store *s, const char *op, uint64_t *last) {
    uint64_t now = ddb_requests(s, op), d = now - *last;
    *last = now;
    return d;
}

/* Appends n events {"i": first..} to key in one transaction. */
static void append_n(store *s, const char *key, int first, int n) {
    store_pending ev[50];
    char data[50][32];
    store_append_result r;
    for (int i = 0; i < n; i++) {
        int len = snprintf(data[i], sizeof data[i], "{\"i\":%d}", first + i);
        ev[i] = (store_pending){"paged", data[i], (size_t)len, NULL};
    }
    reset_err();
    if (s->ops->append(s, key, ev, (size_t)n, NULL, &r, &err) != STORE_OK) {
        test_failed++;
        fprintf(stderr, "append %s: %s\n", key, err ? err : "?");
    }
}

/* Reads key (every key when NULL) and checks what came: `want` events, in
 * revision order (newest first when backward), and, for one key, data
 * {"i": 0, 1, ...} in that order, so none is missing or repeated. Stops
 * after `stop` events (-1: never) and closes the cursor there. */
static void check_read(store *s, const char *key, bool backward, int64_t limit, int stop,
                       int want) {
    store_read_opts o = {NULL, false, NULL, false, limit, backward, NULL};
    store_cursor *c = NULL;
    const store_event *ev;
    char last[STORE_REVISION_SIZE] = "";
    int n = 0, ordered = 1, in_sequence = 1;
    reset_err();
    if (s->ops->read(s, key, &o, &c, &err) != STORE_OK) {
        test_failed++;
        fprintf(stderr, "read: %s\n", err ? err : "?");
        return;
    }
    while (n != stop && s->ops->next(c, &ev, &err) == STORE_OK && ev != NULL) {
        int cmp = strcmp(ev->revision, last);
        if (n > 0 && (backward ? cmp >= 0 : cmp <= 0)) ordered = 0;
        memcpy(last, ev->revision, sizeof last);
        char expect[32];
        snprintf(expect, sizeof expect, "{\"i\":%d}", backward ? want - 1 - n : n);
        if (key != NULL &&
            (ev->data_len != strlen(expect) || memcmp(ev->data, expect, ev->data_len) != 0))
            in_sequence = 0;
        n++;
    }
    s->ops->cursor_close(c);
    CHECK_MSG(n == want, "read %s: %d events, want %d", key ? key : "(all)", n, want);
    CHECK_MSG(ordered && in_sequence, "read %s: out of order or not each once",
              key ? key : "(all)");
}

static void test_requests(const char *uri) {
    /* A frozen clock: every revision in one slice, so read_all's requests
     * do not depend on when the test runs. */
    fake f = {0}, g = {0};
    f.frozen_ms = g.frozen_ms = store_env_default.now_ms(NULL);
    store *s = open_with(uri, &f);
    setenv("AEON_DYNAMODB_PAGE_ITEMS", "7", 1);
    store *small = open_with(uri, &g);
    unsetenv("AEON_DYNAMODB_PAGE_ITEMS");
    uint64_t q = 0, qs = 0, w = 0, get = 0, put = 0;
    char rev[STORE_REVISION_SIZE];
    if (s == NULL || small == NULL) goto done;

    /* 300 events on pages/a and 100 on pages/b, interleaved: one
     * TransactWriteItems an append. */
    const char *order = "aabaabaa";
    int next[2] = {0, 0};
    for (const char *k = order; *k != '\0'; k++) {
        int i = *k - 'a';
        append_n(s, i == 0 ? "pages/a" : "pages/b", next[i], 50);
        next[i] += 50;
    }
    CHECK(sent(s, "TransactWriteItems", &w) == 8);
    CHECK(ddb_requests(s, NULL) == 8);

    head(s, "pages/a", rev);
    CHECK(sent(s, "GetItem", &get) == 1);
    bool saved = false, found = false;
    store_snapshot snap;
    reset_err();
    CHECK(s->ops->save_snapshot(s, "pages/a", rev, "{}", 2, &saved, &err) == STORE_OK);
    CHECK(sent(s, "PutItem", &put) == 1);
    CHECK(s->ops->snapshot(s, "pages/a", &snap, &found, &err) == STORE_OK && found);
    if (found) free(snap.state);
    CHECK(sent(s, "GetItem", &get) == 1);

    /* Pages as large as DynamoDB makes them: one Query for a key's 300
     * events, two for read_all (the slices, then the one slice). */
    check_read(s, "pages/a", false, -1, -1, 300);
    CHECK(sent(s, "Query", &q) == 1);
    check_read(s, NULL, false, -1, -1, 400);
    CHECK(sent(s, "Query", &q) == 2);

    /* Pages of 7: 43 for 300 events (the last one short, so DynamoDB says
     * there is no more), forward and backward, each fetched once; read_all
     * lists the slice, then 58 pages. */
    check_read(small, "pages/a", false, -1, -1, 300);
    CHECK(sent(small, "Query", &qs) == 43);
    check_read(small, "pages/a", true, -1, -1, 300);
    CHECK(sent(small, "Query", &qs) == 43);
    check_read(small, NULL, false, -1, -1, 400);
    CHECK(sent(small, "Query", &qs) == 59);
    check_read(small, "pages/b", false, -1, -1, 100);
    CHECK(sent(small, "Query", &qs) == 15);
    /* A limit of 10 asks for 7, then 3, and nothing ahead past them. */
    check_read(small, "pages/a", false, 10, -1, 10);
    CHECK(sent(small, "Query", &qs) == 2);
    /* Closed after 10 events: page 3 was being fetched ahead; closing
     * waits for it, and nothing after it is asked for. */
    check_read(small, "pages/a", false, -1, 10, 10);
    CHECK(sent(small, "Query", &qs) == 3);
    CHECK(ddb_requests(small, NULL) == 43 + 43 + 59 + 15 + 2 + 3);
done:
    store_close(s);
    store_close(small);
}

static void test_live(void) {
    char uri[64], other[64];
    snprintf(uri, sizeof uri, "dynamodb:ctest-%ld", (long)getpid());
    snprintf(other, sizeof other, "dynamodb:ctest-other-%ld", (long)getpid());
    admin(uri, STORE_DEPLOY);
    admin(other, STORE_DEPLOY);
    test_clock_skew(uri);
    test_ties(uri);
    test_tokens(uri, other);
    test_settling_index(uri);
    char paged[64];
    snprintf(paged, sizeof paged, "dynamodb:ctest-pages-%ld", (long)getpid());
    admin(paged, STORE_DEPLOY);
    test_requests(paged);
    admin(paged, STORE_DESTROY);
    admin(uri, STORE_DESTROY);
    admin(other, STORE_DESTROY);
}

int main(void) {
    const char *local = test_local_endpoint();
    char *ep = local != NULL ? strdup(local) : NULL;
    char *vars[4][2] = {{"AWS_REGION", NULL},
                        {"AWS_ACCESS_KEY_ID", NULL},
                        {"AWS_SECRET_ACCESS_KEY", NULL},
                        {"AWS_ENDPOINT_URL_DYNAMODB", NULL}};
    for (int i = 0; i < 4; i++) vars[i][1] = getenv(vars[i][0]) ? strdup(getenv(vars[i][0])) : NULL;

    test_open_offline();

    for (int i = 0; i < 4; i++) {
        if (vars[i][1] != NULL)
            setenv(vars[i][0], vars[i][1], 1);
        else
            unsetenv(vars[i][0]);
        free(vars[i][1]);
    }
    if (ep != NULL) {
        if (getenv("AWS_REGION") == NULL) setenv("AWS_REGION", "us-east-1", 1);
        if (getenv("AWS_ACCESS_KEY_ID") == NULL || getenv("AWS_SECRET_ACCESS_KEY") == NULL) {
            setenv("AWS_ACCESS_KEY_ID", "local", 1);
            setenv("AWS_SECRET_ACCESS_KEY", "local", 1);
        }
        setenv("AWS_ENDPOINT_URL_DYNAMODB", ep, 1);
        test_live();
    }
    free(ep);
    free(err);
    return test_report();
}
