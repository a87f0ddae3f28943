/*
 * ddb_append.c - appends to the DynamoDB backend, once store_check_batches
 * has passed them: the idempotency token, the TransactWriteItems that puts
 * heads, the store head, slice markers and events, and its retries after
 * a cancelled transaction (dynamodb.c explains the layout and the order).
 */
#include "ddb_store.h"

/* ------------------------------------------------------------------ */
/* Appends                                                             */

#define TEXT_(x) #x
#define TEXT_OF(x) TEXT_(x)

/* A key is a partition key value; event data is limited by the item
 * size, which the conversion checks. */
static const store_limits limits = {
    .key_bytes = KEY_BYTES,
    .prefix = "dynamodb: ",
    .key_rule = "DynamoDB takes at most " TEXT_OF(KEY_BYTES) " in a partition key",
};

/* The request token. DynamoDB keeps tokens per account and region, not per
 * table, so a caller's idempotency key is hashed with the events table's
 * name: two stores (or two apps) using the same key stay apart, and keys of
 * any length fit the 36 characters. Without a key the token is random, so
 * that a resend after a dropped connection still commits once. */
static void make_token(ddb_store *s, const char *key, char out[TOKEN_LEN + 1]) {
    char hash[SIGV4_HASH_SIZE];
    size_t tlen = strlen(s->events), klen;
    uint8_t noise[16];
    char buf[512];
    if (key != NULL) {
        klen = strlen(key);
        char *text = malloc(tlen + klen + 2);
        if (text != NULL) {
            memcpy(text, s->events, tlen + 1);
            memcpy(text + tlen + 1, key, klen + 1);
            sigv4_sha256_hex(text, tlen + klen + 1, hash);
            free(text);
            memcpy(out, hash, TOKEN_LEN);
            out[TOKEN_LEN] = '\0';
            return;
        }
        /* out of memory: fall through to a random token; idempotency across
         * calls is lost for this one append, never correctness */
    }
    s->base.env.random(s->base.env.ctx, noise, sizeof noise);
    int n = snprintf(buf, sizeof buf, "%s/%" PRIu64 "/%" PRIu64 "/", s->events,
                     s->base.env.now_ms(s->base.env.ctx), ++s->tokens);
    for (size_t i = 0; i < sizeof noise && n > 0 && (size_t)n + 2 < sizeof buf; i++)
        n += snprintf(buf + n, sizeof buf - (size_t)n, "%02x", noise[i]);
    sigv4_sha256_hex(buf, strlen(buf), hash);
    memcpy(out, hash, TOKEN_LEN);
    out[TOKEN_LEN] = '\0';
}

/* The head item's put: written last revision, and the condition that makes
 * the append atomic with its check and keeps revisions increasing within
 * the key whatever the writers' clocks say. */
static json_t *head_put(ddb_store *s, const store_batch *b, const char *first, const char *last) {
    const char *cond;
    json_t *values = json_object();
    if (values == NULL) return NULL;
    if (b->expected_revision != NULL && strcmp(b->expected_revision, STORE_START) == 0) {
        cond = "attribute_not_exists(#revision)";
    } else if (b->expected_revision != NULL) {
        cond = "#revision = :expected AND #revision < :first";
        json_object_set_new(values, ":expected", ddb_av_s(b->expected_revision));
        json_object_set_new(values, ":first", ddb_av_s(first));
    } else {
        cond = "attribute_not_exists(#revision) OR #revision < :first";
        json_object_set_new(values, ":first", ddb_av_s(first));
    }
    json_t *put =
        json_pack("{s:{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}}, s:s, s:{s:s}, s:s}}", "Put", "TableName",
                  s->metadata, "Item", "pk", "S", b->key, "sk", "S", "head", "revision", "S", last,
                  "ConditionExpression", cond, "ExpressionAttributeNames", "#revision", "revision",
                  "ReturnValuesOnConditionCheckFailure", "ALL_OLD");
    if (put != NULL && json_object_size(values) > 0)
        json_object_set(json_object_get(put, "Put"), "ExpressionAttributeValues", values);
    json_decref(values);
    return put;
}

