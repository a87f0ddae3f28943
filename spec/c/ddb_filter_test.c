/*
 * ddb_filter_test.c - the FilterExpression compiler: the exact text for each
 * operator and attribute, the guards store.h's semantics need (ne on absent
 * attributes, correlationId stored as NULL), folding of constant conditions
 * and of a known key, floats DynamoDB cannot hold, DynamoDB's limits, and
 * that no name or value ever reaches the expression text (every one is a
 * placeholder, and every placeholder is used, as DynamoDB requires).
 * Whether DynamoDB then selects what filter_match selects is checked
 * against DynamoDB Local by spec/integration/dynamodb_filter_spec.lua.
 */
#include "test.h"
#include "ddb_filter.h"
#include "filter_tree.h"

#include <stdlib.h>

/* Only placeholders, the fixed function names and operators may appear in
 * an expression: nothing a filter's author wrote. */
static bool only_placeholders(const char *text) {
    static const char *const words[] =
        {"attribute_exists", "attribute_type", "begins_with", "AND", "OR", NULL};
    for (const char *p = text; *p != '\0';) {
        if (*p == '#' || *p == ':') {
            p++;
            if (*p != 'f' && *p != 't') return false;
            p++;
            while ((*p >= '0' && *p <= '9') || *p == 'S' || *p == 'N') p++;
            continue;
        }
        if (strchr(" ().,<>=", *p) != NULL) {
            p++;
            continue;
        }
        bool word = false;
        for (int i = 0; words[i] != NULL; i++) {
            size_t n = strlen(words[i]);
            if (strncmp(p, words[i], n) == 0) {
                p += n;
                word = true;
                break;
            }
        }
        if (!word) return false;
    }
    return true;
}

/* Whether the expression uses every placeholder (key) of `placeholders`. */
static bool each_used(const char *expression, const json_t *placeholders) {
    const char *ph;
    json_t *v;
    json_object_foreach((json_t *)placeholders, ph, v) {
        const char *at = strstr(expression, ph);
        /* "#f1" must not be matched by "#f10" */
        while (at != NULL && at[strlen(ph)] >= '0' && at[strlen(ph)] <= '9')
            at = strstr(at + 1, ph);
        if (at == NULL) return false;
    }
    return true;
}

/* DynamoDB refuses names and values the expression does not use. */
static bool all_used(const ddb_filter *d) {
    return each_used(d->expression, d->names) && each_used(d->expression, d->values);
}

/* Compiles and checks the expression text (NULL: none expected) plus the
 * well-formedness every expression must have. */
static void expect(const store_filter *f, const char *key, const char *want, int line) {
    ddb_filter d;
    free(err);
    err = NULL;
    store_status st = ddb_filter_compile(f, key, &d, &err);
    if (st != STORE_OK) {
        test_failed++;
        fprintf(stderr, "line %d: compile failed: %s\n", line, err ? err : "?");
        return;
    }
    const char *got = d.expression;
    if ((got == NULL) != (want == NULL) || (got != NULL && strcmp(got, want) != 0)) {
        test_failed++;
        fprintf(stderr, "line %d: expression is \"%s\", want \"%s\"\n", line, got ? got : "(none)",
                want ? want : "(none)");
    } else
        test_passed++;
    CHECK(!d.local);
    if (got != NULL) {
        CHECK(!d.none);
        CHECK(only_placeholders(got));
        CHECK(all_used(&d));
    }
    ddb_filter_free(&d);
}
#define EXPECT(f, want) expect((f), NULL, (want), __LINE__)
#define EXPECT_KEY(f, key, want) expect((f), (key), (want), __LINE__)

/* The compiled filter matches no event at all. */
static void expect_none(const store_filter *f, const char *key, int line) {
    ddb_filter d;
    store_status st = ddb_filter_compile(f, key, &d, &err);
    if (st != STORE_OK || !d.none || d.expression != NULL || d.local) {
        test_failed++;
        fprintf(stderr, "line %d: want no match, got status %d none %d expr \"%s\"\n", line,
                (int)st, d.none, d.expression ? d.expression : "(none)");
    } else
        test_passed++;
    ddb_filter_free(&d);
}
#define NONE(f) expect_none((f), NULL, __LINE__)
#define NONE_KEY(f, key) expect_none((f), (key), __LINE__)

