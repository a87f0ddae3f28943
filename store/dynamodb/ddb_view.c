/*
 * ddb_view.c - snapshots and views of the DynamoDB backend: a key's
 * snapshot beside its head in the metadata table (and the list of them, by
 * a Scan), and read-model documents with each view's revision in the
 * views table.
 */
#include "ddb_store.h"

/* ------------------------------------------------------------------ */
/* Snapshots                                                           */

/* Puts `item` - its keys and `revision`, and the JSON text `value` as its
 * attribute `vp->field` - into `vp->table` unless the item there has a newer
 * revision: an equal one overwrites, so replaying a batch or resending a put
 * is harmless. `name` names the item when it is over DynamoDB's limit.
 * Takes item; *stored says whether it was put. */
typedef struct versioned_put {
    const char *table;  /* the table it goes into */
    const char *field;  /* the attribute holding the value: "state", "doc" */
    const char *floats; /* the one holding its floats: "stateFloats", "docFloats" */
    const char *what;   /* the value in messages: "snapshot state" */
} versioned_put;

static store_status put_newer(ddb_store *s, const versioned_put *vp, json_t *item,
                              const char *value, size_t value_len, const char *revision,
                              const char *name, bool *stored, char **err) {
    store_status status;
    json_t *av = NULL, *floats = NULL;
    http_response r = {0};
    char *why = NULL;
    *stored = false;
    if (item == NULL || name == NULL) {
        status = ddb_nomem(err);
        goto done;
    }
    if ((status = ddb_value_from_json(value, value_len, &av, &floats, &why)) != STORE_OK) {
        status = store_fail(err, status, "dynamodb: %s %s", vp->what, why ? why : "");
        goto done;
    }
    if (json_object_set_new(item, vp->field, av) != 0 ||
        (floats != NULL && json_object_set(item, vp->floats, floats) != 0)) {
        status = ddb_nomem(err);
        goto done;
    }
    size_t size = ddb_item_size(item);
    if (size > DDB_ITEM_MAX) {
        status = store_fail(err, STORE_LIMIT,
                            "dynamodb: %s is %zu bytes as a DynamoDB item, "
                            "over DynamoDB's limit of %d bytes (400 KB)",
                            name, size, DDB_ITEM_MAX);
        goto done;
    }
    json_t *body = json_pack("{s:s, s:O, s:s, s:{s:s}, s:{s:{s:s}}}", "TableName", vp->table,
                             "Item", item, "ConditionExpression",
                             "attribute_not_exists(#revision) OR #revision <= :revision",
                             "ExpressionAttributeNames", "#revision", "revision",
                             "ExpressionAttributeValues", ":revision", "S", revision);
    status = ddb_call(s, "PutItem", body, true,
                      (const char *const[]){"ConditionalCheckFailedException", NULL}, &r, err);
    if (status == STORE_OK) *stored = r.error == NULL;
done:
    free(why);
    json_decref(floats);
    json_decref(item);
    http_response_free(&r);
    return status;
}

store_status ddb_save_snapshot(store *st, const char *key, const char *revision, const char *state,
                               size_t state_len, bool *saved, char **err) {
    ddb_store *s = (ddb_store *)st;
    store_status status;
    *saved = false;
    if ((status = ddb_check_key(key, err)) != STORE_OK) return status;
    if ((status = store_check_document("snapshot revision", revision, "snapshot state", state,
                                       state_len, err)) != STORE_OK)
        return status;
    const versioned_put vp = {s->metadata, "state", "stateFloats", "snapshot state"};
    json_t *item = json_pack("{s:{s:s}, s:{s:s}, s:{s:s}}", "pk", "S", key, "sk", "S", "snapshot",
                             "revision", "S", revision);
    char *name = store_format("the snapshot of key \"%s\"", key);
    status = put_newer(s, &vp, item, state, state_len, revision, name, saved, err);
    free(name);
    return status;
}

/* One page of a Query or Scan (body, taken over), resumed at *resume when
 * set; *resume then says where the next page starts (NULL after the last). */
static store_status next_page(ddb_store *s, const char *op, json_t *body, json_t **resume,
                              http_response *r, char **err) {
    if (body != NULL && *resume != NULL) json_object_set(body, "ExclusiveStartKey", *resume);
    store_status status = ddb_call(s, op, body, true, NULL, r, err);
    if (status == STORE_OK) {
        json_decref(*resume);
        *resume = json_incref(json_object_get(r->json, "LastEvaluatedKey"));
    }
    return status;
}

