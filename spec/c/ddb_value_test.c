/*
 * ddb_value_test.c - checks store/ddb_value.c: JSON text round trips through
 * AttributeValues, the exact AttributeValue shapes, reading numbers the way
 * DynamoDB hands them back (normalised: "1.0" -> "1", "1e3" -> "1000"),
 * float marks, DynamoDB's limits, filter operands and item sizes.
 * Uses jansson.
 */
#include <locale.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ddb_value.h"
#include "test.h"

static char *dump(const json_t *v) {
    return v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS) : NULL;
}

/* JSON text -> AttributeValue -> JSON text gives `want`. */
static void round_trip(const char *in, const char *want) {
    json_t *av = NULL, *floats = NULL;
    char *err = NULL, *out = NULL;
    size_t len = 0;
    store_status st = ddb_value_from_json(in, strlen(in), &av, &floats, &err);
    CHECK_MSG(st == STORE_OK, "marshal %s: %s", in, err ? err : "?");
    if (st == STORE_OK) {
        st = ddb_value_to_json(av, floats, &out, &len, &err);
        CHECK_MSG(st == STORE_OK, "unmarshal %s: %s", in, err ? err : "?");
        CHECK_STR_AS(out, want, in);
        CHECK_MSG(out && len == strlen(out), "length of %s", in);
    }
    free(out);
    free(err);
    json_decref(av);
    json_decref(floats);
}

/* JSON text marshals to exactly these AttributeValue and float marks. */
static void shape(const char *in, const char *want_av, const char *want_floats) {
    json_t *av = NULL, *floats = NULL;
    char *err = NULL;
    store_status st = ddb_value_from_json(in, strlen(in), &av, &floats, &err);
    CHECK_MSG(st == STORE_OK, "marshal %s: %s", in, err ? err : "?");
    char *a = dump(av), *f = dump(floats);
    CHECK_STR_AS(a, want_av, in);
    if (want_floats)
        CHECK_STR_AS(f, want_floats, in);
    else
        CHECK_MSG(f == NULL, "%s: no float marks expected, got %s", in, f);
    free(a);
    free(f);
    free(err);
    json_decref(av);
    json_decref(floats);
}

/* JSON text is refused with `want` and a message containing `part`. */
static void refused(const char *in, store_status want, const char *part) {
    json_t *av = NULL, *floats = NULL;
    char *err = NULL;
    store_status st = ddb_value_from_json(in, strlen(in), &av, &floats, &err);
    CHECK_MSG(st == want && av == NULL && floats == NULL && err && strstr(err, part),
              "%.60s: want status %d with \"%s\", got %d: %s", in, want, part, st,
              err ? err : "(no message)");
    free(err);
    json_decref(av);
    json_decref(floats);
}

/* An AttributeValue as DynamoDB returns it, plus float marks, reads as `want`. */
static void reads(const char *av_text, const char *floats_text, const char *want) {
    json_t *av = json_loads(av_text, JSON_ALLOW_NUL, NULL);
    json_t *floats = floats_text ? json_loads(floats_text, 0, NULL) : NULL;
    char *err = NULL, *out = NULL;
    store_status st = ddb_value_to_json(av, floats, &out, NULL, &err);
    CHECK_MSG(st == STORE_OK, "read %s: %s", av_text, err ? err : "?");
    CHECK_STR_AS(out, want, av_text);
    free(out);
    free(err);
    json_decref(av);
    json_decref(floats);
}

static void number(const char *n, store_status want) {
    char *err = NULL;
    store_status st = ddb_number_check(n, &err);
    CHECK_MSG(st == want, "number check %s: want %d got %d (%s)", n, want, st, err ? err : "");
    CHECK_MSG((st == STORE_OK) == (err == NULL), "number check %s: message iff failure", n);
    free(err);
}

