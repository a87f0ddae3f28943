/*
 * filter_test.c - every filter operator against events, with the edge cases
 * store.h names: integers against floats, mismatched types, absent
 * attributes, JSON null, nested data paths, any/all; then filter_copy,
 * filter_uses_data and filter_check.
 */
#include "test.h"
#include "filter.h"
#include "filter_tree.h"

#include <math.h>

static const char data_json[] =
    "{\"n\":1,\"neg\":-2,\"f\":1.5,\"s\":\"abc\",\"t\":true,\"z\":null,"
    "\"o\":{\"x\":{\"y\":5}},\"a\":[1,2],\"big\":9007199254740993,"
    "\"accent\":\"\xc3\xa9\",\"nul\":\"a\\u0000b\",\"max\":9223372036854775807}";

static store_event event(const char *data, const char *corr) {
    store_event ev = {
        .key = "counter/1",
        .type = "incremented",
        .data = data,
        .data_len = strlen(data),
        .correlation_id = corr,
        .revision = "01ARYZ6S410000000000000000",
        .committed_at = "2016-07-30T22:36:16.385Z",
    };
    return ev;
}

static void test_top_level(void) {
    store_event ev = event(data_json, NULL);
    store_event with = event(data_json, "req-7");

    CHECK(filter_match(NULL, &ev));
    CHECK(filter_match(FIELD("key", OP(FILTER_PREFIX, STR("counter/"))), &ev));
    CHECK(!filter_match(FIELD("key", OP(FILTER_PREFIX, STR("counter/2"))), &ev));
    CHECK(filter_match(FIELD("key", OP(FILTER_PREFIX, STR(""))), &ev));
    CHECK(filter_match(FIELD("type", OP(FILTER_EQ, STR("incremented"))), &ev));
    CHECK(!filter_match(FIELD("type", OP(FILTER_NE, STR("incremented"))), &ev));
    CHECK(filter_match(FIELD("type", OP(FILTER_NE, STR("decremented"))), &ev));
    CHECK(filter_match(FIELD("committed_at", OP(FILTER_GT, STR("2016-07-30"))), &ev));
    CHECK(!filter_match(FIELD("committed_at", OP(FILTER_LT, STR("2016-07-30"))), &ev));

    /* An absent correlation_id does not exist, and every comparison on it is
     * false, ne included. */
    CHECK(!filter_match(FIELD("correlation_id", EXISTS), &ev));
    CHECK(filter_match(FIELD("correlation_id", EXISTS), &with));
    CHECK(!filter_match(FIELD("correlation_id", OP(FILTER_NE, STR("x"))), &ev));
    CHECK(filter_match(FIELD("correlation_id", OP(FILTER_NE, STR("x"))), &with));
    CHECK(filter_match(FIELD("correlation_id", OP(FILTER_EQ, STR("req-7"))), &with));

    /* Unknown top-level attributes are absent; the event itself exists and
     * equals no scalar. */
    CHECK(!filter_match(FIELD("revision", EXISTS), &ev));
    CHECK(!filter_match(FIELD("nope", OP(FILTER_NE, INT(1))), &ev));
    CHECK(filter_match(EXISTS, &ev));
    CHECK(!filter_match(OP(FILTER_EQ, STR("counter/1")), &ev));
    CHECK(filter_match(OP(FILTER_NE, STR("counter/1")), &ev));
    CHECK(filter_match(FIELD("data", EXISTS), &ev));
}

