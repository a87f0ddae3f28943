/*
 * store.h - the aeon event store as a plain C library.
 *
 * Provides the store contract every backend implements: a table of function
 * pointers (struct store_ops) with one contract comment per slot, plus the
 * value types that cross it. Uses nothing but libc; no Lua header is ever
 * included below host/.
 *
 * Conventions
 *  - Every operation returns a store_status. On anything but STORE_OK it sets
 *    *err to a malloc'd one-line message the caller frees with free().
 *  - Event data, snapshot state and view documents cross this boundary as
 *    JSON text (UTF-8). Integers are written without '.' or exponent and are
 *    exact up to 2^63-1; floats always carry a '.' or an exponent and 17
 *    significant digits. Backends store this text, or a faithful translation
 *    of it (DynamoDB's AttributeValues), and hand back equivalent JSON text.
 *  - Revisions are 26-character Crockford base32 strings (the ULID alphabet),
 *    compared with strcmp. STORE_START "0" sorts before, STORE_END "Z" after,
 *    every revision.
 *  - A store handle is used by one thread at a time.
 */
#ifndef AEON_STORE_H
#define AEON_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_REVISION_LEN 26
#define STORE_REVISION_SIZE (STORE_REVISION_LEN + 1)
#define STORE_TIMESTAMP_SIZE 25 /* "2026-11-26T20:29:24.016Z" + NUL */
#define STORE_START "0"
#define STORE_END "Z"

/* The largest event data the embedded store takes, in bytes of JSON; an
 * event store is no place for blobs, and a cap keeps a read's page and a
 * Lua decode bounded. DynamoDB's own item limit (400 KB) is lower. */
#define STORE_MAX_EVENT_BYTES (4u << 20)

/* How long an idempotency key is remembered, at least. */
#define STORE_IDEMPOTENCY_MS (10 * 60 * 1000)

typedef enum store_status {
    STORE_OK = 0,
    STORE_NOMEM,   /* out of memory */
    STORE_INVALID, /* the caller's mistake: bad argument, option or value */
    STORE_LIMIT,   /* refused: over a backend limit (size, number range) */
    STORE_IO,      /* the backend failed: I/O, network, throttled after retries */
    STORE_DAMAGED, /* the stored data is damaged (a corrupt file): this call and
                      every later one on the handle fail, saying so */
    STORE_BUSY,    /* refused: another consumer holds the subscription name */
} store_status;

/* What a damaged store's calls say first, on every backend that can tell. */
#define STORE_DAMAGED_MESSAGE "the store file is damaged: run `aeon-host store check`"

/* ------------------------------------------------------------------ */
/* Clock and randomness, injectable so revisions and signatures can be */
/* checked against fixed vectors.                                      */

typedef struct store_env {
    uint64_t (*now_ms)(void *ctx);                       /* Unix time, ms */
    void (*random)(void *ctx, uint8_t *out, size_t len); /* fill with random bytes */
    void *ctx;                                           /* passed to both */
} store_env;

/* The real clock and the OS's random source. */
extern const store_env store_env_default;

/* How to open a store. A NULL store_options, or a NULL member, means the
 * default; backends ignore what does not concern them. */
typedef struct store_options {
    const store_env *env; /* NULL: store_env_default */
    const char *region;   /* DynamoDB signing region; NULL: from the
                              environment (API.md section 2) */
    const char *endpoint; /* DynamoDB URL, "http://127.0.0.1:8000"; NULL:
                              from the environment, else the region's */
} store_options;

/* ------------------------------------------------------------------ */
/* Events                                                              */

/* An event to append. */
typedef struct store_pending {
    const char *type;           /* non-empty UTF-8 */
    const char *data;           /* JSON text, data_len bytes */
    size_t data_len;            /* bytes in data */
    const char *correlation_id; /* NULL when absent */
} store_pending;

/* A committed event, as reads hand it out. Its pointers stay valid until the
 * cursor that produced it moves on or is closed. */
