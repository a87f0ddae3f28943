/*
 * ddb_read.c - heads and reads of the DynamoDB backend: a key's head from
 * the metadata table, and cursors that page through one key's events or,
 * for read_all, the by-revision index slice by slice. Pages are as large
 * as DynamoDB makes them (1 MB), and the next one is fetched ahead, on a
 * second connection, while the caller works through the current one:
 * across a network a read costs round trips, so it makes few and waits
 * for about one.
 */
#include "ddb_store.h"

#include <signal.h>

static const char rev_min[] = "00000000000000000000000000";
static const char rev_max[] = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ";

/* ------------------------------------------------------------------ */
/* Heads and snapshots                                                 */

/* A consistent GetItem of one metadata item. *item is borrowed from r. */
store_status ddb_get_meta(ddb_store *s, const char *key, const char *sk, http_response *r,
                          const json_t **item, char **err) {
    *item = NULL;
    json_t *body = json_pack("{s:s, s:{s:{s:s}, s:{s:s}}, s:b}", "TableName", s->metadata, "Key",
                             "pk", "S", key, "sk", "S", sk, "ConsistentRead", 1);
    store_status status = ddb_call(s, "GetItem", body, true, NULL, r, err);
    if (status == STORE_OK) *item = json_object_get(r->json, "Item");
    return status;
}

store_status ddb_check_key(const char *key, char **err) {
    const char *why = store_check_text(key, false);
    if (why != NULL) return store_fail(err, STORE_INVALID, "key %s", why);
    if (strlen(key) > KEY_BYTES)
        return store_fail(err, STORE_LIMIT,
                          "dynamodb: key is %zu bytes; DynamoDB takes at "
                          "most %d in a partition key",
                          strlen(key), KEY_BYTES);
    return STORE_OK;
}

store_status ddb_head(store *st, const char *key, char out[STORE_REVISION_SIZE], char **err) {
    ddb_store *s = (ddb_store *)st;
    http_response r = {0};
    const json_t *item;
    ddb_copy_rev(out, STORE_START);
    store_status status = ddb_check_key(key, err);
    if (status == STORE_OK && (status = ddb_get_meta(s, key, "head", &r, &item, err)) == STORE_OK &&
        item != NULL) {
        const char *rev = ddb_item_s(item, "revision");
        if (rev == NULL || !revision_valid(rev))
            status = store_fail(err, STORE_IO,
                                "dynamodb: the head item of key \"%s\" in %s "
                                "holds no revision",
                                key, s->metadata);
        else
            ddb_copy_rev(out, rev);
    }
    http_response_free(&r);
    return status;
}

/* Snapshots live beside the head: {pk=KEY, sk="snapshot"}. The condition
 * keeps a newer one; an equal revision overwrites, so a resend is harmless. */

/* ------------------------------------------------------------------ */
/* Reads                                                               */

/* The options as an inclusive range, as Aeon's ensureInclusive makes it;
 * false when it is empty (BETWEEN would refuse lo > hi). */
static bool inclusive_bounds(const store_read_opts *o, char lo[STORE_REVISION_SIZE],
                             char hi[STORE_REVISION_SIZE]) {
    const char *from = o->from != NULL ? o->from : STORE_START;
    const char *to = o->to != NULL ? o->to : STORE_END;
    if (strcmp(from, STORE_START) == 0)
        ddb_copy_rev(lo, rev_min);
    else if (strcmp(from, STORE_END) == 0)
        return false;
    else if (!o->from_exclusive)
        ddb_copy_rev(lo, from);
    else if (!revision_next(from, lo))
        return false;
    if (strcmp(to, STORE_END) == 0)
        ddb_copy_rev(hi, rev_max);
    else if (strcmp(to, STORE_START) == 0)
        return false;
    else if (!o->to_exclusive)
        ddb_copy_rev(hi, to);
    else if (!revision_prev(to, hi))
        return false;
    return strcmp(lo, hi) <= 0;
}

static store_status join_ahead(store_cursor *c, bool keep, char **err);

void ddb_cursor_close(store_cursor *c) {
    if (c == NULL) return;
    if (c->ahead != NULL) join_ahead(c, false, NULL);
    free(c->key);
    filter_free(c->local);
    json_decref(c->query);
    json_decref(c->page);
    json_decref(c->resume);
    json_decref(c->slices);
    json_decref(c->slices_resume);
    free(c->data);
    free(c);
}