static void test_numbers(void) {
    store_event ev = event(data_json, NULL);

    CHECK(filter_match(DATA("n", OP(FILTER_EQ, INT(1))), &ev));
    CHECK(filter_match(DATA("n", OP(FILTER_EQ, FLT(1.0))), &ev)); /* 1 == 1.0 */
    CHECK(!filter_match(DATA("n", OP(FILTER_NE, FLT(1.0))), &ev));
    CHECK(filter_match(DATA("f", OP(FILTER_GT, INT(1))), &ev));
    CHECK(filter_match(DATA("f", OP(FILTER_LT, INT(2))), &ev));
    CHECK(filter_match(DATA("f", OP(FILTER_EQ, FLT(1.5))), &ev));
    CHECK(filter_match(DATA("f", OP(FILTER_GTE, FLT(1.5))), &ev));
    CHECK(filter_match(DATA("f", OP(FILTER_LTE, FLT(1.5))), &ev));
    CHECK(!filter_match(DATA("f", OP(FILTER_LT, FLT(1.5))), &ev));
    CHECK(filter_match(DATA("n", OP(FILTER_GTE, INT(1))), &ev));
    CHECK(filter_match(DATA("n", OP(FILTER_LTE, INT(1))), &ev));
    CHECK(!filter_match(DATA("n", OP(FILTER_GT, INT(1))), &ev));
    CHECK(filter_match(DATA("n", OP(FILTER_LT, FLT(1.0000001))), &ev));
    CHECK(filter_match(DATA("neg", OP(FILTER_LT, FLT(-1.5))), &ev));
    CHECK(filter_match(DATA("neg", OP(FILTER_GT, FLT(-2.5))), &ev));
    CHECK(filter_match(DATA("neg", OP(FILTER_EQ, FLT(-2.0))), &ev));

    /* Integers compare exactly: 2^53 + 1 is not the double 2^53. */
    CHECK(filter_match(DATA("big", OP(FILTER_EQ, INT(9007199254740993))), &ev));
    CHECK(!filter_match(DATA("big", OP(FILTER_EQ, FLT(9007199254740992.0))), &ev));
    CHECK(filter_match(DATA("big", OP(FILTER_GT, FLT(9007199254740992.0))), &ev));
    CHECK(!filter_match(DATA("big", OP(FILTER_EQ, INT(9007199254740992))), &ev));
    CHECK(filter_match(DATA("max", OP(FILTER_EQ, INT(INT64_MAX))), &ev));
    CHECK(filter_match(DATA("max", OP(FILTER_LT, FLT(9223372036854775808.0))), &ev));
    CHECK(filter_match(DATA("max", OP(FILTER_GT, FLT(-1e300))), &ev));
    CHECK(filter_match(DATA("n", OP(FILTER_LT, FLT(1e300))), &ev));
}

static void test_types_and_absence(void) {
    store_event ev = event(data_json, NULL);

    /* Mismatched types: eq false, ne true, ordering false. */
    CHECK(!filter_match(DATA("s", OP(FILTER_EQ, INT(1))), &ev));
    CHECK(filter_match(DATA("s", OP(FILTER_NE, INT(1))), &ev));
    CHECK(!filter_match(DATA("s", OP(FILTER_GT, INT(1))), &ev));
    CHECK(!filter_match(DATA("s", OP(FILTER_LT, INT(1))), &ev));
    CHECK(!filter_match(DATA("n", OP(FILTER_GT, STR("0"))), &ev));
    CHECK(!filter_match(DATA("n", OP(FILTER_EQ, STR("1"))), &ev));
    CHECK(!filter_match(DATA("n", OP(FILTER_PREFIX, STR("1"))), &ev));
    CHECK(!filter_match(DATA("t", OP(FILTER_EQ, INT(1))), &ev));
    CHECK(filter_match(DATA("t", OP(FILTER_EQ, BOOL(true))), &ev));
    CHECK(!filter_match(DATA("t", OP(FILTER_EQ, BOOL(false))), &ev));
    CHECK(filter_match(DATA("t", OP(FILTER_NE, BOOL(false))), &ev));
    CHECK(!filter_match(DATA("t", OP(FILTER_GT, BOOL(false))), &ev));
    CHECK(!filter_match(DATA("a", OP(FILTER_EQ, INT(1))), &ev));
    CHECK(filter_match(DATA("a", OP(FILTER_NE, INT(1))), &ev));
    CHECK(filter_match(DATA("o", OP(FILTER_NE, STR("x"))), &ev));

    /* JSON null is present and of its own type. */
    CHECK(filter_match(DATA("z", EXISTS), &ev));
    CHECK(!filter_match(DATA("z", OP(FILTER_EQ, INT(0))), &ev));
    CHECK(filter_match(DATA("z", OP(FILTER_NE, INT(0))), &ev));
    CHECK(!filter_match(DATA("z", OP(FILTER_GTE, INT(0))), &ev));

    /* Absent: nothing holds, not even ne. */
    CHECK(!filter_match(DATA("missing", EXISTS), &ev));
    CHECK(!filter_match(DATA("missing", OP(FILTER_EQ, INT(1))), &ev));
    CHECK(!filter_match(DATA("missing", OP(FILTER_NE, INT(1))), &ev));
    CHECK(!filter_match(DATA("missing", OP(FILTER_LT, INT(1))), &ev));
    CHECK(!filter_match(DATA("missing", OP(FILTER_PREFIX, STR(""))), &ev));

    /* Strings: bytewise order, prefixes, embedded NUL. */
    CHECK(filter_match(DATA("s", OP(FILTER_EQ, STR("abc"))), &ev));
    CHECK(filter_match(DATA("s", OP(FILTER_GT, STR("abb"))), &ev));
    CHECK(filter_match(DATA("s", OP(FILTER_GT, STR("ab"))), &ev));
    CHECK(filter_match(DATA("s", OP(FILTER_LT, STR("abcd"))), &ev));
    CHECK(filter_match(DATA("s", OP(FILTER_PREFIX, STR("ab"))), &ev));
    CHECK(!filter_match(DATA("s", OP(FILTER_PREFIX, STR("abcd"))), &ev));
    CHECK(filter_match(DATA("accent", OP(FILTER_GT, STR("z"))), &ev)); /* 0xC3 > 'z' */
    CHECK(filter_match(DATA("nul", OP(FILTER_PREFIX, STR("a"))), &ev));
    CHECK(!filter_match(DATA("nul", OP(FILTER_EQ, STR("a"))), &ev));
    CHECK(filter_match(DATA("nul", OP(FILTER_GT, STR("a"))), &ev));
}