static void test_round_trips(void) {
    round_trip(
        "{\"a\":1,\"b\":1.5,\"c\":\"x\",\"d\":true,\"e\":null,\"f\":[1,2.0,\"s\"],\"g\":{}}",
        "{\"a\":1,\"b\":1.5,\"c\":\"x\",\"d\":true,\"e\":null,\"f\":[1,2.0,\"s\"],\"g\":{}}");
    round_trip("{\"max\":9223372036854775807,\"min\":-9223372036854775808,\"z\":0,\"m\":-1}",
               "{\"m\":-1,\"max\":9223372036854775807,\"min\":-9223372036854775808,\"z\":0}");
    /* Floats keep full precision and stay floats, integral or not. */
    round_trip("[0.1,1.0,-2.0,1e20,1.2345678901234566e125,2.5e-5,0.30000000000000004]",
               "[0.10000000000000001,1.0,-2.0,1e20,1.2345678901234566e125,"
               "2.5000000000000001e-5,0.30000000000000004]");
    /* The extremes; the double nearest 1e126 is just below it, so it fits. */
    round_trip("[1e-130,-1e-130,9.9999999999999992e125,1e126]",
               "[1.0000000000000001e-130,-1.0000000000000001e-130,9.9999999999999992e125,"
               "9.9999999999999992e125]");
    round_trip("{\"a\":{\"b\":[[],{},[{}]]}}", "{\"a\":{\"b\":[[],{},[{}]]}}");
    round_trip("\"\"", "\"\"");
    round_trip("{\"\\u00e9t\\u00e9\":\"caf\\u00e9 \\u2603 \\ud83d\\ude00\",\"e\":\"\"}",
               "{\"e\":\"\",\"\xc3\xa9t\xc3\xa9\":\"caf\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80\"}");
    round_trip("{\"nul\":\"a\\u0000b\"}", "{\"nul\":\"a\\u0000b\"}");
    round_trip("42", "42");
    round_trip("1.0", "1.0");
    round_trip("-0.0", "0.0"); /* DynamoDB has no negative zero */
    shape("-0.0", "{\"N\":\"0\"}", "{\"L\":[{\"S\":\"\"}]}");
    round_trip("null", "null");
    round_trip("false", "false");
    round_trip("[]", "[]");
    /* Keys that need escaping in a JSON Pointer still find their marks. */
    round_trip("{\"a/b\":1.0,\"~\":[2.0,{\"~1\":3.0}],\"\xc3\xa9\":4.0,\"n\":5}",
               "{\"a/b\":1.0,\"n\":5,\"~\":[2.0,{\"~1\":3.0}],\"\xc3\xa9\":4.0}");
}

static void test_shapes(void) {
    shape("{\"a\":1}", "{\"M\":{\"a\":{\"N\":\"1\"}}}", NULL);
    shape("[null,true,\"\"]", "{\"L\":[{\"NULL\":true},{\"BOOL\":true},{\"S\":\"\"}]}", NULL);
    shape("1.0", "{\"N\":\"1\"}", "{\"L\":[{\"S\":\"\"}]}");
    shape("0.1", "{\"N\":\"0.1\"}", NULL); /* shortest, as JavaScript writes it */
    shape("0.3333333333333333", "{\"N\":\"0.3333333333333333\"}", NULL);
    shape("[1.5,2.0,{\"x\":[3.0]}]",
          "{\"L\":[{\"N\":\"1.5\"},{\"N\":\"2\"},{\"M\":{\"x\":{\"L\":[{\"N\":\"3\"}]}}}]}",
          "{\"L\":[{\"S\":\"/1\"},{\"S\":\"/2/x/0\"}]}");
    shape("{\"a/b\":{\"c~d\":1e20}}",
          "{\"M\":{\"a/b\":{\"M\":{\"c~d\":{\"N\":\"100000000000000000000\"}}}}}",
          "{\"L\":[{\"S\":\"/a~1b/c~0d\"}]}");
    shape("9223372036854775807", "{\"N\":\"9223372036854775807\"}", NULL);
    shape("{}", "{\"M\":{}}", NULL);
}

/* Regression: integral floats of 2^53 or more were written with an
 * exponent ("1e+20"), which Aeon's reader (@aws-sdk/util-dynamodb) turns
 * into a BigInt for being beyond 2^53, and BigInt("1e+20") throws: the
 * whole read of the key failed. They are written as their digits. */
