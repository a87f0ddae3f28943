/*
 * pattern_test.c - subscription patterns (pattern.h): exact strings, '*'
 * at either end, in the middle, several stars, empty strings, bytes that
 * look special elsewhere ('?', '[', '%', '_') matching only themselves,
 * UTF-8, lists of patterns, and a pathological pattern that must stay fast.
 */
#include "test.h"
#include "pattern.h"

#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

/* A pattern, a text, and whether the one matches the other. */
typedef struct match_case {
    const char *pattern;
    const char *text;
    bool matches;
} match_case;

static const match_case cases[] = {
    /* Exact strings, empty ones too. */
    {"counter/a", "counter/a", true},
    {"counter/a", "counter/ab", false},
    {"counter/ab", "counter/a", false},
    {"Counter/a", "counter/a", false},
    {"", "", true},
    {"", "a", false},
    {"a", "", false},
    /* '*' at either end, in the middle, several. */
    {"*", "", true},
    {"*", "anything at all", true},
    {"counter/*", "counter/", true},
    {"counter/*", "counter/a", true},
    {"counter/*", "counter/a/b", true},
    {"counter/*", "counter", false},
    {"counter/*", "truck/1", false},
    {"*ed", "incremented", true},
    {"*ed", "ed", true},
    {"*ed", "increment", false},
    {"truck/*/stock", "truck/1/stock", true},
    {"truck/*/stock", "truck//stock", true},
    {"truck/*/stock", "truck/a/stock/stock", true},
    {"truck/*/stock", "truck/1/stocks", false},
    {"a*b*c", "abc", true},
    {"a*b*c", "aXXbYYc", true},
    {"a*b*c", "abcbc", true},
    {"a*b*c", "acb", false},
    {"**", "x", true},
    {"a**b", "ab", true},
    {"*a*", "banana", true},
    {"*z*", "banana", false},
    /* Backtracking past a partial match of the tail. */
    {"*aab", "aaab", true},
    {"*abab", "ababab", true},
    {"*abab", "ababa", false},
    /* Only '*' is special: what GLOB, LIKE or regexes treat specially is
     * plain text here, UTF-8 included. */
    {"a?c", "a?c", true},
    {"a?c", "abc", false},
    {"[ab]", "[ab]", true},
    {"[ab]", "a", false},
    {"50%_off", "50%_off", true},
    {"50%_off", "50xyoff", false},
    {"a.c", "a.c", true},
    {"a.c", "abc", false},
    {"caf\xc3\xa9/*", "caf\xc3\xa9/cr\xc3\xa8me", true},
    {"caf\xc3\xa9/*", "cafe/creme", false},
    {"*\xe2\x82\xac", "price \xe2\x82\xac", true},
};

static void test_match(void) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_MSG(pattern_match(cases[i].pattern, cases[i].text) == cases[i].matches,
                  "pattern [%s] %s [%s]", cases[i].pattern,
                  cases[i].matches ? "matches" : "does not match", cases[i].text);
    CHECK(pattern_is_exact("counter/a"));
    CHECK(!pattern_is_exact("counter/*"));
}

static void test_any(void) {
    const char *const types[] = {"incremented", "decremented"};
    CHECK(pattern_match_any(types, 2, "incremented"));
    CHECK(pattern_match_any(types, 2, "decremented"));
    CHECK(!pattern_match_any(types, 2, "reset"));
    CHECK(pattern_match_any(NULL, 0, "anything"));
    const char *const keys[] = {"counter/*", "truck/1"};
    CHECK(pattern_match_any(keys, 2, "counter/x"));
    CHECK(pattern_match_any(keys, 2, "truck/1"));
    CHECK(!pattern_match_any(keys, 2, "truck/2"));
}

/* "*a*a*a*...b" against "aaaa...": exponential for a naive recursive
 * matcher, quadratic at worst here. */
static void test_pathological(void) {
    enum { N = 2000 };
    static char pattern[2 * N + 2], text[N + 1];
    for (int i = 0; i < N; i++) {
        pattern[2 * i] = '*';
        pattern[2 * i + 1] = 'a';
        text[i] = 'a';
    }
    pattern[2 * N] = 'b';
    pattern[2 * N + 1] = '\0';
    text[N] = '\0';
    clock_t t0 = clock();
    CHECK(!pattern_match(pattern, text));
    pattern[2 * N] = '\0';
    CHECK(pattern_match(pattern, text));
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK(secs < 2.0);
}

TEST_MAIN(NULL, test_match, test_any, test_pathological)
