/*
 * ddb_store.h - what the files of the DynamoDB backend share, private to
 * store/dynamodb/: the handle, the cursor, what one append attempt is built
 * from, the service's limits and the helpers every concern calls. The
 * backend is cut by concern: dynamodb.c (helpers, open and close, the ops
 * table), ddb_append.c (appends), ddb_read.c (heads and reads), ddb_view.c
 * (snapshots and views), ddb_sub.c (subscriptions and the stream) and
 * ddb_admin.c (deploy, destroy, info). spec/fuzz/dynamodb_response_fuzz.c
 * reaches the readers of answers through it too.
 */
#ifndef AEON_DDB_STORE_H
#define AEON_DDB_STORE_H

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

#define TRANSACT_ITEMS 100        /* items in one TransactWriteItems */
#define TRANSACT_BYTES (4u << 20) /* their aggregate size */
#define KEY_BYTES 2048            /* a partition key value, at most */
#define SLICE_PAGE 100            /* slice markers listed per Query */
#define SKEW_TRIES                                                                                 \
    8                /* appends re-numbered above a head the clock
                                        was behind, before giving up */
#define TOKEN_LEN 36 /* ClientRequestToken's maximum */
#define SLICE_LEN 5  /* Aeon's slice: a revision's prefix */
#define STORE_HEAD_SK                                                                              \
    "last"                              /* {pk="slice", sk=this}: the store's last
                                        revision; never a slice (those are 5
                                        base32 characters, all below "8") */
#define DEPLOY_WAIT_MS (10 * 60 * 1000) /* tables ACTIVE (or gone) within this */
#define INDEX_SETTLE_MS 2000            /* AWS's index shows a write within this */

typedef struct ddb_store {
    store base;                     /* ops and env; first, so a store * is one */
    http_client *http;              /* the kept-alive connection */
    http_client *streams;           /* the Streams API's, opened on first use */
    http_client *ahead;             /* a second connection, opened on first use:
                                         a read fetches its next page on it while
                                         the caller works through the current one */
    bool ahead_busy;                /* a cursor's page is being fetched on it */
    int64_t page_items;             /* Query Limit per page; 0: none, so a
                                         page is DynamoDB's most (1 MB) */
    aws_settings aws;               /* region, endpoint, credentials in use */
    char *name;                     /* the store's name (Aeon's `name`) */
    char *events;                   /* events table */
    char *metadata;                 /* metadata table */
    char *index;                    /* the events table's by-revision index */
    char *views;                    /* views table, NULL when there is none */
    char last[STORE_REVISION_SIZE]; /* last revision this handle made */
    uint64_t tokens;                /* tokens made, mixed into random ones */
    uint64_t settle_ms;             /* how long the index may lag the table:
                                         0 on DynamoDB Local, which writes both
                                         at once (see Subscriptions) */
} ddb_store;

/* One event, converted once and reused by every attempt. */
typedef struct converted {
    json_t *data;   /* the data's AttributeValue */
    json_t *floats; /* its float marks, or NULL */
} converted;

/* What one attempt of a transaction is built from. */
typedef struct plan {
    const store_batch *b;                    /* the batches */
    size_t n;                                /* how many */
    size_t total;                            /* events in all */
    const converted *cv;                     /* their data, in batch order */
    char (*revs)[STORE_REVISION_SIZE];       /* their revisions, in batch order */
    char committed_at[STORE_TIMESTAMP_SIZE]; /* the same for every event */
    char token[TOKEN_LEN + 1];               /* ClientRequestToken */
} plan;

struct store_cursor {
    ddb_store *s;                 /* the handle it reads through */
    char *key;                    /* the key read, NULL for every key */
    bool backward;                /* newest first */
    int64_t remaining;            /* matches still to hand out; < 0: no limit */
    char lo[STORE_REVISION_SIZE]; /* revisions from this ... */
    char hi[STORE_REVISION_SIZE]; /* ... to this, both inclusive */
    store_filter *local;          /* the filter, when it runs here */
    bool pushed;                  /* a FilterExpression goes to DynamoDB */
    json_t *query;                /* the Query body, pk and paging left to fill */
    json_t *page;                 /* the current answer (owns its items) */
    size_t pos;                   /* next item of page's Items */
    json_t *resume;               /* LastEvaluatedKey to go on from, or NULL */
    bool partition_done;          /* the key (or slice) has no more pages */
    bool done;                    /* nothing more at all */
    /* read_all: the slices, listed from the metadata table page by page */
    json_t *slices;            /* the current answer of that listing */
    size_t slice_pos;          /* next slice in it */
    json_t *slices_resume;     /* its LastEvaluatedKey, or NULL */
    bool slices_started;       /* the listing began */
    struct ahead_fetch *ahead; /* the next page, being fetched, or NULL */
    store_event ev;            /* the event last handed out */
    char *data;                /* its data, malloc'd */
};

/* ---- dynamodb.c: small helpers --------------------------------------- */

/* The backend's row in the table of backends (open.c). */
extern const store_ops store_dynamodb_ops;

store_status ddb_nomem(char **err);

/* {"S": s}; NULL on no memory (strings were checked as UTF-8 before). */
json_t *ddb_av_s(const char *s);

/* The S value of an item's attribute, or NULL. */
const char *ddb_item_s(const json_t *item, const char *name);

/* Copies a revision (or "0"), truncating anything longer; out may be rev. */
void ddb_copy_rev(char out[STORE_REVISION_SIZE], const char *rev);