static void test_integral_floats_written_as_digits_for_aeon(void) {
    shape("1e20", "{\"N\":\"100000000000000000000\"}", "{\"L\":[{\"S\":\"\"}]}");
    shape("-1e20", "{\"N\":\"-100000000000000000000\"}", "{\"L\":[{\"S\":\"\"}]}");
    shape("9007199254740992.0", "{\"N\":\"9007199254740992\"}", "{\"L\":[{\"S\":\"\"}]}");
    shape("1152921504606846976.0", "{\"N\":\"1152921504606847000\"}", "{\"L\":[{\"S\":\"\"}]}");
    shape("1.5e25", "{\"N\":\"15000000000000000000000000\"}", "{\"L\":[{\"S\":\"\"}]}");
    /* The largest: 126 digits, 17 of them significant. */
    char want[160];
    snprintf(want, sizeof want, "{\"N\":\"99999999999999992%0109d\"}", 0);
    shape("9.9999999999999992e125", want, "{\"L\":[{\"S\":\"\"}]}");
    round_trip("[1e20,-1e20,1152921504606846976.0,9.9999999999999992e125]",
               "[1e20,-1e20,1.152921504606847e18,9.9999999999999992e125]");
    /* Fractions and small magnitudes keep their exponent: Aeon reads them. */
    shape("2.5e-5", "{\"N\":\"2.5e-05\"}", NULL);
}

static void test_shortest(void) {
    /* 0.3333333333333333 (16 threes) is the double nearest 1/3; its shortest
     * round-tripping form has 16 digits. */
    char n[DDB_NUMBER_SIZE];
    char *err = NULL;
    CHECK_MSG(ddb_number_text(1.0 / 3.0, n, &err) == STORE_OK, "1/3");
    CHECK_STR_AS(n, "0.3333333333333333", "shortest 1/3");
    CHECK_MSG(ddb_number_text(0.1 + 0.2, n, &err) == STORE_OK, "0.1+0.2");
    CHECK_STR_AS(n, "0.30000000000000004", "shortest 0.1+0.2 (17 digits)");
    CHECK_MSG(ddb_number_text(100.0, n, &err) == STORE_OK, "100");
    CHECK_STR_AS(n, "100", "shortest 100.0");
    CHECK_MSG(ddb_number_text(NAN, n, &err) == STORE_INVALID, "NaN refused");
    free(err);
    err = NULL;
    CHECK_MSG(ddb_number_text(INFINITY, n, &err) == STORE_INVALID, "Infinity refused");
    free(err);
    err = NULL;
    CHECK_MSG(ddb_number_text(1e126, n, &err) == STORE_OK, "the double nearest 1e126 fits");
    char digits[160];
    snprintf(digits, sizeof digits, "99999999999999992%0109d", 0);
    CHECK_STR_AS(n, digits, "1e126 written with 17 significant digits");
    CHECK_MSG(ddb_number_text(1.0000000000000002e126, n, &err) == STORE_LIMIT,
              "above 1e126 refused");
    free(err);
    err = NULL;
    CHECK_MSG(ddb_number_text(5e-324, n, &err) == STORE_LIMIT, "denormal refused");
    free(err);
}

/* What DynamoDB hands back is normalised; marks restore the float type. */
static void test_reading_normalised(void) {
    reads("{\"N\":\"1\"}", NULL, "1");
    reads("{\"N\":\"1\"}", "{\"L\":[{\"S\":\"\"}]}", "1.0");
    reads("{\"M\":{\"a\":{\"N\":\"1000\"},\"b\":{\"N\":\"1000\"}}}", "{\"L\":[{\"S\":\"/a\"}]}",
          "{\"a\":1000.0,\"b\":1000}");
    /* Too big for int64: a float even unmarked (1e20 as DynamoDB returns it). */
    reads("{\"N\":\"100000000000000000000\"}", NULL, "1e20");
    reads("{\"N\":\"9223372036854775808\"}", NULL, "9.2233720368547758e18");
    reads("{\"N\":\"-9223372036854775808\"}", NULL, "-9223372036854775808");
    reads("{\"N\":\"0.000025\"}", NULL, "2.5000000000000001e-5");
    reads("{\"N\":\"-125\"}", NULL, "-125");
    reads("{\"N\":\"0.1000000000000000055511151231257827021\"}", NULL, "0.10000000000000001");
    /* Written by other SDKs: binary and sets. */
    reads("{\"M\":{\"b\":{\"B\":\"AAE=\"},\"ss\":{\"SS\":[\"x\",\"y\"]},\"ns\":{\"NS\":[\"1\",\"2."
          "5\"]}}}",
          NULL, "{\"b\":\"AAE=\",\"ns\":[1,2.5],\"ss\":[\"x\",\"y\"]}");
    /* Marks that point nowhere, or at non-numbers, change nothing. */
    reads("{\"M\":{\"s\":{\"S\":\"1\"}}}",
          "{\"L\":[{\"S\":\"/s\"},{\"S\":\"/nope\"},{\"N\":\"1\"}]}", "{\"s\":\"1\"}");

    /* What the backend sends that is no AttributeValue is an I/O failure. */
    const char *bad[] = {"{}",
                         "{\"S\":1}",
                         "{\"N\":\"x\"}",
                         "{\"Q\":\"x\"}",
                         "{\"S\":\"a\",\"N\":\"1\"}",
                         "{\"M\":{\"a\":{\"L\":{}}}}",
                         "[]"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *av = json_loads(bad[i], JSON_DECODE_ANY, NULL), *v = NULL;
        char *err = NULL;
        CHECK_MSG(ddb_value_unmarshal(av, NULL, &v, &err) == STORE_IO && v == NULL && err,
                  "malformed %s refused", bad[i]);
        free(err);
        json_decref(av);
    }
}