typedef struct store_event {
    const char *key;                         /* the stream it belongs to */
    const char *type;                        /* event type */
    const char *data;                        /* JSON text, data_len bytes */
    size_t data_len;                         /* bytes in data */
    const char *correlation_id;              /* NULL when absent */
    char revision[STORE_REVISION_SIZE];      /* unique in the store */
    char committed_at[STORE_TIMESTAMP_SIZE]; /* ISO-8601 UTC, ms */
    size_t more;                             /* events of the same append that
                                                 follow this one in revision
                                                 order: 0 for an append's last
                                                 event, and where the backend
                                                 does not know (see read) */
} store_event;

/* ------------------------------------------------------------------ */
/* Appends                                                             */

typedef struct store_append_opts {
    const char *expected_revision; /* NULL: any; STORE_START: key must be empty;
                                      else the key's head must equal it */
    const char *idempotency_key;   /* NULL or a token; a repeat within
                                      STORE_IDEMPOTENCY_MS commits nothing */
} store_append_opts;

/* One key's share of an append_many. */
typedef struct store_batch {
    const char *key;               /* the stream */
    const store_pending *events;   /* events for it, in order */
    size_t count;                  /* number of events */
    const char *expected_revision; /* as in store_append_opts */
} store_batch;

typedef enum store_outcome {
    STORE_APPENDED,  /* committed; count and revision are set */
    STORE_UNCHANGED, /* nothing to commit, or an idempotent repeat */
    STORE_CONFLICT,  /* an expected revision did not hold; nothing committed */
} store_outcome;

typedef struct store_append_result {
    store_outcome outcome;              /* what happened */
    size_t count;                       /* APPENDED: events committed */
    char revision[STORE_REVISION_SIZE]; /* APPENDED: last revision committed */
    char expected[STORE_REVISION_SIZE]; /* CONFLICT: the revision asked for */
    char actual[STORE_REVISION_SIZE];   /* CONFLICT: the key's head then */
    size_t failed;                      /* CONFLICT in append_many: index of
                                              the batch whose check failed */
} store_append_result;

/* What import did. */
typedef struct store_import_result {
    size_t imported; /* events written */
    size_t present;  /* events already there (same key and revision): skipped */
    size_t writes;   /* atomic writes (transactions) it took */
    size_t split;    /* appends too large for one atomic write of the
                            backend, written as several in order */
} store_import_result;

/* ------------------------------------------------------------------ */
/* Reads and filters                                                   */

/* A filter is a tree. FILTER_FIELD descends into a named attribute of the
 * value it is applied to; the root is applied to the event seen as
 * { key, type, correlation_id, committed_at, data }. Semantics, identical
 * on every backend:
 *  - exists: the attribute is present (a JSON null counts as present; an
 *    absent correlation_id does not);
 *  - every comparison is false on an absent attribute;
 *  - eq/ne compare type and value (numbers numerically, integer or float);
 *    ne is true for a present attribute of another type;
 *  - gt/gte/lt/lte compare numbers with numbers and strings with strings
 *    (bytewise); any other pairing is false;
 *  - prefix: a string attribute that begins with the string value. */
typedef enum store_filter_kind {
    FILTER_ALL,   /* every child matches (no children: always true) */
    FILTER_ANY,   /* at least one child matches */
    FILTER_FIELD, /* child applies to attribute `name` */
    FILTER_EXISTS,
    FILTER_PREFIX,
    FILTER_EQ,
    FILTER_NE,
    FILTER_GT,
    FILTER_GTE,
    FILTER_LT,
    FILTER_LTE,
} store_filter_kind;

typedef enum store_scalar_kind {
    SCALAR_STRING,
    SCALAR_INTEGER,
    SCALAR_FLOAT,
    SCALAR_BOOLEAN,
} store_scalar_kind;

