/*
 * ddb_admin.c - administration of the DynamoDB backend: deploy creates the
 * tables of Aeon's layout and waits for them, destroy deletes them, info
 * describes them.
 */
#include "ddb_store.h"

/* ------------------------------------------------------------------ */
/* Administration                                                      */

/* The tables a store has, with what deploy creates for each. */
typedef enum role { R_EVENTS, R_METADATA, R_VIEWS, R_COUNT } role;
static const char *const role_names[R_COUNT] = {"events", "metadata", "views"};

static const char *table_of(const ddb_store *s, role r) {
    return r == R_EVENTS ? s->events : r == R_METADATA ? s->metadata : s->views;
}

/* DescribeTable: *desc is the Table object (a new reference), or NULL when
 * the table does not exist. */
store_status ddb_describe(ddb_store *s, const char *table, json_t **desc, char **err) {
    http_response r = {0};
    *desc = NULL;
    store_status status =
        ddb_call(s, "DescribeTable", json_pack("{s:s}", "TableName", table), true,
                 (const char *const[]){"ResourceNotFoundException", NULL}, &r, err);
    if (status == STORE_OK && r.error == NULL)
        *desc = json_incref(json_object_get(r.json, "Table"));
    http_response_free(&r);
    return status;
}

/* "HASH name" of a key schema, or NULL. */
static const char *key_attr(const json_t *schema, const char *type) {
    size_t i;
    json_t *k;
    json_array_foreach(schema, i, k) {
        if (json_is_string(json_object_get(k, "KeyType")) &&
            strcmp(json_string_value(json_object_get(k, "KeyType")), type) == 0)
            return json_string_value(json_object_get(k, "AttributeName"));
    }
    return NULL;
}

static bool key_is(const json_t *schema, const char *hash, const char *range) {
    const char *h = key_attr(schema, "HASH"), *r = key_attr(schema, "RANGE");
    return h != NULL && r != NULL && strcmp(h, hash) == 0 && strcmp(r, range) == 0;
}

/* The index named `name` in a table description, or NULL. */
static const json_t *find_index(const json_t *desc, const char *name) {
    size_t i;
    json_t *ix;
    json_array_foreach(json_object_get(desc, "GlobalSecondaryIndexes"), i, ix) {
        const char *n = json_string_value(json_object_get(ix, "IndexName"));
        if (n != NULL && strcmp(n, name) == 0) return ix;
    }
    return NULL;
}

/* Whether an existing table has the layout this store reads; NULL when it
 * does, else what is wrong. */
static const char *layout_problem(const ddb_store *s, role r, const json_t *desc) {
    const json_t *schema = json_object_get(desc, "KeySchema");
    if (r == R_EVENTS) {
        if (!key_is(schema, "key", "revision"))
            return "its primary key is not key (S) + revision (S)";
        const json_t *ix = find_index(desc, s->index);
        if (ix == NULL) return "it has no by-revision global secondary index";
        if (!key_is(json_object_get(ix, "KeySchema"), "slice", "revision"))
            return "its by-revision index is not on slice + revision";
        return NULL;
    }
    return key_is(schema, "pk", "sk") ? NULL : "its primary key is not pk (S) + sk (S)";
}

/* CreateTable with on-demand billing; the events table gets the index and
 * both Aeon tables a NEW_IMAGE stream (Aeon's construct has them). */
static json_t *create_body(const ddb_store *s, role r) {
    const char *table = table_of(s, r);
    if (r == R_EVENTS)
        return json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}], s:[{s:s, s:s}, {s:s, s:s}],"
                         " s:s, s:{s:b, s:s}, s:[{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:{s:s}}]}",
                         "TableName", table, "AttributeDefinitions", "AttributeName", "key",
                         "AttributeType", "S", "AttributeName", "revision", "AttributeType", "S",
                         "AttributeName", "slice", "AttributeType", "S", "KeySchema",
                         "AttributeName", "key", "KeyType", "HASH", "AttributeName", "revision",
                         "KeyType", "RANGE", "BillingMode", "PAY_PER_REQUEST",
                         "StreamSpecification", "StreamEnabled", 1, "StreamViewType", "NEW_IMAGE",
                         "GlobalSecondaryIndexes", "IndexName", s->index, "KeySchema",
                         "AttributeName", "slice", "KeyType", "HASH", "AttributeName", "revision",
                         "KeyType", "RANGE", "Projection", "ProjectionType", "ALL");
    json_t *body = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:[{s:s, s:s}, {s:s, s:s}], s:s}",
                             "TableName", table, "AttributeDefinitions", "AttributeName", "pk",
                             "AttributeType", "S", "AttributeName", "sk", "AttributeType", "S",
                             "KeySchema", "AttributeName", "pk", "KeyType", "HASH", "AttributeName",
                             "sk", "KeyType", "RANGE", "BillingMode", "PAY_PER_REQUEST");
    if (body != NULL && r == R_METADATA &&
        json_object_set_new(body, "StreamSpecification",
                            json_pack("{s:b, s:s}", "StreamEnabled", 1, "StreamViewType",
                                      "NEW_IMAGE")) != 0) {
        json_decref(body);
        return NULL;
    }
    return body;
}