static void test_limits(void) {
    refused("{\"a\":{\"\":1}}", STORE_LIMIT, "empty object key at /a/");
    refused("[1.0000000000000002e126]", STORE_LIMIT, "too large");
    refused("{\"x\":[0,-1e-131]}", STORE_LIMIT, "at /x/1");
    refused("{\"x\":1e-300}", STORE_LIMIT, "too small");
    refused("{\"a\":", STORE_INVALID, "invalid JSON");
    refused("123456789012345678901234567890", STORE_INVALID, "invalid JSON");
    refused("[NaN]", STORE_INVALID, "invalid JSON");
    refused("\"\\ud800\"", STORE_INVALID, "invalid JSON");

    /* Nesting: DDB_MAX_NESTING containers are fine, one more is not. */
    char deep[256];
    size_t n = 0;
    for (int i = 0; i < DDB_MAX_NESTING; i++) deep[n++] = '[';
    for (int i = 0; i < DDB_MAX_NESTING; i++) deep[n++] = ']';
    deep[n] = '\0';
    round_trip(deep, deep);
    n = 0;
    for (int i = 0; i <= DDB_MAX_NESTING; i++) deep[n++] = '[';
    for (int i = 0; i <= DDB_MAX_NESTING; i++) deep[n++] = ']';
    deep[n] = '\0';
    refused(deep, STORE_LIMIT, "nested deeper");

    number("0", STORE_OK);
    number("-0.000", STORE_OK);
    number("1E-130", STORE_OK);
    number("0.0000000000000000000000000000000000000000000000000000000000000000000000000"
           "000000000000000000000000000000000000000000000000000000001",
           STORE_OK);
    number("1e-131", STORE_LIMIT);
    number("0.99e-130", STORE_LIMIT);
    number("9.9999999999999999999999999999999999999E+125", STORE_OK);
    number("-9.9999999999999999999999999999999999999E+125", STORE_OK);
    number("1e126", STORE_LIMIT);
    number("10E125", STORE_LIMIT);
    number("12345678901234567890123456789012345678", STORE_OK);      /* 38 digits */
    number("123456789012345678901234567890123456789", STORE_LIMIT);  /* 39 */
    number("1234567890123456789012345678901234567800000", STORE_OK); /* 38 + zeros */
    number("0.00012345678901234567890123456789012345678", STORE_OK);
    number("1.00000000000000000000000000000000000001", STORE_LIMIT);
    number("1e99999999999", STORE_LIMIT);
    number("1e-99999999999", STORE_LIMIT);
    number("abc", STORE_INVALID);
    number("", STORE_INVALID);
    number("-", STORE_INVALID);
    number("1e", STORE_INVALID);
    number("1.2.3", STORE_INVALID);
    number(" 1", STORE_INVALID);
}

static void test_scalars(void) {
    store_scalar s[] = {
        {.kind = SCALAR_STRING, .string = "Vanilla"},
        {.kind = SCALAR_INTEGER, .integer = -9223372036854775807LL - 1},
        {.kind = SCALAR_FLOAT, .number = 2.0},
        {.kind = SCALAR_FLOAT, .number = 0.1},
        {.kind = SCALAR_BOOLEAN, .boolean = false},
    };
    const char *want[] = {"{\"S\":\"Vanilla\"}", "{\"N\":\"-9223372036854775808\"}",
                          "{\"N\":\"2\"}", "{\"N\":\"0.1\"}", "{\"BOOL\":false}"};
    for (size_t i = 0; i < sizeof s / sizeof *s; i++) {
        json_t *av = NULL;
        char *err = NULL;
        CHECK_MSG(ddb_value_scalar(&s[i], &av, &err) == STORE_OK, "scalar %zu", i);
        char *d = dump(av);
        CHECK_STR_AS(d, want[i], "scalar");
        free(d);
        free(err);
        json_decref(av);
    }
    store_scalar big = {.kind = SCALAR_FLOAT, .number = 1e200};
    json_t *av = NULL;
    char *err = NULL;
    CHECK_MSG(ddb_value_scalar(&big, &av, &err) == STORE_LIMIT && !av, "scalar 1e200 refused");
    free(err);
}