/* A snapshot item's revision and state (malloc'd JSON text). */
static store_status snapshot_of(ddb_store *s, const char *key, const json_t *item,
                                char revision[STORE_REVISION_SIZE], char **state, size_t *state_len,
                                char **err) {
    const char *rev = ddb_item_s(item, "revision");
    const json_t *value = json_object_get(item, "state");
    if (rev == NULL || value == NULL || (strcmp(rev, STORE_START) != 0 && !revision_valid(rev)))
        return store_fail(err, STORE_IO,
                          "dynamodb: the snapshot item of key \"%s\" in %s is "
                          "malformed",
                          key, s->metadata);
    store_status status =
        ddb_value_to_json(value, json_object_get(item, "stateFloats"), state, state_len, err);
    if (status == STORE_OK) ddb_copy_rev(revision, rev);
    return status;
}

store_status ddb_snapshot(store *st, const char *key, store_snapshot *snap, bool *found,
                          char **err) {
    ddb_store *s = (ddb_store *)st;
    http_response r = {0};
    const json_t *item;
    *found = false;
    memset(snap, 0, sizeof *snap);
    store_status status = ddb_check_key(key, err);
    if (status == STORE_OK &&
        (status = ddb_get_meta(s, key, "snapshot", &r, &item, err)) == STORE_OK && item != NULL &&
        (status = snapshot_of(s, key, item, snap->revision, &snap->state, &snap->state_len, err)) ==
            STORE_OK)
        *found = true;
    http_response_free(&r);
    return status;
}

/* The snapshot items of the metadata table, found by a Scan (they share
 * it with heads, slice markers and checkpoints, under the keys' own
 * partition keys), resumed after key `after`'s snapshot item; each page
 * looks at up to 1000 items, so memory stays flat however many keys. */
store_status ddb_snapshot_list(store *st, const char *after, size_t limit, store_view_doc **docs,
                               size_t *n, char **err) {
    ddb_store *s = (ddb_store *)st;
    http_response r = {0};
    store_status status;
    json_t *resume = NULL;
    store_view_doc *out = NULL;
    size_t count = 0;
    *docs = NULL;
    *n = 0;
    if (after != NULL && (status = ddb_check_key(after, err)) != STORE_OK) return status;
    if (limit < 1 || limit > 100000)
        return store_fail(err, STORE_INVALID, "snapshot list limit must be 1 to 100000");
    if ((out = calloc(limit, sizeof *out)) == NULL ||
        (after != NULL && (resume = json_pack("{s:{s:s}, s:{s:s}}", "pk", "S", after, "sk", "S",
                                              "snapshot")) == NULL)) {
        status = ddb_nomem(err);
        goto done;
    }
    do {
        json_t *body =
            json_pack("{s:s, s:s, s:{s:s}, s:{s:{s:s}}, s:i, s:b}", "TableName", s->metadata,
                      "FilterExpression", "#sk = :sk", "ExpressionAttributeNames", "#sk", "sk",
                      "ExpressionAttributeValues", ":sk", "S", "snapshot", "Limit", 1000,
                      "ConsistentRead", 1);
        if ((status = next_page(s, "Scan", body, &resume, &r, err)) != STORE_OK) goto done;
        json_t *items = json_object_get(r.json, "Items");
        /* Stopping inside a page is fine: the next call resumes after the
         * last item handed out. */
        for (size_t i = 0; i < json_array_size(items) && count < limit; i++) {
            const json_t *item = json_array_get(items, i);
            const char *key = ddb_item_s(item, "pk");
            if (key == NULL) {
                status = store_fail(err, STORE_IO,
                                    "dynamodb: a snapshot item in %s has no "
                                    "key",
                                    s->metadata);
                goto done;
            }
            store_view_doc *d = &out[count++];
            if ((d->id = strdup(key)) == NULL) {
                status = ddb_nomem(err);
                goto done;
            }
            if ((status = snapshot_of(s, key, item, d->revision, &d->doc, &d->doc_len, err)) !=
                STORE_OK)
                goto done;
        }
        http_response_free(&r);
    } while (resume != NULL && count < limit);
    status = STORE_OK;
    *docs = out;
    *n = count;
    out = NULL;

done:
    json_decref(resume);
    http_response_free(&r);
    store_view_docs_free(out, count);
    return status;
}