json_t *ddb_table_requests(const ddb_store *s) {
    json_t *list = json_array();
    for (role r = 0; list != NULL && r < R_COUNT; r++) {
        if (table_of(s, r) == NULL) continue;
        json_t *body = create_body(s, r);
        if (body == NULL || json_object_set_new(body, "role", json_string(role_names[r])) != 0 ||
            json_array_append_new(list, body) != 0) {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

static bool active(const json_t *desc) {
    const char *st = json_string_value(json_object_get(desc, "TableStatus"));
    if (st == NULL || strcmp(st, "ACTIVE") != 0) return false;
    size_t i;
    json_t *ix;
    json_array_foreach(json_object_get(desc, "GlobalSecondaryIndexes"), i, ix) {
        const char *is = json_string_value(json_object_get(ix, "IndexStatus"));
        if (is == NULL || strcmp(is, "ACTIVE") != 0) return false;
    }
    return true;
}

/* Polls until the table is ACTIVE (gone = false) or no longer exists
 * (gone = true), backing off from 250 ms to 5 s. */
static store_status wait_for(ddb_store *s, const char *table, bool gone, json_t **last,
                             char **err) {
    uint64_t start = s->base.env.now_ms(s->base.env.ctx), wait = 250;
    *last = NULL;
    for (;;) {
        json_t *desc;
        store_status status = ddb_describe(s, table, &desc, err);
        if (status != STORE_OK) return status;
        if (gone ? desc == NULL : active(desc)) {
            *last = desc;
            return STORE_OK;
        }
        json_decref(desc);
        uint64_t now = s->base.env.now_ms(s->base.env.ctx);
        if (now - start > DEPLOY_WAIT_MS)
            return store_fail(err, STORE_IO,
                              "dynamodb: table %s did not %s within %d "
                              "minutes",
                              table, gone ? "go away" : "become ACTIVE", DEPLOY_WAIT_MS / 60000);
        ddb_nap(wait);
        if (wait < 5000) wait *= 2;
    }
}

/* What info reports of one table. */
static json_t *table_info(const ddb_store *s, role r, const json_t *desc) {
    json_t *t = json_pack("{s:s, s:s}", "role", role_names[r], "name", table_of(s, r));
    if (t == NULL) return NULL;
    if (desc == NULL) {
        json_object_set_new(t, "status", json_string("missing"));
        return t;
    }
    const json_t *schema = json_object_get(desc, "KeySchema");
    const char *h = key_attr(schema, "HASH"), *k = key_attr(schema, "RANGE");
    json_object_set(t, "status", json_object_get(desc, "TableStatus"));
    json_object_set_new(t, "key", json_pack("[s?, s?]", h, k));
    if (json_object_get(desc, "ItemCount") != NULL)
        json_object_set(t, "items", json_object_get(desc, "ItemCount"));
    if (json_object_get(desc, "TableSizeBytes") != NULL)
        json_object_set(t, "bytes", json_object_get(desc, "TableSizeBytes"));
    const json_t *billing =
        json_object_get(json_object_get(desc, "BillingModeSummary"), "BillingMode");
    json_object_set_new(t, "billing",
                        billing != NULL ? json_copy((json_t *)billing)
                                        : json_string("PROVISIONED"));
    const json_t *stream = json_object_get(desc, "StreamSpecification");
    if (json_is_true(json_object_get(stream, "StreamEnabled")))
        json_object_set(t, "stream", json_object_get(stream, "StreamViewType"));
    if (r == R_EVENTS) {
        const json_t *ix = find_index(desc, s->index);
        if (ix != NULL)
            json_object_set_new(t, "index",
                                json_pack("{s:s, s:[s?, s?], s:O?}", "name", s->index, "key",
                                          key_attr(json_object_get(ix, "KeySchema"), "HASH"),
                                          key_attr(json_object_get(ix, "KeySchema"), "RANGE"),
                                          "status", json_object_get(ix, "IndexStatus")));
    }
    const char *problem = layout_problem(s, r, desc);
    if (problem != NULL) json_object_set_new(t, "problem", json_string(problem));
    return t;
}

/* DEPLOY of one table: creates it when missing (desc NULL), refuses one
 * of another layout, waits for it to be ACTIVE. *t is what it reports. */
static store_status deploy_table(ddb_store *s, role ro, const char *table, const json_t *desc,
                                 json_t **t, char **err) {
    http_response r = {0};
    json_t *now = NULL;
    bool created = false;
    if (desc != NULL) {
        const char *problem = layout_problem(s, ro, desc);
        if (problem != NULL)
            return store_fail(err, STORE_IO,
                              "dynamodb: table %s exists but %s: it is not "
                              "an Aeon %s table; use another store name",
                              table, problem, role_names[ro]);
    } else {
        store_status status =
            ddb_call(s, "CreateTable", create_body(s, ro), false,
                     (const char *const[]){"ResourceInUseException", NULL}, &r, err);
        /* In use: another deploy got there first. */
        created = status == STORE_OK && r.error == NULL;
        http_response_free(&r);
        if (status != STORE_OK) return status;
    }
    store_status status = wait_for(s, table, false, &now, err);
    if (status == STORE_OK && (*t = table_info(s, ro, now)) != NULL)
        json_object_set_new(*t, "created", json_boolean(created));
    json_decref(now);
    return status;
}

/* DESTROY of one table: deletes it when it exists and waits until it is
 * gone. */
static store_status destroy_table(ddb_store *s, role ro, const char *table, const json_t *desc,
                                  json_t **t, char **err) {
    http_response r = {0};
    bool deleted = false;
    if (desc != NULL) {
        store_status status =
            ddb_call(s, "DeleteTable", json_pack("{s:s}", "TableName", table), false,
                     (const char *const[]){"ResourceNotFoundException", NULL}, &r, err);
        deleted = status == STORE_OK && r.error == NULL;
        http_response_free(&r);
        json_t *none = NULL;
        if (status == STORE_OK) status = wait_for(s, table, true, &none, err);
        if (status != STORE_OK) return status;
    }
    *t = json_pack("{s:s, s:s, s:b}", "role", role_names[ro], "name", table, "deleted", deleted);
    return STORE_OK;
}

/* The action on every table the store has, each one's report in tables. */
static store_status each_table(ddb_store *s, store_admin action, json_t *tables, char **err) {
    for (role ro = 0; ro < R_COUNT; ro++) {
        const char *table = table_of(s, ro);
        json_t *desc = NULL, *t = NULL;
        if (table == NULL) continue;
        store_status status = ddb_describe(s, table, &desc, err);
        if (status == STORE_OK && action == STORE_INFO)
            t = table_info(s, ro, desc);
        else if (status == STORE_OK && action == STORE_DEPLOY)
            status = deploy_table(s, ro, table, desc, &t, err);
        else if (status == STORE_OK)
            status = destroy_table(s, ro, table, desc, &t, err);
        json_decref(desc);
        if (status != STORE_OK) return status;
        if (t == NULL || json_array_append_new(tables, t) != 0) return ddb_nomem(err);
    }
    return STORE_OK;
}

/* DEPLOY creates what is missing and waits for all to be ACTIVE; a table
 * that exists with another layout is an error, not something to change.
 * DESTROY deletes the tables and waits until they are gone. INFO describes
 * them. A store opened from an Aeon config without "viewsTable" has no
 * views table; it is left out and said so. */
store_status ddb_admin(store *st, store_admin action, char **out, char **err) {
    ddb_store *s = (ddb_store *)st;
    store_status status = STORE_OK;
    json_t *tables = NULL;
    *out = NULL;

    /* Integrity is DynamoDB's own business; the store's invariants would need
     * a scan of every table, which this check does not pay for. */
    if (action == STORE_CHECK)
        return store_fail(err, STORE_IO,
                          "dynamodb does not support store check yet: it "
                          "checks an embedded store's file");
    if (action != STORE_DEPLOY && action != STORE_DESTROY && action != STORE_INFO)
        return store_fail(err, STORE_INVALID, "unknown admin action %d", (int)action);
    json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:s}", "backend", "dynamodb", "name", s->name,
                            "region", s->aws.region, "endpoint", s->aws.endpoint, "credentials",
                            s->aws.credentials_from != NULL ? s->aws.credentials_from : "?");
    if (doc == NULL || (tables = json_array()) == NULL ||
        json_object_set(doc, "tables", tables) != 0 ||
        (s->views == NULL && json_object_set_new(doc, "views",
                                                 json_string("none: the Aeon config names no "
                                                             "viewsTable")) != 0))
        status = ddb_nomem(err);
    if (status == STORE_OK) status = each_table(s, action, tables, err);
    if (status == STORE_OK) {
        json_object_set_new(doc,
                            action == STORE_DEPLOY    ? "deployed"
                            : action == STORE_DESTROY ? "destroyed"
                                                      : "exists",
                            json_true());
        size_t i;
        json_t *t;
        json_array_foreach(tables, i, t) {
            const char *state = json_string_value(json_object_get(t, "status"));
            if (action == STORE_INFO && state != NULL && strcmp(state, "missing") == 0)
                json_object_set_new(doc, "exists", json_false());
        }
        if ((*out = json_dumps(doc, JSON_COMPACT)) == NULL) status = ddb_nomem(err);
    }
    json_decref(tables);
    json_decref(doc);
    return status;
}