/* The Query body every page starts from: key condition, filter, direction;
 * ":pk", "Limit" and "ExclusiveStartKey" are set per page. */
static json_t *query_base(store_cursor *c, const ddb_filter *f) {
    ddb_store *s = c->s;
    json_t *names = f->names != NULL ? json_copy(f->names) : json_object();
    json_t *values = f->values != NULL ? json_copy(f->values) : json_object();
    json_t *q = NULL;
    if (names == NULL || values == NULL ||
        json_object_set_new(names, "#pk", json_string(c->key != NULL ? "key" : "slice")) ||
        json_object_set_new(names, "#rev", json_string("revision")) ||
        json_object_set_new(values, ":lo", ddb_av_s(c->lo)) ||
        json_object_set_new(values, ":hi", ddb_av_s(c->hi)))
        goto done;
    q = json_pack("{s:s, s:s, s:O, s:O, s:b}", "TableName", s->events, "KeyConditionExpression",
                  "#pk = :pk AND #rev BETWEEN :lo AND :hi", "ExpressionAttributeNames", names,
                  "ExpressionAttributeValues", values, "ScanIndexForward", !c->backward);
    if (q == NULL) goto done;
    /* The base table reads consistently: an append is seen by the next read.
     * DynamoDB refuses consistent reads on a global secondary index. */
    if ((c->key == NULL ? json_object_set_new(q, "IndexName", json_string(s->index))
                        : json_object_set_new(q, "ConsistentRead", json_true())) != 0 ||
        (f->expression != NULL &&
         json_object_set_new(q, "FilterExpression", json_string(f->expression)) != 0)) {
        json_decref(q);
        q = NULL;
    }
done:
    json_decref(names);
    json_decref(values);
    return q;
}

static store_status advance(store_cursor *c, char **err);

store_status ddb_read(store *st, const char *key, const store_read_opts *opts, store_cursor **out,
                      char **err) {
    static const store_read_opts defaults = {NULL, false, NULL, false, -1, false, NULL};
    store_cursor *c = NULL;
    ddb_filter f = {0};
    store_status status;
    *out = NULL;
    if (opts == NULL) opts = &defaults;

    if (key != NULL && (status = ddb_check_key(key, err)) != STORE_OK) return status;
    if ((status = store_check_read(opts, err)) != STORE_OK) return status;
    if ((status = ddb_filter_compile(opts->filter, key, &f, err)) != STORE_OK) return status;

    status = STORE_NOMEM;
    if ((c = calloc(1, sizeof *c)) == NULL || (key != NULL && (c->key = strdup(key)) == NULL))
        goto nomem;
    c->s = (ddb_store *)st;
    c->backward = opts->backward;
    c->remaining = opts->limit < 0 ? -1 : opts->limit;
    c->done = f.none || c->remaining == 0 || !inclusive_bounds(opts, c->lo, c->hi);
    c->pushed = f.expression != NULL;
    if (f.local && filter_copy(opts->filter, &c->local) != STORE_OK) goto nomem;
    if (!c->done && (c->query = query_base(c, &f)) == NULL) goto nomem;
    c->partition_done = key == NULL; /* read_all starts by finding a slice */
    ddb_filter_free(&f);
    /* The first page now, so a missing table or a bad endpoint is read's
     * failure (nil, message) rather than the first next's. */
    if ((status = advance(c, err)) != STORE_OK) {
        ddb_cursor_close(c);
        return status;
    }
    *out = c;
    return STORE_OK;
nomem:
    ddb_filter_free(&f);
    ddb_cursor_close(c);
    return ddb_nomem(err);
}

/* Moves read_all on to the next slice with events, listing the slice
 * markers a page at a time. Sets c->done when there are no more. */
