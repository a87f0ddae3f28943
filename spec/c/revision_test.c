/*
 * revision_test.c - revisions against fixed vectors (computed independently
 * from the ULID definition), successor and predecessor carries, monotonic
 * generation under a clock that goes backwards, and timestamps.
 */
#include "test.h"
#include "revision.h"

#include <stdint.h>

/* A clock that replays a list of times, and random bytes that count up. */
typedef struct script {
    const uint64_t *times; /* what now_ms returns, in turn */
    size_t n;              /* entries in times; the last repeats */
    size_t at;             /* calls so far */
    uint8_t next;          /* next random byte */
} script;

static uint64_t script_now(void *ctx) {
    script *s = ctx;
    size_t i = s->at < s->n ? s->at : s->n - 1;
    s->at++;
    return s->times[i];
}

static void script_random(void *ctx, uint8_t *out, size_t len) {
    script *s = ctx;
    for (size_t i = 0; i < len; i++) out[i] = s->next++;
}

static void test_make(void) {
    char out[STORE_REVISION_SIZE];
    const uint8_t zeros[10] = {0};
    const uint8_t counting[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    uint8_t ones[10];
    memset(ones, 0xff, sizeof ones);

    revision_make(1469918176385, zeros, out);
    CHECK_STR(out, "01ARYZ6S410000000000000000");
    revision_make(1469918176385, counting, out);
    CHECK_STR(out, "01ARYZ6S41041061050R3GG28A");
    revision_make(0, ones, out);
    CHECK_STR(out, "0000000000ZZZZZZZZZZZZZZZZ");
    revision_make((UINT64_C(1) << 48) - 1, ones, out);
    CHECK_STR(out, "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
    revision_make(UINT64_MAX, zeros, out); /* clamped to 48 bits */
    CHECK_STR(out, "7ZZZZZZZZZ0000000000000000");

    CHECK(revision_time("01ARYZ6S41041061050R3GG28A") == 1469918176385);
    CHECK(revision_time("00000000000000000000000000") == 0);
}

static void test_valid(void) {
    CHECK(revision_valid("01ARYZ6S410000000000000000"));
    CHECK(revision_valid("7ZZZZZZZZZZZZZZZZZZZZZZZZZ"));
    CHECK(!revision_valid("8ZZZZZZZZZZZZZZZZZZZZZZZZZ")); /* above 48 bits */
    CHECK(!revision_valid("01arYZ6S410000000000000000")); /* lower case */
    CHECK(!revision_valid("01ARYZ6S41000000000000000I")); /* not Crockford */
    CHECK(!revision_valid("01ARYZ6S41000000000000000U"));
    CHECK(!revision_valid("01ARYZ6S41000000000000000"));   /* 25 */
    CHECK(!revision_valid("01ARYZ6S4100000000000000000")); /* 27 */
    CHECK(!revision_valid(""));
    CHECK(!revision_valid(NULL));
    CHECK(!revision_valid(STORE_START));
    CHECK(revision_bound_valid(STORE_START));
    CHECK(revision_bound_valid(STORE_END));
    CHECK(revision_bound_valid("01ARYZ6S410000000000000000"));
    CHECK(!revision_bound_valid("1"));
    CHECK(!revision_bound_valid(""));
    CHECK(!revision_bound_valid(NULL));
}

static void test_next_prev(void) {
    /* Neighbours: next of the first is the second, prev of the second the
     * first. */
    static const char *const neighbours[][2] = {
        {"01ARYZ6S410000000000000000", "01ARYZ6S410000000000000001"},
        {"01ARYZ6S41000000000000000Z", "01ARYZ6S410000000000000010"},
        /* Carry out of the random part into the time. */
        {"0000000000ZZZZZZZZZZZZZZZZ", "00000000010000000000000000"},
        {"6ZZZZZZZZZZZZZZZZZZZZZZZZZ", "70000000000000000000000000"},
    };
    char out[STORE_REVISION_SIZE];
    for (size_t i = 0; i < sizeof neighbours / sizeof neighbours[0]; i++) {
        CHECK(revision_next(neighbours[i][0], out));
        CHECK_STR(out, neighbours[i][1]);
        CHECK(revision_prev(neighbours[i][1], out));
        CHECK_STR(out, neighbours[i][0]);
    }
    strcpy(out, "unchanged");
    CHECK(!revision_next("7ZZZZZZZZZZZZZZZZZZZZZZZZZ", out));
    CHECK_STR(out, "unchanged");
    CHECK(!revision_prev("00000000000000000000000000", out));

    /* next and prev undo each other, and order as strings. */
    char back[STORE_REVISION_SIZE];
    const char *r = "01ARYZ6S41041061050R3GG28A";
    CHECK(revision_next(r, out) && revision_prev(out, back));
    CHECK_STR(back, r);
    CHECK(strcmp(out, r) > 0);
    /* In place works too. */
    strcpy(out, "01ARYZ6S41000000000000000Z");
    CHECK(revision_next(out, out));
    CHECK_STR(out, "01ARYZ6S410000000000000010");
}

static void test_after(void) {
    /* The clock stalls, then goes back a second, then jumps ahead. */
    const uint64_t times[] = {1469918176385, 1469918176385, 1469918175385,
                              1469918175000, 1469918176386, 1469918176386};
    script sc = {times, 6, 0, 0};
    store_env env = {script_now, script_random, &sc};
    char prev[STORE_REVISION_SIZE], out[STORE_REVISION_SIZE];

    revision_after(NULL, &env, prev);
    CHECK_STR(prev, "01ARYZ6S41000G40R40M30E209"); /* bytes 0..9 */
    revision_after(prev, &env, out);               /* same ms: +1 */
    CHECK_STR(out, "01ARYZ6S41000G40R40M30E20A");
    CHECK(strcmp(out, prev) > 0);
    strcpy(prev, out);
    for (int i = 0; i < 2; i++) { /* clock behind: +1 each time */
        revision_after(prev, &env, out);
        CHECK(strcmp(out, prev) > 0);
        CHECK(revision_time(out) == 1469918176385);
        strcpy(prev, out);
    }
    CHECK_STR(prev, "01ARYZ6S41000G40R40M30E20C");
    revision_after(prev, &env, out); /* clock ahead: fresh */
    CHECK(revision_time(out) == 1469918176386);
    CHECK(strcmp(out, prev) > 0);
    CHECK_STR(out, "01ARYZ6S42185GR38E1W8124GK"); /* bytes 10..19 */

    /* START means none yet; a last revision far in the future wins. */
    revision_after(STORE_START, &env, out);
    CHECK(revision_time(out) == 1469918176386);
    revision_after("7ZZZZZZZZZ0000000000000000", &env, out);
    CHECK_STR(out, "7ZZZZZZZZZ0000000000000001");
}

static void test_timestamp(void) {
    char out[STORE_TIMESTAMP_SIZE];
    revision_timestamp(0, out);
    CHECK_STR(out, "1970-01-01T00:00:00.000Z");
    revision_timestamp(1469918176385, out);
    CHECK_STR(out, "2016-07-30T22:36:16.385Z");
    revision_timestamp(951782400123, out);
    CHECK_STR(out, "2000-02-29T00:00:00.123Z");
    revision_timestamp(UINT64_MAX, out); /* clamped to the last 4-digit year */
    CHECK_STR(out, "9999-12-31T23:59:59.999Z");
}

TEST_MAIN(NULL, test_make, test_valid, test_next_prev, test_after, test_timestamp)
