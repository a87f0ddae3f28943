/*
 * sqlite_store.h - what the files of the embedded backend share, private
 * to store/sqlite/: the handle, a write on its way through the commit
 * group, the cursor and subscription, the prepared statements and the
 * helpers every concern calls. The backend is cut by concern: sqlite.c
 * (schema, statements, waking, open and close, admin, the ops table),
 * sqlite_append.c (appends and group commit), sqlite_read.c (cursors),
 * sqlite_sub.c (subscriptions) and sqlite_view.c (snapshots, views and
 * the caller's transactions). sqlite.c's opening comment explains the
 * design.
 */
#ifndef AEON_SQLITE_STORE_H
#define AEON_SQLITE_STORE_H

#include "filter.h"
#include "lease.h"
#include "pattern.h"
#include "revision.h"
#include "store.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SCHEMA_VERSION 5
#define BUSY_TIMEOUT_MS 10000
#define PAGE_ROWS 256              /* rows a cursor reads per page at most */
#define PAGE_BYTES (1u << 20)      /* ... and text it buffers, past one row */
#define PRUNE_EVERY_MS (60 * 1000) /* expired idempotency keys go this often */
#define GROUP_MAX 64               /* appends one commit takes at most */
#define WAKE_CHECK_MS                                                                              \
    25 /* a waiting poll looks for other processes'
                                      commits this often: well inside the
                                      100 ms store.h promises, and a PRAGMA
                                      costs microseconds */

/* The statements every handle prepares once, at open. */
enum {
    Q_BEGIN,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_LAST,
    Q_HEAD,
    Q_INSERT,
    Q_TOKEN_SEEN,
    Q_TOKEN_PUT,
    Q_TOKEN_PRUNE,
    Q_SNAP_GET,
    Q_SNAP_PUT,
    Q_ALL_FWD,
    Q_ALL_BACK,
    Q_KEY_FWD,
    Q_KEY_BACK,
    Q_SAVEPOINT,
    Q_RELEASE,
    Q_ROLLBACK_TO,
    Q_DATA_VERSION,
    Q_SUB_GET,
    Q_SUB_INSERT,
    Q_SUB_UPDATE,
    Q_SUB_RESET,
    Q_LEASE_GET,
    Q_LEASE_TAKE,
    Q_LEASE_RENEW,
    Q_LEASE_RELEASE,
    Q_VIEW_GET,
    Q_VIEW_PUT,
    Q_VIEW_SEEN,
    Q_VIEW_ADVANCE,
    Q_VIEW_CLEAR_DOCS,
    Q_VIEW_CLEAR_SOME,
    Q_VIEW_CLEAR_SEEN,
    Q_VIEW_LIST,
    Q_SNAP_LIST,
    Q_COUNT
};

typedef struct group group;

typedef struct sqlite_store {
    store base;                 /* ops and env; first, so a store * is one */
    sqlite3 *db;                /* the connection */
    char *path;                 /* the file, or ":memory:" */
    sqlite3_stmt *q[Q_COUNT];   /* prepared at open, reset after each use */
    uint64_t next_prune_ms;     /* when to drop expired idempotency keys */
    struct timespec busy_since; /* when the current wait for a lock began */
    bool txn;                   /* the caller's transaction (begin) is open */
    bool txn_appended;          /* ... and events were appended in it */
    store_sub *subs;            /* open subscriptions, told of commits and
                                   rollbacks */
    group *group;               /* the file's commit group; NULL in memory */
} sqlite_store;

/* One write on its way to the database, on its caller's stack: an append,
 * or a snapshot to save (snap_key set). A leader reads and answers it while
 * its caller sleeps. */
typedef struct request {
    sqlite_store *s;           /* the handle it came through: its clock,
                                   randomness and pruning time */
    const store_batch *b;      /* what to append ... */
    size_t n;                  /* ... in this many batches */
    size_t total;              /* events in all of them, > 0 */
    const char *token;         /* idempotency key, or NULL */
    const char *snap_key;      /* a snapshot's key, or NULL for an append */
    const char *snap_revision; /* ... its revision */
    const char *snap_state;    /* ... and state, snap_len bytes */
    size_t snap_len;           /* bytes in snap_state */
    store_append_result *r;    /* an append's outcome */
    char **err;                /* where its message goes */
    store_status status;       /* its status */
    bool wrote;                /* it inserted events (in the open group) */
    bool done;                 /* answered: status, r and err are final */
    bool lead;                 /* told to lead the next commit */
    pthread_cond_t wake;       /* signalled when done or told to lead */
    struct request *next;      /* the next in its group's queue */
} request;