/* ------------------------------------------------------------------ */
/* Views                                                               */

/* A view is one partition of the views table: its documents
 * {pk=VIEW, sk="doc#ID", id, revision, doc, docFloats} and its own item
 * {pk=VIEW, sk="view", revision}, the revision it has seen. */

#define VIEW_SK_MAX 1024 /* a sort key value, at most */

static store_status check_view(ddb_store *s, const char *view, const char *id, char **err) {
    if (s->views == NULL)
        return store_fail(err, STORE_IO,
                          "dynamodb: store %s has no views table: its Aeon "
                          "config names none (add \"viewsTable\": \"%s-views\" to it and run "
                          "`aeon-host store deploy`)",
                          s->name, s->name);
    store_status status = store_check_view(view, id, err);
    if (status != STORE_OK) return status;
    if (strlen(view) > KEY_BYTES)
        return store_fail(err, STORE_LIMIT,
                          "dynamodb: view name is %zu bytes; DynamoDB "
                          "takes at most %d in a partition key",
                          strlen(view), KEY_BYTES);
    if (id != NULL && strlen(id) + 4 > VIEW_SK_MAX)
        return store_fail(err, STORE_LIMIT,
                          "dynamodb: view document id is %zu bytes; "
                          "DynamoDB takes at most %d in a sort key (with \"doc#\")",
                          strlen(id), VIEW_SK_MAX);
    return STORE_OK;
}

static char *doc_sk(const char *id) {
    size_t n = strlen(id) + 5;
    char *sk = malloc(n);
    if (sk != NULL) snprintf(sk, n, "doc#%s", id);
    return sk;
}

store_status ddb_view_get(store *st, const char *view, const char *id, char **doc, size_t *doc_len,
                          char revision[STORE_REVISION_SIZE], bool *found, char **err) {
    ddb_store *s = (ddb_store *)st;
    http_response r = {0};
    store_status status;
    char *sk = NULL;
    *doc = NULL;
    *doc_len = 0;
    *found = false;
    ddb_copy_rev(revision, STORE_START);
    if ((status = check_view(s, view, id, err)) != STORE_OK) return status;
    if ((sk = doc_sk(id)) == NULL) return ddb_nomem(err);
    json_t *body = json_pack("{s:s, s:{s:{s:s}, s:{s:s}}, s:b}", "TableName", s->views, "Key", "pk",
                             "S", view, "sk", "S", sk, "ConsistentRead", 1);
    free(sk);
    if ((status = ddb_call(s, "GetItem", body, true, NULL, &r, err)) == STORE_OK) {
        const json_t *item = json_object_get(r.json, "Item");
        const char *rev = ddb_item_s(item, "revision");
        const json_t *d = json_object_get(item, "doc");
        if (item == NULL) {
            /* none */
        } else if (rev == NULL || d == NULL ||
                   (strcmp(rev, STORE_START) != 0 && !revision_valid(rev))) {
            status = store_fail(err, STORE_IO,
                                "dynamodb: document \"%s\" of view \"%s\" in "
                                "%s is malformed",
                                id, view, s->views);
        } else if ((status = ddb_value_to_json(d, json_object_get(item, "docFloats"), doc, doc_len,
                                               err)) == STORE_OK) {
            ddb_copy_rev(revision, rev);
            *found = true;
        }
    }
    http_response_free(&r);
    return status;
}

store_status ddb_view_put(store *st, const char *view, const char *id, const char *doc,
                          size_t doc_len, const char *revision, bool *stored, char **err) {
    ddb_store *s = (ddb_store *)st;
    store_status status;
    *stored = false;
    if ((status = check_view(s, view, id, err)) != STORE_OK) return status;
    if ((status = store_check_document("view revision", revision, "view document", doc, doc_len,
                                       err)) != STORE_OK)
        return status;
    char *sk = doc_sk(id);
    if (sk == NULL) return ddb_nomem(err);
    const versioned_put vp = {s->views, "doc", "docFloats", "view document"};
    json_t *item = json_pack("{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}", "pk", "S", view, "sk", "S", sk,
                             "id", "S", id, "revision", "S", revision);
    char *name = store_format("document \"%s\" of view \"%s\"", id, view);
    status = put_newer(s, &vp, item, doc, doc_len, revision, name, stored, err);
    free(name);
    free(sk);
    return status;
}