/* Whether a batch puts an item in front of the events: its head put, or,
 * for a batch with no events, a check of its expected revision. */
static bool guarded(const store_batch *b) { return b->count > 0 || b->expected_revision != NULL; }

/* A ConditionCheck of the key's head: what an append_many batch without
 * events but with an expected revision needs. */
static json_t *head_check(ddb_store *s, const store_batch *b) {
    bool start = strcmp(b->expected_revision, STORE_START) == 0;
    json_t *check = json_pack("{s:{s:s, s:{s:{s:s}, s:{s:s}}, s:s, s:{s:s}, s:s}}",
                              "ConditionCheck", "TableName", s->metadata, "Key", "pk", "S", b->key,
                              "sk", "S", "head", "ConditionExpression",
                              start ? "attribute_not_exists(#revision)" : "#revision = :expected",
                              "ExpressionAttributeNames", "#revision", "revision",
                              "ReturnValuesOnConditionCheckFailure", "ALL_OLD");
    if (check != NULL && !start &&
        json_object_set_new(json_object_get(check, "ConditionCheck"), "ExpressionAttributeValues",
                            json_pack("{s:{s:s}}", ":expected", "S", b->expected_revision))) {
        json_decref(check);
        return NULL;
    }
    return check;
}

/* An event item, as Aeon's putEvent writes it (plus dataFloats when the
 * data has floats with integral values, and `more`, the events of its
 * append after it, when there are any). Import writes the same. */
json_t *ddb_event_item(const char *key, const char *rev, const char *committed_at,
                       const store_pending *e, const converted *cv, size_t more) {
    char slice[SLICE_LEN + 1];
    ddb_slice_of(rev, slice);
    json_t *item = json_pack("{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:O}", "key", "S", key,
                             "revision", "S", rev, "slice", "S", slice, "committedAt", "S",
                             committed_at, "type", "S", e->type, "data", cv->data);
    if (item == NULL) return NULL;
    json_t *corr =
        e->correlation_id != NULL ? ddb_av_s(e->correlation_id) : json_pack("{s:b}", "NULL", 1);
    char n[24];
    snprintf(n, sizeof n, "%zu", more);
    if (corr == NULL || json_object_set_new(item, "correlationId", corr) != 0 ||
        (cv->floats != NULL && json_object_set(item, "dataFloats", cv->floats) != 0) ||
        (more > 0 && json_object_set_new(item, "more", json_pack("{s:s}", "N", n)) != 0)) {
        json_decref(item);
        return NULL;
    }
    return item;
}

/* Numbers every event above `floor` (and above what this handle made),
 * one sequence across batches, as the embedded store does. */
static void number(ddb_store *s, plan *p, const char *floor) {
    char base[STORE_REVISION_SIZE];
    ddb_copy_rev(base, strcmp(floor, s->last) > 0 ? floor : s->last);
    revision_after(base, &s->base.env, p->revs[0]);
    for (size_t i = 1; i < p->total; i++)
        if (!revision_next(p->revs[i - 1], p->revs[i]))
            ddb_copy_rev(p->revs[i], p->revs[i - 1]); /* year 10889; DynamoDB says no */
}

/* A TransactWriteItems body on its way. */
typedef struct building {
    json_t *items;                              /* TransactItems so far */
    char slices[TRANSACT_ITEMS][SLICE_LEN + 1]; /* the slices the events are in */
    size_t nslices;                             /* ... how many */
    size_t bytes;                               /* the items' size, as DynamoDB counts */
} building;

