/*
 * open.c - the one table of backends and store_open, which picks from it.
 * Provides store_open from store.h. Each backend's ops table says which
 * URIs it takes (accepts, uri_forms); adding a backend is its folder plus
 * one row here. Uses nothing but libc.
 */
#include "store.h"

#include <stdio.h>
#include <string.h>

extern const store_ops store_dynamodb_ops;
extern const store_ops store_sqlite_ops;

/* Asked in this order, the first that accepts a URI opens it. The embedded
 * store's bare PATH.db is the loosest form ("dynamodb:x.db" ends in .db
 * too), so it comes last. */
static const store_ops *const backends[] = {
    &store_dynamodb_ops,
    &store_sqlite_ops,
};

#define BACKENDS (sizeof backends / sizeof backends[0])

/* "A, B, C or D": every form of every backend, for the message that
 * refuses a URI. Cut short rather than fail when out of room. */
static void list_forms(char *out, size_t size) {
    size_t total = 0, len = 0;
    for (size_t i = 0; i < BACKENDS; i++)
        for (const char *const *f = backends[i]->uri_forms; *f != NULL; f++) total++;
    out[0] = '\0';
    size_t k = 0;
    for (size_t i = 0; i < BACKENDS; i++)
        for (const char *const *f = backends[i]->uri_forms; *f != NULL; f++, k++) {
            const char *sep = k == 0 ? "" : k + 1 == total ? " or " : ", ";
            int n = snprintf(out + len, size - len, "%s%s", sep, *f);
            if (n < 0 || (size_t)n >= size - len) return;
            len += (size_t)n;
        }
}

/* The backend gets the whole URI and parses its own part, so it can also
 * be opened directly through its ops table. */
store_status store_open(const char *uri, const store_options *opts, store **out, char **err) {
    *out = NULL;
    if (uri == NULL) return store_fail(err, STORE_INVALID, "no store URI given");
    for (size_t i = 0; i < BACKENDS; i++)
        if (backends[i]->accepts(uri)) return backends[i]->open(uri, opts, out, err);
    char forms[256];
    list_forms(forms, sizeof forms);
    return store_fail(err, STORE_INVALID, "unknown store URI \"%s\" (use %s)", uri, forms);
}