/* Aeon's slice of a revision: its first SLICE_LEN characters. */
void ddb_slice_of(const char *rev, char out[SLICE_LEN + 1]);

void ddb_nap(uint64_t ms);

/* Turns an answer an operation did not expect into an error; a missing
 * table gets the remedy. */
store_status ddb_answer_fail(ddb_store *s, const http_response *r, const char *op, char **err);

/* Calls op with body and hands back the answer; STORE_OK only for a 2xx or
 * an error listed in `expected` (NULL-terminated names), else the error. */
store_status ddb_call(ddb_store *s, const char *op, json_t *body, bool retry_safe,
                      const char *const *expected, http_response *r, char **err);

/* Whether an answer is one ddb_call takes: a 2xx with JSON, or an error
 * named in `expected` (NULL-terminated, or NULL). */
bool ddb_answered(const http_response *r, const char *const *expected);

/* ddb_call's verdict on an answer already received. */
store_status ddb_answer_check(ddb_store *s, const char *op, const char *const *expected,
                              const http_response *r, char **err);

/* A client of the handle's endpoint, region and credentials, with its clock. */
store_status ddb_open_client(ddb_store *s, http_client **out, char **err);

/* ---- ddb_append.c ----------------------------------------------------- */

/* Reads a cancelled transaction (see ddb_append.c). */
size_t ddb_cancelled(const plan *p, const http_response *r, char actual[STORE_REVISION_SIZE],
                     char floor[STORE_REVISION_SIZE], const char **other);
/* An event item as an append writes it (ddb_append.c), `more` its
 * append's events after it; NULL when out of memory. */
json_t *ddb_event_item(const char *key, const char *rev, const char *committed_at,
                       const store_pending *e, const converted *cv, size_t more);
store_status ddb_append(store *st, const char *key, const store_pending *events, size_t count,
                        const store_append_opts *opts, store_append_result *result, char **err);
store_status ddb_append_many(store *st, const store_batch *batches, size_t n,
                             const char *idempotency_key, store_append_result *result, char **err);

/* ---- ddb_read.c ------------------------------------------------------- */

/* A consistent GetItem of one metadata item. *item is borrowed from r. */
store_status ddb_get_meta(ddb_store *s, const char *key, const char *sk, http_response *r,
                          const json_t **item, char **err);
store_status ddb_check_key(const char *key, char **err);
/* Points c->ev at an item's attributes; the item stays in c->page. */
store_status ddb_to_event(store_cursor *c, const json_t *item, char **err);
/* ddb_admin.c: the CreateTable requests deploy sends, each with its "role"
 * added, as a new JSON array (NULL when out of memory). */
json_t *ddb_table_requests(const ddb_store *s);
store_status ddb_head(store *st, const char *key, char out[STORE_REVISION_SIZE], char **err);
store_status ddb_read(store *st, const char *key, const store_read_opts *opts, store_cursor **out,
                      char **err);
store_status ddb_next(store_cursor *c, const store_event **ev, char **err);
void ddb_cursor_close(store_cursor *c);

/* ---- ddb_view.c ------------------------------------------------------- */

store_status ddb_save_snapshot(store *st, const char *key, const char *revision, const char *state,
                               size_t state_len, bool *saved, char **err);
store_status ddb_snapshot(store *st, const char *key, store_snapshot *snap, bool *found,
                          char **err);
store_status ddb_snapshot_list(store *st, const char *after, size_t limit, store_view_doc **docs,
                               size_t *n, char **err);
store_status ddb_view_get(store *st, const char *view, const char *id, char **doc, size_t *doc_len,
                          char revision[STORE_REVISION_SIZE], bool *found, char **err);
store_status ddb_view_put(store *st, const char *view, const char *id, const char *doc,
                          size_t doc_len, const char *revision, bool *stored, char **err);
store_status ddb_view_revision(store *st, const char *view, char out[STORE_REVISION_SIZE],
                               char **err);
store_status ddb_view_advance(store *st, const char *view, const char *revision, char **err);
store_status ddb_view_clear(store *st, const char *view, size_t limit, bool *done, char **err);
store_status ddb_view_list(store *st, const char *view, const char *after, size_t limit,
                           store_view_doc **docs, size_t *n, char **err);

/* ---- ddb_sub.c -------------------------------------------------------- */

/* Appends in this process wake its waiting polls at once. */
void ddb_wake_all(void);
store_status ddb_subscribe(store *st, const char *name, const store_sub_opts *opts, store_sub **out,
                           char **err);
store_status ddb_poll(store_sub *sub, int64_t timeout_ms, size_t max, const store_event **events,
                      size_t *count, char position[STORE_REVISION_SIZE], char **err);
store_status ddb_ack(store_sub *sub, const char *revision, bool *acked, char **err);
store_status ddb_checkpoint(store_sub *sub, char out[STORE_REVISION_SIZE], char **err);
void ddb_sub_close(store_sub *sub);
store_status ddb_sub_reset(store *st, const char *name, char **err);
bool ddb_sub_active(store_sub *sub);
store_status ddb_sub_renew(store_sub *sub, bool *held, char **err);

/* ---- ddb_admin.c ------------------------------------------------------ */

/* DescribeTable: *desc is the Table object (a new reference), or NULL when
 * the table does not exist. */
store_status ddb_describe(ddb_store *s, const char *table, json_t **desc, char **err);
store_status ddb_admin(store *st, store_admin action, char **out, char **err);

/* ddb_import.c: events copied from another store (store.h, import). */
store_status ddb_import(store *st, const store_event *events, size_t count,
                        store_import_result *res, char **err);

#endif