/* Adds a Put (NULL: no memory) and counts its item's size. */
static bool add_put(building *bd, json_t *put) {
    if (put == NULL) return false;
    bd->bytes += ddb_item_size(json_object_get(json_object_get(put, "Put"), "Item"));
    return json_array_append_new(bd->items, put) == 0;
}

/* The heads, in batch order, and the slices the events fall in. */
static store_status add_heads(ddb_store *s, const plan *p, building *bd, char **err) {
    for (size_t i = 0, at = 0; i < p->n; at += p->b[i].count, i++) {
        if (!guarded(&p->b[i])) continue;
        if (p->b[i].count == 0) {
            /* No events for this key, only its expected revision to hold. */
            json_t *check = head_check(s, &p->b[i]);
            if (check == NULL || json_array_append_new(bd->items, check) != 0)
                return ddb_nomem(err);
            continue;
        }
        const char *first = p->revs[at], *last = p->revs[at + p->b[i].count - 1];
        if (!add_put(bd, head_put(s, &p->b[i], first, last))) return ddb_nomem(err);
        for (size_t j = 0; j < p->b[i].count; j++) {
            const char *rev = p->revs[at + j];
            bool seen = false;
            for (size_t k = 0; k < bd->nslices && !seen; k++)
                seen = strncmp(bd->slices[k], rev, SLICE_LEN) == 0;
            if (!seen && bd->nslices < TRANSACT_ITEMS) ddb_slice_of(rev, bd->slices[bd->nslices++]);
        }
    }
    return STORE_OK;
}

static store_status check_item_count(const plan *p, const building *bd, char **err) {
    size_t heads = json_array_size(bd->items), nslices = bd->nslices;
    size_t needed = heads + 1 + nslices + p->total;
    if (needed <= TRANSACT_ITEMS) return STORE_OK;
    return store_fail(err, STORE_LIMIT,
                      "dynamodb: this append needs %zu transaction "
                      "items (%zu event%s, %zu head%s, the store head, %zu slice "
                      "marker%s), and one DynamoDB transaction takes at most %d: append "
                      "at most %d events to one key at a time",
                      needed, p->total, p->total == 1 ? "" : "s", heads, heads == 1 ? "" : "s",
                      nslices, nslices == 1 ? "" : "s", TRANSACT_ITEMS, TRANSACT_ITEMS - 3);
}

/* The store head, conditional on being below the new revisions, and the
 * slice markers. */
static store_status add_store_head(ddb_store *s, const plan *p, building *bd, char **err) {
    json_t *store_head =
        json_pack("{s:{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}}, s:s, s:{s:s},"
                  " s:{s:{s:s}}, s:s}}",
                  "Put", "TableName", s->metadata, "Item", "pk", "S", "slice", "sk", "S",
                  STORE_HEAD_SK, "revision", "S", p->revs[p->total - 1], "ConditionExpression",
                  "attribute_not_exists(#revision) OR #revision < :first",
                  "ExpressionAttributeNames", "#revision", "revision", "ExpressionAttributeValues",
                  ":first", "S", p->revs[0], "ReturnValuesOnConditionCheckFailure", "ALL_OLD");
    if (!add_put(bd, store_head)) return ddb_nomem(err);
    for (size_t k = 0; k < bd->nslices; k++) {
        json_t *marker =
            json_pack("{s:{s:s, s:{s:{s:s}, s:{s:s}}}}", "Put", "TableName", s->metadata, "Item",
                      "pk", "S", "slice", "sk", "S", bd->slices[k]);
        if (!add_put(bd, marker)) return ddb_nomem(err);
    }
    return STORE_OK;
}

