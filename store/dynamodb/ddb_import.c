/*
 * ddb_import.c - import for the DynamoDB backend: events copied from
 * another store, written with their revisions, committedAt and correlation
 * ids (store.h, "Copying").
 *
 * Provides ddb_import. Uses ddb_store.h, ddb_value.h and sigv4.h (its
 * SHA-256). Every TransactWriteItems carries as many whole appends as fit
 * DynamoDB's limits (100 items, 4 MB) with the items an append writes: the
 * events, each key's head, the store head and the slice markers, so Aeon's
 * reader and read_all see them as if appended here. An append larger than
 * one transaction (more than 97 events of one key, fewer across keys) is
 * written as several transactions in revision order: each is atomic, the
 * append as a whole is not (result->split counts such appends), so a
 * reader may see its first part before the rest commits, and a copy
 * killed between them completes it when run again. Heads and the store
 * head are conditional on "absent or not newer", so they never move back;
 * a head found newer (a target that has later events, copied into with
 * --force) is left out and the transaction sent again without it. Event
 * puts are unconditional: a resumed copy writes the same item again, which
 * changes nothing. The ClientRequestToken hashes the table, the first and
 * last revision and the attempt, so the HTTP client's resends are one
 * request. An event's `more` (its append's events after it) is stored as
 * the attribute `more`, absent when 0.
 */
#include "ddb_store.h"
#include "ddb_value.h"
#include "sigv4.h"

#define IMPORT_TRIES 3 /* sends of one transaction, dropping newer heads */

/* The events of one transaction, events[from, to). */
typedef struct part {
    const store_event *ev;                           /* the call's events */
    const converted *cv;                             /* their data */
    size_t from, to;                                 /* the range sent */
    const char *keys[TRANSACT_ITEMS];                /* its distinct keys */
    char heads[TRANSACT_ITEMS][STORE_REVISION_SIZE]; /* each key's last revision */
    bool dropped[TRANSACT_ITEMS];                    /* heads left out (newer in the store) */
    size_t nkeys;                                    /* keys */
    bool store_head_dropped;                         /* the store head is newer */
    char slices[TRANSACT_ITEMS][SLICE_LEN + 1];      /* slice markers */
    size_t nslices;                                  /* markers */
} part;

static size_t find_key(const part *p, const char *key) {
    for (size_t k = 0; k < p->nkeys; k++)
        if (strcmp(p->keys[k], key) == 0) return k;
    return p->nkeys;
}

static bool has_slice(const part *p, const char *rev) {
    for (size_t k = 0; k < p->nslices; k++)
        if (strncmp(p->slices[k], rev, SLICE_LEN) == 0) return true;
    return false;
}

/* A conditional put of a head item ({pk, sk, revision}), never backwards. */
static json_t *head_item(ddb_store *s, const char *pk, const char *sk, const char *rev) {
    return json_pack("{s:{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}}, s:s, s:{s:s}, s:{s:{s:s}}}}", "Put",
                     "TableName", s->metadata, "Item", "pk", "S", pk, "sk", "S", sk, "revision",
                     "S", rev, "ConditionExpression",
                     "attribute_not_exists(#revision) OR #revision <= :rev",
                     "ExpressionAttributeNames", "#revision", "revision",
                     "ExpressionAttributeValues", ":rev", "S", rev);
}

/* Sizes of the items an event adds to a transaction. */
static size_t event_size(const store_event *e, const converted *cv) {
    store_pending pe = {e->type, e->data, e->data_len, e->correlation_id};
    json_t *item = ddb_event_item(e->key, e->revision, e->committed_at, &pe, cv, e->more);
    size_t size = item != NULL ? ddb_item_size(item) : DDB_ITEM_MAX + 1;
    json_decref(item);
    return size;
}

/* Chooses the events of the next transaction from `from` on: whole appends
 * while they fit, else as much of one append as fits. *split is set when
 * the cut falls inside an append. */
