/*
 * dynamodb.c - the DynamoDB backend, on Aeon's table layout, so stores that
 * Aeon's CDK construct deployed and stores that `aeon-host store deploy`
 * made are interchangeable. Provides store_dynamodb_ops. Uses http.h for the
 * DynamoDB JSON protocol (SigV4, retries), aws_config.h for the region,
 * endpoint and credentials, ddb_value.h for event data, ddb_filter.h for
 * FilterExpressions, revision.h to number events, and jansson.
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
 * A slice is a revision's first 5 characters: 2^23 ms (about 2.3 hours) of
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
#include "aws_config.h"
#include "ddb_filter.h"
#include "ddb_value.h"
#include "filter.h"
#include "rpc.h"
#include "pattern.h"
#include "revision.h"
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TRANSACT_ITEMS 100           /* items in one TransactWriteItems */
#define TRANSACT_BYTES (4u << 20)    /* their aggregate size */
#define KEY_BYTES 2048               /* a partition key value, at most */
#define PAGE_ITEMS 256               /* Query Limit per page (read before filtering) */
#define SLICE_PAGE 100               /* slice markers listed per Query */
#define SKEW_TRIES 8                 /* appends re-numbered above a head the clock
                                        was behind, before giving up */
#define TOKEN_LEN 36                 /* ClientRequestToken's maximum */
#define SLICE_LEN 5                  /* Aeon's slice: a revision's prefix */
#define STORE_HEAD_SK "last"         /* {pk="slice", sk=this}: the store's last
                                        revision; never a slice (those are 5
                                        base32 characters, all below "8") */
#define DEPLOY_WAIT_MS (10 * 60 * 1000) /* tables ACTIVE (or gone) within this */
#define INDEX_SETTLE_MS 2000         /* AWS's index shows a write within this */

static const char rev_min[] = "00000000000000000000000000";
static const char rev_max[] = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ";

typedef struct ddb_store {
    store base;                       /* ops and env; first, so a store * is one */
    http_client *http;                /* the kept-alive connection */
    http_client *streams;             /* the Streams API's, opened on first use */
    aws_settings aws;                 /* region, endpoint, credentials in use */
    char *name;                       /* the store's name (Aeon's `name`) */
    char *events;                     /* events table */
    char *metadata;                   /* metadata table */
    char *index;                      /* the events table's by-revision index */
    char *views;                      /* views table, NULL when there is none */
    char last[STORE_REVISION_SIZE];   /* last revision this handle made */
    uint64_t tokens;                  /* tokens made, mixed into random ones */
    uint64_t settle_ms;               /* how long the index may lag the table:
                                         0 on DynamoDB Local, which writes both
                                         at once (see Subscriptions) */
} ddb_store;

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */

static store_status nomem(char **err)
{
    return store_fail(err, STORE_NOMEM, "dynamodb: out of memory");
}

/* {"S": s}; NULL on no memory (strings were checked as UTF-8 before). */
static json_t *av_s(const char *s)
{
    return json_pack("{s:s}", "S", s);
}

/* The S value of an item's attribute, or NULL. */
static const char *item_s(const json_t *item, const char *name)
{
    return json_string_value(json_object_get(json_object_get(item, name), "S"));
}

/* Copies a revision (or "0"), truncating anything longer; out may be rev. */
static void copy_rev(char out[STORE_REVISION_SIZE], const char *rev)
{
    size_t n = strnlen(rev, STORE_REVISION_LEN);
    memmove(out, rev, n);
    out[n] = '\0';
}

/* Aeon's slice of a revision: its first SLICE_LEN characters. */
static void slice_of(const char *rev, char out[SLICE_LEN + 1])
{
    size_t n = strnlen(rev, SLICE_LEN);
    memcpy(out, rev, n);
    out[n] = '\0';
}