store_status ddb_view_revision(store *st, const char *view, char out[STORE_REVISION_SIZE],
                               char **err) {
    ddb_store *s = (ddb_store *)st;
    http_response r = {0};
    store_status status;
    ddb_copy_rev(out, STORE_START);
    if ((status = check_view(s, view, NULL, err)) != STORE_OK) return status;
    json_t *body = json_pack("{s:s, s:{s:{s:s}, s:{s:s}}, s:b}", "TableName", s->views, "Key", "pk",
                             "S", view, "sk", "S", "view", "ConsistentRead", 1);
    if ((status = ddb_call(s, "GetItem", body, true, NULL, &r, err)) == STORE_OK) {
        const char *rev = ddb_item_s(json_object_get(r.json, "Item"), "revision");
        if (rev != NULL && revision_valid(rev)) ddb_copy_rev(out, rev);
    }
    http_response_free(&r);
    return status;
}

/* Never backwards: the condition makes an older revision a no-op. */
store_status ddb_view_advance(store *st, const char *view, const char *revision, char **err) {
    ddb_store *s = (ddb_store *)st;
    http_response r = {0};
    store_status status;
    if ((status = check_view(s, view, NULL, err)) != STORE_OK) return status;
    if ((status = store_check_revision("view revision", revision, false, err)) != STORE_OK)
        return status;
    json_t *body =
        json_pack("{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}}, s:s, s:{s:s}, s:{s:{s:s}}}", "TableName",
                  s->views, "Item", "pk", "S", view, "sk", "S", "view", "revision", "S", revision,
                  "ConditionExpression", "attribute_not_exists(#revision) OR #revision < :revision",
                  "ExpressionAttributeNames", "#revision", "revision", "ExpressionAttributeValues",
                  ":revision", "S", revision);
    status = ddb_call(s, "PutItem", body, true,
                      (const char *const[]){"ConditionalCheckFailedException", NULL}, &r, err);
    http_response_free(&r);
    return status;
}

/* Deletes `keys` (an array of {pk, sk} keys, at most 25) from table, going
 * on with what DynamoDB leaves unprocessed. */
static store_status delete_keys(ddb_store *s, const char *table, json_t *keys, char **err) {
    http_response r = {0};
    store_status status = STORE_OK;
    json_t *requests = json_array();
    size_t i;
    json_t *k;
    if (requests == NULL) return ddb_nomem(err);
    json_array_foreach(keys, i, k) {
        if (json_array_append_new(requests, json_pack("{s:{s:O}}", "DeleteRequest", "Key", k)))
            goto nomem;
    }
    for (int attempt = 0; json_array_size(requests) > 0; attempt++) {
        if (attempt >= 10) {
            status = store_fail(err, STORE_IO,
                                "dynamodb BatchWriteItem: %zu deletes still "
                                "unprocessed after %d attempts",
                                json_array_size(requests), attempt);
            break;
        }
        if (attempt > 0) ddb_nap(50u << (attempt < 6 ? attempt : 6));
        json_t *body = json_pack("{s:{s:O}}", "RequestItems", table, requests);
        if ((status = ddb_call(s, "BatchWriteItem", body, true, NULL, &r, err)) != STORE_OK) break;
        json_t *left = json_object_get(json_object_get(r.json, "UnprocessedItems"), table);
        json_decref(requests);
        requests = json_is_array(left) ? json_incref(left) : json_array();
        http_response_free(&r);
        if (requests == NULL) goto nomem;
    }
    goto done;
nomem:
    status = ddb_nomem(err);
done:
    json_decref(requests);
    http_response_free(&r);
    return status;
}

/* Pages of 25 keys (the view's own item among them), deleted a page at a
 * time; with a limit, pages stop at it, so at most `limit` items go. */