/* The events, each within DynamoDB's item size. */
static store_status add_events(ddb_store *s, const plan *p, building *bd, bool many, char **err) {
    for (size_t i = 0, at = 0; i < p->n; i++) {
        for (size_t j = 0; j < p->b[i].count; j++, at++) {
            json_t *item = ddb_event_item(p->b[i].key, p->revs[at], p->committed_at,
                                          &p->b[i].events[j], &p->cv[at], p->total - at - 1);
            if (item == NULL) return ddb_nomem(err);
            size_t size = ddb_item_size(item);
            if (size > DDB_ITEM_MAX) {
                json_decref(item);
                char where[48] = "";
                if (many) snprintf(where, sizeof where, "batch %zu, ", i + 1);
                return store_fail(err, STORE_LIMIT,
                                  "dynamodb: %sevent %zu of key \"%s\" "
                                  "is %zu bytes as a DynamoDB item, over DynamoDB's limit "
                                  "of %d bytes (400 KB); nothing was appended",
                                  where, j + 1, p->b[i].key, size, DDB_ITEM_MAX);
            }
            if (!add_put(bd,
                         json_pack("{s:{s:s, s:o}}", "Put", "TableName", s->events, "Item", item)))
                return ddb_nomem(err);
        }
    }
    if (bd->bytes > TRANSACT_BYTES)
        return store_fail(err, STORE_LIMIT,
                          "dynamodb: this append is %zu bytes of "
                          "DynamoDB items, over the %u bytes (4 MB) one transaction takes; "
                          "nothing was appended",
                          bd->bytes, TRANSACT_BYTES);
    return STORE_OK;
}

/* Builds the TransactWriteItems body: heads (batch order), the store head,
 * slice markers, events. Refuses what DynamoDB would: too many items, an
 * item or the whole over its size limit. */
static store_status build(ddb_store *s, const plan *p, bool many, json_t **out, char **err) {
    building bd = {.items = json_array()};
    store_status status = bd.items != NULL ? STORE_OK : ddb_nomem(err);
    *out = NULL;
    if (status == STORE_OK) status = add_heads(s, p, &bd, err);
    if (status == STORE_OK) status = check_item_count(p, &bd, err);
    if (status == STORE_OK) status = add_store_head(s, p, &bd, err);
    if (status == STORE_OK) status = add_events(s, p, &bd, many, err);
    if (status == STORE_OK) {
        *out = json_pack("{s:o, s:s}", "TransactItems", bd.items, "ClientRequestToken", p->token);
        bd.items = NULL;
        if (*out == NULL) status = ddb_nomem(err);
    }
    json_decref(bd.items);
    return status;
}

/* Reasons that are no verdict on this transaction: none, or another one
 * in the way (HTTP retries those that are alone). */
static bool contention(const char *code) {
    return strcmp(code, "None") == 0 || strcmp(code, "TransactionConflict") == 0 ||
           strcmp(code, "ThrottlingError") == 0 ||
           strcmp(code, "ProvisionedThroughputExceeded") == 0;
}

/* Reads a cancelled transaction: for each batch whose head condition
 * failed, its stored head. Returns the first batch whose expected revision
 * did not hold (a conflict), or n when every failure was a head at or above
 * the new revisions (a writer's clock behind): then *floor is the highest
 * such head. *other is set when something else cancelled it. */