static void nap(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static void wake_all(void);

/* Turns an answer an operation did not expect into an error; a missing
 * table gets the remedy. */
static store_status answer_fail(ddb_store *s, const http_response *r, const char *op,
                                char **err)
{
    if (r->error != NULL && strcmp(r->error, "ResourceNotFoundException") == 0)
        return store_fail(err, STORE_IO, "dynamodb %s: a table of store %s is missing "
                          "(%s, %s%s%s) at %s: deploy it with `aeon-host store deploy` "
                          "or store:admin(\"deploy\")", op, s->name, s->events, s->metadata,
                          s->views != NULL ? ", " : "", s->views != NULL ? s->views : "",
                          s->aws.endpoint);
    return http_fail(r, op, err);
}

/* Calls op with body and hands back the answer; STORE_OK only for a 2xx or
 * an error listed in `expected` (NULL-terminated names), else the error. */
static store_status call(ddb_store *s, const char *op, json_t *body, bool retry_safe,
                         const char *const *expected, http_response *r, char **err)
{
    if (body == NULL)
        return nomem(err);
    store_status status = http_call_json(s->http, op, body, retry_safe, r, err);
    json_decref(body);
    if (status != STORE_OK)
        return status;
    if (r->status >= 200 && r->status < 300 && r->json != NULL)
        return STORE_OK;
    for (int i = 0; expected != NULL && expected[i] != NULL; i++)
        if (r->error != NULL && strcmp(r->error, expected[i]) == 0)
            return STORE_OK;
    return answer_fail(s, r, op, err);
}

/* ------------------------------------------------------------------ */
/* Opening and closing                                                 */

/* DynamoDB's rule for table and index names. */
static const char *check_table_name(const char *name)
{
    size_t n = strlen(name);
    if (n < 3 || n > 255)
        return "must be 3 to 255 characters";
    for (const char *p = name; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.'))
            return "may hold only letters, digits, '_', '-' and '.'";
    return NULL;
}

static void ddb_close(store *st)
{
    ddb_store *s = (ddb_store *)st;
    if (s == NULL)
        return;
    http_close(s->http);
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
static store_status parse_uri(ddb_store *s, const char *uri, char **err)
{
    const char *why;
    const char *p = uri + strspn(uri, " \t\r\n");
    if (*p != '{') {
        const char *name = uri + strlen("dynamodb:");
        if ((why = check_table_name(name)) != NULL)
            return store_fail(err, STORE_INVALID, "dynamodb: store name \"%s\" %s (it is "
                              "the events table's name)", name, why);
        if (strlen(name) > 255 - strlen("-metadata"))
            return store_fail(err, STORE_INVALID, "dynamodb: store name \"%s\" is too long "
                              "for its metadata table (246 characters at most)", name);
        s->name = strdup(name);
        s->events = strdup(name);
        s->index = strdup("by-revision");
        size_t n = strlen(name) + 16;
        if ((s->metadata = malloc(n)) != NULL)
            snprintf(s->metadata, n, "%s-metadata", name);
        if ((s->views = malloc(n)) != NULL)
            snprintf(s->views, n, "%s-views", name);
        if (s->name == NULL || s->events == NULL || s->index == NULL ||
            s->metadata == NULL || s->views == NULL)
            return nomem(err);
        return STORE_OK;
    }

    json_error_t jerr;
    json_t *cfg = json_loads(p, 0, &jerr);
    if (!json_is_object(cfg)) {
        json_decref(cfg);
        return store_fail(err, STORE_INVALID, "dynamodb: the store URI looks like an Aeon "
                          "config but is not a JSON object: %s", jerr.text);
    }
    static const char *const fields[] = {"name", "eventsTable", "metadataTable",
                                         "revisionIndex", "viewsTable"};
    char **slots[] = {&s->name, &s->events, &s->metadata, &s->index, &s->views};
    store_status status = STORE_OK;
    for (int i = 0; i < 5 && status == STORE_OK; i++) {
        json_t *v = json_object_get(cfg, fields[i]);
        if (v == NULL && i == 4)
            break;
        if (!json_is_string(v)) {
            status = store_fail(err, STORE_INVALID, "dynamodb: the Aeon config needs "
                                "\"%s\" as a string", fields[i]);
            break;
        }
        if (i > 0 && (why = check_table_name(json_string_value(v))) != NULL) {
            status = store_fail(err, STORE_INVALID, "dynamodb: %s \"%s\" in the Aeon config "
                                "%s", fields[i], json_string_value(v), why);
            break;
        }
        if ((*slots[i] = strdup(json_string_value(v))) == NULL)
            status = nomem(err);
    }
    json_decref(cfg);
    return status;
}

/* Opens lazily: nothing is sent until the first operation, so a store can be
 * opened to deploy its tables. */
static store_status ddb_open(const char *uri, const store_options *opts, store **out,
                             char **err)
{
    store_status status = STORE_NOMEM;
    ddb_store *s = NULL;
    *out = NULL;

    if ((s = calloc(1, sizeof *s)) == NULL)
        return nomem(err);
    s->base.ops = &store_dynamodb_ops;
    s->base.env = opts != NULL && opts->env != NULL ? *opts->env : store_env_default;
    copy_rev(s->last, STORE_START);
    if ((status = parse_uri(s, uri, err)) != STORE_OK)
        goto fail;
    if ((status = aws_settings_load(opts != NULL ? opts->region : NULL,
                                    opts != NULL ? opts->endpoint : NULL, NULL, NULL,
                                    &s->aws, err)) != STORE_OK)
        goto fail;
    http_config cfg = {
        .endpoint = s->aws.endpoint,
        .api = HTTP_DYNAMODB,
        .region = s->aws.region,
        .creds = {s->aws.access_key, s->aws.secret_key, s->aws.session_token},
        .env = &s->base.env,
    };
    if ((status = http_open(&cfg, &s->http, err)) != STORE_OK)
        goto fail;
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
            status = store_fail(err, STORE_INVALID, "AEON_DYNAMODB_INDEX_SETTLE_MS must be "
                                "milliseconds from 0 to 600000, not \"%s\"", settle);
            goto fail;
        }
        s->settle_ms = ms;
    }
    *out = &s->base;
    return STORE_OK;
fail:
    ddb_close(&s->base);
    return status;
}

/* ------------------------------------------------------------------ */
/* Appends                                                             */

/* One event, converted once and reused by every attempt. */
typedef struct converted {
    json_t *data;   /* the data's AttributeValue */
    json_t *floats; /* its float marks, or NULL */
} converted;

/* Everything append refuses before anything is sent. */
static store_status check_batches(const store_batch *b, size_t n, const char *token,
                                  bool many, size_t *total, char **err)
{
    const char *why;
    char where[40] = "";
    *total = 0;
    if (token != NULL && (why = store_check_text(token, false)) != NULL)
        return store_fail(err, STORE_INVALID, "idempotency key %s", why);
    if (n > 0 && b == NULL)
        return store_fail(err, STORE_INVALID, "no batches given");
    for (size_t i = 0; i < n; i++) {
        if (many)
            snprintf(where, sizeof where, "batch %zu: ", i + 1);
        if ((why = store_check_text(b[i].key, false)) != NULL)
            return store_fail(err, STORE_INVALID, "%skey %s", where, why);
        if (strlen(b[i].key) > KEY_BYTES)
            return store_fail(err, STORE_LIMIT, "dynamodb: %skey is %zu bytes; DynamoDB "
                              "takes at most %d in a partition key", where,
                              strlen(b[i].key), KEY_BYTES);
        const char *exp = b[i].expected_revision;
        if (exp != NULL && strcmp(exp, STORE_START) != 0 && !revision_valid(exp))
            return store_fail(err, STORE_INVALID, "%sexpected revision \"%s\" is not a "
                              "revision or START", where, exp);
        if (b[i].count > 0 && b[i].events == NULL)
            return store_fail(err, STORE_INVALID, "%sno events given", where);
        for (size_t j = 0; j < b[i].count; j++) {
            const store_pending *e = &b[i].events[j];
            if ((why = store_check_text(e->type, false)) != NULL)
                return store_fail(err, STORE_INVALID, "%sevent %zu: type %s", where, j + 1,
                                  why);
            if (e->data == NULL || e->data_len == 0)
                return store_fail(err, STORE_INVALID, "%sevent %zu: data is empty", where,
                                  j + 1);
            if (e->correlation_id != NULL &&
                (why = store_check_text(e->correlation_id, false)) != NULL)
                return store_fail(err, STORE_INVALID, "%sevent %zu: correlation_id %s",
                                  where, j + 1, why);
        }
        for (size_t k = 0; k < i; k++)
            if (strcmp(b[k].key, b[i].key) == 0)
                return store_fail(err, STORE_INVALID, "key \"%s\" appears in more than "
                                  "one batch", b[i].key);
        *total += b[i].count;
    }
    return STORE_OK;
}

/* The request token. DynamoDB keeps tokens per account and region, not per
 * table, so a caller's idempotency key is hashed with the events table's
 * name: two stores (or two apps) using the same key stay apart, and keys of
 * any length fit the 36 characters. Without a key the token is random, so
 * that a resend after a dropped connection still commits once. */
static void make_token(ddb_store *s, const char *key, char out[TOKEN_LEN + 1])
{
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
static json_t *head_put(ddb_store *s, const store_batch *b, const char *first,
                        const char *last)
{
    const char *cond;
    json_t *values = json_object();
    if (values == NULL)
        return NULL;
    if (b->expected_revision != NULL && strcmp(b->expected_revision, STORE_START) == 0) {
        cond = "attribute_not_exists(#revision)";
    } else if (b->expected_revision != NULL) {
        cond = "#revision = :expected AND #revision < :first";
        json_object_set_new(values, ":expected", av_s(b->expected_revision));
        json_object_set_new(values, ":first", av_s(first));
    } else {
        cond = "attribute_not_exists(#revision) OR #revision < :first";
        json_object_set_new(values, ":first", av_s(first));
    }
    json_t *put = json_pack("{s:{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}}, s:s, s:{s:s}, s:s}}",
                            "Put", "TableName", s->metadata, "Item", "pk", "S", b->key,
                            "sk", "S", "head", "revision", "S", last,
                            "ConditionExpression", cond,
                            "ExpressionAttributeNames", "#revision", "revision",
                            "ReturnValuesOnConditionCheckFailure", "ALL_OLD");
    if (put != NULL && json_object_size(values) > 0)
        json_object_set(json_object_get(put, "Put"), "ExpressionAttributeValues", values);
    json_decref(values);
    return put;
}

/* Whether a batch puts an item in front of the events: its head put, or,
 * for a batch with no events, a check of its expected revision. */
static bool guarded(const store_batch *b)
{
    return b->count > 0 || b->expected_revision != NULL;
}

/* A ConditionCheck of the key's head: what an append_many batch without
 * events but with an expected revision needs. */
static json_t *head_check(ddb_store *s, const store_batch *b)
{
    bool start = strcmp(b->expected_revision, STORE_START) == 0;
    json_t *check = json_pack("{s:{s:s, s:{s:{s:s}, s:{s:s}}, s:s, s:{s:s}, s:s}}",
                              "ConditionCheck", "TableName", s->metadata, "Key", "pk", "S",
                              b->key, "sk", "S", "head", "ConditionExpression",
                              start ? "attribute_not_exists(#revision)"
                                    : "#revision = :expected",
                              "ExpressionAttributeNames", "#revision", "revision",
                              "ReturnValuesOnConditionCheckFailure", "ALL_OLD");
    if (check != NULL && !start &&
        json_object_set_new(json_object_get(check, "ConditionCheck"),
                            "ExpressionAttributeValues",
                            json_pack("{s:{s:s}}", ":expected", "S", b->expected_revision))) {
        json_decref(check);
        return NULL;
    }
    return check;
}

/* An event item, as Aeon's putEvent writes it (plus dataFloats when the
 * data has floats with integral values). */
static json_t *event_item(const char *key, const char *rev,
                          const char *committed_at, const store_pending *e,
                          const converted *cv)
{
    char slice[SLICE_LEN + 1];
    slice_of(rev, slice);
    json_t *item = json_pack("{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:O}",
                             "key", "S", key, "revision", "S", rev, "slice", "S", slice,
                             "committedAt", "S", committed_at, "type", "S", e->type,
                             "data", cv->data);
    if (item == NULL)
        return NULL;
    json_t *corr = e->correlation_id != NULL ? av_s(e->correlation_id)
                                             : json_pack("{s:b}", "NULL", 1);
    if (corr == NULL || json_object_set_new(item, "correlationId", corr) != 0 ||
        (cv->floats != NULL && json_object_set(item, "dataFloats", cv->floats) != 0)) {
        json_decref(item);
        return NULL;
    }
    return item;
}

/* What one attempt of a transaction is built from. */
typedef struct plan {
    const store_batch *b;                 /* the batches */
    size_t n;                             /* how many */
    size_t total;                         /* events in all */
    const converted *cv;                  /* their data, in batch order */
    char (*revs)[STORE_REVISION_SIZE];    /* their revisions, in batch order */
    char committed_at[STORE_TIMESTAMP_SIZE]; /* the same for every event */
    char token[TOKEN_LEN + 1];            /* ClientRequestToken */
} plan;

/* Numbers every event above `floor` (and above what this handle made),
 * one sequence across batches, as the embedded store does. */
static void number(ddb_store *s, plan *p, const char *floor)
{
    char base[STORE_REVISION_SIZE];
    copy_rev(base, strcmp(floor, s->last) > 0 ? floor : s->last);
    revision_after(base, &s->base.env, p->revs[0]);
    for (size_t i = 1; i < p->total; i++)
        if (!revision_next(p->revs[i - 1], p->revs[i]))
            copy_rev(p->revs[i], p->revs[i - 1]); /* year 10889; DynamoDB says no */
}

/* Builds the TransactWriteItems body: heads (batch order), slice markers,
 * events. Refuses what DynamoDB would: too many items, an item or the whole
 * over its size limit. */
static store_status build(ddb_store *s, const plan *p, bool many, json_t **out, char **err)
{
    store_status status = STORE_NOMEM;
    json_t *items = json_array(), *body = NULL;
    char slices[TRANSACT_ITEMS][SLICE_LEN + 1];
    size_t nslices = 0, bytes = 0, at = 0;
    *out = NULL;
    if (items == NULL)
        goto nomem;

    for (size_t i = 0; i < p->n; i++) {
        if (!guarded(&p->b[i]))
            continue;
        if (p->b[i].count == 0) {
            /* No events for this key, only its expected revision to hold. */
            json_t *check = head_check(s, &p->b[i]);
            if (check == NULL || json_array_append_new(items, check) != 0)
                goto nomem;
            continue;
        }
        const char *first = p->revs[at], *last = p->revs[at + p->b[i].count - 1];
        json_t *put = head_put(s, &p->b[i], first, last);
        if (put == NULL || json_array_append_new(items, put) != 0)
            goto nomem;
        bytes += ddb_item_size(json_object_get(json_object_get(put, "Put"), "Item"));
        for (size_t j = 0; j < p->b[i].count; j++) {
            const char *rev = p->revs[at + j];
            bool seen = false;
            for (size_t k = 0; k < nslices && !seen; k++)
                seen = strncmp(slices[k], rev, SLICE_LEN) == 0;
            if (!seen && nslices < TRANSACT_ITEMS)
                slice_of(rev, slices[nslices++]);
        }
        at += p->b[i].count;
    }

    size_t heads = json_array_size(items), needed = heads + 1 + nslices + p->total;
    if (needed > TRANSACT_ITEMS) {
        status = store_fail(err, STORE_LIMIT, "dynamodb: this append needs %zu transaction "
                            "items (%zu event%s, %zu head%s, the store head, %zu slice "
                            "marker%s), and one DynamoDB transaction takes at most %d: append "
                            "at most %d events to one key at a time", needed, p->total,
                            p->total == 1 ? "" : "s", heads, heads == 1 ? "" : "s", nslices,
                            nslices == 1 ? "" : "s", TRANSACT_ITEMS, TRANSACT_ITEMS - 3);
        goto done;
    }
    json_t *store_head = json_pack("{s:{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}}, s:s, s:{s:s},"
                                   " s:{s:{s:s}}, s:s}}", "Put", "TableName", s->metadata,
                                   "Item", "pk", "S", "slice", "sk", "S", STORE_HEAD_SK,
                                   "revision", "S", p->revs[p->total - 1],
                                   "ConditionExpression",
                                   "attribute_not_exists(#revision) OR #revision < :first",
                                   "ExpressionAttributeNames", "#revision", "revision",
                                   "ExpressionAttributeValues", ":first", "S", p->revs[0],
                                   "ReturnValuesOnConditionCheckFailure", "ALL_OLD");
    if (store_head == NULL || json_array_append_new(items, store_head) != 0)
        goto nomem;
    bytes += ddb_item_size(json_object_get(json_object_get(store_head, "Put"), "Item"));
    for (size_t k = 0; k < nslices; k++) {
        json_t *marker = json_pack("{s:{s:s, s:{s:{s:s}, s:{s:s}}}}", "Put", "TableName",
                                   s->metadata, "Item", "pk", "S", "slice", "sk", "S",
                                   slices[k]);
        if (marker == NULL || json_array_append_new(items, marker) != 0)
            goto nomem;
        bytes += ddb_item_size(json_object_get(json_object_get(marker, "Put"), "Item"));
    }

    at = 0;
    for (size_t i = 0; i < p->n; i++) {
        for (size_t j = 0; j < p->b[i].count; j++, at++) {
            json_t *item = event_item(p->b[i].key, p->revs[at], p->committed_at,
                                      &p->b[i].events[j], &p->cv[at]);
            if (item == NULL)
                goto nomem;
            size_t size = ddb_item_size(item);
            if (size > DDB_ITEM_MAX) {
                json_decref(item);
                char where[48] = "";
                if (many)
                    snprintf(where, sizeof where, "batch %zu, ", i + 1);
                status = store_fail(err, STORE_LIMIT, "dynamodb: %sevent %zu of key \"%s\" "
                                    "is %zu bytes as a DynamoDB item, over DynamoDB's limit "
                                    "of %d bytes (400 KB); nothing was appended", where,
                                    j + 1, p->b[i].key, size, DDB_ITEM_MAX);
                goto done;
            }
            bytes += size;
            json_t *put = json_pack("{s:{s:s, s:o}}", "Put", "TableName", s->events, "Item",
                                    item);
            if (put == NULL || json_array_append_new(items, put) != 0)
                goto nomem;
        }
    }
    if (bytes > TRANSACT_BYTES) {
        status = store_fail(err, STORE_LIMIT, "dynamodb: this append is %zu bytes of "
                            "DynamoDB items, over the %u bytes (4 MB) one transaction takes; "
                            "nothing was appended", bytes, TRANSACT_BYTES);
        goto done;
    }
    body = json_pack("{s:o, s:s}", "TransactItems", items, "ClientRequestToken", p->token);
    items = NULL;
    if (body == NULL)
        goto nomem;
    *out = body;
    status = STORE_OK;
    goto done;
nomem:
    status = nomem(err);
done:
    json_decref(items);
    return status;
}

/* Reasons that are no verdict on this transaction: none, or another one
 * in the way (HTTP retries those that are alone). */
static bool contention(const char *code)
{
    return strcmp(code, "None") == 0 || strcmp(code, "TransactionConflict") == 0 ||
           strcmp(code, "ThrottlingError") == 0 ||
           strcmp(code, "ProvisionedThroughputExceeded") == 0;
}

/* Reads a cancelled transaction: for each batch whose head condition
 * failed, its stored head. Returns the first batch whose expected revision
 * did not hold (a conflict), or n when every failure was a head at or above
 * the new revisions (a writer's clock behind): then *floor is the highest
 * such head. *other is set when something else cancelled it. */
static size_t cancelled(const plan *p, const http_response *r, char actual[STORE_REVISION_SIZE],
                        char floor[STORE_REVISION_SIZE], const char **other)
{
    size_t item = 0, conflict = p->n;
    *other = NULL;
    for (size_t i = 0; i < p->n; i++) {
        if (!guarded(&p->b[i]))
            continue;
        const char *code = http_cancellation_code(r, item);
        if (code != NULL && strcmp(code, "ConditionalCheckFailed") == 0) {
            const json_t *reasons = http_cancellation_reasons(r);
            const json_t *old = json_object_get(json_array_get(reasons, item), "Item");
            const char *head = item_s(old, "revision");
            if (head == NULL || !revision_valid(head))
                head = STORE_START;
            const char *exp = p->b[i].expected_revision;
            if (exp != NULL && strcmp(exp, head) != 0) {
                if (conflict == p->n) {
                    conflict = i;
                    copy_rev(actual, head);
                }
            } else if (strcmp(head, floor) > 0) {
                copy_rev(floor, head);
            }
        } else if (code != NULL && !contention(code) && *other == NULL) {
            *other = code;
        }
        item++;
    }
    /* The store head: another append committed revisions at or above ours. */
    const char *code = http_cancellation_code(r, item);
    if (code != NULL && strcmp(code, "ConditionalCheckFailed") == 0) {
        const json_t *old = json_object_get(json_array_get(http_cancellation_reasons(r), item),
                                            "Item");
        const char *last = item_s(old, "revision");
        if (last != NULL && revision_valid(last) && strcmp(last, floor) > 0)
            copy_rev(floor, last);
    } else if (code != NULL && !contention(code) && *other == NULL) {
        *other = code;
    }
    item++;
    /* Markers and events carry no condition; a reason there is not ours. */
    for (size_t k = item; *other == NULL; k++) {
        const char *code = http_cancellation_code(r, k);
        if (code == NULL)
            break;
        if (!contention(code))
            *other = code;
    }
    return conflict;
}

/* The one write path: append is append_many with one batch. */
static store_status commit(ddb_store *s, const store_batch *b, size_t n, const char *key_token,
                           bool many, store_append_result *res, char **err)
{
    store_status status;
    size_t total;
    plan p = {.b = b, .n = n};
    converted *cv = NULL;
    http_response r = {0};
    json_t *body = NULL;

    memset(res, 0, sizeof *res);
    res->outcome = STORE_UNCHANGED;
    if ((status = check_batches(b, n, key_token, many, &total, err)) != STORE_OK || total == 0)
        return status;
    if (total > TRANSACT_ITEMS)
        return store_fail(err, STORE_LIMIT, "dynamodb: %zu events cannot go in one DynamoDB "
                          "transaction (at most %d items, events included): append at most "
                          "%d events to one key at a time", total, TRANSACT_ITEMS,
                          TRANSACT_ITEMS - 3);
    p.total = total;

    status = STORE_NOMEM;
    if ((cv = calloc(total, sizeof *cv)) == NULL ||
        (p.revs = calloc(total, sizeof *p.revs)) == NULL)
        goto nomem;
    p.cv = cv;
    for (size_t i = 0, at = 0; i < n; i++) {
        for (size_t j = 0; j < b[i].count; j++, at++) {
            char *why = NULL;
            status = ddb_value_from_json(b[i].events[j].data, b[i].events[j].data_len,
                                         &cv[at].data, &cv[at].floats, &why);
            if (status != STORE_OK) {
                char where[48] = "";
                if (many)
                    snprintf(where, sizeof where, "batch %zu: ", i + 1);
                status = store_fail(err, status, "dynamodb: %sevent %zu: data %s", where,
                                    j + 1, why != NULL ? why : "cannot be stored");
                free(why);
                goto done;
            }
        }
    }

    /* Fixed before the first attempt, so a resend is the same request. */
    revision_timestamp(s->base.env.now_ms(s->base.env.ctx), p.committed_at);
    make_token(s, key_token, p.token);
    char floor[STORE_REVISION_SIZE];
    copy_rev(floor, STORE_START);

    for (int attempt = 1;; attempt++) {
        number(s, &p, floor);
        if ((status = build(s, &p, many, &body, err)) != STORE_OK)
            goto done;
        status = call(s, "TransactWriteItems", body, true,
                      (const char *const[]){"TransactionCanceledException",
                                            "IdempotentParameterMismatchException", NULL},
                      &r, err);
        body = NULL;
        if (status != STORE_OK)
            goto done;
        if (r.error == NULL) {
            res->outcome = STORE_APPENDED;
            res->count = total;
            copy_rev(res->revision, p.revs[total - 1]);
            copy_rev(s->last, p.revs[total - 1]);
            wake_all();
            goto done;
        }
        if (strcmp(r.error, "IdempotentParameterMismatchException") == 0) {
            /* The token committed another body within DynamoDB's 10 minutes:
             * an earlier append with this idempotency key. */
            if (key_token != NULL)
                goto done; /* unchanged */
            status = answer_fail(s, &r, "TransactWriteItems", err);
            goto done;
        }
        char actual[STORE_REVISION_SIZE] = "", high[STORE_REVISION_SIZE];
        const char *other;
        copy_rev(high, floor);
        size_t bad = cancelled(&p, &r, actual, high, &other);
        if (other != NULL) {
            status = store_fail(err, strcmp(other, "ValidationError") == 0 ? STORE_LIMIT
                                                                           : STORE_IO,
                                "dynamodb TransactWriteItems: cancelled: %s (%s)", other,
                                r.message != NULL ? r.message : "no message");
            goto done;
        }
        if (bad < n) {
            res->outcome = STORE_CONFLICT;
            res->failed = bad;
            copy_rev(res->expected, b[bad].expected_revision);
            copy_rev(res->actual, actual);
            goto done;
        }
        if (strcmp(high, floor) <= 0) {
            status = store_fail(err, STORE_IO, "dynamodb TransactWriteItems: cancelled: %s",
                                r.message != NULL ? r.message : "no reason given");
            goto done;
        }
        if (attempt >= SKEW_TRIES) {
            status = store_fail(err, STORE_IO, "dynamodb: could not number the events above "
                                "the key's head after %d attempts (other writers keep "
                                "appending to it)", attempt);
            goto done;
        }
        /* A writer's clock was behind the head: go above it and try again,
         * under the same token (a cancelled transaction does not use it up). */
        copy_rev(floor, high);
    }

nomem:
    status = nomem(err);
done:
    json_decref(body);
    http_response_free(&r);
    for (size_t i = 0; cv != NULL && i < total; i++) {
        json_decref(cv[i].data);
        json_decref(cv[i].floats);
    }
    free(cv);
    free(p.revs);
    return status;
}

static store_status ddb_append(store *st, const char *key, const store_pending *events,
                               size_t count, const store_append_opts *opts,
                               store_append_result *result, char **err)
{
    store_batch batch = {key, events, count, opts != NULL ? opts->expected_revision : NULL};
    return commit((ddb_store *)st, &batch, 1, opts != NULL ? opts->idempotency_key : NULL,
                  false, result, err);
}

static store_status ddb_append_many(store *st, const store_batch *batches, size_t n,
                                    const char *idempotency_key,
                                    store_append_result *result, char **err)
{
    return commit((ddb_store *)st, batches, n, idempotency_key, true, result, err);
}

/* ------------------------------------------------------------------ */
/* Heads and snapshots                                                 */

/* A consistent GetItem of one metadata item. *item is borrowed from r. */
static store_status get_meta(ddb_store *s, const char *key, const char *sk, http_response *r,
                             const json_t **item, char **err)
{
    *item = NULL;
    json_t *body = json_pack("{s:s, s:{s:{s:s}, s:{s:s}}, s:b}", "TableName", s->metadata,
                             "Key", "pk", "S", key, "sk", "S", sk, "ConsistentRead", 1);
    store_status status = call(s, "GetItem", body, true, NULL, r, err);
    if (status == STORE_OK)
        *item = json_object_get(r->json, "Item");
    return status;
}

static store_status check_key(const char *key, char **err)
{
    const char *why = store_check_text(key, false);
    if (why != NULL)
        return store_fail(err, STORE_INVALID, "key %s", why);
    if (strlen(key) > KEY_BYTES)
        return store_fail(err, STORE_LIMIT, "dynamodb: key is %zu bytes; DynamoDB takes at "
                          "most %d in a partition key", strlen(key), KEY_BYTES);
    return STORE_OK;
}

static store_status ddb_head(store *st, const char *key, char out[STORE_REVISION_SIZE],
                             char **err)
{
    ddb_store *s = (ddb_store *)st;
    http_response r = {0};
    const json_t *item;
    copy_rev(out, STORE_START);
    store_status status = check_key(key, err);
    if (status == STORE_OK && (status = get_meta(s, key, "head", &r, &item, err)) == STORE_OK &&
        item != NULL) {
        const char *rev = item_s(item, "revision");
        if (rev == NULL || !revision_valid(rev))
            status = store_fail(err, STORE_IO, "dynamodb: the head item of key \"%s\" in %s "
                                "holds no revision", key, s->metadata);
        else
            copy_rev(out, rev);
    }
    http_response_free(&r);
    return status;
}

/* Snapshots live beside the head: {pk=KEY, sk="snapshot"}. The condition
 * keeps a newer one; an equal revision overwrites, so a resend is harmless. */
static store_status ddb_save_snapshot(store *st, const char *key, const char *revision,
                                      const char *state, size_t state_len, bool *saved,
                                      char **err)
{
    ddb_store *s = (ddb_store *)st;
    store_status status;
    json_t *av = NULL, *floats = NULL, *item = NULL;
    http_response r = {0};
    char *why = NULL;
    *saved = false;
    if ((status = check_key(key, err)) != STORE_OK)
        return status;
    if (revision == NULL || (strcmp(revision, STORE_START) != 0 && !revision_valid(revision)))
        return store_fail(err, STORE_INVALID, "snapshot revision \"%s\" is not a revision",
                          revision != NULL ? revision : "(null)");
    if (state == NULL || state_len == 0)
        return store_fail(err, STORE_INVALID, "snapshot state is empty");
    if ((status = ddb_value_from_json(state, state_len, &av, &floats, &why)) != STORE_OK) {
        status = store_fail(err, status, "dynamodb: snapshot state %s", why ? why : "");
        free(why);
        return status;
    }
    item = json_pack("{s:{s:s}, s:{s:s}, s:{s:s}, s:o}", "pk", "S", key, "sk", "S", "snapshot",
                     "revision", "S", revision, "state", av);
    av = NULL;
    if (item == NULL || (floats != NULL && json_object_set(item, "stateFloats", floats) != 0)) {
        status = nomem(err);
        goto done;
    }
    size_t size = ddb_item_size(item);
    if (size > DDB_ITEM_MAX) {
        status = store_fail(err, STORE_LIMIT, "dynamodb: the snapshot of key \"%s\" is %zu "
                            "bytes as a DynamoDB item, over DynamoDB's limit of %d bytes "
                            "(400 KB)", key, size, DDB_ITEM_MAX);
        goto done;
    }
    json_t *body = json_pack("{s:s, s:O, s:s, s:{s:s}, s:{s:{s:s}}}", "TableName", s->metadata,
                             "Item", item,
                             "ConditionExpression",
                             "attribute_not_exists(#revision) OR #revision <= :revision",
                             "ExpressionAttributeNames", "#revision", "revision",
                             "ExpressionAttributeValues", ":revision", "S", revision);
    status = call(s, "PutItem", body, true,
                  (const char *const[]){"ConditionalCheckFailedException", NULL}, &r, err);
    if (status == STORE_OK)
        *saved = r.error == NULL;
done:
    json_decref(av);
    json_decref(floats);
    json_decref(item);
    http_response_free(&r);
    return status;
}

static store_status ddb_snapshot(store *st, const char *key, store_snapshot *snap,
                                 bool *found, char **err)
{
    ddb_store *s = (ddb_store *)st;
    http_response r = {0};
    const json_t *item;
    *found = false;
    memset(snap, 0, sizeof *snap);
    store_status status = check_key(key, err);
    if (status == STORE_OK && (status = get_meta(s, key, "snapshot", &r, &item, err)) ==
                                  STORE_OK && item != NULL) {
        const char *rev = item_s(item, "revision");
        const json_t *state = json_object_get(item, "state");
        if (rev == NULL || state == NULL || (strcmp(rev, STORE_START) != 0 &&
                                             !revision_valid(rev))) {
            status = store_fail(err, STORE_IO, "dynamodb: the snapshot item of key \"%s\" in "
                                "%s is malformed", key, s->metadata);
        } else if ((status = ddb_value_to_json(state, json_object_get(item, "stateFloats"),
                                               &snap->state, &snap->state_len, err)) ==
                   STORE_OK) {
            copy_rev(snap->revision, rev);
            *found = true;
        }
    }
    http_response_free(&r);
    return status;
}

/* ------------------------------------------------------------------ */
/* Reads                                                               */

struct store_cursor {
    ddb_store *s;                      /* the handle it reads through */
    char *key;                         /* the key read, NULL for every key */
    bool backward;                     /* newest first */
    int64_t remaining;                 /* matches still to hand out; < 0: no limit */
    char lo[STORE_REVISION_SIZE];      /* revisions from this ... */
    char hi[STORE_REVISION_SIZE];      /* ... to this, both inclusive */
    store_filter *local;               /* the filter, when it runs here */
    bool pushed;                       /* a FilterExpression goes to DynamoDB */
    json_t *query;                     /* the Query body, pk and paging left to fill */
    json_t *page;                      /* the current answer (owns its items) */
    size_t pos;                        /* next item of page's Items */
    json_t *resume;                    /* LastEvaluatedKey to go on from, or NULL */
    bool partition_done;               /* the key (or slice) has no more pages */
    bool done;                         /* nothing more at all */
    /* read_all: the slices, listed from the metadata table page by page */
    json_t *slices;                    /* the current answer of that listing */
    size_t slice_pos;                  /* next slice in it */
    json_t *slices_resume;             /* its LastEvaluatedKey, or NULL */
    bool slices_started;               /* the listing began */
    store_event ev;                    /* the event last handed out */
    char *data;                        /* its data, malloc'd */
};

/* The options as an inclusive range, as Aeon's ensureInclusive makes it;
 * false when it is empty (BETWEEN would refuse lo > hi). */
static bool inclusive_bounds(const store_read_opts *o, char lo[STORE_REVISION_SIZE],
                             char hi[STORE_REVISION_SIZE])
{
    const char *from = o->from != NULL ? o->from : STORE_START;
    const char *to = o->to != NULL ? o->to : STORE_END;
    if (strcmp(from, STORE_START) == 0)
        copy_rev(lo, rev_min);
    else if (strcmp(from, STORE_END) == 0)
        return false;
    else if (!o->from_exclusive)
        copy_rev(lo, from);
    else if (!revision_next(from, lo))
        return false;
    if (strcmp(to, STORE_END) == 0)
        copy_rev(hi, rev_max);
    else if (strcmp(to, STORE_START) == 0)
        return false;
    else if (!o->to_exclusive)
        copy_rev(hi, to);
    else if (!revision_prev(to, hi))
        return false;
    return strcmp(lo, hi) <= 0;
}

static void ddb_cursor_close(store_cursor *c)
{
    if (c == NULL)
        return;
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
static json_t *query_base(store_cursor *c, const ddb_filter *f)
{
    ddb_store *s = c->s;
    json_t *names = f->names != NULL ? json_copy(f->names) : json_object();
    json_t *values = f->values != NULL ? json_copy(f->values) : json_object();
    json_t *q = NULL;
    if (names == NULL || values == NULL ||
        json_object_set_new(names, "#pk", json_string(c->key != NULL ? "key" : "slice")) ||
        json_object_set_new(names, "#rev", json_string("revision")) ||
        json_object_set_new(values, ":lo", av_s(c->lo)) ||
        json_object_set_new(values, ":hi", av_s(c->hi)))
        goto done;
    q = json_pack("{s:s, s:s, s:O, s:O, s:b}", "TableName", s->events,
                  "KeyConditionExpression", "#pk = :pk AND #rev BETWEEN :lo AND :hi",
                  "ExpressionAttributeNames", names, "ExpressionAttributeValues", values,
                  "ScanIndexForward", !c->backward);
    if (q == NULL)
        goto done;
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

static store_status ddb_read(store *st, const char *key, const store_read_opts *opts,
                             store_cursor **out, char **err)
{
    static const store_read_opts defaults = {NULL, false, NULL, false, -1, false, NULL};
    store_cursor *c = NULL;
    ddb_filter f = {0};
    store_status status;
    const char *why;
    *out = NULL;
    if (opts == NULL)
        opts = &defaults;

    if (key != NULL && (status = check_key(key, err)) != STORE_OK)
        return status;
    if (opts->from != NULL && !revision_bound_valid(opts->from))
        return store_fail(err, STORE_INVALID, "read bound \"%s\" is not a revision, "
                          "START or END", opts->from);
    if (opts->to != NULL && !revision_bound_valid(opts->to))
        return store_fail(err, STORE_INVALID, "read bound \"%s\" is not a revision, "
                          "START or END", opts->to);
    if (opts->filter != NULL && (why = filter_check(opts->filter)) != NULL)
        return store_fail(err, STORE_INVALID, "bad filter: %s", why);
    if ((status = ddb_filter_compile(opts->filter, key, &f, err)) != STORE_OK)
        return status;

    status = STORE_NOMEM;
    if ((c = calloc(1, sizeof *c)) == NULL || (key != NULL && (c->key = strdup(key)) == NULL))
        goto nomem;
    c->s = (ddb_store *)st;
    c->backward = opts->backward;
    c->remaining = opts->limit < 0 ? -1 : opts->limit;
    c->done = f.none || c->remaining == 0 || !inclusive_bounds(opts, c->lo, c->hi);
    c->pushed = f.expression != NULL;
    if (f.local && filter_copy(opts->filter, &c->local) != STORE_OK)
        goto nomem;
    if (!c->done && (c->query = query_base(c, &f)) == NULL)
        goto nomem;
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
    return nomem(err);
}

/* Moves read_all on to the next slice with events, listing the slice
 * markers a page at a time. Sets c->done when there are no more. */
static store_status next_slice(store_cursor *c, char **err)
{
    ddb_store *s = c->s;
    http_response r = {0};
    for (;;) {
        json_t *items = json_object_get(c->slices, "Items");
        if (c->slices != NULL && c->slice_pos < json_array_size(items)) {
            const char *slice = item_s(json_array_get(items, c->slice_pos++), "sk");
            if (slice == NULL)
                continue;
            json_t *values = json_object_get(c->query, "ExpressionAttributeValues");
            if (json_object_set_new(values, ":pk", av_s(slice)) != 0)
                return nomem(err);
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
        slice_of(c->lo, lo);
        slice_of(c->hi, hi);
        json_t *body = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:{s:s}, s:{s:s}, s:{s:s}}, "
                                 "s:i, s:b, s:b}", "TableName", s->metadata,
                                 "KeyConditionExpression", "#pk = :pk AND #sk BETWEEN :lo AND :hi",
                                 "ExpressionAttributeNames", "#pk", "pk", "#sk", "sk",
                                 "ExpressionAttributeValues", ":pk", "S", "slice", ":lo", "S", lo,
                                 ":hi", "S", hi, "Limit", SLICE_PAGE, "ScanIndexForward",
                                 !c->backward, "ConsistentRead", 1);
        if (body != NULL && c->slices_resume != NULL)
            json_object_set(body, "ExclusiveStartKey", c->slices_resume);
        store_status status = call(s, "Query", body, true, NULL, &r, err);
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

/* Fetches the next page of the current key or slice. */
static store_status fetch(store_cursor *c, char **err)
{
    ddb_store *s = c->s;
    http_response r = {0};
    int64_t limit = PAGE_ITEMS;
    /* Without a filter every item read is handed out: ask for no more. */
    if (!c->pushed && c->local == NULL && c->remaining >= 0 && c->remaining < limit)
        limit = c->remaining;
    if (c->key != NULL &&
        json_object_set_new(json_object_get(c->query, "ExpressionAttributeValues"), ":pk",
                            av_s(c->key)) != 0)
        return nomem(err);
    json_t *body = json_copy(c->query);
    if (body == NULL || json_object_set_new(body, "Limit", json_integer(limit)) != 0 ||
        (c->resume != NULL && json_object_set(body, "ExclusiveStartKey", c->resume) != 0)) {
        json_decref(body);
        return nomem(err);
    }
    store_status status = call(s, "Query", body, true, NULL, &r, err);
    if (status == STORE_OK) {
        json_decref(c->page);
        json_decref(c->resume);
        c->page = json_incref(r.json);
        c->resume = json_incref(json_object_get(r.json, "LastEvaluatedKey"));
        c->pos = 0;
        c->partition_done = c->resume == NULL;
    }
    http_response_free(&r);
    return status;
}

/* Points c->ev at an item's attributes; the item stays in c->page. */
static store_status to_event(store_cursor *c, const json_t *item, char **err)
{
    const char *key = item_s(item, "key"), *rev = item_s(item, "revision");
    const char *type = item_s(item, "type"), *at = item_s(item, "committedAt");
    const char *missing = key == NULL ? "key" : rev == NULL ? "revision"
                          : type == NULL ? "type" : at == NULL ? "committedAt" : NULL;
    if (missing == NULL && !revision_valid(rev))
        missing = "a valid revision";
    if (missing != NULL)
        return store_fail(err, STORE_IO, "dynamodb: an item of table %s (key \"%s\", "
                          "revision \"%s\") has no %s", c->s->events, key ? key : "?",
                          rev ? rev : "?", missing);
    free(c->data);
    c->data = NULL;
    const json_t *data = json_object_get(item, "data");
    store_status status;
    if (data == NULL) {
        /* Not written by Aeon nor by us; an absent value reads as null. */
        if ((c->data = strdup("null")) == NULL)
            return nomem(err);
        c->ev.data_len = 4;
    } else if ((status = ddb_value_to_json(data, json_object_get(item, "dataFloats"), &c->data,
                                           &c->ev.data_len, err)) != STORE_OK)
        return status;
    c->ev.key = key;
    c->ev.type = type;
    c->ev.data = c->data;
    c->ev.correlation_id = item_s(item, "correlationId"); /* NULL for {"NULL": true} */
    copy_rev(c->ev.revision, rev);
    snprintf(c->ev.committed_at, sizeof c->ev.committed_at, "%s", at);
    return STORE_OK;
}

/* Loads pages until one has an item left to look at, or there are none. */
static store_status advance(store_cursor *c, char **err)
{
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
            if ((status = next_slice(c, err)) != STORE_OK)
                return status;
            continue;
        }
        if ((status = fetch(c, err)) != STORE_OK)
            return status;
    }
    return STORE_OK;
}

static store_status ddb_next(store_cursor *c, const store_event **ev, char **err)
{
    store_status status;
    *ev = NULL;
    while ((status = advance(c, err)) == STORE_OK && !c->done && c->remaining != 0) {
        json_t *items = json_object_get(c->page, "Items");
        if ((status = to_event(c, json_array_get(items, c->pos++), err)) != STORE_OK)
            return status;
        if (c->local != NULL && !filter_match(c->local, &c->ev))
            continue;
        if (c->remaining > 0)
            c->remaining--;
        *ev = &c->ev;
        return STORE_OK;
    }
    return status;
}

/* ------------------------------------------------------------------ */
/* Views                                                               */

/* A view is one partition of the views table: its documents
 * {pk=VIEW, sk="doc#ID", id, revision, doc, docFloats} and its own item
 * {pk=VIEW, sk="view", revision}, the revision it has seen. */

#define VIEW_SK_MAX 1024 /* a sort key value, at most */

static store_status check_view(ddb_store *s, const char *view, const char *id, char **err)
{
    const char *why;
    if (s->views == NULL)
        return store_fail(err, STORE_IO, "dynamodb: store %s has no views table: its Aeon "
                          "config names none (add \"viewsTable\": \"%s-views\" to it and run "
                          "`aeon-host store deploy`)", s->name, s->name);
    if ((why = store_check_text(view, false)) != NULL)
        return store_fail(err, STORE_INVALID, "view name %s", why);
    if (strlen(view) > KEY_BYTES)
        return store_fail(err, STORE_LIMIT, "dynamodb: view name is %zu bytes; DynamoDB "
                          "takes at most %d in a partition key", strlen(view), KEY_BYTES);
    if (id != NULL && (why = store_check_text(id, false)) != NULL)
        return store_fail(err, STORE_INVALID, "view document id %s", why);
    if (id != NULL && strlen(id) + 4 > VIEW_SK_MAX)
        return store_fail(err, STORE_LIMIT, "dynamodb: view document id is %zu bytes; "
                          "DynamoDB takes at most %d in a sort key (with \"doc#\")",
                          strlen(id), VIEW_SK_MAX);
    return STORE_OK;
}

static char *doc_sk(const char *id)
{
    size_t n = strlen(id) + 5;
    char *sk = malloc(n);
    if (sk != NULL)
        snprintf(sk, n, "doc#%s", id);
    return sk;
}

static store_status ddb_view_get(store *st, const char *view, const char *id, char **doc,
                                 size_t *doc_len, char revision[STORE_REVISION_SIZE],
                                 bool *found, char **err)
{
    ddb_store *s = (ddb_store *)st;
    http_response r = {0};
    store_status status;
    char *sk = NULL;
    *doc = NULL;
    *doc_len = 0;
    *found = false;
    copy_rev(revision, STORE_START);
    if ((status = check_view(s, view, id, err)) != STORE_OK)
        return status;
    if ((sk = doc_sk(id)) == NULL)
        return nomem(err);
    json_t *body = json_pack("{s:s, s:{s:{s:s}, s:{s:s}}, s:b}", "TableName", s->views, "Key",
                             "pk", "S", view, "sk", "S", sk, "ConsistentRead", 1);
    free(sk);
    if ((status = call(s, "GetItem", body, true, NULL, &r, err)) == STORE_OK) {
        const json_t *item = json_object_get(r.json, "Item");
        const char *rev = item_s(item, "revision");
        const json_t *d = json_object_get(item, "doc");
        if (item == NULL) {
            /* none */
        } else if (rev == NULL || d == NULL ||
                   (strcmp(rev, STORE_START) != 0 && !revision_valid(rev))) {
            status = store_fail(err, STORE_IO, "dynamodb: document \"%s\" of view \"%s\" in "
                                "%s is malformed", id, view, s->views);
        } else if ((status = ddb_value_to_json(d, json_object_get(item, "docFloats"), doc,
                                               doc_len, err)) == STORE_OK) {
            copy_rev(revision, rev);
            *found = true;
        }
    }
    http_response_free(&r);
    return status;
}

/* The condition keeps a newer document; an equal revision overwrites, so
 * replaying a batch (or resending a put) is harmless. */
static store_status ddb_view_put(store *st, const char *view, const char *id, const char *doc,
                                 size_t doc_len, const char *revision, bool *stored,
                                 char **err)
{
    ddb_store *s = (ddb_store *)st;
    http_response r = {0};
    store_status status;
    json_t *av = NULL, *floats = NULL, *item = NULL;
    char *sk = NULL, *why = NULL;
    *stored = false;
    if ((status = check_view(s, view, id, err)) != STORE_OK)
        return status;
    if (revision == NULL || (strcmp(revision, STORE_START) != 0 && !revision_valid(revision)))
        return store_fail(err, STORE_INVALID, "view revision \"%s\" is not a revision",
                          revision != NULL ? revision : "(null)");
    if (doc == NULL || doc_len == 0)
        return store_fail(err, STORE_INVALID, "view document is empty");
    if ((status = ddb_value_from_json(doc, doc_len, &av, &floats, &why)) != STORE_OK) {
        status = store_fail(err, status, "dynamodb: view document %s", why ? why : "");
        free(why);
        return status;
    }
    if ((sk = doc_sk(id)) == NULL)
        goto nomem;
    item = json_pack("{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:o}", "pk", "S", view, "sk", "S",
                     sk, "id", "S", id, "revision", "S", revision, "doc", av);
    av = NULL;
    if (item == NULL || (floats != NULL && json_object_set(item, "docFloats", floats) != 0))
        goto nomem;
    size_t size = ddb_item_size(item);
    if (size > DDB_ITEM_MAX) {
        status = store_fail(err, STORE_LIMIT, "dynamodb: document \"%s\" of view \"%s\" is "
                            "%zu bytes as a DynamoDB item, over DynamoDB's limit of %d bytes "
                            "(400 KB)", id, view, size, DDB_ITEM_MAX);
        goto done;
    }
    json_t *body = json_pack("{s:s, s:O, s:s, s:{s:s}, s:{s:{s:s}}}", "TableName", s->views,
                             "Item", item, "ConditionExpression",
                             "attribute_not_exists(#revision) OR #revision <= :revision",
                             "ExpressionAttributeNames", "#revision", "revision",
                             "ExpressionAttributeValues", ":revision", "S", revision);
    status = call(s, "PutItem", body, true,
                  (const char *const[]){"ConditionalCheckFailedException", NULL}, &r, err);
    if (status == STORE_OK)
        *stored = r.error == NULL;
    goto done;
nomem:
    status = nomem(err);
done:
    free(sk);
    json_decref(av);
    json_decref(floats);
    json_decref(item);
    http_response_free(&r);
    return status;
}

static store_status ddb_view_revision(store *st, const char *view,
                                      char out[STORE_REVISION_SIZE], char **err)
{
    ddb_store *s = (ddb_store *)st;
    http_response r = {0};
    store_status status;
    copy_rev(out, STORE_START);
    if ((status = check_view(s, view, NULL, err)) != STORE_OK)
        return status;
    json_t *body = json_pack("{s:s, s:{s:{s:s}, s:{s:s}}, s:b}", "TableName", s->views, "Key",
                             "pk", "S", view, "sk", "S", "view", "ConsistentRead", 1);
    if ((status = call(s, "GetItem", body, true, NULL, &r, err)) == STORE_OK) {
        const char *rev = item_s(json_object_get(r.json, "Item"), "revision");
        if (rev != NULL && revision_valid(rev))
            copy_rev(out, rev);
    }
    http_response_free(&r);
    return status;
}

/* Never backwards: the condition makes an older revision a no-op. */
static store_status ddb_view_advance(store *st, const char *view, const char *revision,
                                     char **err)
{
    ddb_store *s = (ddb_store *)st;
    http_response r = {0};
    store_status status;
    if ((status = check_view(s, view, NULL, err)) != STORE_OK)
        return status;
    if (revision == NULL || !revision_valid(revision))
        return store_fail(err, STORE_INVALID, "view revision \"%s\" is not a revision",
                          revision != NULL ? revision : "(null)");
    json_t *body = json_pack("{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}}, s:s, s:{s:s}, s:{s:{s:s}}}",
                             "TableName", s->views, "Item", "pk", "S", view, "sk", "S", "view",
                             "revision", "S", revision, "ConditionExpression",
                             "attribute_not_exists(#revision) OR #revision < :revision",
                             "ExpressionAttributeNames", "#revision", "revision",
                             "ExpressionAttributeValues", ":revision", "S", revision);
    status = call(s, "PutItem", body, true,
                  (const char *const[]){"ConditionalCheckFailedException", NULL}, &r, err);
    http_response_free(&r);
    return status;
}

/* Deletes `keys` (an array of {pk, sk} keys, at most 25) from table, going
 * on with what DynamoDB leaves unprocessed. */
static store_status delete_keys(ddb_store *s, const char *table, json_t *keys, char **err)
{
    http_response r = {0};
    store_status status = STORE_OK;
    json_t *requests = json_array();
    size_t i;
    json_t *k;
    if (requests == NULL)
        return nomem(err);
    json_array_foreach(keys, i, k) {
        if (json_array_append_new(requests, json_pack("{s:{s:O}}", "DeleteRequest", "Key", k)))
            goto nomem;
    }
    for (int attempt = 0; json_array_size(requests) > 0; attempt++) {
        if (attempt >= 10) {
            status = store_fail(err, STORE_IO, "dynamodb BatchWriteItem: %zu deletes still "
                                "unprocessed after %d attempts", json_array_size(requests),
                                attempt);
            break;
        }
        if (attempt > 0)
            nap(50u << (attempt < 6 ? attempt : 6));
        json_t *body = json_pack("{s:{s:O}}", "RequestItems", table, requests);
        if ((status = call(s, "BatchWriteItem", body, true, NULL, &r, err)) != STORE_OK)
            break;
        json_t *left = json_object_get(json_object_get(r.json, "UnprocessedItems"), table);
        json_decref(requests);
        requests = json_is_array(left) ? json_incref(left) : json_array();
        http_response_free(&r);
        if (requests == NULL)
            goto nomem;
    }
    goto done;
nomem:
    status = nomem(err);
done:
    json_decref(requests);
    http_response_free(&r);
    return status;
}

static store_status ddb_view_clear(store *st, const char *view, char **err)
{
    ddb_store *s = (ddb_store *)st;
    http_response r = {0};
    store_status status;
    json_t *resume = NULL;
    if ((status = check_view(s, view, NULL, err)) != STORE_OK)
        return status;
    do {
        json_t *body = json_pack("{s:s, s:s, s:s, s:{s:s, s:s}, s:{s:{s:s}}, s:i, s:b}",
                                 "TableName", s->views, "KeyConditionExpression", "#pk = :pk",
                                 "ProjectionExpression", "#pk, #sk", "ExpressionAttributeNames",
                                 "#pk", "pk", "#sk", "sk", "ExpressionAttributeValues", ":pk",
                                 "S", view, "Limit", 25, "ConsistentRead", 1);
        if (body != NULL && resume != NULL)
            json_object_set(body, "ExclusiveStartKey", resume);
        if ((status = call(s, "Query", body, true, NULL, &r, err)) != STORE_OK)
            break;
        json_decref(resume);
        resume = json_incref(json_object_get(r.json, "LastEvaluatedKey"));
        json_t *items = json_object_get(r.json, "Items");
        if (json_array_size(items) > 0 &&
            (status = delete_keys(s, s->views, items, err)) != STORE_OK)
            break;
        http_response_free(&r);
    } while (resume != NULL);
    json_decref(resume);
    http_response_free(&r);
    return status;
}

/* ------------------------------------------------------------------ */
/* Subscriptions                                                       */

/* A subscription catches up by polling the by-revision index from where it
 * is, then follows the stream ("Following the stream" below). Revision
 * order is commit order for this library's writers (the store head), so a
 * scan never passes an event that commits later, except for the time
 * AWS's index takes to show a write: a revision the scan reached counts as
 * settled - everything below it seen - only INDEX_SETTLE_MS after it was
 * read. Events read above the settled mark are remembered (`seen`), so a
 * later scan over them hands out only what it had not. DynamoDB Local
 * writes its index with the table, so nothing waits there.
 *
 * The checkpoint item {pk=NAME, sk="subscription"} holds the revision acked
 * (what checkpoint() says), the settled mark and seen revisions that go
 * with it, a version number for fencing and, once following, the stream's
 * ARN and shard positions. */

#define SUB_WAIT_MS 100          /* a waiting poll looks again this often */
#define WAKE_STEP_MS 10          /* ... and for appends in this process this often */
#define SUB_HISTORY 64           /* recent polls remembered for acks */

/* A revision looked at above the mark, and the poll that looked. */
typedef struct seen_rev {
    char rev[STORE_REVISION_SIZE]; /* the event's revision */
    uint64_t poll;                 /* poll number; 0: loaded with a checkpoint */
} seen_rev;

/* Where one recent poll left the mark, for acking its position. */
typedef struct poll_mark {
    uint64_t poll;                 /* poll number */
    char mark[STORE_REVISION_SIZE]; /* the mark after it: its position */
} poll_mark;

/* A poll's highest revision read, waiting to settle. */
typedef struct settling {
    char rev[STORE_REVISION_SIZE]; /* highest revision the poll read */
    uint64_t at_ms;                /* when (store_env clock) */
} settling;

/* One shard of the events table's stream and how far it was read. */
typedef struct shard {
    char *id;                      /* ShardId */
    char *parent;                  /* ParentShardId, NULL when none */
    char *seq;                     /* last record read, NULL: none (TRIM_HORIZON) */
    char *before;                  /* seq when the last poll began, for acks */
    char *acked;                   /* seq the stored checkpoint holds, or NULL */
    char *iter;                    /* iterator to go on with, NULL: get one */
    bool listed;                   /* in the last DescribeStream */
    bool done;                     /* closed and read to its end */
} shard;

/* Where a batch event came from in the stream. */
typedef struct record_mark {
    size_t shard;                  /* index in shards; SIZE_MAX: the index */
    char *seq;                     /* its record's SequenceNumber, malloc'd */
} record_mark;

/* A sorted set of revisions. */
typedef struct rev_set {
    char (*v)[STORE_REVISION_SIZE]; /* the revisions, ascending */
    size_t n;                       /* entries in v */
    size_t cap;                     /* entries allocated */
} rev_set;

struct store_sub {
    ddb_store *s;                      /* the handle it reads and acks through */
    char *name;                        /* NULL when ephemeral */
    char **keys;                       /* key patterns */
    size_t nkeys;                      /* entries in keys */
    char **types;                      /* type patterns */
    size_t ntypes;                     /* entries in types */
    store_filter *filter;              /* copy of the caller's filter, or NULL */
    char start[STORE_REVISION_SIZE];   /* where to begin without a checkpoint */
    char known[STORE_REVISION_SIZE];   /* the checkpoint as last read or written */
    int64_t version;                   /* of the stored checkpoint; 0: none */
    char mark[STORE_REVISION_SIZE];    /* every event at or below was looked at */
    seen_rev *seen;                    /* looked at above mark, sorted */
    size_t nseen;                      /* entries in seen */
    size_t seen_cap;                   /* entries allocated */
    settling pending[SUB_HISTORY];     /* reads not yet settled, oldest first */
    size_t npending;                   /* entries in pending */
    poll_mark history[SUB_HISTORY];    /* recent polls' positions, oldest first */
    size_t nhistory;                   /* entries in history */
    uint64_t polls;                    /* polls made */
    store_event *events;               /* the last batch */
    char **blocks;                     /* each event's strings, one block each */
    size_t nevents;                    /* events in the batch */
    size_t events_cap;                 /* entries allocated */
    /* following the stream (see "Following the stream") */
    bool stream_checked;               /* the table's stream was looked for */
    bool following;                    /* caught up: the stream delivers */
    char *stream;                      /* its ARN, NULL when there is none */
    char base[STORE_REVISION_SIZE];    /* records at or below: before the start */
    shard *shards;                     /* the stream's shards, parents first */
    size_t nshards;                    /* entries in shards */
    bool relist;                       /* list the shards at the next look */
    uint64_t listed_ms;                /* when they were last listed */
    uint64_t stream_polls;             /* polls that read the stream */
    record_mark *marks;                /* per batch event: where it was read */
    size_t marks_cap;                  /* entries allocated */
    rev_set caught;                    /* what the catch-up looked at, recent */
};

/* Appends in this process wake its waiting polls at once. */
static pthread_mutex_t wake_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t wake_gen;

static void wake_all(void)
{
    pthread_mutex_lock(&wake_lock);
    wake_gen++;
    pthread_mutex_unlock(&wake_lock);
}

static uint64_t wake_now(void)
{
    pthread_mutex_lock(&wake_lock);
    uint64_t g = wake_gen;
    pthread_mutex_unlock(&wake_lock);
    return g;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void free_batch(store_sub *sub)
{
    for (size_t i = 0; i < sub->nevents; i++) {
        free(sub->blocks[i]);
        free(sub->marks[i].seq);
    }
    sub->nevents = 0;
}

static void free_shards(store_sub *sub)
{
    for (size_t i = 0; i < sub->nshards; i++) {
        free(sub->shards[i].id);
        free(sub->shards[i].parent);
        free(sub->shards[i].seq);
        free(sub->shards[i].before);
        free(sub->shards[i].acked);
        free(sub->shards[i].iter);
    }
    free(sub->shards);
    sub->shards = NULL;
    sub->nshards = 0;
}

/* Forgets the stream: the next poll catches up through the index. */
static void stop_following(store_sub *sub)
{
    free_shards(sub);
    free(sub->stream);
    sub->stream = NULL;
    sub->following = sub->stream_checked = false;
    sub->stream_polls = 0;
    sub->caught.n = 0;
}

static void ddb_sub_close(store_sub *sub)
{
    if (sub == NULL)
        return;
    free_batch(sub);
    stop_following(sub);
    free(sub->caught.v);
    free(sub->marks);
    free(sub->events);
    free(sub->blocks);
    free(sub->seen);
    free(sub->name);
    pattern_free(sub->keys, sub->nkeys);
    pattern_free(sub->types, sub->ntypes);
    filter_free(sub->filter);
    free(sub);
}

/* Index of rev in sub->seen, or where it would go (*found false). */
static size_t seen_find(const store_sub *sub, const char *rev, bool *found)
{
    size_t lo = 0, hi = sub->nseen;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(sub->seen[mid].rev, rev);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static bool seen_add(store_sub *sub, const char *rev, uint64_t poll)
{
    bool found;
    size_t at = seen_find(sub, rev, &found);
    if (found)
        return true;
    if (sub->nseen == sub->seen_cap) {
        size_t cap = sub->seen_cap > 0 ? sub->seen_cap * 2 : 64;
        seen_rev *v = realloc(sub->seen, cap * sizeof *v);
        if (v == NULL)
            return false;
        sub->seen = v;
        sub->seen_cap = cap;
    }
    memmove(&sub->seen[at + 1], &sub->seen[at], (sub->nseen - at) * sizeof *sub->seen);
    copy_rev(sub->seen[at].rev, rev);
    sub->seen[at].poll = poll;
    sub->nseen++;
    return true;
}

/* Drops what the mark now covers. */
static void seen_prune(store_sub *sub)
{
    size_t keep = 0;
    for (size_t i = 0; i < sub->nseen; i++)
        if (strcmp(sub->seen[i].rev, sub->mark) > 0)
            sub->seen[keep++] = sub->seen[i];
    sub->nseen = keep;
}

/* The store's last revision: the store head, or (for stores Aeon's own
 * client wrote, which have none) the index's last event, whichever is
 * higher. */
static store_status store_last(ddb_store *s, char out[STORE_REVISION_SIZE], char **err)
{
    http_response r = {0};
    const json_t *item;
    store_cursor *c = NULL;
    const store_event *ev;
    store_read_opts o = {NULL, false, NULL, false, 1, true, NULL};
    copy_rev(out, STORE_START);
    store_status status = get_meta(s, "slice", STORE_HEAD_SK, &r, &item, err);
    if (status == STORE_OK && item_s(item, "revision") != NULL &&
        revision_valid(item_s(item, "revision")))
        copy_rev(out, item_s(item, "revision"));
    http_response_free(&r);
    if (status != STORE_OK || (status = ddb_read(&s->base, NULL, &o, &c, err)) != STORE_OK)
        return status;
    if ((status = ddb_next(c, &ev, err)) == STORE_OK && ev != NULL &&
        strcmp(ev->revision, out) > 0)
        copy_rev(out, ev->revision);
    ddb_cursor_close(c);
    return status;
}

static json_t *sub_key(const char *name)
{
    return json_pack("{s:{s:s}, s:{s:s}}", "pk", "S", name, "sk", "S", "subscription");
}

static store_status load_shards(store_sub *sub, const json_t *item, char **err);

/* Puts the subscription where a consumer of its name starts now: at the
 * stored checkpoint (its mark and seen revisions), else at its start. */
static store_status rewind_sub(store_sub *sub, char **err)
{
    ddb_store *s = sub->s;
    store_status status = STORE_OK;
    http_response r = {0};
    free_batch(sub);
    stop_following(sub);
    sub->nseen = sub->npending = sub->nhistory = 0;
    copy_rev(sub->known, STORE_START);
    sub->version = 0;
    const json_t *item = NULL;
    if (sub->name != NULL) {
        json_t *body = json_pack("{s:s, s:o, s:b}", "TableName", s->metadata, "Key",
                                 sub_key(sub->name), "ConsistentRead", 1);
        if ((status = call(s, "GetItem", body, true, NULL, &r, err)) != STORE_OK)
            goto done;
        item = json_object_get(r.json, "Item");
    }
    if (item != NULL) {
        const char *rev = item_s(item, "revision"), *mark = item_s(item, "mark");
        const char *version = json_string_value(json_object_get(json_object_get(item,
                                                                                "version"), "N"));
        if (rev == NULL || !revision_valid(rev) || version == NULL) {
            status = store_fail(err, STORE_IO, "dynamodb: the checkpoint of subscription \"%s\" "
                                "in %s is malformed", sub->name, s->metadata);
            goto done;
        }
        copy_rev(sub->known, rev);
        copy_rev(sub->mark, mark != NULL && (revision_valid(mark) ||
                                             strcmp(mark, STORE_START) == 0) ? mark : rev);
        sub->version = strtoll(version, NULL, 10);
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(json_object_get(item, "seen"), "L"), i, v) {
            const char *seen = json_string_value(json_object_get(v, "S"));
            if (seen != NULL && revision_valid(seen) && strcmp(seen, sub->mark) > 0 &&
                !seen_add(sub, seen, 0)) {
                status = nomem(err);
                goto done;
            }
        }
        if ((status = load_shards(sub, item, err)) != STORE_OK)
            goto done;
    } else if (strcmp(sub->start, STORE_END) == 0) {
        status = store_last(s, sub->mark, err);
    } else {
        copy_rev(sub->mark, sub->start);
    }
    /* A catch-up hands out what is above the mark; the stream after it
     * skips what is not. Stored shard positions need no such floor. */
    copy_rev(sub->base, sub->following ? STORE_START : sub->mark);
done:
    http_response_free(&r);
    return status;
}

static store_status ddb_subscribe(store *st, const char *name, const store_sub_opts *opts,
                                  store_sub **out, char **err)
{
    static const store_sub_opts defaults = {NULL, 0, NULL, 0, NULL, NULL};
    ddb_store *s = (ddb_store *)st;
    store_status status = STORE_NOMEM;
    store_sub *sub = NULL;
    *out = NULL;
    if (opts == NULL)
        opts = &defaults;
    if ((status = store_check_subscription(name, opts, err)) != STORE_OK)
        return status;
    if (name != NULL && strlen(name) > KEY_BYTES)
        return store_fail(err, STORE_LIMIT, "dynamodb: subscription name is over %d bytes",
                          KEY_BYTES);
    if ((sub = calloc(1, sizeof *sub)) == NULL ||
        (name != NULL && (sub->name = strdup(name)) == NULL) ||
        filter_copy(opts->filter, &sub->filter) != STORE_OK)
        goto nomem;
    sub->s = s;
    copy_rev(sub->start, opts->start != NULL ? opts->start : STORE_START);
    if ((status = pattern_copy(opts->keys, opts->nkeys, "key", &sub->keys, &sub->nkeys,
                                err)) != STORE_OK ||
        (status = pattern_copy(opts->types, opts->ntypes, "type", &sub->types, &sub->ntypes,
                                err)) != STORE_OK ||
        (status = rewind_sub(sub, err)) != STORE_OK)
        goto fail;
    /* An ephemeral subscription's checkpoint is where it starts. */
    if (sub->name == NULL)
        copy_rev(sub->known, sub->mark);
    *out = sub;
    return STORE_OK;
nomem:
    status = nomem(err);
fail:
    ddb_sub_close(sub);
    return status;
}

static bool sub_matches(const store_sub *sub, const store_event *ev)
{
    return pattern_match_any((const char *const *)sub->keys, sub->nkeys, ev->key) &&
           pattern_match_any((const char *const *)sub->types, sub->ntypes, ev->type) &&
           filter_match(sub->filter, ev);
}

/* Copies an event into the batch: its strings in one block. */
static bool keep(store_sub *sub, const store_event *ev)
{
    if (sub->nevents == sub->events_cap) {
        size_t cap = sub->events_cap > 0 ? sub->events_cap * 2 : 16;
        store_event *e = realloc(sub->events, cap * sizeof *e);
        if (e == NULL)
            return false;
        sub->events = e;
        char **b = realloc(sub->blocks, cap * sizeof *b);
        if (b == NULL)
            return false;
        sub->blocks = b;
        record_mark *m = realloc(sub->marks, cap * sizeof *m);
        if (m == NULL)
            return false;
        sub->marks = m;
        sub->events_cap = cap;
    }
    size_t kl = strlen(ev->key), tl = strlen(ev->type);
    size_t cl = ev->correlation_id != NULL ? strlen(ev->correlation_id) : 0;
    char *block = malloc(kl + tl + ev->data_len + cl + 4);
    if (block == NULL)
        return false;
    store_event *e = &sub->events[sub->nevents];
    *e = *ev;
    char *p = block;
    e->key = memcpy(p, ev->key, kl + 1);
    p += kl + 1;
    e->type = memcpy(p, ev->type, tl + 1);
    p += tl + 1;
    memcpy(p, ev->data, ev->data_len);
    p[ev->data_len] = '\0';
    e->data = p;
    p += ev->data_len + 1;
    e->correlation_id = ev->correlation_id != NULL ? memcpy(p, ev->correlation_id, cl + 1)
                                                   : NULL;
    sub->marks[sub->nevents] = (record_mark){SIZE_MAX, NULL};
    sub->blocks[sub->nevents++] = block;
    return true;
}

/* Records a poll's highest revision read (if any) to settle, moves the mark
 * to what has settled and remembers where the poll left it. */
static void settle(store_sub *sub, const char *last, uint64_t now, uint64_t poll)
{
    uint64_t settle = sub->s->settle_ms;
    if (last[0] != '\0') {
        if (sub->npending == SUB_HISTORY) {
            /* keep the newest reads; the oldest settles now (rarely: a poll
             * per millisecond would be needed to get here) */
            if (strcmp(sub->pending[0].rev, sub->mark) > 0)
                copy_rev(sub->mark, sub->pending[0].rev);
            memmove(&sub->pending[0], &sub->pending[1],
                    (SUB_HISTORY - 1) * sizeof *sub->pending);
            sub->npending--;
        }
        copy_rev(sub->pending[sub->npending].rev, last);
        sub->pending[sub->npending++].at_ms = now;
    }
    size_t gone = 0;
    while (gone < sub->npending && sub->pending[gone].at_ms + settle <= now) {
        if (strcmp(sub->pending[gone].rev, sub->mark) > 0)
            copy_rev(sub->mark, sub->pending[gone].rev);
        gone++;
    }
    memmove(&sub->pending[0], &sub->pending[gone], (sub->npending - gone) * sizeof *sub->pending);
    sub->npending -= gone;
    seen_prune(sub);

    if (sub->nhistory == SUB_HISTORY) {
        memmove(&sub->history[0], &sub->history[1], (SUB_HISTORY - 1) * sizeof *sub->history);
        sub->nhistory--;
    }
    sub->history[sub->nhistory].poll = poll;
    copy_rev(sub->history[sub->nhistory++].mark, sub->mark);
}

/* -- Following the stream ---------------------------------------------- */
/* Once a scan has reached the end of the index, the subscription follows
 * the events table's stream instead: every committed event is a record
 * there, in commit order within a shard (and so within a key, whose items
 * stay in one shard until it splits: parents are read before children),
 * whatever its revision. So an event that commits late, below a revision
 * already delivered, is still delivered. The stream starts at each shard's
 * TRIM_HORIZON; records at or below `base` (where the catch-up began) or
 * that the catch-up looked at (`caught`) were handled by the index. Acks
 * store each shard's last sequence number beside the checkpoint, so a new
 * subscription of the name resumes after them; when those are gone from
 * the stream (24 h retention, another stream) it catches up again. */

#define STREAM_KEPT_MS (25ull * 60 * 60 * 1000) /* the stream's 24 h, and slack */
#define SHARD_LIST_MS 60000      /* shards are listed again this often */
#define RECORDS_PAGE 1000        /* GetRecords Limit (its maximum) */

static bool set_has(const rev_set *set, const char *rev, size_t *at)
{
    size_t lo = 0, hi = set->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(set->v[mid], rev);
        if (c == 0) {
            *at = mid;
            return true;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *at = lo;
    return false;
}

static bool set_add(rev_set *set, const char *rev)
{
    size_t at;
    if (set_has(set, rev, &at))
        return true;
    if (set->n == set->cap) {
        size_t cap = set->cap > 0 ? set->cap * 2 : 256;
        char(*v)[STORE_REVISION_SIZE] = realloc(set->v, cap * sizeof *v);
        if (v == NULL)
            return false;
        set->v = v;
        set->cap = cap;
    }
    memmove(&set->v[at + 1], &set->v[at], (set->n - at) * sizeof *set->v);
    copy_rev(set->v[at], rev);
    set->n++;
    return true;
}

/* Replaces *slot with a copy of v (NULL allowed); false on no memory. */
static bool set_str(char **slot, const char *v)
{
    char *copy = NULL;
    if (v != NULL && (copy = strdup(v)) == NULL)
        return false;
    free(*slot);
    *slot = copy;
    return true;
}

/* Calls a Streams API operation, opening its client on first use: the
 * DynamoDB endpoint itself when it was given (DynamoDB Local serves both),
 * else the region's streams.dynamodb endpoint. */
static store_status stream_call(ddb_store *s, const char *op, json_t *body,
                                const char *const *expected, http_response *r, char **err)
{
    store_status status = STORE_OK;
    if (body == NULL)
        return nomem(err);
    if (s->streams == NULL) {
        static const char aws[] = "https://dynamodb.";
        char *endpoint = NULL;
        if (strncmp(s->aws.endpoint, aws, sizeof aws - 1) == 0 &&
            strstr(s->aws.endpoint, ".amazonaws.com") != NULL) {
            size_t n = strlen(s->aws.endpoint) + sizeof "streams.";
            if ((endpoint = malloc(n)) != NULL)
                snprintf(endpoint, n, "https://streams.%s", s->aws.endpoint + 8);
        } else {
            endpoint = strdup(s->aws.endpoint);
        }
        if (endpoint == NULL) {
            json_decref(body);
            return nomem(err);
        }
        http_config cfg = {
            .endpoint = endpoint,
            .api = HTTP_STREAMS,
            .region = s->aws.region,
            .creds = {s->aws.access_key, s->aws.secret_key, s->aws.session_token},
            .env = &s->base.env,
        };
        status = http_open(&cfg, &s->streams, err);
        free(endpoint);
    }
    /* Every Streams operation reads: safe to repeat. */
    if (status == STORE_OK)
        status = http_call_json(s->streams, op, body, true, r, err);
    json_decref(body);
    if (status != STORE_OK)
        return status;
    if (r->status >= 200 && r->status < 300 && r->json != NULL)
        return STORE_OK;
    for (int i = 0; expected != NULL && expected[i] != NULL; i++)
        if (r->error != NULL && strcmp(r->error, expected[i]) == 0)
            return STORE_OK;
    return http_fail(r, op, err);
}

static store_status describe(ddb_store *s, const char *table, json_t **desc, char **err);

/* The ARN of the events table's stream, malloc'd, or NULL when it has no
 * stream with new images (the subscription then stays on the index). */
static store_status stream_arn(ddb_store *s, char **arn, char **err)
{
    json_t *desc = NULL;
    *arn = NULL;
    store_status status = describe(s, s->events, &desc, err);
    if (status != STORE_OK)
        return status;
    const json_t *spec = json_object_get(desc, "StreamSpecification");
    const char *view = json_string_value(json_object_get(spec, "StreamViewType"));
    const char *latest = json_string_value(json_object_get(desc, "LatestStreamArn"));
    if (json_is_true(json_object_get(spec, "StreamEnabled")) && latest != NULL &&
        view != NULL && strstr(view, "NEW") != NULL && (*arn = strdup(latest)) == NULL)
        status = nomem(err);
    json_decref(desc);
    return status;
}

static shard *find_shard(store_sub *sub, const char *id)
{
    for (size_t i = 0; id != NULL && i < sub->nshards; i++)
        if (strcmp(sub->shards[i].id, id) == 0)
            return &sub->shards[i];
    return NULL;
}

static shard *add_shard(store_sub *sub, const char *id)
{
    shard *v = realloc(sub->shards, (sub->nshards + 1) * sizeof *v);
    if (v == NULL)
        return NULL;
    sub->shards = v;
    shard *sh = &v[sub->nshards];
    memset(sh, 0, sizeof *sh);
    if ((sh->id = strdup(id)) == NULL)
        return NULL;
    sub->nshards++;
    return sh;
}

/* Lists the stream's shards (DescribeStream, page by page), adding new ones
 * to be read from their start. *lost when the stream or a shard not read to
 * its end is gone: what it held can no longer be read. */
static store_status list_shards(store_sub *sub, bool *lost, char **err)
{
    ddb_store *s = sub->s;
    http_response r = {0};
    store_status status = STORE_OK;
    char *from = NULL;
    *lost = false;
    if (sub->stream == NULL || (sub->stream_polls == 0 && sub->listed_ms == 0)) {
        /* The stream a stored checkpoint names must still be the table's. */
        char *arn = NULL;
        if ((status = stream_arn(s, &arn, err)) != STORE_OK)
            return status;
        *lost = arn == NULL || (sub->stream != NULL && strcmp(arn, sub->stream) != 0);
        free(sub->stream);
        sub->stream = arn;
        if (*lost)
            return STORE_OK;
    }
    for (size_t i = 0; i < sub->nshards; i++)
        sub->shards[i].listed = false;
    do {
        json_t *body = json_pack("{s:s, s:i}", "StreamArn", sub->stream, "Limit", 100);
        if (body != NULL && from != NULL)
            json_object_set_new(body, "ExclusiveStartShardId", json_string(from));
        status = stream_call(s, "DescribeStream", body,
                             (const char *const[]){"ResourceNotFoundException", NULL}, &r, err);
        if (status != STORE_OK)
            goto done;
        if (r.error != NULL) {
            *lost = true;
            goto done;
        }
        const json_t *d = json_object_get(r.json, "StreamDescription"), *v;
        size_t i;
        json_array_foreach(json_object_get(d, "Shards"), i, v) {
            const char *id = json_string_value(json_object_get(v, "ShardId"));
            const char *parent = json_string_value(json_object_get(v, "ParentShardId"));
            if (id == NULL)
                continue;
            shard *sh = find_shard(sub, id);
            if ((sh == NULL && (sh = add_shard(sub, id)) == NULL) ||
                (sh->parent == NULL && !set_str(&sh->parent, parent)))
                goto nomem;
            sh->listed = true;
        }
        if (!set_str(&from, json_string_value(json_object_get(d, "LastEvaluatedShardId"))))
            goto nomem;
        http_response_free(&r);
    } while (from != NULL);
    /* Shards aged out of the stream: fine when they were read to the end. */
    size_t kept = 0;
    for (size_t i = 0; i < sub->nshards; i++) {
        shard *sh = &sub->shards[i];
        if (!sh->listed && !sh->done)
            *lost = true;
        if (sh->listed) {
            sub->shards[kept++] = *sh;
        } else {
            free(sh->id);
            free(sh->parent);
            free(sh->seq);
            free(sh->before);
            free(sh->acked);
            free(sh->iter);
        }
    }
    sub->nshards = kept;
    sub->relist = false;
    sub->listed_ms = s->base.env.now_ms(s->base.env.ctx);
    goto done;
nomem:
    status = nomem(err);
done:
    free(from);
    http_response_free(&r);
    return status;
}

/* A shard is read once its parent is read to its end (or gone). */
static bool shard_ready(store_sub *sub, const shard *sh)
{
    const shard *parent = find_shard(sub, sh->parent);
    return parent == NULL || parent->done;
}

/* Takes one INSERT record's new image: hands it out when it matches, is
 * above base and was not the catch-up's. The same conversion as reads. */
static store_status take(store_sub *sub, const json_t *image, size_t from, const char *seq,
                         char top[STORE_REVISION_SIZE], char **err)
{
    const char *rev = item_s(image, "revision");
    if (rev == NULL || item_s(image, "key") == NULL || !revision_valid(rev))
        return STORE_OK; /* not an event */
    size_t at;
    if (strcmp(rev, sub->base) <= 0 || set_has(&sub->caught, rev, &at))
        return STORE_OK;
    if (strcmp(rev, top) > 0)
        copy_rev(top, rev);
    store_cursor c = {.s = sub->s};
    store_status status = to_event(&c, image, err);
    if (status == STORE_OK && sub_matches(sub, &c.ev)) {
        if (!keep(sub, &c.ev) || (sub->marks[sub->nevents - 1].seq = strdup(seq)) == NULL)
            status = nomem(err);
        else
            sub->marks[sub->nevents - 1].shard = from;
    }
    free(c.data);
    return status;
}

/* Reads shard i on from where it is until max events are in the batch or
 * it has no more for now. *lost when its records are gone. */
static store_status read_shard(store_sub *sub, size_t i, size_t max,
                               char top[STORE_REVISION_SIZE], bool *lost, char **err)
{
    ddb_store *s = sub->s;
    http_response r = {0};
    store_status status = STORE_OK;
    int expired = 0;
    while (sub->nevents < max) {
        shard *sh = &sub->shards[i];
        if (sh->iter == NULL) {
            json_t *body = json_pack("{s:s, s:s, s:s}", "StreamArn", sub->stream, "ShardId",
                                     sh->id, "ShardIteratorType",
                                     sh->seq != NULL ? "AFTER_SEQUENCE_NUMBER" : "TRIM_HORIZON");
            if (body != NULL && sh->seq != NULL)
                json_object_set_new(body, "SequenceNumber", json_string(sh->seq));
            status = stream_call(s, "GetShardIterator", body,
                                 (const char *const[]){"TrimmedDataAccessException",
                                                       "ResourceNotFoundException", NULL},
                                 &r, err);
            if (status != STORE_OK || (*lost = r.error != NULL))
                break;
            const char *it = json_string_value(json_object_get(r.json, "ShardIterator"));
            if (it == NULL) { /* closed, nothing after seq */
                sh->done = sub->relist = true;
                break;
            }
            if (!set_str(&sh->iter, it))
                goto nomem;
            http_response_free(&r);
        }
        json_t *body = json_pack("{s:s, s:i}", "ShardIterator", sh->iter, "Limit", RECORDS_PAGE);
        status = stream_call(s, "GetRecords", body,
                             (const char *const[]){"ExpiredIteratorException",
                                                   "TrimmedDataAccessException",
                                                   "ResourceNotFoundException", NULL},
                             &r, err);
        if (status != STORE_OK)
            break;
        if (r.error != NULL && strcmp(r.error, "ExpiredIteratorException") == 0 && expired++ == 0) {
            free(sh->iter); /* 15 minutes old: get another from seq */
            sh->iter = NULL;
            http_response_free(&r);
            continue;
        }
        if ((*lost = r.error != NULL))
            break;
        const json_t *records = json_object_get(r.json, "Records");
        size_t n = json_array_size(records), k;
        for (k = 0; k < n && sub->nevents < max; k++) {
            const json_t *rec = json_array_get(records, k);
            const json_t *ddb = json_object_get(rec, "dynamodb");
            const char *seq = json_string_value(json_object_get(ddb, "SequenceNumber"));
            const char *name = json_string_value(json_object_get(rec, "eventName"));
            if (seq == NULL)
                continue;
            if (name != NULL && strcmp(name, "INSERT") == 0 &&
                (status = take(sub, json_object_get(ddb, "NewImage"), i, seq, top, err)) !=
                    STORE_OK)
                goto done;
            if (!set_str(&sh->seq, seq))
                goto nomem;
        }
        const char *next = json_string_value(json_object_get(r.json, "NextShardIterator"));
        /* Stopped inside the page: the next poll goes on after seq. */
        if (!set_str(&sh->iter, k < n ? NULL : next))
            goto nomem;
        if (k == n && next == NULL) {
            sh->done = sub->relist = true;
            break;
        }
        http_response_free(&r);
        if (n == 0 || k < n)
            break;
    }
    goto done;
nomem:
    status = nomem(err);
done:
    http_response_free(&r);
    return status;
}

/* One look at the stream; falls back to catching up through the index
 * (following off) when what it needs was trimmed. On failure nothing is
 * handed out and every shard stays where it was. */
static store_status follow(store_sub *sub, size_t max, char **err)
{
    ddb_store *s = sub->s;
    uint64_t now = s->base.env.now_ms(s->base.env.ctx);
    char top[STORE_REVISION_SIZE] = "";
    store_status status = STORE_OK;
    bool lost = false;
    if (sub->relist || now - sub->listed_ms >= SHARD_LIST_MS) {
        if ((status = list_shards(sub, &lost, err)) != STORE_OK)
            return status;
    }
    for (size_t i = 0; i < sub->nshards && !lost; i++)
        if (!set_str(&sub->shards[i].before, sub->shards[i].seq))
            return nomem(err);
    for (size_t i = 0; i < sub->nshards && sub->nevents < max && !lost; i++)
        if (!sub->shards[i].done && shard_ready(sub, &sub->shards[i]) &&
            (status = read_shard(sub, i, max, top, &lost, err)) != STORE_OK)
            break;
    if (status != STORE_OK || lost) {
        free_batch(sub);
        for (size_t i = 0; i < sub->nshards; i++) {
            shard *sh = &sub->shards[i];
            free(sh->iter);
            sh->iter = NULL;
            if (!set_str(&sh->seq, sh->before))
                status = nomem(err);
        }
        if (status == STORE_OK) {
            /* Catch up from the mark; what was delivered above it may come again. */
            stop_following(sub);
            copy_rev(sub->base, sub->mark);
        }
        return status;
    }
    sub->stream_polls++;
    /* The position: what was read, once the settle window (the time an
     * event may take to commit) has passed; reads the catch-up left
     * settling settle as before. */
    settle(sub, top, now, ++sub->polls);
    return STORE_OK;
}

/* Starts following the stream after a scan reached the end of the index;
 * stays on the index when the table has no stream. */
static store_status start_following(store_sub *sub, char **err)
{
    sub->stream_checked = true;
    store_status status = stream_arn(sub->s, &sub->stream, err);
    if (status == STORE_OK && sub->stream != NULL) {
        sub->following = sub->relist = true;
        sub->stream_polls = 0;
        sub->listed_ms = 0;
    }
    return status;
}

/* Resumes following the stream from the shard positions a checkpoint
 * item stores, if it has them. */
static store_status load_shards(store_sub *sub, const json_t *item, char **err)
{
    const char *arn = item_s(item, "stream");
    const json_t *list = json_object_get(json_object_get(item, "shards"), "L"), *v;
    size_t i;
    if (arn == NULL || list == NULL)
        return STORE_OK;
    if ((sub->stream = strdup(arn)) == NULL)
        return nomem(err);
    json_array_foreach(list, i, v) {
        const json_t *m = json_object_get(v, "M");
        const char *id = item_s(m, "id");
        shard *sh;
        if (id == NULL)
            continue;
        if ((sh = add_shard(sub, id)) == NULL || !set_str(&sh->seq, item_s(m, "seq")) ||
            !set_str(&sh->acked, sh->seq))
            return nomem(err);
        sh->done = json_is_true(json_object_get(json_object_get(m, "done"), "BOOL"));
    }
    sub->following = sub->stream_checked = sub->relist = true;
    sub->listed_ms = 0;
    return STORE_OK;
}

/* One look: reads the index after the mark, skipping what was seen, and
 * keeps up to max matching events; then moves the mark to what has
 * settled. On failure nothing is handed out and nothing is marked seen. */
static store_status scan(store_sub *sub, size_t max, bool *end, char **err)
{
    ddb_store *s = sub->s;
    bool from_start = strcmp(sub->mark, STORE_START) == 0;
    store_read_opts o = {from_start ? NULL : sub->mark, !from_start, NULL, false, -1, false,
                         NULL};
    store_cursor *c = NULL;
    const store_event *ev = NULL;
    char last[STORE_REVISION_SIZE] = "";
    uint64_t poll = sub->polls + 1;
    uint64_t now = s->base.env.now_ms(s->base.env.ctx);
    store_status status;

    *end = false;
    if ((status = ddb_read(&s->base, NULL, &o, &c, err)) != STORE_OK)
        return status;
    while ((status = ddb_next(c, &ev, err)) == STORE_OK && ev != NULL) {
        bool found;
        seen_find(sub, ev->revision, &found);
        if (found)
            continue;
        /* What the stream still holds, it will show again: remember it. */
        if (!seen_add(sub, ev->revision, poll) ||
            (revision_time(ev->revision) + STREAM_KEPT_MS >= now &&
             !set_add(&sub->caught, ev->revision)) ||
            (sub_matches(sub, ev) && !keep(sub, ev))) {
            status = nomem(err);
            break;
        }
        copy_rev(last, ev->revision);
        if (sub->nevents == max)
            break;
    }
    *end = status == STORE_OK && ev == NULL;
    ddb_cursor_close(c);
    if (status != STORE_OK) {
        /* forget this poll's reads: the next one looks again */
        size_t keep_n = 0;
        for (size_t i = 0; i < sub->nseen; i++)
            if (sub->seen[i].poll != poll)
                sub->seen[keep_n++] = sub->seen[i];
        sub->nseen = keep_n;
        free_batch(sub);
        return status;
    }
    sub->polls = poll;

    settle(sub, last, now, poll);
    return STORE_OK;
}

static store_status ddb_poll(store_sub *sub, int64_t timeout_ms, size_t max,
                             const store_event **events, size_t *count,
                             char position[STORE_REVISION_SIZE], char **err)
{
    store_status status;
    *events = NULL;
    *count = 0;
    copy_rev(position, sub->mark);
    if (max == 0)
        return store_fail(err, STORE_INVALID, "poll: max must be at least 1");
    int64_t deadline = mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        uint64_t gen = wake_now();
        bool end = false;
        free_batch(sub);
        if (!sub->following) {
            if ((status = scan(sub, max, &end, err)) != STORE_OK)
                return status;
            if (end && !sub->stream_checked && (status = start_following(sub, err)) != STORE_OK)
                return status;
        }
        /* A batch comes from one source, so an ack maps to one of them. */
        if (sub->following && sub->nevents == 0 && (status = follow(sub, max, err)) != STORE_OK)
            return status;
        if (sub->nevents > 0 || mono_ms() >= deadline)
            break;
        /* Wait for an append here (checked often) or the next look. */
        int64_t until = mono_ms() + SUB_WAIT_MS;
        if (until > deadline)
            until = deadline;
        while (mono_ms() < until && wake_now() == gen)
            nap(WAKE_STEP_MS);
    }
    *events = sub->events;
    *count = sub->nevents;
    copy_rev(position, sub->mark);
    return STORE_OK;
}

/* What acking `revision` says is processed, as a mark and the revisions
 * above it (see store.h's ack): for a poll's position, everything that
 * poll and those before looked at; for an event handed out, that and what
 * was looked at before it. */
static store_status processed(const store_sub *sub, const char *revision,
                              char mark[STORE_REVISION_SIZE], json_t **seen)
{
    uint64_t poll = sub->polls;
    bool position = false, found;
    bool in_batch = false;
    for (size_t i = 0; i < sub->nevents && !in_batch; i++)
        in_batch = strcmp(sub->events[i].revision, revision) == 0;
    size_t at = seen_find(sub, revision, &found);
    if (!in_batch && found) {
        poll = sub->seen[at].poll;
    } else if (!in_batch) {
        for (size_t i = sub->nhistory; i > 0; i--)
            if (strcmp(sub->history[i - 1].mark, revision) == 0) {
                poll = sub->history[i - 1].poll;
                position = true;
                break;
            }
    }
    /* The mark after that poll (or the current one when it is gone). */
    copy_rev(mark, sub->mark);
    for (size_t i = 0; i < sub->nhistory; i++)
        if (sub->history[i].poll == poll)
            copy_rev(mark, sub->history[i].mark);
    if (!position && strcmp(revision, mark) < 0)
        copy_rev(mark, revision);
    if ((*seen = json_array()) == NULL)
        return STORE_NOMEM;
    for (size_t i = 0; i < sub->nseen; i++) {
        const seen_rev *v = &sub->seen[i];
        bool done = v->poll < poll || (v->poll == poll && (position ||
                                                            strcmp(v->rev, revision) <= 0));
        if (done && strcmp(v->rev, mark) > 0 &&
            json_array_append_new(*seen, json_pack("{s:s}", "S", v->rev)) != 0)
            return STORE_NOMEM;
    }
    return STORE_OK;
}

/* Adds the stream and each shard's position (pos[i], filled) to a
 * checkpoint item: after the last poll for its position, after an event of
 * its batch for that event (and what came before it), else the positions
 * stored already: an older event may sit inside an earlier batch. Adds
 * nothing when no shard has a position yet (a restart catches up). */
static bool put_positions(const store_sub *sub, const char *revision, json_t *item,
                          const char **pos)
{
    size_t upto = SIZE_MAX;
    for (size_t j = 0; j < sub->nevents && upto == SIZE_MAX; j++)
        if (strcmp(sub->events[j].revision, revision) == 0)
            upto = j;
    bool all = upto == SIZE_MAX && strcmp(revision, sub->mark) == 0, any = false;
    for (size_t i = 0; i < sub->nshards; i++) {
        const shard *sh = &sub->shards[i];
        pos[i] = all ? sh->seq : upto != SIZE_MAX ? sh->before : sh->acked;
        for (size_t k = 0; upto != SIZE_MAX && k <= upto; k++)
            if (sub->marks[k].shard == i)
                pos[i] = sub->marks[k].seq;
        any = any || pos[i] != NULL;
    }
    if (!any)
        return true;
    json_t *list = json_array();
    if (list == NULL || json_object_set_new(item, "stream", av_s(sub->stream)) != 0 ||
        json_object_set_new(item, "shards", json_pack("{s:o}", "L", list)) != 0)
        return false;
    for (size_t i = 0; i < sub->nshards; i++) {
        const shard *sh = &sub->shards[i];
        bool done = sh->done && (sh->seq == NULL ? pos[i] == NULL
                                                 : pos[i] != NULL && strcmp(pos[i], sh->seq) == 0);
        json_t *m = json_pack("{s:{s:s}, s:{s:b}}", "id", "S", sh->id, "done", "BOOL", done);
        if (m == NULL || (pos[i] != NULL && json_object_set_new(m, "seq", av_s(pos[i])) != 0) ||
            json_array_append_new(list, json_pack("{s:o}", "M", m)) != 0)
            return false;
    }
    return true;
}

static store_status ddb_ack(store_sub *sub, const char *revision, bool *acked, char **err)
{
    ddb_store *s = sub->s;
    http_response r = {0};
    json_t *seen = NULL, *item = NULL;
    const char **pos = NULL;
    char mark[STORE_REVISION_SIZE];
    store_status status;
    *acked = false;
    if (revision == NULL || !revision_valid(revision))
        return store_fail(err, STORE_INVALID, "ack: \"%s\" is not a revision",
                          revision != NULL ? revision : "(null)");
    /* Following the stream, an event below the checkpoint may be new (it
     * committed late): its shard positions still move on. */
    bool streamed = sub->following && sub->stream_polls > 0;
    if (strcmp(revision, sub->known) <= 0 && (!streamed || sub->name == NULL)) {
        *acked = true;
        return STORE_OK;
    }
    const char *stored = strcmp(revision, sub->known) > 0 ? revision : sub->known;
    if (sub->name == NULL) {
        copy_rev(sub->known, stored);
        *acked = true;
        return STORE_OK;
    }
    /* The mark and seen revisions are the catch-up's, for a restart that
     * has to catch up again; positions are the stream's. */
    if (processed(sub, revision, mark, &seen) != STORE_OK)
        goto nomem;
    char version[24];
    snprintf(version, sizeof version, "%" PRId64, sub->version + 1);
    item = json_pack("{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}}", "pk", "S", sub->name,
                     "sk", "S", "subscription", "revision", "S", stored, "mark", "S", mark,
                     "version", "N", version);
    if (item == NULL || (json_array_size(seen) > 0 &&
                         json_object_set_new(item, "seen", json_pack("{s:O}", "L", seen)) != 0) ||
        (streamed && ((pos = calloc(sub->nshards + 1, sizeof *pos)) == NULL ||
                      !put_positions(sub, revision, item, pos))))
        goto nomem;
    json_t *body;
    if (sub->version == 0) {
        body = json_pack("{s:s, s:O, s:s, s:{s:s}}", "TableName", s->metadata, "Item", item,
                         "ConditionExpression", "attribute_not_exists(#version)",
                         "ExpressionAttributeNames", "#version", "version");
    } else {
        char current[24];
        snprintf(current, sizeof current, "%" PRId64, sub->version);
        body = json_pack("{s:s, s:O, s:s, s:{s:s}, s:{s:{s:s}}}", "TableName", s->metadata,
                         "Item", item, "ConditionExpression", "#version = :version",
                         "ExpressionAttributeNames", "#version", "version",
                         "ExpressionAttributeValues", ":version", "N", current);
    }
    /* Not resent blindly: a resend after a lost answer would find its own
     * write and take it for another consumer's. */
    status = call(s, "PutItem", body, false,
                  (const char *const[]){"ConditionalCheckFailedException", NULL}, &r, err);
    if (status != STORE_OK)
        goto done;
    if (r.error != NULL) {
        /* Another consumer moved it: start again from where it left things. */
        status = rewind_sub(sub, err);
        goto done;
    }
    sub->version++;
    copy_rev(sub->known, stored);
    *acked = true;
    /* Out of memory here keeps an older position: a later ack that falls
     * back on it stores less, never more. */
    for (size_t i = 0; streamed && i < sub->nshards; i++)
        (void)set_str(&sub->shards[i].acked, pos[i]);
    goto done;
nomem:
    status = nomem(err);
done:
    free(pos);
    json_decref(seen);
    json_decref(item);
    http_response_free(&r);
    return status;
}

static store_status ddb_checkpoint(store_sub *sub, char out[STORE_REVISION_SIZE], char **err)
{
    ddb_store *s = sub->s;
    http_response r = {0};
    const json_t *item;
    copy_rev(out, sub->known);
    if (sub->name == NULL)
        return STORE_OK;
    copy_rev(out, STORE_START);
    store_status status = get_meta(s, sub->name, "subscription", &r, &item, err);
    if (status == STORE_OK && item_s(item, "revision") != NULL &&
        revision_valid(item_s(item, "revision")))
        copy_rev(out, item_s(item, "revision"));
    http_response_free(&r);
    return status;
}

static store_status ddb_sub_reset(store *st, const char *name, char **err)
{
    ddb_store *s = (ddb_store *)st;
    http_response r = {0};
    const char *why = store_check_text(name, false);
    if (why != NULL)
        return store_fail(err, STORE_INVALID, "subscription name %s", why);
    store_status status = call(s, "DeleteItem", json_pack("{s:s, s:o}", "TableName",
                                                          s->metadata, "Key", sub_key(name)),
                               true, NULL, &r, err);
    http_response_free(&r);
    return status;
}

/* ------------------------------------------------------------------ */
/* Administration                                                      */

/* The tables a store has, with what deploy creates for each. */
typedef enum role { R_EVENTS, R_METADATA, R_VIEWS, R_COUNT } role;
static const char *const role_names[R_COUNT] = {"events", "metadata", "views"};

static const char *table_of(const ddb_store *s, role r)
{
    return r == R_EVENTS ? s->events : r == R_METADATA ? s->metadata : s->views;
}

/* DescribeTable: *desc is the Table object (a new reference), or NULL when
 * the table does not exist. */
static store_status describe(ddb_store *s, const char *table, json_t **desc, char **err)
{
    http_response r = {0};
    *desc = NULL;
    store_status status = call(s, "DescribeTable", json_pack("{s:s}", "TableName", table),
                               true, (const char *const[]){"ResourceNotFoundException", NULL},
                               &r, err);
    if (status == STORE_OK && r.error == NULL)
        *desc = json_incref(json_object_get(r.json, "Table"));
    http_response_free(&r);
    return status;
}

/* "HASH name" of a key schema, or NULL. */
static const char *key_attr(const json_t *schema, const char *type)
{
    size_t i;
    json_t *k;
    json_array_foreach(schema, i, k) {
        if (json_is_string(json_object_get(k, "KeyType")) &&
            strcmp(json_string_value(json_object_get(k, "KeyType")), type) == 0)
            return json_string_value(json_object_get(k, "AttributeName"));
    }
    return NULL;
}

static bool key_is(const json_t *schema, const char *hash, const char *range)
{
    const char *h = key_attr(schema, "HASH"), *r = key_attr(schema, "RANGE");
    return h != NULL && r != NULL && strcmp(h, hash) == 0 && strcmp(r, range) == 0;
}

/* The index named `name` in a table description, or NULL. */
static const json_t *find_index(const json_t *desc, const char *name)
{
    size_t i;
    json_t *ix;
    json_array_foreach(json_object_get(desc, "GlobalSecondaryIndexes"), i, ix) {
        const char *n = json_string_value(json_object_get(ix, "IndexName"));
        if (n != NULL && strcmp(n, name) == 0)
            return ix;
    }
    return NULL;
}

/* Whether an existing table has the layout this store reads; NULL when it
 * does, else what is wrong. */
static const char *layout_problem(const ddb_store *s, role r, const json_t *desc)
{
    const json_t *schema = json_object_get(desc, "KeySchema");
    if (r == R_EVENTS) {
        if (!key_is(schema, "key", "revision"))
            return "its primary key is not key (S) + revision (S)";
        const json_t *ix = find_index(desc, s->index);
        if (ix == NULL)
            return "it has no by-revision global secondary index";
        if (!key_is(json_object_get(ix, "KeySchema"), "slice", "revision"))
            return "its by-revision index is not on slice + revision";
        return NULL;
    }
    return key_is(schema, "pk", "sk") ? NULL : "its primary key is not pk (S) + sk (S)";
}

/* CreateTable with on-demand billing; the events table gets the index and
 * both Aeon tables a NEW_IMAGE stream (Aeon's construct has them). */
static json_t *create_body(const ddb_store *s, role r)
{
    const char *table = table_of(s, r);
    if (r == R_EVENTS)
        return json_pack(
            "{s:s, s:[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}], s:[{s:s, s:s}, {s:s, s:s}],"
            " s:s, s:{s:b, s:s}, s:[{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:{s:s}}]}",
            "TableName", table,
            "AttributeDefinitions", "AttributeName", "key", "AttributeType", "S",
            "AttributeName", "revision", "AttributeType", "S",
            "AttributeName", "slice", "AttributeType", "S",
            "KeySchema", "AttributeName", "key", "KeyType", "HASH",
            "AttributeName", "revision", "KeyType", "RANGE",
            "BillingMode", "PAY_PER_REQUEST",
            "StreamSpecification", "StreamEnabled", 1, "StreamViewType", "NEW_IMAGE",
            "GlobalSecondaryIndexes", "IndexName", s->index,
            "KeySchema", "AttributeName", "slice", "KeyType", "HASH",
            "AttributeName", "revision", "KeyType", "RANGE",
            "Projection", "ProjectionType", "ALL");
    json_t *body = json_pack(
        "{s:s, s:[{s:s, s:s}, {s:s, s:s}], s:[{s:s, s:s}, {s:s, s:s}], s:s}",
        "TableName", table,
        "AttributeDefinitions", "AttributeName", "pk", "AttributeType", "S",
        "AttributeName", "sk", "AttributeType", "S",
        "KeySchema", "AttributeName", "pk", "KeyType", "HASH",
        "AttributeName", "sk", "KeyType", "RANGE",
        "BillingMode", "PAY_PER_REQUEST");
    if (body != NULL && r == R_METADATA &&
        json_object_set_new(body, "StreamSpecification",
                            json_pack("{s:b, s:s}", "StreamEnabled", 1, "StreamViewType",
                                      "NEW_IMAGE")) != 0) {
        json_decref(body);
        return NULL;
    }
    return body;
}

static bool active(const json_t *desc)
{
    const char *st = json_string_value(json_object_get(desc, "TableStatus"));
    if (st == NULL || strcmp(st, "ACTIVE") != 0)
        return false;
    size_t i;
    json_t *ix;
    json_array_foreach(json_object_get(desc, "GlobalSecondaryIndexes"), i, ix) {
        const char *is = json_string_value(json_object_get(ix, "IndexStatus"));
        if (is == NULL || strcmp(is, "ACTIVE") != 0)
            return false;
    }
    return true;
}

/* Polls until the table is ACTIVE (gone = false) or no longer exists
 * (gone = true), backing off from 250 ms to 5 s. */
static store_status wait_for(ddb_store *s, const char *table, bool gone, json_t **last,
                             char **err)
{
    uint64_t start = s->base.env.now_ms(s->base.env.ctx), wait = 250;
    *last = NULL;
    for (;;) {
        json_t *desc;
        store_status status = describe(s, table, &desc, err);
        if (status != STORE_OK)
            return status;
        if (gone ? desc == NULL : active(desc)) {
            *last = desc;
            return STORE_OK;
        }
        json_decref(desc);
        uint64_t now = s->base.env.now_ms(s->base.env.ctx);
        if (now - start > DEPLOY_WAIT_MS)
            return store_fail(err, STORE_IO, "dynamodb: table %s did not %s within %d "
                              "minutes", table, gone ? "go away" : "become ACTIVE",
                              DEPLOY_WAIT_MS / 60000);
        nap(wait);
        if (wait < 5000)
            wait *= 2;
    }
}

/* What info reports of one table. */
static json_t *table_info(const ddb_store *s, role r, const json_t *desc)
{
    json_t *t = json_pack("{s:s, s:s}", "role", role_names[r], "name", table_of(s, r));
    if (t == NULL)
        return NULL;
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
    const json_t *billing = json_object_get(json_object_get(desc, "BillingModeSummary"),
                                            "BillingMode");
    json_object_set_new(t, "billing", billing != NULL ? json_copy((json_t *)billing)
                                                      : json_string("PROVISIONED"));
    const json_t *stream = json_object_get(desc, "StreamSpecification");
    if (json_is_true(json_object_get(stream, "StreamEnabled")))
        json_object_set(t, "stream", json_object_get(stream, "StreamViewType"));
    if (r == R_EVENTS) {
        const json_t *ix = find_index(desc, s->index);
        if (ix != NULL)
            json_object_set_new(t, "index", json_pack("{s:s, s:[s?, s?], s:O?}", "name",
                                                      s->index, "key",
                                                      key_attr(json_object_get(ix, "KeySchema"),
                                                               "HASH"),
                                                      key_attr(json_object_get(ix, "KeySchema"),
                                                               "RANGE"),
                                                      "status",
                                                      json_object_get(ix, "IndexStatus")));
    }
    const char *problem = layout_problem(s, r, desc);
    if (problem != NULL)
        json_object_set_new(t, "problem", json_string(problem));
    return t;
}

/* DEPLOY creates what is missing and waits for all to be ACTIVE; a table
 * that exists with another layout is an error, not something to change.
 * DESTROY deletes the tables and waits until they are gone. INFO describes
 * them. A store opened from an Aeon config without "viewsTable" has no
 * views table; it is left out and said so. */
static store_status ddb_admin(store *st, store_admin action, char **out, char **err)
{
    ddb_store *s = (ddb_store *)st;
    store_status status = STORE_NOMEM;
    json_t *doc = NULL, *tables = NULL, *desc = NULL;
    http_response r = {0};
    *out = NULL;

    if (action != STORE_DEPLOY && action != STORE_DESTROY && action != STORE_INFO)
        return store_fail(err, STORE_INVALID, "unknown admin action %d", (int)action);
    doc = json_pack("{s:s, s:s, s:s, s:s, s:s}", "backend", "dynamodb", "name", s->name,
                    "region", s->aws.region, "endpoint", s->aws.endpoint, "credentials",
                    s->aws.credentials_from != NULL ? s->aws.credentials_from : "?");
    if (doc == NULL || (tables = json_array()) == NULL ||
        json_object_set(doc, "tables", tables) != 0)
        goto nomem;
    if (s->views == NULL &&
        json_object_set_new(doc, "views", json_string("none: the Aeon config names no "
                                                       "viewsTable")) != 0)
        goto nomem;

    for (role ro = 0; ro < R_COUNT; ro++) {
        const char *table = table_of(s, ro);
        if (table == NULL)
            continue;
        if ((status = describe(s, table, &desc, err)) != STORE_OK)
            goto done;
        json_t *t = NULL;
        if (action == STORE_INFO) {
            t = table_info(s, ro, desc);
        } else if (action == STORE_DEPLOY) {
            bool created = false;
            if (desc != NULL) {
                const char *problem = layout_problem(s, ro, desc);
                if (problem != NULL) {
                    status = store_fail(err, STORE_IO, "dynamodb: table %s exists but "
                                        "%s: it is not an Aeon %s table; use another store "
                                        "name", table, problem, role_names[ro]);
                    goto done;
                }
            } else {
                status = call(s, "CreateTable", create_body(s, ro), false,
                              (const char *const[]){"ResourceInUseException", NULL}, &r, err);
                if (status != STORE_OK)
                    goto done;
                created = r.error == NULL; /* in use: another deploy got there first */
                http_response_free(&r);
            }
            json_decref(desc);
            desc = NULL;
            if ((status = wait_for(s, table, false, &desc, err)) != STORE_OK)
                goto done;
            t = table_info(s, ro, desc);
            if (t != NULL)
                json_object_set_new(t, "created", json_boolean(created));
        } else {
            bool deleted = false;
            if (desc != NULL) {
                status = call(s, "DeleteTable", json_pack("{s:s}", "TableName", table), false,
                              (const char *const[]){"ResourceNotFoundException", NULL}, &r,
                              err);
                if (status != STORE_OK)
                    goto done;
                deleted = r.error == NULL;
                http_response_free(&r);
                json_t *none;
                if ((status = wait_for(s, table, true, &none, err)) != STORE_OK)
                    goto done;
            }
            t = json_pack("{s:s, s:s, s:b}", "role", role_names[ro], "name", table,
                          "deleted", deleted);
        }
        json_decref(desc);
        desc = NULL;
        if (t == NULL || json_array_append_new(tables, t) != 0)
            goto nomem;
    }
    json_object_set_new(doc, action == STORE_DEPLOY ? "deployed"
                             : action == STORE_DESTROY ? "destroyed" : "exists",
                        json_true());
    if (action == STORE_INFO) {
        size_t i;
        json_t *t;
        json_array_foreach(tables, i, t) {
            const char *st2 = json_string_value(json_object_get(t, "status"));
            if (st2 != NULL && strcmp(st2, "missing") == 0)
                json_object_set_new(doc, "exists", json_false());
        }
    }
    if ((*out = json_dumps(doc, JSON_COMPACT)) == NULL)
        goto nomem;
    status = STORE_OK;
    goto done;
nomem:
    status = nomem(err);
done:
    json_decref(desc);
    json_decref(tables);
    json_decref(doc);
    http_response_free(&r);
    return status;
}

const store_ops store_dynamodb_ops = {
    .name = "dynamodb",
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
    .admin = ddb_admin,
    .subscribe = ddb_subscribe,
    .poll = ddb_poll,
    .ack = ddb_ack,
    .checkpoint = ddb_checkpoint,
    .sub_close = ddb_sub_close,
    .sub_reset = ddb_sub_reset,
    .view_get = ddb_view_get,
    .view_put = ddb_view_put,
    .view_revision = ddb_view_revision,
    .view_advance = ddb_view_advance,
    .view_clear = ddb_view_clear,
    /* No transactions: view writes are conditional on revision and acks
     * are fenced, so a replayed batch is harmless (store.h). */
};
