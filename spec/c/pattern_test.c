/*
 * pattern_test.c - subscription patterns (pattern.h): exact strings, '*'
 * at either end, in the middle, several stars, empty strings, bytes that
 * look special elsewhere ('?', '[', '%', '_') matching only themselves,
 * UTF-8, lists of patterns, and a pathological pattern that must stay fast.
 */
#include "test.h"
#include "pattern.h"

#include <stdlib.h>
#include <time.h>

static void test_exact(void)
{
    CHECK(pattern_match("counter/a", "counter/a"));
    CHECK(!pattern_match("counter/a", "counter/ab"));
    CHECK(!pattern_match("counter/ab", "counter/a"));
    CHECK(!pattern_match("Counter/a", "counter/a"));
    CHECK(pattern_match("", ""));
    CHECK(!pattern_match("", "a"));
    CHECK(!pattern_match("a", ""));
    CHECK(pattern_is_exact("counter/a"));
    CHECK(!pattern_is_exact("counter/*"));
}

static void test_star(void)
{
    CHECK(pattern_match("*", ""));
    CHECK(pattern_match("*", "anything at all"));
    CHECK(pattern_match("counter/*", "counter/"));
    CHECK(pattern_match("counter/*", "counter/a"));
    CHECK(pattern_match("counter/*", "counter/a/b"));
    CHECK(!pattern_match("counter/*", "counter"));
    CHECK(!pattern_match("counter/*", "truck/1"));
    CHECK(pattern_match("*ed", "incremented"));
    CHECK(pattern_match("*ed", "ed"));
    CHECK(!pattern_match("*ed", "increment"));
    CHECK(pattern_match("truck/*/stock", "truck/1/stock"));
    CHECK(pattern_match("truck/*/stock", "truck//stock"));
    CHECK(pattern_match("truck/*/stock", "truck/a/stock/stock"));
    CHECK(!pattern_match("truck/*/stock", "truck/1/stocks"));
    CHECK(pattern_match("a*b*c", "abc"));
    CHECK(pattern_match("a*b*c", "aXXbYYc"));
    CHECK(pattern_match("a*b*c", "abcbc"));
    CHECK(!pattern_match("a*b*c", "acb"));
    CHECK(pattern_match("**", "x"));
    CHECK(pattern_match("a**b", "ab"));
    CHECK(pattern_match("*a*", "banana"));
    CHECK(!pattern_match("*z*", "banana"));
    /* Backtracking past a partial match of the tail. */
    CHECK(pattern_match("*aab", "aaab"));
    CHECK(pattern_match("*abab", "ababab"));
    CHECK(!pattern_match("*abab", "ababa"));
}

static void test_literal_bytes(void)
{
    /* Only '*' is special: what GLOB, LIKE or regexes treat specially is
     * plain text here. */
    CHECK(pattern_match("a?c", "a?c"));
    CHECK(!pattern_match("a?c", "abc"));
    CHECK(pattern_match("[ab]", "[ab]"));
    CHECK(!pattern_match("[ab]", "a"));
    CHECK(pattern_match("50%_off", "50%_off"));
    CHECK(!pattern_match("50%_off", "50xyoff"));
    CHECK(pattern_match("a.c", "a.c"));
    CHECK(!pattern_match("a.c", "abc"));
    CHECK(pattern_match("caf\xc3\xa9/*", "caf\xc3\xa9/cr\xc3\xa8me"));
    CHECK(!pattern_match("caf\xc3\xa9/*", "cafe/creme"));
    CHECK(pattern_match("*\xe2\x82\xac", "price \xe2\x82\xac"));
}

static void test_any(void)
{
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
static void test_pathological(void)
{
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

TEST_MAIN(NULL, test_exact, test_star, test_literal_bytes, test_any, test_pathological)