static void test_paths_and_logic(void) {
    store_event ev = event(data_json, "c");

    CHECK(filter_match(FIELD("data", FIELD("o", FIELD("x", FIELD("y", OP(FILTER_GTE, INT(5)))))),
                       &ev));
    CHECK(!filter_match(FIELD("data", FIELD("o", FIELD("x", FIELD("y", OP(FILTER_GT, INT(5)))))),
                        &ev));
    CHECK(!filter_match(FIELD("data", FIELD("s", FIELD("x", EXISTS))), &ev)); /* into a string */
    CHECK(!filter_match(FIELD("data", FIELD("a", FIELD("0", EXISTS))), &ev)); /* into an array */
    CHECK(!filter_match(FIELD("key", FIELD("x", EXISTS)), &ev));

    CHECK(filter_match(ALL(), &ev));
    CHECK(!filter_match(ANY(), &ev));
    CHECK(filter_match(ALL(FIELD("type", OP(FILTER_EQ, STR("incremented"))),
                           DATA("n", OP(FILTER_EQ, INT(1)))),
                       &ev));
    CHECK(!filter_match(ALL(FIELD("type", OP(FILTER_EQ, STR("incremented"))),
                            DATA("n", OP(FILTER_EQ, INT(2)))),
                        &ev));
    CHECK(filter_match(ANY(FIELD("type", OP(FILTER_EQ, STR("a"))),
                           FIELD("type", OP(FILTER_EQ, STR("incremented")))),
                       &ev));
    CHECK(!filter_match(ANY(FIELD("type", OP(FILTER_EQ, STR("a"))),
                            FIELD("type", OP(FILTER_EQ, STR("b")))),
                        &ev));
    /* Several attributes of one object, as the Lua table form builds it. */
    CHECK(filter_match(FIELD("data", ALL(FIELD("s", OP(FILTER_EQ, STR("abc"))),
                                         FIELD("f", OP(FILTER_GTE, INT(1))))),
                       &ev));

    /* Data that is not an object, and data that does not parse. */
    store_event scalar = event("5", NULL);
    CHECK(filter_match(FIELD("data", OP(FILTER_EQ, INT(5))), &scalar));
    CHECK(!filter_match(FIELD("data", FIELD("x", EXISTS)), &scalar));
    store_event broken = event("{\"n\":", NULL);
    CHECK(!filter_match(FIELD("data", EXISTS), &broken));
    CHECK(filter_match(FIELD("type", EXISTS), &broken)); /* data is not parsed */
}