static store_status next_slice(store_cursor *c, char **err) {
    ddb_store *s = c->s;
    http_response r = {0};
    for (;;) {
        json_t *items = json_object_get(c->slices, "Items");
        if (c->slices != NULL && c->slice_pos < json_array_size(items)) {
            const char *slice = ddb_item_s(json_array_get(items, c->slice_pos++), "sk");
            if (slice == NULL) continue;
            json_t *values = json_object_get(c->query, "ExpressionAttributeValues");
            if (json_object_set_new(values, ":pk", ddb_av_s(slice)) != 0) return ddb_nomem(err);
            c->partition_done = false;
            json_decref(c->resume);
            c->resume = NULL;
            return STORE_OK;
        }
        if (c->slices_started && c->slices_resume == NULL) {
            c->done = true;
            return STORE_OK;
        }
        char lo[SLICE_LEN + 1], hi[SLICE_LEN + 1];
        ddb_slice_of(c->lo, lo);
        ddb_slice_of(c->hi, hi);
        json_t *body =
            json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:{s:s}, s:{s:s}, s:{s:s}}, "
                      "s:i, s:b, s:b}",
                      "TableName", s->metadata, "KeyConditionExpression",
                      "#pk = :pk AND #sk BETWEEN :lo AND :hi", "ExpressionAttributeNames", "#pk",
                      "pk", "#sk", "sk", "ExpressionAttributeValues", ":pk", "S", "slice", ":lo",
                      "S", lo, ":hi", "S", hi, "Limit", SLICE_PAGE, "ScanIndexForward",
                      !c->backward, "ConsistentRead", 1);
        if (body != NULL && c->slices_resume != NULL)
            json_object_set(body, "ExclusiveStartKey", c->slices_resume);
        store_status status = ddb_call(s, "Query", body, true, NULL, &r, err);
        if (status != STORE_OK) {
            http_response_free(&r);
            return status;
        }
        json_decref(c->slices);
        json_decref(c->slices_resume);
        c->slices = json_incref(r.json);
        c->slices_resume = json_incref(json_object_get(r.json, "LastEvaluatedKey"));
        c->slice_pos = 0;
        c->slices_started = true;
        http_response_free(&r);
    }
}

/* The next page, fetched on the handle's second connection by a thread of
 * its own while the caller folds the current one: a read of many pages
 * waits for DynamoDB once, not once a page. One cursor of a handle at a
 * time fetches ahead (ahead_busy); the others fetch when they need a page.
 * The thread touches only its own request, answer and the second client;
 * the cursor joins it before using the page, or when it closes. */
typedef struct ahead_fetch {
    pthread_t thread;    /* the fetching thread */
    ddb_store *s;        /* the handle, whose `ahead` client it uses */
    char *body;          /* the Query, serialised before it started */
    http_response r;     /* the answer */
    store_status status; /* how the call went */
    char *err;           /* what went wrong, malloc'd, or NULL */
} ahead_fetch;

/* The Limit of the next Query: 0 for none, so DynamoDB fills a page (1 MB);
 * -1 when there is nothing left to ask for. Without a filter every item
 * read is handed out, so it asks for no more than are left to hand out
 * past the `queued` items of the current page. */
static int64_t page_limit(const store_cursor *c, size_t queued) {
    int64_t limit = c->s->page_items;
    if (!c->pushed && c->local == NULL && c->remaining >= 0) {
        int64_t left = c->remaining - (int64_t)queued;
        if (left <= 0) return -1;
        if (limit == 0 || left < limit) limit = left;
    }
    return limit;
}

/* The Query for the page after c->resume of the current key or slice. */
static json_t *page_query(store_cursor *c, int64_t limit) {
    if (c->key != NULL &&
        json_object_set_new(json_object_get(c->query, "ExpressionAttributeValues"), ":pk",
                            ddb_av_s(c->key)) != 0)
        return NULL;
    json_t *body = json_copy(c->query);
    if (body == NULL ||
        (limit > 0 && json_object_set_new(body, "Limit", json_integer(limit)) != 0) ||
        (c->resume != NULL && json_object_set(body, "ExclusiveStartKey", c->resume) != 0)) {
        json_decref(body);
        return NULL;
    }
    return body;
}

/* Makes an answer the current page. */
static void take_page(store_cursor *c, const http_response *r) {
    json_decref(c->page);
    json_decref(c->resume);
    c->page = json_incref(r->json);
    c->resume = json_incref(json_object_get(r->json, "LastEvaluatedKey"));
    c->pos = 0;
    c->partition_done = c->resume == NULL;
}

static void *fetch_ahead(void *arg) {
    ahead_fetch *a = arg;
    a->status = http_call(a->s->ahead, "Query", a->body, strlen(a->body), true, &a->r, &a->err);
    if (a->status == STORE_OK) a->status = ddb_answer_check(a->s, "Query", NULL, &a->r, &a->err);
    return NULL;
}