store_status ddb_view_clear(store *st, const char *view, size_t limit, bool *done, char **err) {
    ddb_store *s = (ddb_store *)st;
    http_response r = {0};
    store_status status;
    json_t *resume = NULL;
    size_t deleted = 0;
    if (done != NULL) *done = false;
    if ((status = check_view(s, view, NULL, err)) != STORE_OK) return status;
    do {
        int page = limit == 0 || limit - deleted >= 25 ? 25 : (int)(limit - deleted);
        json_t *body = json_pack("{s:s, s:s, s:s, s:{s:s, s:s}, s:{s:{s:s}}, s:i, s:b}",
                                 "TableName", s->views, "KeyConditionExpression", "#pk = :pk",
                                 "ProjectionExpression", "#pk, #sk", "ExpressionAttributeNames",
                                 "#pk", "pk", "#sk", "sk", "ExpressionAttributeValues", ":pk", "S",
                                 view, "Limit", page, "ConsistentRead", 1);
        if (body != NULL && resume != NULL) json_object_set(body, "ExclusiveStartKey", resume);
        if ((status = ddb_call(s, "Query", body, true, NULL, &r, err)) != STORE_OK) break;
        json_decref(resume);
        resume = json_incref(json_object_get(r.json, "LastEvaluatedKey"));
        json_t *items = json_object_get(r.json, "Items");
        if (json_array_size(items) > 0 &&
            (status = delete_keys(s, s->views, items, err)) != STORE_OK)
            break;
        deleted += json_array_size(items);
        http_response_free(&r);
    } while (resume != NULL && (limit == 0 || deleted < limit));
    if (status == STORE_OK && done != NULL) *done = resume == NULL;
    json_decref(resume);
    http_response_free(&r);
    return status;
}

/* Documents sort as their sort keys, "doc#ID", which is the order of the
 * ids; the range "doc#AFTER" to "doc$" ('$' follows '#') holds every
 * document after AFTER and not the view's own item. BETWEEN includes
 * AFTER itself, which is skipped. Query pages until `limit` documents or
 * the end. */
store_status ddb_view_list(store *st, const char *view, const char *after, size_t limit,
                           store_view_doc **docs, size_t *n, char **err) {
    ddb_store *s = (ddb_store *)st;
    http_response r = {0};
    store_status status;
    json_t *resume = NULL;
    char *lo = NULL;
    store_view_doc *out = NULL;
    size_t count = 0;
    *docs = NULL;
    *n = 0;
    if ((status = check_view(s, view, after, err)) != STORE_OK) return status;
    if (limit < 1 || limit > 100000)
        return store_fail(err, STORE_INVALID, "view list limit must be 1 to 100000");
    if ((out = calloc(limit, sizeof *out)) == NULL ||
        (lo = doc_sk(after != NULL ? after : "")) == NULL) {
        status = ddb_nomem(err);
        goto done;
    }
    do {
        size_t want = limit - count + (after != NULL ? 1 : 0);
        json_t *body =
            json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:{s:s}, s:{s:s}, s:{s:s}}, s:i, s:b}",
                      "TableName", s->views, "KeyConditionExpression",
                      "#pk = :pk AND #sk BETWEEN :lo AND :hi", "ExpressionAttributeNames", "#pk",
                      "pk", "#sk", "sk", "ExpressionAttributeValues", ":pk", "S", view, ":lo", "S",
                      lo, ":hi", "S", "doc$", "Limit", (int)(want > 1000 ? 1000 : want),
                      "ConsistentRead", 1);
        if ((status = next_page(s, "Query", body, &resume, &r, err)) != STORE_OK) goto done;
        json_t *items = json_object_get(r.json, "Items");
        for (size_t i = 0; i < json_array_size(items) && count < limit; i++) {
            const json_t *item = json_array_get(items, i);
            const char *id = ddb_item_s(item, "id"), *rev = ddb_item_s(item, "revision");
            const json_t *d = json_object_get(item, "doc");
            if (id != NULL && after != NULL && strcmp(id, after) == 0) continue;
            if (id == NULL || rev == NULL || d == NULL ||
                (strcmp(rev, STORE_START) != 0 && !revision_valid(rev))) {
                status = store_fail(err, STORE_IO,
                                    "dynamodb: a document of view \"%s\" in %s "
                                    "is malformed",
                                    view, s->views);
                goto done;
            }
            store_view_doc *doc = &out[count++];
            if ((doc->id = strdup(id)) == NULL) {
                status = ddb_nomem(err);
                goto done;
            }
            if ((status = ddb_value_to_json(d, json_object_get(item, "docFloats"), &doc->doc,
                                            &doc->doc_len, err)) != STORE_OK)
                goto done;
            ddb_copy_rev(doc->revision, rev);
        }
        http_response_free(&r);
    } while (resume != NULL && count < limit);
    status = STORE_OK;
    *docs = out;
    *n = count;
    out = NULL;

done:
    json_decref(resume);
    http_response_free(&r);
    free(lo);
    store_view_docs_free(out, count);
    return status;
}
