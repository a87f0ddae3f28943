/*
 * test.h - the one harness of the C unit tests: check macros that count
 * passes and failures, the store calls' error message and the macros that
 * check their status, the test program's temporary directory, the main
 * that runs a table of test functions and prints the closing "N passed,
 * M failed" line, and reading fixture files.
 * Header-only, so each spec/c/X_test.c still builds alone.
 */
#ifndef AEON_TEST_H
#define AEON_TEST_H

#include "store.h"

#include <dirent.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int test_passed, test_failed;

/* Counts one check; on failure prints where and why (a printf format and
 * its arguments), and goes on. */
#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (cond) {                                                                                \
            test_passed++;                                                                         \
        } else {                                                                                   \
            test_failed++;                                                                         \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* The same, saying the condition itself. */
#define CHECK(cond) CHECK_MSG(cond, "failed: %s", #cond)

/* Compares two strings, printing both, named `what`, when they differ. */
#define CHECK_STR_AS(got, want, what)                                                              \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        CHECK_MSG(g_ &&w_ && !strcmp(g_, w_), "%s:\n  got  [%s]\n  want [%s]", (what),             \
                  g_ ? g_ : "(null)", w_ ? w_ : "(null)");                                         \
    } while (0)

/* The same, naming the expression. */
#define CHECK_STR(got, want) CHECK_STR_AS(got, want, #got)

/* The last store call's message (the store hands it over, the test frees
 * it before the next call). Unused by the tests that check no store. */
static char *err __attribute__((unused));

/* A store call: the previous message freed, then the call. */
#define CALL(call) (free(err), err = NULL, (call))

/* A store call that must succeed; its message is printed when it does not. */
#define OK(call)                                                                                   \
    do {                                                                                           \
        store_status st_ = CALL(call);                                                             \
        if (st_ != STORE_OK)                                                                       \
            fprintf(stderr, "%s:%d: %s: status %d: %s\n", __FILE__, __LINE__, #call, (int)st_,     \
                    err ? err : "(no message)");                                                   \
        CHECK(st_ == STORE_OK);                                                                    \
    } while (0)

/* A store call that must fail with `status` and say why. */
#define FAILS(call, status)                                                                        \
    do {                                                                                           \
        store_status st_ = CALL(call);                                                             \
        CHECK(st_ == (status));                                                                    \
        CHECK(err != NULL && *err != '\0');                                                        \
    } while (0)

/* The closing line the CI reads, and the exit status. */
static inline int test_report(void) {
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed ? 1 : 0;
}

/* Whether got[0..n) is want[0..m); says how not on stderr. */
static inline int test_ints_are(const int *got, int n, const int *want, int m) {
    if (n != m) {
        fprintf(stderr, "  got %d values, want %d\n", n, m);
        return 0;
    }
    for (int i = 0; i < n; i++)
        if (got[i] != want[i]) {
            fprintf(stderr, "  value %d is %d, want %d\n", i, got[i], want[i]);
            return 0;
        }
    return 1;
}

/* Makes a new directory "$TMPDIR/<name>XXXXXX" (TMPDIR or /tmp) into dir;
 * false, having said why, when it cannot. */
static inline int test_tmpdir(char *dir, size_t size, const char *name) {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, size, "%s/%sXXXXXX", tmp != NULL && *tmp ? tmp : "/tmp", name);
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 0;
    }
    return 1;
}

/* Removes a directory test_tmpdir made and all in it. */
static inline void test_remove_dir(const char *path) {
    DIR *d = opendir(path);
    struct dirent *e;
    char file[512];
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (snprintf(file, sizeof file, "%s/%s", path, e->d_name) >= (int)sizeof file) continue;
        if (e->d_type == DT_DIR)
            test_remove_dir(file);
        else
            unlink(file);
    }
    if (d != NULL) closedir(d);
    rmdir(path);
}

/* The test program's own temporary directory, made by test_main. */
static char test_dir[64];

/* The path of `name` in test_dir; the last eight stay valid. */
static inline char *test_path(const char *name) {
    static char buf[8][160];
    static int i;
    char *p = buf[i++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", test_dir, name);
    return p;
}

/* One test function: checks, counted by the macros above. */
typedef void test_fn(void);

/* A test program's main: makes test_dir ("$TMPDIR/<name>XXXXXX") unless
 * name is NULL, runs the tests in order, removes the directory and
 * reports. Exit status 2 when the directory cannot be made. */
static inline int test_main(const char *name, test_fn *const *tests, size_t n) {
    if (name != NULL && !test_tmpdir(test_dir, sizeof test_dir, name)) return 2;
    for (size_t i = 0; i < n; i++) tests[i]();
    free(err);
    err = NULL;
    if (name != NULL) test_remove_dir(test_dir);
    return test_report();
}

/* int main(void) running the test functions named, in a directory
 * test_main makes (none for NULL):
 *     TEST_MAIN("aeon-sqlite-", test_open, test_append) */
#define TEST_MAIN(name, ...)                                                                       \
    int main(void) {                                                                               \
        static test_fn *const tests_[] = {__VA_ARGS__};                                            \
        return test_main(name, tests_, sizeof tests_ / sizeof tests_[0]);                          \
    }

/* The kill -9 tests: a child appends and writes an acknowledgement of
 * `size` bytes to a pipe after each append; the parent reads them, handing
 * each to on_ack, until on_ack says it has enough (returns false), kills
 * the child with SIGKILL, reads those still in the pipe, and checks that
 * the child died of the signal. child(fd, ctx) runs in the child, writing
 * to fd, and must _exit. */
typedef void test_child(int fd, void *ctx);
typedef bool test_ack(const void *ack, void *ctx);

static inline void test_kill9(test_child *child, size_t size, test_ack *on_ack, void *ctx) {
    int fds[2];
    char ack[64];
    CHECK(pipe(fds) == 0 && size <= sizeof ack);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        child(fds[1], ctx);
        _exit(4);
    }
    close(fds[1]);
    while (read(fds[0], ack, size) == (ssize_t)size && on_ack(ack, ctx))
        ;
    kill(pid, SIGKILL);
    while (read(fds[0], ack, size) == (ssize_t)size) on_ack(ack, ctx);
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status));
}

/* The DynamoDB Local that spec/run.sh started: AWS_ENDPOINT_URL when it is
 * a loopback URL, so the live checks never reach another host; else NULL,
 * having said that they are skipped. */
static inline const char *test_local_endpoint(void) {
    const char *ep = getenv("AWS_ENDPOINT_URL");
    if (ep != NULL &&
        (strncmp(ep, "http://127.", 11) == 0 || strncmp(ep, "http://localhost", 16) == 0))
        return ep;
    printf("live DynamoDB Local checks skipped (AWS_ENDPOINT_URL is not a loopback URL)\n");
    return NULL;
}

/* Where fixtures live: $AEON_FIXTURES, else spec/fixtures (make runs the
 * tests from the repository root). */
static inline const char *test_fixtures(void) {
    const char *d = getenv("AEON_FIXTURES");
    return d && *d ? d : "spec/fixtures";
}

/* Reads a whole file; NULL when it cannot. *len gets the size. */
static inline char *test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0;
    if (!f) return NULL;
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
        if (r == 0) break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

#endif