static const char *value_json(const store_filter *f, const char *ph) {
    static char buf[256];
    ddb_filter d;
    buf[0] = '\0';
    if (ddb_filter_compile(f, NULL, &d, &err) != STORE_OK) return "(failed)";
    char *s = json_dumps(json_object_get(d.values, ph), JSON_COMPACT | JSON_SORT_KEYS);
    snprintf(buf, sizeof buf, "%s", s ? s : "(none)");
    free(s);
    ddb_filter_free(&d);
    return buf;
}

static const char *names_json(const store_filter *f, const char *key) {
    static char buf[512];
    ddb_filter d;
    if (ddb_filter_compile(f, key, &d, &err) != STORE_OK) return "(failed)";
    char *s = json_dumps(d.names, JSON_COMPACT | JSON_SORT_KEYS);
    snprintf(buf, sizeof buf, "%s", s ? s : "(none)");
    free(s);
    ddb_filter_free(&d);
    return buf;
}

static void test_operators(void) {
    EXPECT(NULL, NULL);
    EXPECT(FIELD("type", OP(FILTER_EQ, STR("a"))), "#f0 = :f0");
    EXPECT(FIELD("type", OP(FILTER_NE, STR("a"))), "#f0 <> :f0");
    EXPECT(FIELD("type", OP(FILTER_GT, STR("a"))), "#f0 > :f0");
    EXPECT(FIELD("type", OP(FILTER_GTE, STR("a"))), "#f0 >= :f0");
    EXPECT(FIELD("type", OP(FILTER_LT, STR("a"))), "#f0 < :f0");
    EXPECT(FIELD("type", OP(FILTER_LTE, STR("a"))), "#f0 <= :f0");
    EXPECT(FIELD("key", OP(FILTER_PREFIX, STR("counter/"))), "begins_with(#f0, :f0)");
    EXPECT(FIELD("committed_at", OP(FILTER_GTE, STR("2026"))), "#f0 >= :f0");
    CHECK_STR(names_json(FIELD("committed_at", OP(FILTER_GTE, STR("2026"))), NULL),
              "{\"#f0\":\"committedAt\"}");
    CHECK_STR(names_json(FIELD("correlation_id", OP(FILTER_EQ, STR("c"))), NULL),
              "{\"#f0\":\"correlationId\"}");
    CHECK_STR(value_json(FIELD("type", OP(FILTER_EQ, STR("a"))), ":f0"), "{\"S\":\"a\"}");

    /* data: any type, paths, ne guarded against absence */
    EXPECT(DATA("n", OP(FILTER_EQ, INT(3))), "#f0.#f1 = :f0");
    CHECK_STR(value_json(DATA("n", OP(FILTER_EQ, INT(3))), ":f0"), "{\"N\":\"3\"}");
    CHECK_STR(value_json(DATA("n", OP(FILTER_EQ, INT(INT64_MIN))), ":f0"),
              "{\"N\":\"-9223372036854775808\"}");
    CHECK_STR(value_json(DATA("n", OP(FILTER_LT, FLT(1.5))), ":f0"), "{\"N\":\"1.5\"}");
    CHECK_STR(value_json(DATA("n", OP(FILTER_EQ, FLT(3.0))), ":f0"), "{\"N\":\"3\"}");
    CHECK_STR(value_json(DATA("t", OP(FILTER_EQ, BOOL(true))), ":f0"), "{\"BOOL\":true}");
    EXPECT(DATA("n", OP(FILTER_NE, INT(3))), "(attribute_exists(#f0.#f1) AND #f0.#f1 <> :f0)");
    EXPECT(DATA("s", OP(FILTER_PREFIX, STR(""))), "begins_with(#f0.#f1, :f0)");
    CHECK_STR(value_json(DATA("s", OP(FILTER_PREFIX, STR(""))), ":f0"), "{\"S\":\"\"}");
    EXPECT(DATA("z", EXISTS), "attribute_exists(#f0.#f1)");
    EXPECT(FIELD("data", EXISTS), "attribute_exists(#f0)");
    EXPECT(FIELD("data", OP(FILTER_EQ, STR("text"))), "#f0 = :f0");
    EXPECT(FIELD("data", FIELD("o", FIELD("x", FIELD("y", OP(FILTER_GT, INT(4)))))),
           "#f0.#f1.#f2.#f3 > :f0");
    /* one placeholder per distinct name */
    EXPECT(FIELD("data", FIELD("data", FIELD("type", OP(FILTER_EQ, INT(1))))), "#f0.#f0.#f1 = :f0");
    CHECK_STR(names_json(FIELD("data", FIELD("data", FIELD("type", OP(FILTER_EQ, INT(1))))), NULL),
              "{\"#f0\":\"data\",\"#f1\":\"type\"}");

    /* correlationId is NULL when absent: exists and ne test its type */
    EXPECT(FIELD("correlation_id", EXISTS), "attribute_type(#f0, :tS)");
    CHECK_STR(value_json(FIELD("correlation_id", EXISTS), ":tS"), "{\"S\":\"S\"}");
    EXPECT(FIELD("correlation_id", OP(FILTER_NE, STR("c"))),
           "(attribute_type(#f0, :tS) AND #f0 <> :f0)");
    EXPECT(FIELD("correlation_id", OP(FILTER_EQ, STR("c"))), "#f0 = :f0");
    EXPECT(FIELD("correlation_id", OP(FILTER_PREFIX, STR("c"))), "begins_with(#f0, :f0)");
}