size_t ddb_cancelled(const plan *p, const http_response *r, char actual[STORE_REVISION_SIZE],
                     char floor[STORE_REVISION_SIZE], const char **other) {
    size_t item = 0, conflict = p->n;
    *other = NULL;
    for (size_t i = 0; i < p->n; i++) {
        if (!guarded(&p->b[i])) continue;
        const char *code = http_cancellation_code(r, item);
        if (code != NULL && strcmp(code, "ConditionalCheckFailed") == 0) {
            const json_t *reasons = http_cancellation_reasons(r);
            const json_t *old = json_object_get(json_array_get(reasons, item), "Item");
            const char *head = ddb_item_s(old, "revision");
            if (head == NULL || !revision_valid(head)) head = STORE_START;
            const char *exp = p->b[i].expected_revision;
            if (exp != NULL && strcmp(exp, head) != 0) {
                if (conflict == p->n) {
                    conflict = i;
                    ddb_copy_rev(actual, head);
                }
            } else if (strcmp(head, floor) > 0) {
                ddb_copy_rev(floor, head);
            }
        } else if (code != NULL && !contention(code) && *other == NULL) {
            *other = code;
        }
        item++;
    }
    /* The store head: another append committed revisions at or above ours. */
    const char *code = http_cancellation_code(r, item);
    if (code != NULL && strcmp(code, "ConditionalCheckFailed") == 0) {
        const json_t *old =
            json_object_get(json_array_get(http_cancellation_reasons(r), item), "Item");
        const char *last = ddb_item_s(old, "revision");
        if (last != NULL && revision_valid(last) && strcmp(last, floor) > 0)
            ddb_copy_rev(floor, last);
    } else if (code != NULL && !contention(code) && *other == NULL) {
        *other = code;
    }
    item++;
    /* Markers and events carry no condition; a reason there is not ours. */
    for (size_t k = item; *other == NULL; k++) {
        const char *code = http_cancellation_code(r, k);
        if (code == NULL) break;
        if (!contention(code)) *other = code;
    }
    return conflict;
}

/* Converts every event's data once, for every attempt to reuse, and makes
 * room for the revisions. */
static store_status convert_events(plan *p, converted *cv, bool many, char **err) {
    if ((p->revs = calloc(p->total, sizeof *p->revs)) == NULL) return ddb_nomem(err);
    p->cv = cv;
    for (size_t i = 0, at = 0; i < p->n; i++) {
        for (size_t j = 0; j < p->b[i].count; j++, at++) {
            char *why = NULL;
            const store_pending *e = &p->b[i].events[j];
            store_status status =
                ddb_value_from_json(e->data, e->data_len, &cv[at].data, &cv[at].floats, &why);
            if (status != STORE_OK) {
                char where[48] = "";
                if (many) snprintf(where, sizeof where, "batch %zu: ", i + 1);
                status = store_fail(err, status, "dynamodb: %sevent %zu: data %s", where, j + 1,
                                    why != NULL ? why : "cannot be stored");
                free(why);
                return status;
            }
        }
    }
    return STORE_OK;
}

/* Reads the answer to one attempt: committed, unchanged, a conflict or an
 * error (*again false), or cancelled by a head above the revisions it
 * numbered, a writer's clock behind (*again true, *floor raised to it). */
static store_status read_answer(ddb_store *s, const plan *p, const http_response *r,
                                const char *key_token, char floor[STORE_REVISION_SIZE],
                                store_append_result *res, bool *again, char **err) {
    *again = false;
    if (r->error == NULL) {
        res->outcome = STORE_APPENDED;
        res->count = p->total;
        ddb_copy_rev(res->revision, p->revs[p->total - 1]);
        ddb_copy_rev(s->last, p->revs[p->total - 1]);
        ddb_wake_all();
        return STORE_OK;
    }
    if (strcmp(r->error, "IdempotentParameterMismatchException") == 0) {
        /* The token committed another body within DynamoDB's 10 minutes:
         * an earlier append with this idempotency key. */
        if (key_token != NULL) return STORE_OK; /* unchanged */
        return ddb_answer_fail(s, r, "TransactWriteItems", err);
    }
    char actual[STORE_REVISION_SIZE] = "", high[STORE_REVISION_SIZE];
    const char *other;
    ddb_copy_rev(high, floor);
    size_t bad = ddb_cancelled(p, r, actual, high, &other);
    if (other != NULL)
        return store_fail(err, strcmp(other, "ValidationError") == 0 ? STORE_LIMIT : STORE_IO,
                          "dynamodb TransactWriteItems: cancelled: %s (%s)", other,
                          r->message != NULL ? r->message : "no message");
    if (bad < p->n) {
        res->outcome = STORE_CONFLICT;
        res->failed = bad;
        ddb_copy_rev(res->expected, p->b[bad].expected_revision);
        ddb_copy_rev(res->actual, actual);
        return STORE_OK;
    }
    if (strcmp(high, floor) <= 0)
        return store_fail(err, STORE_IO, "dynamodb TransactWriteItems: cancelled: %s",
                          r->message != NULL ? r->message : "no reason given");
    /* Go above it and try again, under the same token (a cancelled
     * transaction does not use it up). */
    ddb_copy_rev(floor, high);
    *again = true;
    return STORE_OK;
}