typedef struct store_scalar {
    store_scalar_kind kind; /* which member holds the value */
    const char *string;     /* SCALAR_STRING: NUL-terminated UTF-8 */
    int64_t integer;        /* SCALAR_INTEGER */
    double number;          /* SCALAR_FLOAT (finite) */
    bool boolean;           /* SCALAR_BOOLEAN */
} store_scalar;

typedef struct store_filter {
    store_filter_kind kind;         /* node type */
    const char *name;               /* FILTER_FIELD: attribute name */
    struct store_filter **children; /* ALL/ANY: children; FIELD: one */
    size_t nchildren;               /* entries in children */
    store_scalar value;             /* comparison operators: operand */
} store_filter;

typedef struct store_read_opts {
    const char *from;           /* NULL or STORE_START: from the first event */
    bool from_exclusive;        /* start after `from`, not at it */
    const char *to;             /* NULL or STORE_END: up to the last event */
    bool to_exclusive;          /* stop before `to`, not at it */
    int64_t limit;              /* < 0: no limit; counts matching events */
    bool backward;              /* newest first */
    const store_filter *filter; /* NULL: every event */
} store_read_opts;

typedef struct store_cursor store_cursor;

/* ------------------------------------------------------------------ */
/* Snapshots                                                           */

typedef struct store_snapshot {
    char revision[STORE_REVISION_SIZE]; /* the last event folded into state */
    char *state;                        /* JSON text, malloc'd, caller frees */
    size_t state_len;                   /* bytes in state */
} store_snapshot;

/* ------------------------------------------------------------------ */
/* Subscriptions                                                       */

/* A consumer of the events committed to a store, named so that its
 * checkpoint survives restarts. Patterns are exact strings or use '*' as a
 * wildcard for any run of characters (pattern.h). */
typedef struct store_sub store_sub;

typedef struct store_sub_opts {
    const char *const *keys;    /* key patterns; an event's key must match one */
    size_t nkeys;               /* entries in keys; 0: every key */
    const char *const *types;   /* type patterns; an event's type must match one */
    size_t ntypes;              /* entries in types; 0: every type */
    const store_filter *filter; /* NULL, or a filter events must match too */
    const char *start;          /* where delivery begins while the subscription
                                   has no checkpoint: NULL or STORE_START the
                                   first event, STORE_END after the last one
                                   committed at subscribe, a revision after it */
    int64_t lease_ms;           /* a named subscription's lease (lease.h): how
                                   long its holder may go without renewing
                                   before a standby takes over; 0: 10 s */
    bool nowait;                /* refuse (STORE_BUSY) rather than stand by
                                   when another consumer holds the name */
} store_sub_opts;

/* ------------------------------------------------------------------ */
/* The backend contract                                                */

typedef struct store store;

typedef enum store_admin {
    STORE_DEPLOY,  /* create what is missing, wait until usable */
    STORE_DESTROY, /* remove the store's tables or file contents */
    STORE_INFO,    /* describe what exists */
    STORE_CHECK,   /* check the stored data and the store's invariants: *out is
                      { "ok": bool, "problems": [text...], ... }; STORE_OK
                      either way, unless the check itself cannot run */
} store_admin;

/* One document of a view, as view_list hands it out. */
typedef struct store_view_doc {
    char *id;                           /* its id, malloc'd */
    char *doc;                          /* its JSON text, malloc'd */
    size_t doc_len;                     /* ... in bytes */
    char revision[STORE_REVISION_SIZE]; /* the revision it was put with */
} store_view_doc;