static void test_folding(void) {
    /* key, type and committedAt are always strings */
    EXPECT(FIELD("type", EXISTS), NULL);
    EXPECT(FIELD("type", OP(FILTER_NE, INT(3))), NULL);
    NONE(FIELD("type", OP(FILTER_EQ, INT(3))));
    NONE(FIELD("type", OP(FILTER_GT, FLT(0.5))));
    NONE(FIELD("committed_at", OP(FILTER_EQ, BOOL(true))));
    EXPECT(FIELD("correlation_id", OP(FILTER_NE, INT(3))), "attribute_type(#f0, :tS)");
    NONE(FIELD("correlation_id", OP(FILTER_EQ, INT(3))));
    /* strings have no attributes; unknown attributes are absent */
    NONE(FIELD("type", FIELD("x", EXISTS)));
    NONE(FIELD("key", FIELD("x", OP(FILTER_NE, STR("a")))));
    NONE(FIELD("colour", EXISTS));
    NONE(FIELD("revision", OP(FILTER_GT, STR("0"))));
    /* the event itself: present, an object */
    EXPECT(EXISTS, NULL);
    EXPECT(OP(FILTER_NE, STR("x")), NULL);
    NONE(OP(FILTER_EQ, STR("x")));
    /* all_of / any_of */
    EXPECT(NODE(FILTER_ALL), NULL);
    NONE(NODE(FILTER_ANY));
    EXPECT(ALL(FIELD("type", EXISTS), FIELD("type", OP(FILTER_EQ, STR("a")))), "#f0 = :f0");
    NONE(ALL(FIELD("colour", EXISTS), FIELD("type", OP(FILTER_EQ, STR("a")))));
    EXPECT(ANY(FIELD("colour", EXISTS), FIELD("type", OP(FILTER_EQ, STR("a")))), "#f0 = :f0");
    EXPECT(ANY(FIELD("type", EXISTS), FIELD("type", OP(FILTER_EQ, STR("a")))), NULL);
    EXPECT(ANY(FIELD("type", OP(FILTER_EQ, STR("a"))), FIELD("type", OP(FILTER_EQ, STR("b")))),
           "(#f0 = :f0 OR #f0 = :f1)");
    EXPECT(ALL(FIELD("key", OP(FILTER_PREFIX, STR("t/"))),
               ANY(DATA("n", OP(FILTER_LT, INT(1))), DATA("m", EXISTS)),
               FIELD("type", OP(FILTER_NE, STR("x")))),
           "(begins_with(#f0, :f0) AND (#f1.#f2 < :f1 OR attribute_exists(#f1.#f3)) AND "
           "#f4 <> :f2)");
    /* any_of inside an attribute applies to that attribute */
    EXPECT(FIELD("data", FIELD("n", ANY(OP(FILTER_EQ, INT(1)), OP(FILTER_EQ, INT(2))))),
           "(#f0.#f1 = :f0 OR #f0.#f1 = :f1)");
}