static size_t size_of(const char *text) {
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    size_t n = v ? ddb_value_size(v) : (size_t)-1;
    json_decref(v);
    return n;
}

static void test_sizes(void) {
    CHECK_MSG(size_of("{\"S\":\"abc\"}") == 3, "S size");
    CHECK_MSG(size_of("{\"S\":\"\xc3\xa9\"}") == 2, "S size counts UTF-8 bytes");
    CHECK_MSG(size_of("{\"N\":\"123\"}") == 3, "N size 3 digits");
    CHECK_MSG(size_of("{\"N\":\"1000\"}") == 2, "N size ignores trailing zeros");
    CHECK_MSG(size_of("{\"N\":\"9223372036854775807\"}") == 11, "N size 19 digits");
    CHECK_MSG(size_of("{\"BOOL\":true}") == 1 && size_of("{\"NULL\":true}") == 1, "BOOL/NULL");
    CHECK_MSG(size_of("{\"B\":\"AAE=\"}") == 2, "B size is decoded bytes");
    CHECK_MSG(size_of("{\"L\":[]}") == 3 && size_of("{\"M\":{}}") == 3, "empty containers");
    CHECK_MSG(size_of("{\"L\":[{\"S\":\"ab\"},{\"BOOL\":true}]}") == 3 + 3 + 2, "L size");
    /* Measured on DynamoDB Local: this item with 409589 bytes of string is
     * exactly 400 KB, one more byte is refused. */
    json_t *item = json_pack("{s:{s:s},s:{s:{s:{s:s%}}}}", "pk", "S", "big", "m", "M", "a", "S", "",
                             (size_t)0);
    char *big = malloc(409589 + 1);
    memset(big, 'x', 409589);
    big[409589] = '\0';
    json_object_set_new(json_object_get(json_object_get(json_object_get(item, "m"), "M"), "a"), "S",
                        json_string(big));
    CHECK_MSG(ddb_item_size(item) == DDB_ITEM_MAX, "item size at the limit: %zu",
              ddb_item_size(item));
    free(big);
    json_decref(item);

    /* A marshalled value's size is what the attribute adds, name aside. */
    json_t *av = NULL;
    char *err = NULL;
    const char *ms = "{\"n\":1,\"s\":\"abc\"}";
    ddb_value_from_json(ms, strlen(ms), &av, NULL, &err);
    CHECK_MSG(av && ddb_value_size(av) == 3 + (1 + 1 + 2) + (1 + 1 + 3), "M size: %zu",
              av ? ddb_value_size(av) : 0);
    json_decref(av);
    free(err);
}

/* A host may set a locale with a decimal comma; N text must not follow it.
 * Runs where such a locale exists; without the locales package one can be
 * made: localedef -i de_DE -f UTF-8 /tmp/loc/de_DE.UTF-8, then LOCPATH=/tmp/loc. */
static void test_locale(void) {
    const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "C.UTF-8"};
    const char *got = NULL;
    for (size_t i = 0; i < 4 && !got; i++)
        if (setlocale(LC_NUMERIC, names[i]) && localeconv()->decimal_point[0] == ',')
            got = names[i];
    if (!got) {
        setlocale(LC_NUMERIC, "C");
        return; /* no such locale installed: nothing to check */
    }
    shape("[1.5,2.0]", "{\"L\":[{\"N\":\"1.5\"},{\"N\":\"2\"}]}", "{\"L\":[{\"S\":\"/1\"}]}");
    reads("{\"N\":\"0.25\"}", NULL, "0.25");
    setlocale(LC_NUMERIC, "C");
}

TEST_MAIN(NULL, test_round_trips, test_shapes, test_shortest,
          test_integral_floats_written_as_digits_for_aeon, test_reading_normalised, test_limits,
          test_scalars, test_sizes, test_locale)