typedef struct store_ops {
    const char *name; /* "sqlite", "dynamodb", ... */

    /* The URI forms the backend takes, for messages ("sqlite:PATH", ...),
     * NULL-terminated. */
    const char *const *uri_forms;

    /* True when `uri` is one of those forms. store_open asks the backends
     * in the order of its table (open.c) and opens the first that says
     * yes. */
    bool (*accepts)(const char *uri);

    /* Opens the store named by `uri` (the part after the scheme is the
     * backend's), creating what an embedded store needs. `opts` is NULL for
     * the defaults; it is not kept. On success *out is a handle to release
     * with close. */
    store_status (*open)(const char *uri, const store_options *opts, store **out, char **err);

    /* Releases the handle and everything it holds. Safe on NULL. */
    void (*close)(store *s);

    /* Commits `count` events to `key` atomically, assigning each a revision
     * above every revision the key has (on the embedded store, above every
     * revision in the store), in commit order. Checks opts->expected_revision
     * inside the same atomic step; a failed check commits nothing and
     * reports STORE_CONFLICT with the actual head. count == 0 reports
     * STORE_UNCHANGED. STORE_INVALID for a bad key, type or data. */
    store_status (*append)(store *s, const char *key, const store_pending *events, size_t count,
                           const store_append_opts *opts, store_append_result *result, char **err);

    /* Like append across several keys: every batch commits or none does.
     * A failed check reports STORE_CONFLICT with result->failed naming the
     * batch. A key may appear in at most one batch. */
    store_status (*append_many)(store *s, const store_batch *batches, size_t n,
                                const char *idempotency_key, store_append_result *result,
                                char **err);

    /* Writes the key's latest revision, or STORE_START, into out.
     * Strongly consistent. */
    store_status (*head)(store *s, const char *key, char out[STORE_REVISION_SIZE], char **err);

    /* Opens a cursor over one key's events (key != NULL) or over every event
     * in revision order (key == NULL). Cursors fetch page by page so memory
     * stays flat; the options are copied, so the caller may free them.
     * Reads of every key fill each event's `more` (how an append was
     * grouped); one key's read may leave it 0. */
    store_status (*read)(store *s, const char *key, const store_read_opts *opts, store_cursor **out,
                         char **err);

    /* Moves the cursor on: *ev is the next matching event, or NULL at the end.
     * *ev stays valid until the next call or cursor_close. */
    store_status (*next)(store_cursor *c, const store_event **ev, char **err);

    /* Releases a cursor. Safe on NULL. */
    void (*cursor_close)(store_cursor *c);

    /* Stores `state` as the key's snapshot at `revision`, unless the stored
     * one has a newer revision: then *saved is false and nothing changes. */
    store_status (*save_snapshot)(store *s, const char *key, const char *revision,
                                  const char *state, size_t state_len, bool *saved, char **err);

    /* Loads the key's snapshot: *found tells whether there is one; when it is
     * true, snap->state is malloc'd and the caller frees it. */
    store_status (*snapshot)(store *s, const char *key, store_snapshot *snap, bool *found,
                             char **err);

    /* Provisions, removes or describes the backend's storage. *out is a
     * malloc'd JSON object describing what was done or found. */
    store_status (*admin)(store *s, store_admin action, char **out, char **err);

    /* Every slot below may be NULL: the backend does not support it yet, and
     * callers must say so ("<name> does not support X yet"), never crash. */

    /* Whether this handle has `feature` ("subscriptions", "views",
     * "transactions") where the backend fills its slots: NULL when every
     * handle of the backend has what its slots say. A DynamoDB store opened
     * from an Aeon config naming no views table has no views. */
    bool (*supports)(const store *s, const char *feature);

    /* -- Copying ------------------------------------------------------- */

    /* Lists the store's snapshots, each as a store_view_doc (id: the key,
     * doc: the state, revision: the last event folded into it), in an order
     * of the backend's that stays put while the store is not written
     * (SQLite: by key; DynamoDB: a Scan's), from the one after key `after`
     * (NULL: from the first), at most `limit` (1 to 100000) of them: *docs
     * is a malloc'd array of *n the caller frees with store_view_docs_free.
     * Fewer than `limit` means there are no more. Reads no events, so a
     * copy can bring over snapshots saved for keys that got no new ones. */
    store_status (*snapshot_list)(store *s, const char *after, size_t limit, store_view_doc **docs,
                                  size_t *n, char **err);

    /* Writes events copied from another store as they are: key, revision,
     * type, data, correlation id and committed_at kept, nothing numbered
     * anew. `events` is in increasing revision order and made of whole
     * appends (an event's `more` counts the events of its append after it;
     * a run of events whose last has `more` > 0 ends inside an append, as
     * when the source ended there). Each append commits atomically where
     * the backend can hold it in one atomic write, and the whole call
     * where it can (result->split counts those it could not). Idempotent
     * per revision: an event whose revision the store holds with the same
     * key is skipped (counted in present), so a repeat after a crash
     * writes nothing twice; one held with another key is STORE_INVALID and
     * nothing of the call is written. Heads move to the highest revision
     * of each key, never back. An event below the store's last revision
     * is written in its place: subscriptions already past it do not see
     * it. Data is checked as append checks it. */
    store_status (*import)(store *s, const store_event *events, size_t count,
                           store_import_result *result, char **err);

    /* -- Subscriptions ------------------------------------------------ */

    /* Opens subscription `name` (NULL: an ephemeral one, whose checkpoint
     * lives in memory only) with the patterns and filter of opts, copied.
     * Delivery resumes after the stored checkpoint, else at opts->start.
     * One consumer per name at a time: a named subscription holds the
     * name's lease (lease.h) to be handed events. When another consumer
     * holds it, this one is a standby: its polls hand out nothing until
     * the holder closes or stops renewing for opts->lease_ms, then it
     * takes over from the stored checkpoint. With opts->nowait it is
     * refused instead (STORE_BUSY) while the holder renews. Acks are
     * fenced by the lease: only the holder's write. The subscription uses
     * the handle: close it before the store. */
    store_status (*subscribe)(store *s, const char *name, const store_sub_opts *opts,
                              store_sub **out, char **err);

    /* Hands out up to `max` matching events committed after those this
     * subscription already delivered (or passed over), in commit order:
     * revision order within a key, and across keys on the embedded store.
     * An event that commits late with a revision below one already
     * delivered is still delivered. Waits up to timeout_ms (0: not at all)
     * when there are none; *count is 0 when the wait ends empty-handed.
     * *events stays valid until the next poll or sub_close.
     * *position is what to ack once the batch is processed, and what a view
     * fed by it has seen: every matching event with a revision at or below
     * it has been handed out, by this poll or an earlier one. The embedded
     * store reports the last revision the poll looked at, matching or not;
     * a backend where events can commit out of revision order keeps it
     * below any revision that may still commit (a low watermark), so it may
     * trail the batch. It never moves back (STORE_START before anything).
     * Appends wake a waiting poll at once in the same process and within
     * 100 ms from other processes. A standby's poll hands out nothing and
     * waits as asked, taking the lease over when it can; the holder's
     * renews the lease when a third of it has gone, so a batch leaves it
     * two thirds of the lease to handle and ack. STORE_INVALID when asked
     * to wait inside a transaction. */
    store_status (*poll)(store_sub *sub, int64_t timeout_ms, size_t max, const store_event **events,
                         size_t *count, char position[STORE_REVISION_SIZE], char **err);

    /* Makes `revision` the durable checkpoint. `revision` is a position a
     * poll returned, or the revision of an event one handed out: it says
     * that event, or everything handed out up to that poll, and every event
     * handed out before are processed, and a new subscription of the same
     * name starts after them. Never moves the checkpoint backwards (a
     * backend that tracks more than a revision, such as stream positions,
     * stores those with it). Fenced: when this subscription does not hold
     * the name's lease (a standby, or one that lost it to a takeover), or
     * another consumer moved the stored checkpoint since this subscription
     * last read or wrote it, nothing is written, *acked is false and this
     * subscription rewinds to the stored checkpoint (its next poll starts
     * there, once it holds the lease). Inside a transaction it commits or
     * rolls back with it. */
    store_status (*ack)(store_sub *sub, const char *revision, bool *acked, char **err);

    /* The stored checkpoint (the in-memory one when ephemeral), or
     * STORE_START when there is none. */
    store_status (*checkpoint)(store_sub *sub, char out[STORE_REVISION_SIZE], char **err);

    /* Releases a subscription, and its name's lease so a standby takes
     * over at once; its checkpoint stays. Safe on NULL. */
    void (*sub_close)(store_sub *sub);

    /* Whether the subscription holds its name's lease (is handed events)
     * as of its last poll, subscribe or ack; true when ephemeral. */
    bool (*sub_active)(store_sub *sub);

    /* The holder's renewal while it handles a batch, between polls: renews
     * the name's lease when a third of it has gone since the last renewal
     * (else only looks at the clock), so a batch that takes longer than
     * the lease keeps it. *held is false for a standby and once another
     * consumer has taken the lease over: the batch is then that one's,
     * and this one's ack will store nothing. Inside a transaction the
     * renewal commits or rolls back with it. Ephemeral: always held. */
    store_status (*sub_renew)(store_sub *sub, bool *held, char **err);

    /* Forgets subscription `name`'s checkpoint, so it starts over from its
     * start (a rebuild). Open subscriptions of that name rewind at their
     * next ack. */
    store_status (*sub_reset)(store *s, const char *name, char **err);

    /* -- Views (read models) ------------------------------------------ */
    /* A view is a named set of JSON documents, each stored with the
     * revision of the last event folded into it, plus the revision the view
     * has seen as a whole. View and document names are non-empty UTF-8. */

    /* Reads document `id` of `view`. *found tells whether there is one; when
     * true, *doc is malloc'd JSON text (the caller frees it), *doc_len its
     * bytes and revision the revision it was put with. */
    store_status (*view_get)(store *s, const char *view, const char *id, char **doc,
                             size_t *doc_len, char revision[STORE_REVISION_SIZE], bool *found,
                             char **err);

    /* Stores doc as document `id` at `revision`, unless the stored one has a
     * newer revision: then *stored is false and nothing changes (an equal
     * revision overwrites). The check and the write are one atomic step on
     * every backend, so replaying old events cannot undo newer ones. */
    store_status (*view_put)(store *s, const char *view, const char *id, const char *doc,
                             size_t doc_len, const char *revision, bool *stored, char **err);

    /* The revision the view has seen: the highest view_advance recorded,
     * or STORE_START. */
    store_status (*view_revision)(store *s, const char *view, char out[STORE_REVISION_SIZE],
                                  char **err);

    /* Records that the view reflects every event it follows up to
     * `revision`. Never moves backwards. */
    store_status (*view_advance)(store *s, const char *view, const char *revision, char **err);

    /* Deletes the view's documents and its seen revision: every one when
     * `limit` is 0, else at most `limit` of them (the seen revision counts
     * as one on DynamoDB), so a call takes bounded time, as a background
     * drop of an old view wants. *done (unless NULL) tells whether nothing
     * is left. */
    store_status (*view_clear)(store *s, const char *view, size_t limit, bool *done, char **err);

    /* Lists documents of `view` in the order of their ids (bytewise), from
     * the first id after `after` (NULL: from the first), at most `limit`
     * (at least 1) of them: *docs is a malloc'd array of *n the caller frees
     * with store_view_docs_free. Fewer than `limit` means there are no more.
     * NULL where the backend cannot list a view. */
    store_status (*view_list)(store *s, const char *view, const char *after, size_t limit,
                              store_view_doc **docs, size_t *n, char **err);

    /* -- Transactions ------------------------------------------------- */
    /* Let a projection commit a batch's view writes and its checkpoint
     * together, so one killed mid-batch neither loses nor double-applies an
     * event. NULL where the backend has no such transaction (DynamoDB: view
     * writes are conditional on revision, so a replay is harmless). */

    /* Opens a transaction on the handle: appends, view writes, acks and
     * resets made through it until commit are seen by no one else and
     * commit together, or not at all. Takes the embedded store's write
     * lock, so keep it short. STORE_INVALID when one is already open. */
    store_status (*begin)(store *s, char **err);

    /* Commits the open transaction. On failure nothing of it is committed
     * and it is over. STORE_INVALID when none is open. */
    store_status (*commit)(store *s, char **err);

    /* Abandons the open transaction, if any. */
    void (*rollback)(store *s);
} store_ops;

