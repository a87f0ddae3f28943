/*
 * store.c - what every backend shares: the default clock and random source,
 * picking a backend from a URI, error messages and checking application
 * strings and subscription arguments. Provides store_env_default,
 * store_open, store_close, store_fail, store_check_text and
 * store_check_subscription from store.h. Uses libc (clock_gettime,
 * getrandom), revision.h and filter.h.
 */
#include "store.h"

#include "filter.h"
#include "revision.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static uint64_t real_now_ms(void *ctx)
{
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
static void real_random(void *ctx, uint8_t *out, size_t len)
{
    (void)ctx;
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom(out + got, len - got, 0);
        if (n > 0)
            got += (size_t)n;
        else if (n < 0 && errno != EINTR)
            break;
    }
    if (got == len)
        return;
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
    if (got == len)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                 (uint64_t)(uintptr_t)out ^ ((uint64_t)getpid() << 40);
    for (; got < len; got++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
        out[got] = (uint8_t)(x >> 24);
    }
}

const store_env store_env_default = {real_now_ms, real_random, NULL};

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* The URI forms are those of API.md section 2. The backend gets the whole
 * URI and parses its own part, so it can also be opened directly through
 * its ops table. */
store_status store_open(const char *uri, const store_options *opts, store **out,
                        char **err)
{
    *out = NULL;
    if (uri == NULL)
        return store_fail(err, STORE_INVALID, "no store URI given");

    /* "dynamodb:NAME", or a JSON object {"name", "eventsTable", ...}: the
     * config Aeon's CDK construct hands its Lambdas. */
    const char *p = uri + strspn(uri, " \t\r\n");
    if (strncmp(uri, "dynamodb:", 9) == 0 || *p == '{')
        return store_dynamodb_ops.open(uri, opts, out, err);

    if (strncmp(uri, "sqlite:", 7) == 0 || strcmp(uri, "memory:") == 0 ||
        ends_with(uri, ".db"))
        return store_sqlite_ops.open(uri, opts, out, err);

    return store_fail(err, STORE_INVALID, "unknown store URI \"%s\" (use "
                      "sqlite:PATH, PATH.db, memory:, dynamodb:NAME or an Aeon config "
                      "JSON object)", uri);
}

void store_close(store *s)
{
    if (s != NULL)
        s->ops->close(s);
}

/* When even the message cannot be allocated *err is left NULL: callers
 * must accept a NULL message next to STORE_NOMEM (or any status). */
store_status store_fail(char **err, store_status status, const char *fmt, ...)
{
    if (err == NULL)
        return status;
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *msg = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (msg != NULL)
        vsnprintf(msg, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    *err = msg;
    return status;
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates (U+D800 to
 * U+DFFF), nothing above U+10FFFF. The second byte's allowed range is what
 * rules each of those out; later continuation bytes are always 80-BF. */
const char *store_check_text(const char *s, bool allow_empty)
{
    if (s == NULL)
        return "is missing";
    if (*s == '\0' && !allow_empty)
        return "is empty";
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        unsigned c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        unsigned lo = 0x80, hi = 0xBF, more;
        if (c >= 0xC2 && c <= 0xDF)
            more = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            if (c == 0xE0)
                lo = 0xA0; /* below: overlong */
            else if (c == 0xED)
                hi = 0x9F; /* above: surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            if (c == 0xF0)
                lo = 0x90; /* below: overlong */
            else if (c == 0xF4)
                hi = 0x8F; /* above: beyond U+10FFFF */
        } else
            return "is not valid UTF-8";
        if (p[1] < lo || p[1] > hi)
            return "is not valid UTF-8";
        for (unsigned i = 2; i <= more; i++)
            if (p[i] < 0x80 || p[i] > 0xBF)
                return "is not valid UTF-8";
        p += more + 1;
    }
    return NULL;
}

store_status store_check_subscription(const char *name, const store_sub_opts *opts,
                                      char **err)
{
    const char *why;
    if (name != NULL && (why = store_check_text(name, false)) != NULL)
        return store_fail(err, STORE_INVALID, "subscription name %s", why);
    if (opts->start != NULL && !revision_bound_valid(opts->start))
        return store_fail(err, STORE_INVALID, "subscription start \"%s\" is not a revision, "
                          "START or END", opts->start);
    if (opts->filter != NULL && (why = filter_check(opts->filter)) != NULL)
        return store_fail(err, STORE_INVALID, "bad filter: %s", why);
    return STORE_OK;
}