/* Appends to one file from this process, committed together. */
struct group {
    dev_t dev;            /* the file's device ... */
    ino_t ino;            /* ... and inode */
    pid_t pid;            /* the process it belongs to */
    int refs;             /* handles using it */
    pthread_mutex_t lock; /* guards what follows */
    bool committing;      /* a leader is at work */
    request *head, *tail; /* appends waiting, oldest first */
    uint64_t commits;     /* transactions committed for appends */
    uint64_t appends;     /* appends they carried (snapshots aside) */
    uint64_t largest;     /* the most appends one carried */
    group *next;          /* the next in the registry */
};

/* Growable storage for the strings of buffered events. */
typedef struct textbuf {
    char *data; /* malloc'd; moves as it grows */
    size_t len; /* bytes in use */
    size_t cap; /* bytes allocated */
} textbuf;

/* One buffered event of a cursor's page or a subscription's batch; strings
 * live in a textbuf, by offset because the buffer moves as it grows. */
typedef struct row {
    size_t key;                              /* offset of the key */
    size_t type;                             /* offset of the type */
    size_t data;                             /* offset of the data */
    size_t data_len;                         /* bytes of data */
    size_t corr;                             /* offset of correlation_id */
    bool has_corr;                           /* correlation_id is present */
    size_t more;                             /* events of its append after it */
    char revision[STORE_REVISION_SIZE];      /* the event's revision */
    char committed_at[STORE_TIMESTAMP_SIZE]; /* when it was committed */
} row;

struct store_cursor {
    sqlite_store *s;              /* the handle it reads through */
    char *key;                    /* the key read, NULL for every key */
    store_filter *filter;         /* copy of the caller's filter, or NULL */
    bool backward;                /* newest first */
    int64_t remaining;            /* matches still to hand out; < 0: no limit */
    char lo[STORE_REVISION_SIZE]; /* read revisions above this ... */
    char hi[STORE_REVISION_SIZE]; /* ... and below this; pages move them */
    bool drained;                 /* no rows left in [lo, hi] */
    row *rows;                    /* the current page, PAGE_ROWS at most */
    size_t nrows;                 /* rows in it */
    size_t pos;                   /* the next row to hand out */
    textbuf text;                 /* strings of the page's rows */
    store_event ev;               /* the event last handed out */
};

struct store_sub {
    sqlite_store *s;                     /* the handle it reads and acks through */
    char *name;                          /* NULL when ephemeral */
    char **keys;                         /* key patterns */
    size_t nkeys;                        /* entries in keys */
    char **types;                        /* type patterns */
    size_t ntypes;                       /* entries in types */
    store_filter *filter;                /* copy of the caller's filter, or NULL */
    char start[STORE_REVISION_SIZE];     /* opts->start: where to begin without a
                                            checkpoint ("Z": the end then) */
    char known[STORE_REVISION_SIZE];     /* the stored checkpoint as last read or
                                            written ("0": none) */
    char committed[STORE_REVISION_SIZE]; /* known, as of the last commit: what a
                                            rollback goes back to */
    char at[STORE_REVISION_SIZE];        /* delivered or passed over up to here */
    lease lease;                         /* its side of the name's lease */
    store_sub *next;                     /* sibling in s->subs */
    row *rows;                           /* the last batch */
    size_t nrows;                        /* rows in it */
    size_t rows_cap;                     /* rows allocated */
    textbuf text;                        /* strings of the batch */
    store_event *events;                 /* the batch as handed out */
};

/* ---- sqlite.c: statements, waking, schema ---------------------------- */

/* The backend's row in the table of backends (open.c). */
extern const store_ops store_sqlite_ops;

/* Maps a SQLite result code to a status, with SQLite's own message. Call
 * it before anything else runs on the connection, which would replace the
 * message. */
store_status sqlite_db_fail(sqlite_store *s, int rc, char **err, const char *doing);

/* STORE_DAMAGED with the file's name: what every call on a handle marked
 * damaged (base.damaged, set by sqlite_db_fail) answers. */
store_status sqlite_damaged(sqlite_store *s, char **err);

/* Steps a statement that yields at most one wanted row and resets it;
 * SQLITE_ROW and SQLITE_DONE both mean success. */
int sqlite_run(sqlite3_stmt *q);

/* A write's own BEGIN IMMEDIATE, or a savepoint inside the caller's
 * transaction; its commit; and its undoing (sqlite.c says why). */
int sqlite_write_begin(sqlite_store *s);
int sqlite_write_commit(sqlite_store *s);
void sqlite_write_rollback(sqlite_store *s);

/* Refuses a write once SQLite has ended the caller's transaction itself. */
store_status sqlite_txn_alive(sqlite_store *s, char **err);

/* Waking subscribers: the count of commits of events in this process, the
 * broadcast every such commit makes, and a wait for it (up to ms; true
 * when a commit moved the count past `seen`). */