/* Frees what view_list handed out. Safe on NULL. */
void store_view_docs_free(store_view_doc *docs, size_t n);

/* Every handle starts with this header so generic code can find its ops. */
struct store {
    const store_ops *ops; /* the backend's table */
    store_env env;        /* clock and randomness in use */
    bool damaged;         /* set by the backend when it found its data damaged:
                             from then on every call fails with STORE_DAMAGED */
    bool solo;            /* set at open when no other handle sees this one's data
                             (an in-memory or temporary database) */
};

/* Picks the backend for a URI from the table of backends (open.c):
 * "sqlite:PATH", "PATH.db", "memory:", "dynamodb:NAME", ... and opens it.
 * STORE_INVALID for a URI no backend takes, with the forms they take. */
store_status store_open(const char *uri, const store_options *opts, store **out, char **err);

/* Closes any store. Safe on NULL. */
void store_close(store *s);

/* Formats a malloc'd message for *err; returns `status` for chaining.
 * Leaves *err untouched when err is NULL. */
store_status store_fail(char **err, store_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* printf into a new malloc'd string; NULL when out of memory. */
char *store_format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- The checks every backend makes (check.c) ------------------------
 * Each returns STORE_OK, or STORE_INVALID (STORE_LIMIT for a limit) with
 * what is wrong; a backend adds only what its service limits further. */

/* Checks an application string (key, type, correlation id, idempotency key):
 * non-empty unless allow_empty, valid UTF-8, no NUL. Returns NULL when fine,
 * else a static description of what is wrong. */
const char *store_check_text(const char *s, bool allow_empty);

/* What a backend takes beyond the contract's rules, for
 * store_check_batches; a 0 limit is none. */
typedef struct store_limits {
    size_t key_bytes;     /* a key's length at most */
    const char *prefix;   /* opens the message of a key over it ("dynamodb: ") */
    const char *key_rule; /* ... and closes it ("DynamoDB takes at most ...") */
    size_t event_bytes;   /* an event's data at most */
} store_limits;

/* Checks an append before anything is written: the idempotency key, then
 * each batch (its key, expected revision, events' types, data and
 * correlation ids; `many` names the batch in messages) and that no key
 * stands in two batches. *total is the number of events. */
store_status store_check_batches(const store_batch *b, size_t n, const char *token, bool many,
                                 const store_limits *lim, size_t *total, char **err);

/* Checks that `revision` is a revision (or STORE_START when start_ok):
 * "<what> \"...\" is not a revision" otherwise. */
store_status store_check_revision(const char *what, const char *revision, bool start_ok,
                                  char **err);

/* Checks a read's bounds (NULL, STORE_START, STORE_END or a revision) and
 * filter. */
store_status store_check_read(const store_read_opts *opts, char **err);

/* Checks a document written as of a revision (a snapshot's state, a view's
 * document): the revision (named `rev_what`) is a revision or STORE_START,
 * and the document (named `what`) is not empty. */
store_status store_check_document(const char *rev_what, const char *revision, const char *what,
                                  const char *doc, size_t len, char **err);

/* Checks a view's name and, unless NULL, a document id. */
store_status store_check_view(const char *view, const char *id, char **err);

/* Checks what every backend's subscribe takes the same way: the name
 * (NULL or text), the start (NULL, STORE_START, STORE_END or a revision)
 * and the filter. */
store_status store_check_subscription(const char *name, const store_sub_opts *opts, char **err);

#endif
