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

/* How long an idempotency key is remembered, at least. */
#define STORE_IDEMPOTENCY_MS (10 * 60 * 1000)

typedef enum store_status {
    STORE_OK = 0,
    STORE_NOMEM,   /* out of memory */
    STORE_INVALID, /* the caller's mistake: bad argument, option or value */
    STORE_LIMIT,   /* refused: over a backend limit (size, number range) */
    STORE_IO,      /* the backend failed: I/O, network, throttled after retries */
} store_status;

/* ------------------------------------------------------------------ */
/* Clock and randomness, injectable so revisions and signatures can be */
/* checked against fixed vectors.                                      */

typedef struct store_env {
    uint64_t (*now_ms)(void *ctx);                        /* Unix time, ms */
    void (*random)(void *ctx, uint8_t *out, size_t len);  /* fill with random bytes */
    void *ctx;                                            /* passed to both */
} store_env;

/* The real clock and the OS's random source. */
extern const store_env store_env_default;

/* How to open a store. A NULL store_options, or a NULL member, means the
 * default; backends ignore what does not concern them. */
typedef struct store_options {
    const store_env *env;  /* NULL: store_env_default */
    const char *region;    /* DynamoDB signing region; NULL: from the
                              environment (API.md section 2) */
    const char *endpoint;  /* DynamoDB URL, "http://127.0.0.1:8000"; NULL:
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
    const char *key;                          /* the stream it belongs to */
    const char *type;                         /* event type */
    const char *data;                         /* JSON text, data_len bytes */
    size_t data_len;                          /* bytes in data */
    const char *correlation_id;               /* NULL when absent */
    char revision[STORE_REVISION_SIZE];       /* unique in the store */
    char committed_at[STORE_TIMESTAMP_SIZE];  /* ISO-8601 UTC, ms */
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
    store_outcome outcome;                 /* what happened */
    size_t count;                          /* APPENDED: events committed */
    char revision[STORE_REVISION_SIZE];    /* APPENDED: last revision committed */
    char expected[STORE_REVISION_SIZE];    /* CONFLICT: the revision asked for */
    char actual[STORE_REVISION_SIZE];      /* CONFLICT: the key's head then */
    size_t failed;                         /* CONFLICT in append_many: index of
                                              the batch whose check failed */
} store_append_result;

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
    FILTER_ALL,    /* every child matches (no children: always true) */
    FILTER_ANY,    /* at least one child matches */
    FILTER_FIELD,  /* child applies to attribute `name` */
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
    store_scalar_kind kind;   /* which member holds the value */
    const char *string;       /* SCALAR_STRING: NUL-terminated UTF-8 */
    int64_t integer;          /* SCALAR_INTEGER */
    double number;            /* SCALAR_FLOAT (finite) */
    bool boolean;             /* SCALAR_BOOLEAN */
} store_scalar;

typedef struct store_filter {
    store_filter_kind kind;              /* node type */
    const char *name;                    /* FILTER_FIELD: attribute name */
    struct store_filter **children;      /* ALL/ANY: children; FIELD: one */
    size_t nchildren;                    /* entries in children */
    store_scalar value;                  /* comparison operators: operand */
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
/* The backend contract                                                */

typedef struct store store;

typedef enum store_admin {
    STORE_DEPLOY,  /* create what is missing, wait until usable */
    STORE_DESTROY, /* remove the store's tables or file contents */
    STORE_INFO,    /* describe what exists */
} store_admin;

typedef struct store_ops {
    const char *name; /* "sqlite", "dynamodb", ... */

    /* Opens the store named by `uri` (the part after the scheme is the
     * backend's), creating what an embedded store needs. `opts` is NULL for
     * the defaults; it is not kept. On success *out is a handle to release
     * with close. */
    store_status (*open)(const char *uri, const store_options *opts, store **out,
                         char **err);

    /* Releases the handle and everything it holds. Safe on NULL. */
    void (*close)(store *s);

    /* Commits `count` events to `key` atomically, assigning each a revision
     * above every revision the key has (on the embedded store, above every
     * revision in the store), in commit order. Checks opts->expected_revision
     * inside the same atomic step; a failed check commits nothing and
     * reports STORE_CONFLICT with the actual head. count == 0 reports
     * STORE_UNCHANGED. STORE_INVALID for a bad key, type or data. */
    store_status (*append)(store *s, const char *key, const store_pending *events,
                           size_t count, const store_append_opts *opts,
                           store_append_result *result, char **err);

    /* Like append across several keys: every batch commits or none does.
     * A failed check reports STORE_CONFLICT with result->failed naming the
     * batch. A key may appear in at most one batch. */
    store_status (*append_many)(store *s, const store_batch *batches, size_t n,
                                const char *idempotency_key,
                                store_append_result *result, char **err);

    /* Writes the key's latest revision, or STORE_START, into out.
     * Strongly consistent. */
    store_status (*head)(store *s, const char *key, char out[STORE_REVISION_SIZE],
                         char **err);

    /* Opens a cursor over one key's events (key != NULL) or over every event
     * in revision order (key == NULL). Cursors fetch page by page so memory
     * stays flat; the options are copied, so the caller may free them. */
    store_status (*read)(store *s, const char *key, const store_read_opts *opts,
                         store_cursor **out, char **err);

    /* Moves the cursor on: *ev is the next matching event, or NULL at the end.
     * *ev stays valid until the next call or cursor_close. */
    store_status (*next)(store_cursor *c, const store_event **ev, char **err);

    /* Releases a cursor. Safe on NULL. */
    void (*cursor_close)(store_cursor *c);

    /* Stores `state` as the key's snapshot at `revision`, unless the stored
     * one has a newer revision: then *saved is false and nothing changes. */
    store_status (*save_snapshot)(store *s, const char *key, const char *revision,
                                  const char *state, size_t state_len, bool *saved,
                                  char **err);

    /* Loads the key's snapshot: *found tells whether there is one; when it is
     * true, snap->state is malloc'd and the caller frees it. */
    store_status (*snapshot)(store *s, const char *key, store_snapshot *snap,
                             bool *found, char **err);

    /* Provisions, removes or describes the backend's storage. *out is a
     * malloc'd JSON object describing what was done or found. */
    store_status (*admin)(store *s, store_admin action, char **out, char **err);
} store_ops;

/* Every handle starts with this header so generic code can find its ops. */
struct store {
    const store_ops *ops; /* the backend's table */
    store_env env;        /* clock and randomness in use */
};

/* The backends compiled in. */
extern const store_ops store_sqlite_ops;
extern const store_ops store_dynamodb_ops;

/* Picks the backend for a URI ("sqlite:PATH", "PATH.db", "memory:", ...)
 * and opens it. STORE_INVALID for a URI no backend takes. */
store_status store_open(const char *uri, const store_options *opts, store **out,
                        char **err);

/* Closes any store. Safe on NULL. */
void store_close(store *s);

/* Formats a malloc'd message for *err; returns `status` for chaining.
 * Leaves *err untouched when err is NULL. */
store_status store_fail(char **err, store_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Checks an application string (key, type, correlation id, idempotency key):
 * non-empty unless allow_empty, valid UTF-8, no NUL. Returns NULL when fine,
 * else a static description of what is wrong. */
const char *store_check_text(const char *s, bool allow_empty);

#endif