static store_status plan_part(ddb_store *s, part *p, const size_t *sizes, size_t count, bool *split,
                              char **err) {
    size_t items = 1, bytes = 64, end = p->from, boundary = p->from;
    p->nkeys = p->nslices = 0;
    for (size_t i = p->from; i < count; i++) {
        const store_event *e = &p->ev[i];
        size_t k = find_key(p, e->key);
        bool new_slice = !has_slice(p, e->revision);
        size_t add = 1 + (k == p->nkeys) + new_slice;
        size_t more_bytes =
            sizes[i] + (k == p->nkeys ? strlen(e->key) + 64 : 0) + (new_slice ? 32 : 0);
        if (items + add > TRANSACT_ITEMS || bytes + more_bytes > TRANSACT_BYTES) break;
        if (sizes[i] > DDB_ITEM_MAX)
            return store_fail(err, STORE_LIMIT,
                              "dynamodb: import: event %s of key \"%s\" is "
                              "%zu bytes as a DynamoDB item, over DynamoDB's limit of %d "
                              "bytes (400 KB); nothing more was imported",
                              e->revision, e->key, sizes[i], DDB_ITEM_MAX);
        items += add;
        bytes += more_bytes;
        if (k == p->nkeys) p->keys[p->nkeys++] = e->key;
        ddb_copy_rev(p->heads[k], e->revision);
        if (new_slice) ddb_slice_of(e->revision, p->slices[p->nslices++]);
        end = i + 1;
        if (e->more == 0) boundary = i + 1;
    }
    (void)s;
    *split = false;
    if (end < count && boundary > p->from) {
        end = boundary; /* whole appends only: recount what they need */
        p->to = end;
        p->nkeys = p->nslices = 0;
        for (size_t i = p->from; i < end; i++) {
            size_t k = find_key(p, p->ev[i].key);
            if (k == p->nkeys) p->keys[p->nkeys++] = p->ev[i].key;
            ddb_copy_rev(p->heads[k], p->ev[i].revision);
            if (!has_slice(p, p->ev[i].revision))
                ddb_slice_of(p->ev[i].revision, p->slices[p->nslices++]);
        }
    } else {
        p->to = end;
        *split = end < count && p->ev[end - 1].more > 0;
    }
    memset(p->dropped, 0, sizeof p->dropped);
    p->store_head_dropped = false;
    return STORE_OK;
}

/* The TransactWriteItems body: heads, store head, markers, events. */
static json_t *part_body(ddb_store *s, const part *p, int attempt) {
    json_t *items = json_array();
    char text[3 * STORE_REVISION_SIZE + 16], hash[SIGV4_HASH_SIZE], token[TOKEN_LEN + 1];
    if (items == NULL) return NULL;
    for (size_t k = 0; k < p->nkeys; k++)
        if (!p->dropped[k] &&
            json_array_append_new(items, head_item(s, p->keys[k], "head", p->heads[k])) != 0)
            goto fail;
    const char *last = p->ev[p->to - 1].revision;
    if (!p->store_head_dropped &&
        json_array_append_new(items, head_item(s, "slice", STORE_HEAD_SK, last)) != 0)
        goto fail;
    for (size_t k = 0; k < p->nslices; k++)
        if (json_array_append_new(items, json_pack("{s:{s:s, s:{s:{s:s}, s:{s:s}}}}", "Put",
                                                   "TableName", s->metadata, "Item", "pk", "S",
                                                   "slice", "sk", "S", p->slices[k])) != 0)
            goto fail;
    for (size_t i = p->from; i < p->to; i++) {
        const store_event *e = &p->ev[i];
        store_pending pe = {e->type, e->data, e->data_len, e->correlation_id};
        json_t *item =
            ddb_event_item(e->key, e->revision, e->committed_at, &pe, &p->cv[i], e->more);
        if (item == NULL ||
            json_array_append_new(items, json_pack("{s:{s:s, s:o}}", "Put", "TableName", s->events,
                                                   "Item", item)) != 0)
            goto fail;
    }
    int n = snprintf(text, sizeof text, "%s/%s/%d/", p->ev[p->from].revision, last, attempt);
    char *keyed = malloc(strlen(s->events) + (size_t)n + 1);
    if (keyed == NULL) goto fail;
    sprintf(keyed, "%s%s", text, s->events);
    sigv4_sha256_hex(keyed, strlen(keyed), hash);
    free(keyed);
    memcpy(token, hash, TOKEN_LEN);
    token[TOKEN_LEN] = '\0';
    return json_pack("{s:o, s:s}", "TransactItems", items, "ClientRequestToken", token);
fail:
    json_decref(items);
    return NULL;
}

/* After a cancellation: marks the heads whose condition failed (newer in
 * the store) to be left out. False when something else cancelled it. */
