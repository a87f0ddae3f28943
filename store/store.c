/*
 * store.c - the ground every backend stands on: the default clock and
 * random source, closing a store and error messages. Provides
 * store_env_default, store_close, store_fail, store_format and
 * store_view_docs_free from store.h. Uses libc
 * (clock_gettime, getrandom). The checks every backend makes are in
 * check.c, the table of backends in open.c.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static uint64_t real_now_ms(void *ctx) {
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* getrandom() can return short reads for large requests and EINTR on a
 * signal; revisions need only 10 bytes, but loop anyway. Without getrandom
 * (old kernels, seccomp) fall back to /dev/urandom; if that is missing too
 * the bytes are mixed from the clock, so revisions stay unique in practice
 * (their order never depends on these bytes). */
static void real_random(void *ctx, uint8_t *out, size_t len) {
    (void)ctx;
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom(out + got, len - got, 0);
        if (n > 0)
            got += (size_t)n;
        else if (n < 0 && errno != EINTR)
            break;
    }
    if (got == len) return;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        while (got < len) {
            ssize_t n = read(fd, out + got, len - got);
            if (n > 0)
                got += (size_t)n;
            else if (n == 0 || errno != EINTR)
                break;
        }
        close(fd);
    }
    if (got == len) return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)(uintptr_t)out ^
                 ((uint64_t)getpid() << 40);
    for (; got < len; got++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
        out[got] = (uint8_t)(x >> 24);
    }
}

const store_env store_env_default = {real_now_ms, real_random, NULL};

void store_close(store *s) {
    if (s != NULL) s->ops->close(s);
}

void store_view_docs_free(store_view_doc *docs, size_t n) {
    for (size_t i = 0; docs != NULL && i < n; i++) {
        free(docs[i].id);
        free(docs[i].doc);
    }
    free(docs);
}

/* When even the message cannot be allocated *err is left NULL: callers
 * must accept a NULL message next to STORE_NOMEM (or any status). */
static char *vformat(const char *fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s != NULL) vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

store_status store_fail(char **err, store_status status, const char *fmt, ...) {
    if (err == NULL) return status;
    va_list ap;
    va_start(ap, fmt);
    *err = vformat(fmt, ap);
    va_end(ap);
    return status;
}

char *store_format(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = vformat(fmt, ap);
    va_end(ap);
    return s;
}