static void test_uses_data_copy_check(void) {
    CHECK(!filter_uses_data(NULL));
    CHECK(!filter_uses_data(FIELD("type", OP(FILTER_EQ, STR("a")))));
    CHECK(filter_uses_data(DATA("n", EXISTS)));
    CHECK(filter_uses_data(ANY(FIELD("key", EXISTS), ALL(DATA("n", EXISTS)))));
    CHECK(!filter_uses_data(FIELD("key", FIELD("data", EXISTS))));

    store_filter *f =
        ALL(FIELD("key", OP(FILTER_PREFIX, STR("counter/"))),
            ANY(DATA("s", OP(FILTER_EQ, STR("abc"))), DATA("n", OP(FILTER_LT, FLT(0.5)))));
    store_filter *copy = NULL;
    store_event ev = event(data_json, NULL);
    CHECK(filter_copy(f, &copy) == STORE_OK && copy != NULL);
    CHECK(copy != f && copy->children[0] != f->children[0]);
    CHECK(copy->children[0]->name != f->children[0]->name);
    CHECK_STR(copy->children[0]->children[0]->value.string, "counter/");
    CHECK(filter_check(copy) == NULL);
    CHECK(filter_match(copy, &ev));
    filter_free(copy);
    CHECK(filter_copy(NULL, &copy) == STORE_OK && copy == NULL);
    filter_free(NULL);

    CHECK(filter_check(f) == NULL);
    CHECK(filter_check(ALL()) == NULL);
    CHECK(filter_check(DATA("t", OP(FILTER_NE, BOOL(true)))) == NULL);
    CHECK(filter_check(OP(FILTER_PREFIX, INT(1))) != NULL);
    CHECK(filter_check(OP(FILTER_PREFIX, BOOL(true))) != NULL);
    CHECK(filter_check(OP(FILTER_GT, BOOL(true))) != NULL);
    CHECK(filter_check(OP(FILTER_LTE, BOOL(false))) != NULL);
    CHECK(filter_check(OP(FILTER_EQ, FLT(NAN))) != NULL);
    CHECK(filter_check(OP(FILTER_GT, FLT(INFINITY))) != NULL);
    CHECK(filter_check(OP(FILTER_EQ, STR(NULL))) != NULL);
    CHECK(filter_check(OP(FILTER_EQ, STR("\xc0\x80"))) != NULL);
    CHECK(filter_check(NODE(FILTER_FIELD, .name = "x")) != NULL); /* no child */
    CHECK(filter_check(NODE(FILTER_FIELD, .name = "", KIDS(EXISTS))) != NULL);
    CHECK(filter_check(NODE(FILTER_FIELD, KIDS(EXISTS))) != NULL); /* no name */
    CHECK(filter_check(NODE(FILTER_FIELD, .name = "x", KIDS(EXISTS, EXISTS))) != NULL);
    CHECK(filter_check(NODE(FILTER_EQ, .value = INT(1), KIDS(EXISTS))) != NULL);
    CHECK(filter_check(NODE((store_filter_kind)99)) != NULL);
    CHECK(filter_check(OP(FILTER_EQ, ((store_scalar){.kind = (store_scalar_kind)9}))) != NULL);
    CHECK(filter_check(NULL) != NULL);

    /* Too deep to evaluate safely. */
    store_filter nodes[80];
    store_filter *kids[80];
    for (int i = 0; i < 80; i++) {
        kids[i] = &nodes[i];
        nodes[i] = (store_filter){.kind = FILTER_ALL,
                                  .children = i + 1 < 80 ? &kids[i + 1] : NULL,
                                  .nchildren = i + 1 < 80 ? 1 : 0};
    }
    CHECK(filter_check(&nodes[0]) != NULL);
    CHECK(filter_check(&nodes[20]) == NULL);
}

TEST_MAIN(NULL, test_top_level, test_numbers, test_types_and_absence, test_paths_and_logic,
          test_uses_data_copy_check)