static bool drop_newer(part *p, const http_response *r, const char **other) {
    size_t item = 0;
    bool any = false;
    *other = NULL;
    for (size_t k = 0; k <= p->nkeys; k++) {
        bool *dropped = k < p->nkeys ? &p->dropped[k] : &p->store_head_dropped;
        if (*dropped) continue;
        const char *code = http_cancellation_code(r, item++);
        if (code != NULL && strcmp(code, "ConditionalCheckFailed") == 0)
            *dropped = any = true;
        else if (code != NULL && strcmp(code, "None") != 0 && *other == NULL)
            *other = code;
    }
    for (size_t k = item; *other == NULL; k++) {
        const char *code = http_cancellation_code(r, k);
        if (code == NULL) break;
        if (strcmp(code, "None") != 0) *other = code;
    }
    return any && *other == NULL;
}

static store_status send_part(ddb_store *s, part *p, char **err) {
    store_status status = STORE_OK;
    for (int attempt = 1;; attempt++) {
        http_response r = {0};
        json_t *body = part_body(s, p, attempt);
        if (body == NULL) return ddb_nomem(err);
        status = ddb_call(s, "TransactWriteItems", body, true,
                          (const char *const[]){"TransactionCanceledException", NULL}, &r, err);
        const char *other = NULL;
        bool again = status == STORE_OK && r.error != NULL && drop_newer(p, &r, &other);
        if (status == STORE_OK && r.error != NULL && !again)
            status = store_fail(err,
                                other != NULL && strcmp(other, "ValidationError") == 0 ? STORE_LIMIT
                                                                                       : STORE_IO,
                                "dynamodb: import: TransactWriteItems cancelled: %s (%s)",
                                other != NULL ? other : "no reason given",
                                r.message != NULL ? r.message : "no message");
        http_response_free(&r);
        if (!again || status != STORE_OK) return status;
        if (attempt >= IMPORT_TRIES)
            return store_fail(err, STORE_IO,
                              "dynamodb: import: heads kept moving after %d "
                              "attempts",
                              attempt);
    }
}

store_status ddb_import(store *st, const store_event *events, size_t count,
                        store_import_result *res, char **err) {
    ddb_store *s = (ddb_store *)st;
    store_status status = STORE_NOMEM;
    converted *cv = NULL;
    size_t *sizes = NULL;
    part *p = NULL;
    bool splitting = false;

    memset(res, 0, sizeof *res);
    for (size_t i = 0; i < count; i++) {
        const store_event *e = &events[i];
        const char *why;
        if ((why = store_check_text(e->key, false)) != NULL ||
            (why = store_check_text(e->type, false)) != NULL ||
            (e->correlation_id != NULL && (why = store_check_text(e->correlation_id, false))))
            return store_fail(err, STORE_INVALID, "dynamodb: import: event %s: %s", e->revision,
                              why);
        if (!revision_valid(e->revision) ||
            (i > 0 && strcmp(events[i - 1].revision, e->revision) >= 0))
            return store_fail(err, STORE_INVALID,
                              "dynamodb: import: revision \"%s\" is not "
                              "a revision above the one before it",
                              e->revision);
        if ((status = ddb_check_key(e->key, err)) != STORE_OK) return status;
    }
    if (count == 0) return STORE_OK;
    status = STORE_NOMEM;
    if ((cv = calloc(count, sizeof *cv)) == NULL ||
        (sizes = calloc(count, sizeof *sizes)) == NULL || (p = calloc(1, sizeof *p)) == NULL)
        goto nomem;
    for (size_t i = 0; i < count; i++) {
        char *why = NULL;
        status = ddb_value_from_json(events[i].data, events[i].data_len, &cv[i].data, &cv[i].floats,
                                     &why);
        if (status != STORE_OK) {
            status = store_fail(err, status, "dynamodb: import: event %s: data %s",
                                events[i].revision, why != NULL ? why : "cannot be stored");
            free(why);
            goto done;
        }
        sizes[i] = event_size(&events[i], &cv[i]);
    }
    p->ev = events;
    p->cv = cv;
    for (p->from = 0; p->from < count; p->from = p->to) {
        bool split = false;
        if ((status = plan_part(s, p, sizes, count, &split, err)) != STORE_OK ||
            (status = send_part(s, p, err)) != STORE_OK)
            goto done;
        res->imported += p->to - p->from;
        res->writes++;
        if (split && !splitting) res->split++;
        splitting = split;
    }
    ddb_wake_all();
    status = STORE_OK;
    goto done;
nomem:
    status = ddb_nomem(err);
done:
    if (cv != NULL)
        for (size_t i = 0; i < count; i++) {
            json_decref(cv[i].data);
            json_decref(cv[i].floats);
        }
    free(cv);
    free(sizes);
    free(p);
    return status;
}