/* Numbers, builds and sends the transaction until it is answered for
 * good. The time and the token are fixed before the first attempt, so a
 * resend is the same request. */
static store_status attempts(ddb_store *s, plan *p, const char *key_token, bool many,
                             store_append_result *res, char **err) {
    store_status status = STORE_OK;
    http_response r = {0};
    json_t *body = NULL;
    char floor[STORE_REVISION_SIZE];
    bool again = true;
    revision_timestamp(s->base.env.now_ms(s->base.env.ctx), p->committed_at);
    make_token(s, key_token, p->token);
    ddb_copy_rev(floor, STORE_START);

    for (int attempt = 1; status == STORE_OK && again; attempt++) {
        if (attempt > SKEW_TRIES) {
            status = store_fail(err, STORE_IO,
                                "dynamodb: could not number the events above "
                                "the key's head after %d attempts (other writers keep "
                                "appending to it)",
                                SKEW_TRIES);
            break;
        }
        number(s, p, floor);
        if ((status = build(s, p, many, &body, err)) != STORE_OK) break;
        status = ddb_call(s, "TransactWriteItems", body, true,
                          (const char *const[]){"TransactionCanceledException",
                                                "IdempotentParameterMismatchException", NULL},
                          &r, err);
        body = NULL;
        if (status == STORE_OK) status = read_answer(s, p, &r, key_token, floor, res, &again, err);
    }
    json_decref(body);
    http_response_free(&r);
    return status;
}

/* The one write path: append is append_many with one batch. */
static store_status commit(ddb_store *s, const store_batch *b, size_t n, const char *key_token,
                           bool many, store_append_result *res, char **err) {
    store_status status;
    size_t total;
    plan p = {.b = b, .n = n};
    converted *cv = NULL;

    memset(res, 0, sizeof *res);
    res->outcome = STORE_UNCHANGED;
    status = store_check_batches(b, n, key_token, many, &limits, &total, err);
    if (status != STORE_OK || total == 0) return status;
    if (total > TRANSACT_ITEMS)
        return store_fail(err, STORE_LIMIT,
                          "dynamodb: %zu events cannot go in one DynamoDB "
                          "transaction (at most %d items, events included): append at most "
                          "%d events to one key at a time",
                          total, TRANSACT_ITEMS, TRANSACT_ITEMS - 3);
    p.total = total;

    if ((cv = calloc(total, sizeof *cv)) == NULL) status = ddb_nomem(err);
    if (status == STORE_OK) status = convert_events(&p, cv, many, err);
    if (status == STORE_OK) status = attempts(s, &p, key_token, many, res, err);

    for (size_t i = 0; cv != NULL && i < total; i++) {
        json_decref(cv[i].data);
        json_decref(cv[i].floats);
    }
    free(cv);
    free(p.revs);
    return status;
}

store_status ddb_append(store *st, const char *key, const store_pending *events, size_t count,
                        const store_append_opts *opts, store_append_result *result, char **err) {
    store_batch batch = {key, events, count, opts != NULL ? opts->expected_revision : NULL};
    return commit((ddb_store *)st, &batch, 1, opts != NULL ? opts->idempotency_key : NULL, false,
                  result, err);
}

store_status ddb_append_many(store *st, const store_batch *batches, size_t n,
                             const char *idempotency_key, store_append_result *result, char **err) {
    return commit((ddb_store *)st, batches, n, idempotency_key, true, result, err);
}