static void test_known_key(void) {
    /* A Query cannot filter on its partition key: decided here instead. */
    EXPECT_KEY(FIELD("key", OP(FILTER_PREFIX, STR("truck/"))), "truck/1", NULL);
    NONE_KEY(FIELD("key", OP(FILTER_PREFIX, STR("van/"))), "truck/1");
    EXPECT_KEY(FIELD("key", OP(FILTER_EQ, STR("truck/1"))), "truck/1", NULL);
    NONE_KEY(FIELD("key", OP(FILTER_NE, STR("truck/1"))), "truck/1");
    EXPECT_KEY(FIELD("key", OP(FILTER_GT, STR("a"))), "truck/1", NULL);
    NONE_KEY(FIELD("key", OP(FILTER_LT, STR("a"))), "truck/1");
    NONE_KEY(FIELD("key", OP(FILTER_EQ, INT(1))), "truck/1");
    EXPECT_KEY(FIELD("key", EXISTS), "truck/1", NULL);
    EXPECT_KEY(ALL(FIELD("key", OP(FILTER_PREFIX, STR("truck/"))),
                   FIELD("type", OP(FILTER_EQ, STR("a")))),
               "truck/1", "#f0 = :f0");
    CHECK_STR(names_json(ALL(FIELD("key", OP(FILTER_PREFIX, STR("truck/"))),
                             FIELD("type", OP(FILTER_EQ, STR("a")))),
                         "truck/1"),
              "{\"#f0\":\"type\"}");
    EXPECT_KEY(ANY(FIELD("key", OP(FILTER_EQ, STR("other"))),
                   FIELD("type", OP(FILTER_EQ, STR("a")))),
               "truck/1", "#f0 = :f0");
    /* across keys the condition goes to DynamoDB (the index allows it) */
    EXPECT(FIELD("key", OP(FILTER_EQ, STR("truck/1"))), "#f0 = :f0");
}

static void test_out_of_range_floats(void) {
    /* No stored number equals these; they lie beyond or inside every one. */
    NONE(DATA("x", OP(FILTER_EQ, FLT(1e300))));
    EXPECT(DATA("x", OP(FILTER_NE, FLT(1e300))), "attribute_exists(#f0.#f1)");
    NONE(DATA("x", OP(FILTER_GT, FLT(1e300))));
    NONE(DATA("x", OP(FILTER_GTE, FLT(1e300))));
    EXPECT(DATA("x", OP(FILTER_LT, FLT(1e300))), "attribute_type(#f0.#f1, :tN)");
    CHECK_STR(value_json(DATA("x", OP(FILTER_LT, FLT(1e300))), ":tN"), "{\"S\":\"N\"}");
    EXPECT(DATA("x", OP(FILTER_LTE, FLT(1e300))), "attribute_type(#f0.#f1, :tN)");
    EXPECT(DATA("x", OP(FILTER_GT, FLT(-1e300))), "attribute_type(#f0.#f1, :tN)");
    NONE(DATA("x", OP(FILTER_LT, FLT(-1e300))));
    NONE(DATA("x", OP(FILTER_EQ, FLT(5e-324))));
    EXPECT(DATA("x", OP(FILTER_GT, FLT(5e-324))), "#f0.#f1 > :f0");
    CHECK_STR(value_json(DATA("x", OP(FILTER_GT, FLT(5e-324))), ":f0"), "{\"N\":\"0\"}");
    EXPECT(DATA("x", OP(FILTER_GTE, FLT(5e-324))), "#f0.#f1 > :f0");
    EXPECT(DATA("x", OP(FILTER_LT, FLT(5e-324))), "#f0.#f1 <= :f0");
    EXPECT(DATA("x", OP(FILTER_LTE, FLT(1e-200))), "#f0.#f1 <= :f0");
    EXPECT(DATA("x", OP(FILTER_GT, FLT(-1e-200))), "#f0.#f1 >= :f0");
    EXPECT(DATA("x", OP(FILTER_LT, FLT(-1e-200))), "#f0.#f1 < :f0");
    /* in range: sent as they are */
    EXPECT(DATA("x", OP(FILTER_LT, FLT(1e125))), "#f0.#f1 < :f0");
    CHECK_STR(value_json(DATA("x", OP(FILTER_LT, FLT(1e-130))), ":f0"), "{\"N\":\"1e-130\"}");
}

