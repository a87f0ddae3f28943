/*
 * check.h - the smallest test harness: CHECK counts passes and reports
 * failures with file and line, check_report prints "N passed, M failed"
 * and gives the exit status. Included by each spec/c/X_test.c.
 */
#ifndef AEON_CHECK_H
#define AEON_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;

#define CHECK(cond)                                                           \
    do {                                                                      \
        if (cond)                                                             \
            check_passed++;                                                   \
        else {                                                                \
            check_failed++;                                                   \
            fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                     \
    } while (0)

/* Compares two C strings and shows both when they differ. */
#define CHECK_STR(got, want)                                                  \
    do {                                                                      \
        const char *g_ = (got), *w_ = (want);                                 \
        if (g_ != NULL && w_ != NULL && strcmp(g_, w_) == 0)                  \
            check_passed++;                                                   \
        else {                                                                \
            check_failed++;                                                   \
            fprintf(stderr, "%s:%d: %s is \"%s\", want \"%s\"\n", __FILE__,   \
                    __LINE__, #got, g_ ? g_ : "(null)", w_ ? w_ : "(null)");  \
        }                                                                     \
    } while (0)

static int check_report(void)
{
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed != 0;
}

#endif