uint64_t sqlite_wake_generation(void);
void sqlite_wake_all(void);
bool sqlite_wake_wait(uint64_t seen, int64_t ms);
int64_t sqlite_mono_ms(void);

void sqlite_copy_revision(char out[STORE_REVISION_SIZE], const unsigned char *text);

/* The key's head, or the store's last revision when key is NULL. */
int sqlite_max_revision(sqlite_store *s, const char *key, char out[STORE_REVISION_SIZE]);

/* Steps q, a bound statement of one revision column, and resets it: the
 * revision into out when there is a row (out is left alone when there is
 * none); SQLITE_DONE, or SQLite's error code. */
int sqlite_step_revision(sqlite3_stmt *q, char out[STORE_REVISION_SIZE]);

/* ---- sqlite_append.c -------------------------------------------------- */

/* Runs a write through the file's group: it leads a commit when none is
 * running, else waits to be answered or to lead the next one (see
 * sqlite.c's opening comment). Without a group (in memory) it commits
 * alone. */
store_status sqlite_submit(sqlite_store *s, request *q);
store_status sqlite_append(store *st, const char *key, const store_pending *events, size_t count,
                           const store_append_opts *opts, store_append_result *result, char **err);
store_status sqlite_append_many(store *st, const store_batch *batches, size_t n,
                                const char *idempotency_key, store_append_result *result,
                                char **err);
store_status sqlite_head(store *st, const char *key, char out[STORE_REVISION_SIZE], char **err);

/* ---- sqlite_read.c ---------------------------------------------------- */

/* A text column and its length. */
const char *sqlite_column(sqlite3_stmt *q, int i, size_t *len);
/* Copies an event into a row and its text; false when out of memory. */
bool sqlite_keep_event(textbuf *b, row *r, const store_event *ev);
/* The event a kept row stands for, pointing into its text. */
void sqlite_row_event(const textbuf *b, const row *r, store_event *ev);
store_status sqlite_read(store *st, const char *key, const store_read_opts *opts,
                         store_cursor **out, char **err);
store_status sqlite_next(store_cursor *c, const store_event **ev, char **err);
void sqlite_cursor_close(store_cursor *c);

/* ---- sqlite_sub.c ----------------------------------------------------- */

/* A commit makes the checkpoints acked inside the transaction the known
 * ones; a rollback forgets them, so the fence compares against what is
 * really stored. */
void sqlite_settle_subs(sqlite_store *s, bool committed);
store_status sqlite_subscribe(store *st, const char *name, const store_sub_opts *opts,
                              store_sub **out, char **err);
store_status sqlite_poll(store_sub *sub, int64_t timeout_ms, size_t max, const store_event **events,
                         size_t *count, char position[STORE_REVISION_SIZE], char **err);
store_status sqlite_ack(store_sub *sub, const char *revision, bool *acked, char **err);
store_status sqlite_checkpoint(store_sub *sub, char out[STORE_REVISION_SIZE], char **err);
void sqlite_sub_close(store_sub *sub);
store_status sqlite_sub_reset(store *st, const char *name, char **err);
bool sqlite_sub_active(store_sub *sub);
store_status sqlite_sub_renew(store_sub *sub, bool *held, char **err);

/* ---- sqlite_view.c ---------------------------------------------------- */

store_status sqlite_save_snapshot(store *st, const char *key, const char *revision,
                                  const char *state, size_t state_len, bool *saved, char **err);
store_status sqlite_snapshot(store *st, const char *key, store_snapshot *snap, bool *found,
                             char **err);
store_status sqlite_view_get(store *st, const char *view, const char *id, char **doc,
                             size_t *doc_len, char revision[STORE_REVISION_SIZE], bool *found,
                             char **err);
store_status sqlite_view_put(store *st, const char *view, const char *id, const char *doc,
                             size_t doc_len, const char *revision, bool *stored, char **err);
store_status sqlite_view_revision(store *st, const char *view, char out[STORE_REVISION_SIZE],
                                  char **err);
store_status sqlite_view_advance(store *st, const char *view, const char *revision, char **err);
store_status sqlite_view_clear(store *st, const char *view, size_t limit, bool *done, char **err);
store_status sqlite_view_list(store *st, const char *view, const char *after, size_t limit,
                              store_view_doc **docs, size_t *n, char **err);
store_status sqlite_snapshot_list(store *st, const char *after, size_t limit, store_view_doc **docs,
                                  size_t *n, char **err);
store_status sqlite_begin(store *st, char **err);
store_status sqlite_commit(store *st, char **err);
void sqlite_rollback(store *st);

/* sqlite_import.c: events copied from another store (store.h, import). */
store_status sqlite_import(store *st, const store_event *events, size_t count,
                           store_import_result *r, char **err);

#endif
