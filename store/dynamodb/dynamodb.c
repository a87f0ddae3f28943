/*
 * dynamodb.c - the DynamoDB backend, on Aeon's table layout, so stores that
 * Aeon's CDK construct deployed and stores that `aeon-host store deploy`
 * made are interchangeable. Provides store_dynamodb_ops. Uses rpc.h for the
 * DynamoDB JSON protocol (SigV4, retries), aws_config.h for the region,
 * endpoint and credentials, ddb_value.h for event data, ddb_filter.h for
 * FilterExpressions, revision.h to number events, and jansson. This file
 * holds the small helpers, opening and closing and the ops table; each
 * other concern has a file (ddb_store.h names them and holds what they
 * share).
 *
 * Tables (docs/dynamodb.md has the details and examples):
 *   NAME           events: key (S, partition) + revision (S, sort); slice,
 *                  committedAt, correlationId (S, or NULL when none), type,
 *                  data (the event's value: M for an object, as Aeon writes),
 *                  dataFloats (float marks, only when needed); global secondary
 *                  index by-revision on slice + revision; stream NEW_IMAGE.
 *   NAME-metadata  pk + sk: {pk=KEY, sk="head", revision} per key, a slice
 *                  marker {pk="slice", sk=SLICE} per slice in use, the store
 *                  head {pk="slice", sk="last", revision},
 *                  {pk=KEY, sk="snapshot", revision, state, stateFloats} and
 *                  {pk=NAME, sk="subscription", ...} checkpoints.
 *   NAME-views     pk (view name) + sk: documents {sk="doc#ID", id, revision,
 *                  doc} and the view's own {sk="view", revision}.
 * A slice is a revision's first 5 characters: 2^25 ms (about 9.3 hours) of
 * revisions, so read_all can walk the index one partition at a time.
 *
 * An append is one TransactWriteItems: per key, the head item put under its
 * condition; the store head; the slice markers; the events. Its
 * ClientRequestToken is fixed before the first attempt, with the revisions
 * and committedAt, so every resend is byte-identical and commits at most
 * once. The store head's condition (its revision below the new ones) makes
 * revision order commit order across the store, as on the embedded store:
 * no event of ours ever commits below one already readable, which is what
 * lets subscriptions catch up through the index (then they follow the
 * stream, which also sees Aeon's own writers' late commits). Aeon's slice
 * marker is already written by every append, so this orders nothing that
 * was not serialised anyway.
 */
#include "ddb_store.h"
#include "dynamodb.h"

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

store_status ddb_nomem(char **err) {
    return store_fail(err, STORE_NOMEM, "dynamodb: out of memory");
}

/* {"S": s}; NULL on no memory (strings were checked as UTF-8 before). */
json_t *ddb_av_s(const char *s) { return json_pack("{s:s}", "S", s); }

/* The S value of an item's attribute, or NULL. */
const char *ddb_item_s(const json_t *item, const char *name) {
    return json_string_value(json_object_get(json_object_get(item, name), "S"));
}

/* Copies a revision (or "0"), truncating anything longer; out may be rev. */
void ddb_copy_rev(char out[STORE_REVISION_SIZE], const char *rev) {
    size_t n = strnlen(rev, STORE_REVISION_LEN);
    memmove(out, rev, n);
    out[n] = '\0';
}

/* Aeon's slice of a revision: its first SLICE_LEN characters. */
void ddb_slice_of(const char *rev, char out[SLICE_LEN + 1]) {
    size_t n = strnlen(rev, SLICE_LEN);
    memcpy(out, rev, n);
    out[n] = '\0';
}