static void test_injection(void) {
    /* Hostile names and values stay in the maps, byte for byte. */
    const char *name = "a) OR attribute_exists(#f0) OR (#x";
    const char *value = ":f0 OR 1 = 1 -- '\"";
    store_filter *f = FIELD("data", FIELD(name, OP(FILTER_EQ, STR(value))));
    EXPECT(f, "#f0.#f1 = :f0");
    ddb_filter d;
    CHECK(ddb_filter_compile(f, NULL, &d, &err) == STORE_OK);
    CHECK_STR(json_string_value(json_object_get(d.names, "#f1")), name);
    CHECK_STR(json_string_value(json_object_get(json_object_get(d.values, ":f0"), "S")), value);
    ddb_filter_free(&d);

    store_filter *g = ALL(FIELD("type", OP(FILTER_EQ, STR(")"))),
                          FIELD("data", FIELD(".", FIELD("[0]", OP(FILTER_PREFIX, STR("#"))))),
                          FIELD("data", FIELD("#f0", EXISTS)),
                          FIELD("data", FIELD(":f0", OP(FILTER_NE, STR(":f1")))));
    EXPECT(g, "(#f0 = :f0 AND begins_with(#f1.#f2.#f3, :f1) AND attribute_exists(#f1.#f4) AND "
              "(attribute_exists(#f1.#f5) AND #f1.#f5 <> :f2))");
    CHECK_STR(names_json(g, NULL), "{\"#f0\":\"type\",\"#f1\":\"data\",\"#f2\":\".\","
                                   "\"#f3\":\"[0]\",\"#f4\":\"#f0\",\"#f5\":\":f0\"}");
    /* a name full of UTF-8 and quotes */
    EXPECT(DATA("sabor \xc3\xa9 \"x\" 'y' `z`", EXISTS), "attribute_exists(#f0.#f1)");
}

static void test_limits(void) {
    ddb_filter d;
    /* 400 alternatives: over 300 operators */
    store_filter leaves[400], *kids[400], any = {.kind = FILTER_ANY};
    store_filter fields[400], *fkids[400];
    for (int i = 0; i < 400; i++) {
        leaves[i] = (store_filter){.kind = FILTER_EQ, .value = INT(i)};
        kids[i] = &leaves[i];
        fields[i] =
            (store_filter){.kind = FILTER_FIELD, .name = "n", .children = &kids[i], .nchildren = 1};
        fkids[i] = &fields[i];
    }
    any.children = fkids;
    any.nchildren = 400;
    store_filter *data_kids[1] = {&any};
    store_filter data = {.kind = FILTER_FIELD,
                         .name = "data",
                         .children = data_kids,
                         .nchildren = 1};
    CHECK(ddb_filter_compile(&data, NULL, &d, &err) == STORE_OK);
    CHECK(d.local && d.expression == NULL && !d.none);
    ddb_filter_free(&d);
    /* 100 fit */
    any.nchildren = 100;
    CHECK(ddb_filter_compile(&data, NULL, &d, &err) == STORE_OK);
    CHECK(!d.local && d.expression != NULL);
    CHECK(d.expression != NULL && strlen(d.expression) < DDB_EXPRESSION_MAX);
    ddb_filter_free(&d);

    /* paths: data + 31 names fit in 32 levels; one more does not */
    store_filter chain[40], *links[40];
    store_filter exists = {.kind = FILTER_EXISTS};
    store_filter *exists_kid[1] = {&exists};
    for (int depth = 32; depth <= 33; depth++) {
        for (int i = depth - 1; i >= 0; i--) {
            chain[i] = (store_filter){.kind = FILTER_FIELD,
                                      .name = i == 0 ? "data" : "x",
                                      .children = i == depth - 1 ? exists_kid : &links[i + 1],
                                      .nchildren = 1};
            links[i] = &chain[i];
        }
        CHECK(ddb_filter_compile(&chain[0], NULL, &d, &err) == STORE_OK);
        CHECK(d.local == (depth > DDB_PATH_MAX));
        ddb_filter_free(&d);
    }

    /* expression text over 4 KB, from many operators short of 300: long
     * placeholders come from many distinct names */
    char names[250][16];
    for (int i = 0; i < 250; i++) {
        snprintf(names[i], sizeof names[i], "n%d", i);
        fields[i].name = names[i];
        leaves[i] = (store_filter){.kind = FILTER_EXISTS};
    }
    any.nchildren = 250;
    CHECK(ddb_filter_compile(&data, NULL, &d, &err) == STORE_OK);
    CHECK(d.local);
    ddb_filter_free(&d);

    /* malformed trees are the caller's mistake */
    CHECK(ddb_filter_compile(FIELD("type", OP(FILTER_GT, BOOL(true))), NULL, &d, &err) ==
          STORE_INVALID);
    CHECK(err != NULL && strstr(err, "bad filter") != NULL);
    free(err);
    err = NULL;
    CHECK(ddb_filter_compile(NODE(FILTER_FIELD, .name = "x"), NULL, &d, &err) == STORE_INVALID);
    ddb_filter_free(&d);
}

TEST_MAIN(NULL, test_operators, test_folding, test_known_key, test_out_of_range_floats,
          test_injection, test_limits)
