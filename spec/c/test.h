/*
 * test.h - the one harness of the C unit tests: check macros that count
 * passes and failures, the closing "N passed, M failed" line, and reading
 * fixture files. Header-only, so each spec/c/X_test.c still builds alone.
 */
#ifndef AEON_TEST_H
#define AEON_TEST_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int test_passed, test_failed;

/* Counts one check; on failure prints where and why (a printf format and
 * its arguments), and goes on. */
#define CHECK_MSG(cond, ...)                                                \
    do {                                                                    \
        if (cond) {                                                         \
            test_passed++;                                                  \
        } else {                                                            \
            test_failed++;                                                  \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);            \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
        }                                                                   \
    } while (0)

/* The same, saying the condition itself. */
#define CHECK(cond) CHECK_MSG(cond, "failed: %s", #cond)

/* Compares two strings, printing both, named `what`, when they differ. */
#define CHECK_STR_AS(got, want, what)                                       \
    do {                                                                    \
        const char *g_ = (got), *w_ = (want);                               \
        CHECK_MSG(g_ && w_ && !strcmp(g_, w_), "%s:\n  got  [%s]\n  want [%s]", \
                  (what), g_ ? g_ : "(null)", w_ ? w_ : "(null)");          \
    } while (0)

/* The same, naming the expression. */
#define CHECK_STR(got, want) CHECK_STR_AS(got, want, #got)

/* The closing line the CI reads, and the exit status. */
static inline int test_report(void)
{
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed ? 1 : 0;
}

/* Makes a new directory "$TMPDIR/<name>XXXXXX" (TMPDIR or /tmp) into dir;
 * false, having said why, when it cannot. */
static inline int test_tmpdir(char *dir, size_t size, const char *name)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, size, "%s/%sXXXXXX", tmp != NULL && *tmp ? tmp : "/tmp", name);
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 0;
    }
    return 1;
}

/* Removes a directory test_tmpdir made and the files in it. */
static inline void test_remove_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    char file[512];
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(file, sizeof file, "%s/%s", path, e->d_name);
        unlink(file);
    }
    if (d != NULL)
        closedir(d);
    rmdir(path);
}

/* Where fixtures live: $AEON_FIXTURES, else spec/fixtures (make runs the
 * tests from the repository root). */
static inline const char *test_fixtures(void)
{
    const char *d = getenv("AEON_FIXTURES");
    return d && *d ? d : "spec/fixtures";
}

/* Reads a whole file; NULL when it cannot. *len gets the size. */
static inline char *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0;
    if (!f)
        return NULL;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = (cap ? cap * 2 : 8192);
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, 4096, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

#endif