/* Starts fetching the page after the current one when there is one to
 * fetch and the second connection is free. Anything that stops it (no
 * memory, no thread) only means the page is fetched when it is needed. */
static void start_ahead(store_cursor *c) {
    ddb_store *s = c->s;
    size_t queued = json_array_size(json_object_get(c->page, "Items")) - c->pos;
    int64_t limit = page_limit(c, queued);
    if (c->partition_done || c->ahead != NULL || s->ahead_busy || limit < 0) return;
    char *ignored = NULL;
    if (s->ahead == NULL && ddb_open_client(s, &s->ahead, &ignored) != STORE_OK) {
        free(ignored);
        return;
    }
    ahead_fetch *a = calloc(1, sizeof *a);
    json_t *body = page_query(c, limit);
    if (a == NULL || body == NULL || (a->body = json_dumps(body, JSON_COMPACT)) == NULL) {
        json_decref(body);
        free(a);
        return;
    }
    json_decref(body);
    a->s = s;
    /* The thread starts with every signal blocked, so the host's signals
     * (SIGTERM, SIGINT) reach the threads that wait for them. */
    sigset_t all, was;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &was);
    int started = pthread_create(&a->thread, NULL, fetch_ahead, a);
    pthread_sigmask(SIG_SETMASK, &was, NULL);
    if (started != 0) {
        free(a->body);
        free(a);
        return;
    }
    s->ahead_busy = true;
    c->ahead = a;
}

/* Waits for the page being fetched ahead; makes it the current one when
 * keep is true and it came. */
static store_status join_ahead(store_cursor *c, bool keep, char **err) {
    ahead_fetch *a = c->ahead;
    pthread_join(a->thread, NULL);
    c->s->ahead_busy = false;
    c->ahead = NULL;
    store_status status = a->status;
    if (keep && status == STORE_OK) take_page(c, &a->r);
    if (keep && status != STORE_OK && err != NULL) {
        *err = a->err;
        a->err = NULL;
    }
    free(a->err);
    free(a->body);
    http_response_free(&a->r);
    free(a);
    return status;
}

/* Fetches the next page of the current key or slice (or takes the one
 * fetched ahead), then starts on the one after it. */
static store_status fetch(store_cursor *c, char **err) {
    store_status status;
    if (c->ahead != NULL) {
        status = join_ahead(c, true, err);
    } else {
        http_response r = {0};
        json_t *body = page_query(c, page_limit(c, 0));
        if (body == NULL) return ddb_nomem(err);
        status = ddb_call(c->s, "Query", body, true, NULL, &r, err);
        if (status == STORE_OK) take_page(c, &r);
        http_response_free(&r);
    }
    if (status == STORE_OK) start_ahead(c);
    return status;
}

/* Points c->ev at an item's attributes; the item stays in c->page. */
store_status ddb_to_event(store_cursor *c, const json_t *item, char **err) {
    free(c->data);
    c->data = NULL;
    return ddb_item_event(item, c->s->events, &c->ev, &c->data, err);
}

/* Loads pages until one has an item left to look at, or there are none. */
static store_status advance(store_cursor *c, char **err) {
    store_status status;
    while (!c->done && c->remaining != 0) {
        if (c->page != NULL && c->pos < json_array_size(json_object_get(c->page, "Items")))
            return STORE_OK;
        json_decref(c->page);
        c->page = NULL;
        if (c->partition_done) {
            if (c->key != NULL) {
                c->done = true;
                break;
            }
            if ((status = next_slice(c, err)) != STORE_OK) return status;
            continue;
        }
        if ((status = fetch(c, err)) != STORE_OK) return status;
    }
    return STORE_OK;
}

store_status ddb_next(store_cursor *c, const store_event **ev, char **err) {
    store_status status;
    *ev = NULL;
    while ((status = advance(c, err)) == STORE_OK && !c->done && c->remaining != 0) {
        json_t *items = json_object_get(c->page, "Items");
        if ((status = ddb_to_event(c, json_array_get(items, c->pos++), err)) != STORE_OK)
            return status;
        if (c->local != NULL && !filter_match(c->local, &c->ev)) continue;
        if (c->remaining > 0) c->remaining--;
        *ev = &c->ev;
        return STORE_OK;
    }
    return status;
}
