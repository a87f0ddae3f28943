/*
 * check.c - the rules every backend applies to what it is handed, written
 * once: application strings, appends' batches (with each backend's own
 * limits), revisions, read options, documents, view names and
 * subscriptions. Provides the store_check_* functions of store.h. Uses
 * revision.h and filter.h.
 */
#include "store.h"

#include "filter.h"
#include "revision.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates (U+D800 to
 * U+DFFF), nothing above U+10FFFF. The second byte's allowed range is what
 * rules each of those out; later continuation bytes are always 80-BF. */
const char *store_check_text(const char *s, bool allow_empty) {
    if (s == NULL) return "is missing";
    if (*s == '\0' && !allow_empty) return "is empty";
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
        if (p[1] < lo || p[1] > hi) return "is not valid UTF-8";
        for (unsigned i = 2; i <= more; i++)
            if (p[i] < 0x80 || p[i] > 0xBF) return "is not valid UTF-8";
        p += more + 1;
    }
    return NULL;
}

/* A bound of a read or a subscription's start: NULL, STORE_START,
 * STORE_END or a revision. */
static store_status check_bound(const char *what, const char *bound, char **err) {
    if (bound != NULL && !revision_bound_valid(bound))
        return store_fail(err, STORE_INVALID, "%s \"%s\" is not a revision, START or END", what,
                          bound);
    return STORE_OK;
}

static store_status check_filter(const store_filter *filter, char **err) {
    const char *why;
    if (filter != NULL && (why = filter_check(filter)) != NULL)
        return store_fail(err, STORE_INVALID, "bad filter: %s", why);
    return STORE_OK;
}

store_status store_check_subscription(const char *name, const store_sub_opts *opts, char **err) {
    const char *why;
    if (name != NULL && (why = store_check_text(name, false)) != NULL)
        return store_fail(err, STORE_INVALID, "subscription name %s", why);
    store_status status = check_bound("subscription start", opts->start, err);
    if (status == STORE_OK) status = check_filter(opts->filter, err);
    return status;
}

static int cmp_keys(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* One batch's key and events; `where` names the batch when there are
 * several. */
static store_status check_batch(const store_batch *b, const char *where, const store_limits *lim,
                                char **err) {
    const char *why;
    if ((why = store_check_text(b->key, false)) != NULL)
        return store_fail(err, STORE_INVALID, "%skey %s", where, why);
    if (lim->key_bytes > 0 && strlen(b->key) > lim->key_bytes)
        return store_fail(err, STORE_LIMIT, "%s%skey is %zu bytes; %s", lim->prefix, where,
                          strlen(b->key), lim->key_rule);
    const char *exp = b->expected_revision;
    if (exp != NULL && strcmp(exp, STORE_START) != 0 && !revision_valid(exp))
        return store_fail(err, STORE_INVALID,
                          "%sexpected revision \"%s\" is not a "
                          "revision or START",
                          where, exp);
    if (b->count > 0 && b->events == NULL)
        return store_fail(err, STORE_INVALID, "%sno events given", where);
    for (size_t j = 0; j < b->count; j++) {
        const store_pending *e = &b->events[j];
        if ((why = store_check_text(e->type, false)) != NULL)
            return store_fail(err, STORE_INVALID, "%sevent %zu: type %s", where, j + 1, why);
        if (e->data == NULL || e->data_len == 0)
            return store_fail(err, STORE_INVALID, "%sevent %zu: data is empty", where, j + 1);
        if (lim->event_bytes > 0 && e->data_len > lim->event_bytes)
            return store_fail(err, STORE_LIMIT,
                              "%sevent %zu: data is %zu bytes, over the %zu-byte limit", where,
                              j + 1, e->data_len, lim->event_bytes);
        if (e->correlation_id != NULL && (why = store_check_text(e->correlation_id, false)) != NULL)
            return store_fail(err, STORE_INVALID, "%sevent %zu: correlation_id %s", where, j + 1,
                              why);
    }
    return STORE_OK;
}

/* No key may stand in two batches: sorted, a repeat is a neighbour. */
static store_status check_keys_distinct(const store_batch *b, size_t n, char **err) {
    store_status status = STORE_NOMEM;
    const char **keys = malloc(n * sizeof *keys);
    if (keys == NULL) return store_fail(err, status, "out of memory");
    for (size_t i = 0; i < n; i++) keys[i] = b[i].key;
    qsort(keys, n, sizeof *keys, cmp_keys);
    status = STORE_OK;
    for (size_t i = 1; i < n && status == STORE_OK; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0)
            status = store_fail(err, STORE_INVALID,
                                "key \"%s\" appears in more than one "
                                "batch",
                                keys[i]);
    free(keys);
    return status;
}

store_status store_check_batches(const store_batch *b, size_t n, const char *token, bool many,
                                 const store_limits *lim, size_t *total, char **err) {
    const char *why;
    char where[40] = "";
    *total = 0;
    if (token != NULL && (why = store_check_text(token, false)) != NULL)
        return store_fail(err, STORE_INVALID, "idempotency key %s", why);
    if (n > 0 && b == NULL) return store_fail(err, STORE_INVALID, "no batches given");
    for (size_t i = 0; i < n; i++) {
        if (many) snprintf(where, sizeof where, "batch %zu: ", i + 1);
        store_status status = check_batch(&b[i], where, lim, err);
        if (status != STORE_OK) return status;
        *total += b[i].count;
    }
    return n > 1 ? check_keys_distinct(b, n, err) : STORE_OK;
}

store_status store_check_revision(const char *what, const char *revision, bool start_ok,
                                  char **err) {
    if (revision != NULL &&
        ((start_ok && strcmp(revision, STORE_START) == 0) || revision_valid(revision)))
        return STORE_OK;
    return store_fail(err, STORE_INVALID, "%s \"%s\" is not a revision", what,
                      revision != NULL ? revision : "(null)");
}

store_status store_check_read(const store_read_opts *opts, char **err) {
    store_status status = check_bound("read bound", opts->from, err);
    if (status == STORE_OK) status = check_bound("read bound", opts->to, err);
    if (status == STORE_OK) status = check_filter(opts->filter, err);
    return status;
}

store_status store_check_document(const char *rev_what, const char *revision, const char *what,
                                  const char *doc, size_t len, char **err) {
    store_status status = store_check_revision(rev_what, revision, true, err);
    if (status != STORE_OK) return status;
    if (doc == NULL || len == 0) return store_fail(err, STORE_INVALID, "%s is empty", what);
    return STORE_OK;
}

store_status store_check_view(const char *view, const char *id, char **err) {
    const char *why;
    if ((why = store_check_text(view, false)) != NULL)
        return store_fail(err, STORE_INVALID, "view name %s", why);
    if (id != NULL && (why = store_check_text(id, false)) != NULL)
        return store_fail(err, STORE_INVALID, "view document id %s", why);
    return STORE_OK;
}