void ddb_nap(uint64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* Turns an answer an operation did not expect into an error; a missing
 * table gets the remedy. */
store_status ddb_answer_fail(ddb_store *s, const http_response *r, const char *op, char **err) {
    if (r->error != NULL && strcmp(r->error, "ResourceNotFoundException") == 0)
        return store_fail(err, STORE_IO,
                          "dynamodb %s: a table of store %s is missing "
                          "(%s, %s%s%s) at %s: deploy it with `aeon-host store deploy` "
                          "or store:admin(\"deploy\")",
                          op, s->name, s->events, s->metadata, s->views != NULL ? ", " : "",
                          s->views != NULL ? s->views : "", s->aws.endpoint);
    return http_fail(r, op, err);
}

/* Calls op with body and hands back the answer; STORE_OK only for a 2xx or
 * an error listed in `expected` (NULL-terminated names), else the error. */
store_status ddb_call(ddb_store *s, const char *op, json_t *body, bool retry_safe,
                      const char *const *expected, http_response *r, char **err) {
    if (body == NULL) return ddb_nomem(err);
    store_status status = http_call_json(s->http, op, body, retry_safe, r, err);
    json_decref(body);
    if (status != STORE_OK) return status;
    return ddb_answer_check(s, op, expected, r, err);
}

store_status ddb_answer_check(ddb_store *s, const char *op, const char *const *expected,
                              const http_response *r, char **err) {
    return ddb_answered(r, expected) ? STORE_OK : ddb_answer_fail(s, r, op, err);
}

bool ddb_answered(const http_response *r, const char *const *expected) {
    if (r->status >= 200 && r->status < 300 && r->json != NULL) return true;
    for (int i = 0; expected != NULL && expected[i] != NULL; i++)
        if (r->error != NULL && strcmp(r->error, expected[i]) == 0) return true;
    return false;
}

/* A client of the handle's endpoint, region and credentials, with its clock. */
store_status ddb_open_client(ddb_store *s, http_client **out, char **err) {
    http_config cfg = {
        .endpoint = s->aws.endpoint,
        .api = HTTP_DYNAMODB,
        .region = s->aws.region,
        .creds = {s->aws.access_key, s->aws.secret_key, s->aws.session_token},
        .env = &s->base.env,
    };
    return http_open(&cfg, out, err);
}

uint64_t ddb_requests(const store *st, const char *op) {
    const ddb_store *s = (const ddb_store *)st;
    if (st == NULL || st->ops != &store_dynamodb_ops) return 0;
    return http_requests(s->http, op) + http_requests(s->ahead, op) + http_requests(s->streams, op);
}

/* ------------------------------------------------------------------ */
/* Opening and closing                                                 */

/* DynamoDB's rule for table and index names. */
static const char *check_table_name(const char *name) {
    size_t n = strlen(name);
    if (n < 3 || n > 255) return "must be 3 to 255 characters";
    for (const char *p = name; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-' || *p == '.'))
            return "may hold only letters, digits, '_', '-' and '.'";
    return NULL;
}

static void ddb_close(store *st) {
    ddb_store *s = (ddb_store *)st;
    if (s == NULL) return;
    http_close(s->http);
    http_close(s->ahead);
    http_close(s->streams);
    aws_settings_free(&s->aws);
    free(s->name);
    free(s->events);
    free(s->metadata);
    free(s->index);
    free(s->views);
    free(s);
}

/* Fills the table names from "dynamodb:NAME" or Aeon's config JSON
 * ({"name","eventsTable","metadataTable","revisionIndex"}, plus our
 * optional "viewsTable"; Aeon deploys no views table). */
static store_status parse_uri(ddb_store *s, const char *uri, char **err) {
    const char *why;
    const char *p = uri + strspn(uri, " \t\r\n");
    if (*p != '{') {
        const char *name = uri + strlen("dynamodb:");
        if ((why = check_table_name(name)) != NULL)
            return store_fail(err, STORE_INVALID,
                              "dynamodb: store name \"%s\" %s (it is "
                              "the events table's name)",
                              name, why);
        if (strlen(name) > 255 - strlen("-metadata"))
            return store_fail(err, STORE_INVALID,
                              "dynamodb: store name \"%s\" is too long "
                              "for its metadata table (246 characters at most)",
                              name);
        s->name = strdup(name);
        s->events = strdup(name);
        s->index = strdup("by-revision");
        size_t n = strlen(name) + 16;
        if ((s->metadata = malloc(n)) != NULL) snprintf(s->metadata, n, "%s-metadata", name);
        if ((s->views = malloc(n)) != NULL) snprintf(s->views, n, "%s-views", name);
        if (s->name == NULL || s->events == NULL || s->index == NULL || s->metadata == NULL ||
            s->views == NULL)
            return ddb_nomem(err);
        return STORE_OK;
    }

    json_error_t jerr;
    json_t *cfg = json_loads(p, 0, &jerr);
    if (!json_is_object(cfg)) {
        json_decref(cfg);
        return store_fail(err, STORE_INVALID,
                          "dynamodb: the store URI looks like an Aeon "
                          "config but is not a JSON object: %s",
                          jerr.text);
    }
    static const char *const fields[] = {"name", "eventsTable", "metadataTable", "revisionIndex",
                                         "viewsTable"};
    char **slots[] = {&s->name, &s->events, &s->metadata, &s->index, &s->views};
    store_status status = STORE_OK;
    for (int i = 0; i < 5 && status == STORE_OK; i++) {
        json_t *v = json_object_get(cfg, fields[i]);
        if (v == NULL && i == 4) break;
        if (!json_is_string(v)) {
            status = store_fail(err, STORE_INVALID,
                                "dynamodb: the Aeon config needs "
                                "\"%s\" as a string",
                                fields[i]);
            break;
        }
        if (i > 0 && (why = check_table_name(json_string_value(v))) != NULL) {
            status = store_fail(err, STORE_INVALID,
                                "dynamodb: %s \"%s\" in the Aeon config "
                                "%s",
                                fields[i], json_string_value(v), why);
            break;
        }
        if ((*slots[i] = strdup(json_string_value(v))) == NULL) status = ddb_nomem(err);
    }
    json_decref(cfg);
    return status;
}

/* Opens lazily: nothing is sent until the first operation, so a store can be
 * opened to deploy its tables. */
static store_status ddb_open(const char *uri, const store_options *opts, store **out, char **err) {
    store_status status = STORE_NOMEM;
    ddb_store *s = NULL;
    *out = NULL;

    if ((s = calloc(1, sizeof *s)) == NULL) return ddb_nomem(err);
    s->base.ops = &store_dynamodb_ops;
    s->base.env = opts != NULL && opts->env != NULL ? *opts->env : store_env_default;
    ddb_copy_rev(s->last, STORE_START);
    if ((status = parse_uri(s, uri, err)) != STORE_OK) goto fail;
    if ((status = aws_settings_load(opts != NULL ? opts->region : NULL,
                                    opts != NULL ? opts->endpoint : NULL, NULL, NULL, &s->aws,
                                    err)) != STORE_OK)
        goto fail;
    if ((status = ddb_open_client(s, &s->http, err)) != STORE_OK) goto fail;
    /* AEON_DYNAMODB_INDEX_SETTLE_MS overrides the guess (tests, or an
     * emulator behind another address). */
    const char *host = strstr(s->aws.endpoint, "://"), *settle;
    host = host != NULL ? host + 3 : s->aws.endpoint;
    bool local = strncmp(host, "127.", 4) == 0 || strncmp(host, "localhost", 9) == 0 ||
                 strncmp(host, "[::1]", 5) == 0;
    s->settle_ms = local ? 0 : INDEX_SETTLE_MS;
    if ((settle = getenv("AEON_DYNAMODB_INDEX_SETTLE_MS")) != NULL && *settle != '\0') {
        char *end = NULL;
        unsigned long ms = strtoul(settle, &end, 10);
        if (*end != '\0' || ms > 600000) {
            status = store_fail(err, STORE_INVALID,
                                "AEON_DYNAMODB_INDEX_SETTLE_MS must be "
                                "milliseconds from 0 to 600000, not \"%s\"",
                                settle);
            goto fail;
        }
        s->settle_ms = ms;
    }
    /* AEON_DYNAMODB_PAGE_ITEMS caps the items of a Query page, so specs
     * can cross many pages with few events; unset, a page is as large as
     * DynamoDB makes one (1 MB), the fewest round trips. */
    const char *page = getenv("AEON_DYNAMODB_PAGE_ITEMS");
    if (page != NULL && *page != '\0') {
        char *end = NULL;
        unsigned long n = strtoul(page, &end, 10);
        if (*end != '\0' || n < 1 || n > 1000000) {
            status = store_fail(err, STORE_INVALID,
                                "AEON_DYNAMODB_PAGE_ITEMS must be a "
                                "number of items from 1 to 1000000, not \"%s\"",
                                page);
            goto fail;
        }
        s->page_items = (int64_t)n;
    }
    *out = &s->base;
    return STORE_OK;
fail:
    ddb_close(&s->base);
    return status;
}

store_status ddb_tables(const char *uri, char **json, char **err) {
    store_status status = STORE_NOMEM;
    ddb_store *s = calloc(1, sizeof *s);
    json_t *list = NULL;
    *json = NULL;
    if (s == NULL) return ddb_nomem(err);
    s->base.ops = &store_dynamodb_ops;
    if ((status = parse_uri(s, uri, err)) == STORE_OK) {
        if ((list = ddb_table_requests(s)) == NULL ||
            (*json = json_dumps(list, JSON_COMPACT)) == NULL)
            status = ddb_nomem(err);
    }
    json_decref(list);
    ddb_close(&s->base);
    return status;
}

/* "dynamodb:NAME", or a JSON object {"name", "eventsTable", ...}: the
 * config Aeon's CDK construct hands its Lambdas. */
static bool ddb_accepts(const char *uri) {
    return strncmp(uri, "dynamodb:", 9) == 0 || uri[strspn(uri, " \t\r\n")] == '{';
}

static const char *const uri_forms[] = {"dynamodb:NAME", "an Aeon config JSON object", NULL};

/* Views need the views table, which an Aeon config may not name. */
static bool ddb_supports(const store *st, const char *feature) {
    return strcmp(feature, "views") != 0 || ((const ddb_store *)st)->views != NULL;
}

const store_ops store_dynamodb_ops = {
    .name = "dynamodb",
    .uri_forms = uri_forms,
    .accepts = ddb_accepts,
    .open = ddb_open,
    .close = ddb_close,
    .append = ddb_append,
    .append_many = ddb_append_many,
    .head = ddb_head,
    .read = ddb_read,
    .next = ddb_next,
    .cursor_close = ddb_cursor_close,
    .save_snapshot = ddb_save_snapshot,
    .snapshot = ddb_snapshot,
    .snapshot_list = ddb_snapshot_list,
    .admin = ddb_admin,
    .import = ddb_import,
    .supports = ddb_supports,
    .subscribe = ddb_subscribe,
    .poll = ddb_poll,
    .ack = ddb_ack,
    .checkpoint = ddb_checkpoint,
    .sub_close = ddb_sub_close,
    .sub_reset = ddb_sub_reset,
    .sub_active = ddb_sub_active,
    .sub_renew = ddb_sub_renew,
    .view_get = ddb_view_get,
    .view_put = ddb_view_put,
    .view_revision = ddb_view_revision,
    .view_advance = ddb_view_advance,
    .view_clear = ddb_view_clear,
    .view_list = ddb_view_list,
    /* No transactions: view writes are conditional on revision and acks
     * are fenced, so a replayed batch is harmless (store.h). */
};
