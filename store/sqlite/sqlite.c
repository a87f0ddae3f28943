/*
 * sqlite.c - the embedded backend: one SQLite file (or an in-memory
 * database) holding events, idempotency keys, snapshots, subscription
 * checkpoints and views. Provides store_sqlite_ops. Uses SQLite, revision.h
 * to number events, filter.h and pattern.h to filter reads and
 * subscriptions, pthreads to wake subscribers and jansson to describe the
 * store.
 *
 * Durability and concurrency: the file is in WAL mode with synchronous=FULL,
 * so a commit is on disk when append returns, readers never block the
 * writer, and several processes can share the file; writers wait for the
 * write lock up to BUSY_TIMEOUT_MS (see busy_wait). Appends take the write
 * lock first (BEGIN IMMEDIATE) and number their events above the store's
 * highest revision inside that transaction, so revisions increase in
 * commit order across the store and across processes.
 *
 * Group commit: within one process, appends that arrive while another
 * append on the same file is committing share the next transaction and its
 * fsync, rather than queueing for the write lock one by one. Each file a
 * process has open has a `group` in a process-wide registry (found by
 * device and inode, so every path to the file finds it), with a queue of
 * waiting appends. An append that finds no commit in progress leads: it
 * takes every append queued (its own first, at most GROUP_MAX), runs them
 * on its own connection in one BEGIN IMMEDIATE transaction, each inside a
 * savepoint with its own idempotency and expected-revision checks, commits
 * once, answers every one and hands the lead to the oldest append that
 * queued meanwhile. The others sleep on their own condition variable until
 * answered, so an append returns only once its transaction is on disk. An
 * append whose check fails rolls back to its savepoint and leaves the rest
 * of the group alone; an error that ends the whole transaction (I/O, the
 * COMMIT itself on a full disk) fails, with the message, every request
 * whose answer stood on it: from the first one that wrote on, those that
 * wrote and those that only read what was written before them (a repeat of
 * an idempotency key first sent in the group), so nothing is acknowledged
 * that is not stored (spec/c/full_disk_test.c). A group of one is exactly the
 * plain transaction (no savepoint). Revisions are numbered in queue order
 * under the write lock, each append with its own handle's clock. Snapshot
 * saves queue the same way (the aggregate runner saves one right after an
 * append), rather than taking the write lock in the appends' way. Appends
 * inside a caller's transaction (begin) run on their own handle, which
 * holds the write lock already. Other processes see ordinary transactions;
 * they cannot join a group (each process has its own registry, keyed by pid
 * too, so a forked child never joins its parent's). In-memory stores never
 * group: each is its own database. With 16 threads appending, a commit
 * carried about 10 appends (bench/RESULTS.md).
 *
 * Cursors read pages of rows and hold no statement or transaction between
 * calls, so appends on the same handle may come in between. As revisions
 * only grow, a forward cursor also returns what was committed after it
 * opened, up to the page where it finds the end of its range.
 *
 * Schema (PRAGMA user_version = SCHEMA_VERSION):
 *   events(revision PK, key, type, data, correlation_id, committed_at)
 *     WITHOUT ROWID, since appends land at the end of the revision order
 *     and it measured faster than a rowid table with a unique revision;
 *     events_by_key(key, revision, then every other column) serves
 *     per-key reads and heads. It covers the whole row so that reading a
 *     key's events is one index scan, not a seek into the table per event:
 *     replaying a stream measured 1.4-1.6x faster, for about 40% more
 *     space with small events (up to twice it with large ones). Versions
 *     1 and 2 indexed (key, revision) only; opening one rebuilds the index.
 *   idempotency(token PK, expires_ms), indexed by expiry for pruning.
 *   snapshots(key PK, revision, state).
 *   subscriptions(name PK, checkpoint): durable checkpoints.
 *   views(view, id, revision, doc), PK (view, id): read-model documents;
 *   view_revisions(view PK, revision): the revision each view has seen.
 * A key's head and the store's last revision are derived (MAX(revision)),
 * never stored twice. Version 1 stores (no subscriptions or views) gain the
 * new tables when first opened; version 3 made events_by_key covering.
 *
 * Subscriptions: since revisions increase in commit order across the
 * store, a subscription's position is one revision, and "after it" is
 * everything it has not seen. A waiting poll sleeps on a process-wide
 * condition variable that every commit of events signals, so appends from
 * the same process wake it at once; every WAKE_CHECK_MS it also asks SQLite
 * for PRAGMA data_version, which changes when another connection (another
 * process) has committed, so their appends wake it within that time.
 *
 * Transactions (begin/commit): every write runs in its own BEGIN IMMEDIATE
 * transaction, or in a savepoint when the caller has one open, so a batch
 * of view writes, appends and an ack commits as one.
 */
#include "filter.h"
#include "pattern.h"
#include "revision.h"
#include "store.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SCHEMA_VERSION 3
#define BUSY_TIMEOUT_MS 10000
#define PAGE_ROWS 256              /* rows a cursor reads per page at most */
#define PAGE_BYTES (1u << 20)      /* ... and text it buffers, past one row */
#define PRUNE_EVERY_MS (60 * 1000) /* expired idempotency keys go this often */
#define GROUP_MAX 64               /* appends one commit takes at most */
#define WAKE_CHECK_MS 25           /* a waiting poll looks for other processes'
                                      commits this often: well inside the
                                      100 ms store.h promises, and a PRAGMA
                                      costs microseconds */

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS events ("
    " revision TEXT NOT NULL PRIMARY KEY,"
    " key TEXT NOT NULL,"
    " type TEXT NOT NULL,"
    " data TEXT NOT NULL,"
    " correlation_id TEXT,"
    " committed_at TEXT NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS events_by_key ON events"
    " (key, revision, type, data, correlation_id, committed_at);"
    "CREATE TABLE IF NOT EXISTS idempotency ("
    " token TEXT NOT NULL PRIMARY KEY,"
    " expires_ms INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS idempotency_by_expiry ON idempotency (expires_ms);"
    "CREATE TABLE IF NOT EXISTS snapshots ("
    " key TEXT NOT NULL PRIMARY KEY,"
    " revision TEXT NOT NULL,"
    " state TEXT NOT NULL"
    ");"
    "CREATE TABLE IF NOT EXISTS subscriptions ("
    " name TEXT NOT NULL PRIMARY KEY,"
    " checkpoint TEXT NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS views ("
    " view TEXT NOT NULL,"
    " id TEXT NOT NULL,"
    " revision TEXT NOT NULL,"
    " doc TEXT NOT NULL,"
    " PRIMARY KEY (view, id)"
    ") WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS view_revisions ("
    " view TEXT NOT NULL PRIMARY KEY,"
    " revision TEXT NOT NULL"
    ") WITHOUT ROWID;"
    "PRAGMA user_version = 3;";

/* Versions 1 and 2 indexed events by (key, revision) only: the index goes
 * before the schema above makes it anew, covering. */
static const char drop_old_index_sql[] = "DROP INDEX IF EXISTS events_by_key;";

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
    Q_VIEW_GET,
    Q_VIEW_PUT,
    Q_VIEW_SEEN,
    Q_VIEW_ADVANCE,
    Q_VIEW_CLEAR_DOCS,
    Q_VIEW_CLEAR_SEEN,
    Q_COUNT
};

#define EVENT_COLUMNS "revision, key, type, data, correlation_id, committed_at"

/* Reads bind ?1 and ?2 as exclusive bounds, ?3 the page size, ?4 the key. */
static const char *const sql[Q_COUNT] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_LAST] = "SELECT MAX(revision) FROM events",
    [Q_HEAD] = "SELECT MAX(revision) FROM events WHERE key = ?1",
    [Q_INSERT] = "INSERT INTO events (" EVENT_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [Q_TOKEN_SEEN] = "SELECT 1 FROM idempotency WHERE token = ?1 AND expires_ms > ?2",
    [Q_TOKEN_PUT] = "INSERT OR REPLACE INTO idempotency (token, expires_ms) VALUES (?1, ?2)",
    [Q_TOKEN_PRUNE] = "DELETE FROM idempotency WHERE expires_ms <= ?1",
    [Q_SNAP_GET] = "SELECT revision, state FROM snapshots WHERE key = ?1",
    [Q_SNAP_PUT] = "INSERT INTO snapshots (key, revision, state) VALUES (?1, ?2, ?3)"
                   " ON CONFLICT (key) DO UPDATE SET revision = excluded.revision,"
                   " state = excluded.state WHERE excluded.revision >= snapshots.revision",
    [Q_ALL_FWD] = "SELECT " EVENT_COLUMNS " FROM events WHERE revision > ?1 AND"
                  " revision < ?2 ORDER BY revision LIMIT ?3",
    [Q_ALL_BACK] = "SELECT " EVENT_COLUMNS " FROM events WHERE revision > ?1 AND"
                   " revision < ?2 ORDER BY revision DESC LIMIT ?3",
    [Q_KEY_FWD] = "SELECT " EVENT_COLUMNS " FROM events WHERE key = ?4 AND"
                  " revision > ?1 AND revision < ?2 ORDER BY revision LIMIT ?3",
    [Q_KEY_BACK] = "SELECT " EVENT_COLUMNS " FROM events WHERE key = ?4 AND"
                   " revision > ?1 AND revision < ?2 ORDER BY revision DESC LIMIT ?3",
    [Q_SAVEPOINT] = "SAVEPOINT aeon_write",
    [Q_RELEASE] = "RELEASE aeon_write",
    [Q_ROLLBACK_TO] = "ROLLBACK TO aeon_write",
    [Q_DATA_VERSION] = "PRAGMA data_version",
    [Q_SUB_GET] = "SELECT checkpoint FROM subscriptions WHERE name = ?1",
    /* The fenced ack: the first checkpoint is inserted only if there is
     * none, a later one replaces only the one the subscription knew, so a
     * consumer that fell behind another changes nothing (no row changes). */
    [Q_SUB_INSERT] = "INSERT INTO subscriptions (name, checkpoint) VALUES (?1, ?2)"
                     " ON CONFLICT (name) DO NOTHING",
    [Q_SUB_UPDATE] = "UPDATE subscriptions SET checkpoint = ?2 WHERE name = ?1 AND"
                     " checkpoint = ?3",
    [Q_SUB_RESET] = "DELETE FROM subscriptions WHERE name = ?1",
    [Q_VIEW_GET] = "SELECT revision, doc FROM views WHERE view = ?1 AND id = ?2",
    [Q_VIEW_PUT] = "INSERT INTO views (view, id, revision, doc) VALUES (?1, ?2, ?3, ?4)"
                   " ON CONFLICT (view, id) DO UPDATE SET revision = excluded.revision,"
                   " doc = excluded.doc WHERE excluded.revision >= views.revision",
    [Q_VIEW_SEEN] = "SELECT revision FROM view_revisions WHERE view = ?1",
    [Q_VIEW_ADVANCE] = "INSERT INTO view_revisions (view, revision) VALUES (?1, ?2)"
                       " ON CONFLICT (view) DO UPDATE SET revision = excluded.revision"
                       " WHERE excluded.revision > view_revisions.revision",
    [Q_VIEW_CLEAR_DOCS] = "DELETE FROM views WHERE view = ?1",
    [Q_VIEW_CLEAR_SEEN] = "DELETE FROM view_revisions WHERE view = ?1",
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
    sqlite_store *s;            /* the handle it came through: its clock,
                                   randomness and pruning time */
    const store_batch *b;       /* what to append ... */
    size_t n;                   /* ... in this many batches */
    size_t total;               /* events in all of them, > 0 */
    const char *token;          /* idempotency key, or NULL */
    const char *snap_key;       /* a snapshot's key, or NULL for an append */
    const char *snap_revision;  /* ... its revision */
    const char *snap_state;     /* ... and state, snap_len bytes */
    size_t snap_len;            /* bytes in snap_state */
    store_append_result *r;     /* an append's outcome */
    char **err;                 /* where its message goes */
    store_status status;        /* its status */
    bool wrote;                 /* it inserted events (in the open group) */
    bool done;                  /* answered: status, r and err are final */
    bool lead;                  /* told to lead the next commit */
    pthread_cond_t wake;        /* signalled when done or told to lead */
    struct request *next;       /* the next in its group's queue */
} request;

/* Appends to one file from this process, committed together. */
struct group {
    dev_t dev;                  /* the file's device ... */
    ino_t ino;                  /* ... and inode */
    pid_t pid;                  /* the process it belongs to */
    int refs;                   /* handles using it */
    pthread_mutex_t lock;       /* guards what follows */
    bool committing;            /* a leader is at work */
    request *head, *tail;       /* appends waiting, oldest first */
    uint64_t commits;           /* transactions committed for appends */
    uint64_t appends;           /* appends they carried (snapshots aside) */
    uint64_t largest;           /* the most appends one carried */
    group *next;                /* the next in the registry */
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
    char revision[STORE_REVISION_SIZE];      /* the event's revision */
    char committed_at[STORE_TIMESTAMP_SIZE]; /* when it was committed */
} row;

struct store_cursor {
    sqlite_store *s;               /* the handle it reads through */
    char *key;                     /* the key read, NULL for every key */
    store_filter *filter;          /* copy of the caller's filter, or NULL */
    bool backward;                 /* newest first */
    int64_t remaining;             /* matches still to hand out; < 0: no limit */
    char lo[STORE_REVISION_SIZE];  /* read revisions above this ... */
    char hi[STORE_REVISION_SIZE];  /* ... and below this; pages move them */
    bool drained;                  /* no rows left in [lo, hi] */
    row *rows;                     /* the current page, PAGE_ROWS at most */
    size_t nrows;                  /* rows in it */
    size_t pos;                    /* the next row to hand out */
    textbuf text;                  /* strings of the page's rows */
    store_event ev;                /* the event last handed out */
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
    store_sub *next;                     /* sibling in s->subs */
    row *rows;                           /* the last batch */
    size_t nrows;                        /* rows in it */
    size_t rows_cap;                     /* rows allocated */
    textbuf text;                        /* strings of the batch */
    store_event *events;                 /* the batch as handed out */
};

/* Maps a SQLite result code to a status, with SQLite's own message. Call
 * it before anything else runs on the connection, which would replace the
 * message. */
static store_status db_fail(sqlite_store *s, int rc, char **err, const char *doing)
{
    store_status status = STORE_IO;
    if ((rc & 0xff) == SQLITE_NOMEM)
        status = STORE_NOMEM;
    else if ((rc & 0xff) == SQLITE_TOOBIG)
        status = STORE_LIMIT;
    const char *msg = s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    return store_fail(err, status, "sqlite: %s: %s", doing, msg);
}

/* Steps a statement that yields at most one wanted row and resets it;
 * SQLITE_ROW and SQLITE_DONE both mean success. */
static int run(sqlite3_stmt *q)
{
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    return rc == SQLITE_ROW ? SQLITE_DONE : rc;
}

/* A write opens its own BEGIN IMMEDIATE transaction, taking the write
 * lock before it reads so that what it checks still holds when it writes;
 * inside the caller's transaction it opens a savepoint instead, so it can
 * fail alone and still commit with the rest. */
static int write_begin(sqlite_store *s)
{
    return run(s->q[s->txn ? Q_SAVEPOINT : Q_BEGIN]);
}

static int write_commit(sqlite_store *s)
{
    return run(s->q[s->txn ? Q_RELEASE : Q_COMMIT]);
}

/* Undoes a failed write, unless SQLite already rolled the transaction back
 * (it does on some I/O and out-of-memory errors). */
static void rollback(sqlite_store *s)
{
    if (sqlite3_get_autocommit(s->db))
        return;
    if (s->txn) {
        run(s->q[Q_ROLLBACK_TO]);
        run(s->q[Q_RELEASE]);
    } else {
        run(s->q[Q_ROLLBACK]);
    }
}

/* SQLite ends a whole transaction by itself after some errors; a write
 * after that would run outside the caller's transaction and commit on its
 * own, so refuse it. */
static store_status txn_alive(sqlite_store *s, char **err)
{
    if (s->txn && sqlite3_get_autocommit(s->db))
        return store_fail(err, STORE_IO, "sqlite: the transaction was rolled back by an "
                          "earlier error; roll back and begin again");
    return STORE_OK;
}

/* ------------------------------------------------------------------ */
/* Waking subscribers                                                  */

/* Every commit of events in this process bumps wake_count and broadcasts;
 * a waiting poll sleeps until the count moves or its slice ends. The
 * condition variable runs on CLOCK_MONOTONIC so a clock change cannot
 * stretch a wait. */
static pthread_once_t wake_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t wake_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_cond;
static uint64_t wake_count;

static void wake_init(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&wake_cond, &attr);
    pthread_condattr_destroy(&attr);
}

static uint64_t wake_generation(void)
{
    pthread_once(&wake_once, wake_init);
    pthread_mutex_lock(&wake_lock);
    uint64_t g = wake_count;
    pthread_mutex_unlock(&wake_lock);
    return g;
}

static void wake_all(void)
{
    pthread_once(&wake_once, wake_init);
    pthread_mutex_lock(&wake_lock);
    wake_count++;
    pthread_cond_broadcast(&wake_cond);
    pthread_mutex_unlock(&wake_lock);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps up to ms, or until a commit moves the count past `seen`. True
 * when one did. */
static bool wake_wait(uint64_t seen, int64_t ms)
{
    pthread_once(&wake_once, wake_init);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&wake_lock);
    int rc = 0;
    while (wake_count == seen && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&wake_cond, &wake_lock, &until);
    bool woken = wake_count != seen;
    pthread_mutex_unlock(&wake_lock);
    return woken;
}

static void copy_revision(char out[STORE_REVISION_SIZE], const unsigned char *text)
{
    if (text == NULL)
        text = (const unsigned char *)STORE_START;
    size_t n = strlen((const char *)text);
    if (n > STORE_REVISION_LEN)
        n = STORE_REVISION_LEN;
    memcpy(out, text, n);
    out[n] = '\0';
}

/* The key's head, or the store's last revision when key is NULL. */
static int max_revision(sqlite_store *s, const char *key, char out[STORE_REVISION_SIZE])
{
    sqlite3_stmt *q = s->q[key != NULL ? Q_HEAD : Q_LAST];
    if (key != NULL)
        sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        copy_revision(out, sqlite3_column_text(q, 0));
        rc = SQLITE_DONE;
    }
    sqlite3_reset(q);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Opening and closing                                                 */

static int user_version(sqlite3 *db, int *version)
{
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        *version = sqlite3_column_int(q, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(q);
    return rc;
}

/* Creates the tables when the file has none, or brings an older store up
 * to date (before version 3 that rebuilds the events index: on a large
 * store the first open takes a while, under the write lock). The version
 * is read first without a lock
 * so an open of an existing store writes nothing; creation runs under the
 * write lock and checks again, since another process may be creating them
 * at the same time. */
static store_status ensure_schema(sqlite_store *s, char **err)
{
    int version = 0;
    int rc = user_version(s->db, &version);
    if (rc != SQLITE_OK)
        return db_fail(s, rc, err, "reading the schema version");
    if (version == SCHEMA_VERSION)
        return STORE_OK;
    if (version > SCHEMA_VERSION)
        return store_fail(err, STORE_INVALID, "sqlite: %s has schema version %d; this "
                          "build knows version %d", s->path, version, SCHEMA_VERSION);

    if ((rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) != SQLITE_OK)
        return db_fail(s, rc, err, "creating the schema");
    /* Every statement of the schema is IF NOT EXISTS, so it also brings an
     * older version up to date. */
    if ((rc = user_version(s->db, &version)) == SQLITE_OK && version > 0 &&
        version < 3)
        rc = sqlite3_exec(s->db, drop_old_index_sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK && version < SCHEMA_VERSION)
        rc = sqlite3_exec(s->db, schema_sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        store_status status = db_fail(s, rc, err, "creating the schema");
        if (!sqlite3_get_autocommit(s->db))
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return status;
    }
    if (version > SCHEMA_VERSION)
        return store_fail(err, STORE_INVALID, "sqlite: %s has schema version %d; this "
                          "build knows version %d", s->path, version, SCHEMA_VERSION);
    return STORE_OK;
}

/* WAL is a property of the file and sticks once set. Switching a new file
 * needs an exclusive lock, and SQLite answers SQLITE_BUSY at once, without
 * the busy handler, while another connection holds a lock: exactly what
 * two processes opening a new store together do. So retry, for as long as
 * the busy timeout. On a file system that cannot do WAL SQLite keeps its
 * rollback journal, which is as durable, only less concurrent. */
static int use_wal(sqlite3 *db)
{
    for (int waited = 0;; waited += 10) {
        int rc = sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
        if ((rc & 0xff) != SQLITE_BUSY || waited >= BUSY_TIMEOUT_MS)
            return rc;
        sqlite3_sleep(10);
    }
}

/* SQLite's own busy handler sleeps 1, 2, 5 ... 100 ms between tries, while
 * a process appending in a loop takes the write lock back microseconds
 * after releasing it: with four such writers, three waited over 4 s for
 * their first append (and would have failed at the timeout). Trying every
 * 100 us catches those gaps; measured, every writer gets a fair share. */
static int busy_wait(void *ctx, int tries)
{
    sqlite_store *s = ctx;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (tries == 0)
        s->busy_since = now;
    else if ((now.tv_sec - s->busy_since.tv_sec) * 1000 +
                 (now.tv_nsec - s->busy_since.tv_nsec) / 1000000 >= BUSY_TIMEOUT_MS)
        return 0;
    struct timespec pause = {0, 100 * 1000};
    nanosleep(&pause, NULL);
    return 1;
}

/* ------------------------------------------------------------------ */
/* The registry of commit groups                                       */

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static group *registry;

/* Finds or makes the group of the handle's file. Without one (no memory,
 * a file that cannot be stat'ed) appends commit alone, which is correct,
 * only slower under concurrency. */
static void group_join(sqlite_store *s)
{
    const char *file = sqlite3_db_filename(s->db, "main");
    struct stat st;
    if (file == NULL || *file == '\0' || stat(file, &st) != 0)
        return;
    pid_t pid = getpid();
    pthread_mutex_lock(&registry_lock);
    group *g = registry;
    while (g != NULL && !(g->dev == st.st_dev && g->ino == st.st_ino && g->pid == pid))
        g = g->next;
    if (g == NULL && (g = calloc(1, sizeof *g)) != NULL) {
        g->dev = st.st_dev;
        g->ino = st.st_ino;
        g->pid = pid;
        pthread_mutex_init(&g->lock, NULL);
        g->next = registry;
        registry = g;
    }
    if (g != NULL)
        g->refs++;
    pthread_mutex_unlock(&registry_lock);
    s->group = g;
}

static void group_leave(sqlite_store *s)
{
    group *g = s->group;
    if (g == NULL)
        return;
    s->group = NULL;
    pthread_mutex_lock(&registry_lock);
    if (--g->refs == 0) {
        group **pp = &registry;
        while (*pp != g)
            pp = &(*pp)->next;
        *pp = g->next;
        pthread_mutex_destroy(&g->lock);
        free(g);
    }
    pthread_mutex_unlock(&registry_lock);
}

static void sqlite_close(store *st)
{
    sqlite_store *s = (sqlite_store *)st;
    if (s == NULL)
        return;
    group_leave(s);
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(s->q[i]);
    sqlite3_close_v2(s->db);
    free(s->path);
    free(s);
}

/* Takes "sqlite:PATH", "memory:" or a bare PATH (store_open sends those
 * ending in .db). */
static store_status sqlite_open(const char *uri, const store_options *opts,
                                store **out, char **err)
{
    store_status status = STORE_NOMEM;
    sqlite_store *s = NULL;
    *out = NULL;

    const char *path = uri;
    if (strncmp(uri, "sqlite:", 7) == 0)
        path = uri + 7;
    else if (strcmp(uri, "memory:") == 0)
        path = ":memory:";
    if (*path == '\0')
        return store_fail(err, STORE_INVALID, "store URI \"%s\" names no file", uri);
    bool memory = strcmp(path, ":memory:") == 0;

    if ((s = calloc(1, sizeof *s)) == NULL || (s->path = strdup(path)) == NULL) {
        store_fail(err, status, "sqlite: out of memory opening %s", path);
        goto fail;
    }
    s->base.ops = &store_sqlite_ops;
    s->base.env = opts != NULL && opts->env != NULL ? *opts->env : store_env_default;

    /* NOMUTEX: a handle is used by one thread at a time (store.h). */
    int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                             SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        status = db_fail(s, rc, err, path);
        goto fail;
    }
    sqlite3_busy_handler(s->db, busy_wait, s);
    sqlite3_extended_result_codes(s->db, 1);

    if (!memory && (rc = use_wal(s->db)) != SQLITE_OK) {
        status = db_fail(s, rc, err, "switching to WAL");
        goto fail;
    }
    if ((rc = sqlite3_exec(s->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL)) !=
        SQLITE_OK) {
        status = db_fail(s, rc, err, "setting synchronous = FULL");
        goto fail;
    }
    if ((status = ensure_schema(s, err)) != STORE_OK)
        goto fail;
    for (int i = 0; i < Q_COUNT; i++) {
        rc = sqlite3_prepare_v3(s->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->q[i],
                                NULL);
        if (rc != SQLITE_OK) {
            status = db_fail(s, rc, err, "preparing statements");
            goto fail;
        }
    }
    if (!memory)
        group_join(s);
    *out = &s->base;
    return STORE_OK;

fail:
    sqlite_close((store *)s);
    return status;
}

/* ------------------------------------------------------------------ */
/* Appends                                                             */

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Everything append and append_many refuse, found before the database is
 * touched. `many` says whether messages should name the batch. */
static store_status check_batches(const store_batch *b, size_t n, const char *token,
                                  bool many, size_t *total, char **err)
{
    store_status status = STORE_NOMEM;
    const char **keys = NULL;
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
        const char *exp = b[i].expected_revision;
        if (exp != NULL && strcmp(exp, STORE_START) != 0 && !revision_valid(exp))
            return store_fail(err, STORE_INVALID, "%sexpected revision \"%s\" is not a "
                              "revision or START", where, exp);
        if (b[i].count > 0 && b[i].events == NULL)
            return store_fail(err, STORE_INVALID, "%sno events given", where);
        for (size_t j = 0; j < b[i].count; j++) {
            const store_pending *e = &b[i].events[j];
            if ((why = store_check_text(e->type, false)) != NULL)
                return store_fail(err, STORE_INVALID, "%sevent %zu: type %s", where,
                                  j + 1, why);
            if (e->data == NULL || e->data_len == 0)
                return store_fail(err, STORE_INVALID, "%sevent %zu: data is empty",
                                  where, j + 1);
            if (e->data_len > STORE_MAX_EVENT_BYTES)
                return store_fail(err, STORE_LIMIT,
                                  "%sevent %zu: data is %zu bytes, over the %u-byte limit",
                                  where, j + 1, e->data_len, STORE_MAX_EVENT_BYTES);
            if (e->correlation_id != NULL &&
                (why = store_check_text(e->correlation_id, false)) != NULL)
                return store_fail(err, STORE_INVALID, "%sevent %zu: correlation_id %s",
                                  where, j + 1, why);
        }
        *total += b[i].count;
    }

    if (n > 1) {
        if ((keys = malloc(n * sizeof *keys)) == NULL) {
            store_fail(err, status, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < n; i++)
            keys[i] = b[i].key;
        qsort(keys, n, sizeof *keys, cmp_keys);
        for (size_t i = 1; i < n; i++)
            if (strcmp(keys[i - 1], keys[i]) == 0) {
                status = store_fail(err, STORE_INVALID, "key \"%s\" appears in more "
                                    "than one batch", keys[i]);
                goto done;
            }
    }
    status = STORE_OK;
done:
    free(keys);
    return status;
}

/* Runs one append inside the transaction open on c, the connection of the
 * leader of its group (perhaps its own): checks the idempotency key, then
 * every expected revision, then numbers and inserts the events. A repeat
 * or a conflict writes nothing and is answered in q->r; q->wrote tells
 * whether anything was inserted. On failure q->status and *q->err are set
 * and the caller must undo what it wrote. The clock is that of the append's
 * own handle, read under the write lock, which may have taken a while to
 * get, so committed_at and expiries are those of the commit. No
 * allocation: strings are bound in place. */
static void apply(sqlite_store *c, request *q)
{
    const store_batch *b = q->b;
    store_append_result *r = q->r;
    const store_env *env = &q->s->base.env;
    const char *doing;
    int rc;

    if (q->snap_key != NULL) {
        /* One upsert: the WHERE keeps a newer snapshot, an equal revision
         * overwrites; wrote says whether it was saved. */
        sqlite3_stmt *st = c->q[Q_SNAP_PUT];
        doing = "saving a snapshot";
        if ((rc = sqlite3_bind_text(st, 1, q->snap_key, -1, SQLITE_STATIC)) != SQLITE_OK ||
            (rc = sqlite3_bind_text(st, 2, q->snap_revision, -1, SQLITE_STATIC)) != SQLITE_OK ||
            (rc = sqlite3_bind_text(st, 3, q->snap_state, (int)q->snap_len,
                                    SQLITE_STATIC)) != SQLITE_OK ||
            (rc = run(st)) != SQLITE_DONE)
            goto fail;
        q->wrote = sqlite3_changes(c->db) > 0;
        return;
    }

    uint64_t now = env->now_ms(env->ctx);
    char committed_at[STORE_TIMESTAMP_SIZE];
    revision_timestamp(now, committed_at);

    if (q->token != NULL) {
        doing = "checking the idempotency key";
        sqlite3_stmt *st = c->q[Q_TOKEN_SEEN];
        sqlite3_bind_text(st, 1, q->token, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)now);
        rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc == SQLITE_ROW)
            return; /* a repeat: UNCHANGED, as r starts */
        if (rc != SQLITE_DONE)
            goto fail;
    }

    doing = "reading a head";
    for (size_t i = 0; i < q->n; i++) {
        if (b[i].expected_revision == NULL)
            continue;
        char head[STORE_REVISION_SIZE];
        if ((rc = max_revision(c, b[i].key, head)) != SQLITE_DONE)
            goto fail;
        if (strcmp(head, b[i].expected_revision) != 0) {
            r->outcome = STORE_CONFLICT;
            copy_revision(r->expected, (const unsigned char *)b[i].expected_revision);
            memcpy(r->actual, head, sizeof head);
            r->failed = i;
            return;
        }
    }

    char last[STORE_REVISION_SIZE], rev[STORE_REVISION_SIZE];
    doing = "reading the last revision";
    if ((rc = max_revision(c, NULL, last)) != SQLITE_DONE)
        goto fail;
    revision_after(last, env, rev);

    doing = "inserting an event";
    sqlite3_stmt *ins = c->q[Q_INSERT];
    bool first = true;
    q->wrote = true;
    for (size_t i = 0; i < q->n; i++) {
        for (size_t j = 0; j < b[i].count; j++) {
            const store_pending *e = &b[i].events[j];
            /* Later events of one append follow the first by one each: the
             * transaction orders them already, no clock or random needed. */
            if (!first && !revision_next(rev, rev)) {
                q->status = store_fail(q->err, STORE_LIMIT, "sqlite: no revisions left");
                return;
            }
            first = false;
            /* A bind fails on a string over SQLite's length limit; going on
             * would insert what the slot held before. */
            if ((rc = sqlite3_bind_text(ins, 1, rev, STORE_REVISION_LEN,
                                        SQLITE_STATIC)) != SQLITE_OK ||
                (rc = sqlite3_bind_text(ins, 2, b[i].key, -1, SQLITE_STATIC)) != SQLITE_OK ||
                (rc = sqlite3_bind_text(ins, 3, e->type, -1, SQLITE_STATIC)) != SQLITE_OK ||
                (rc = sqlite3_bind_text(ins, 4, e->data, (int)e->data_len,
                                        SQLITE_STATIC)) != SQLITE_OK ||
                (rc = e->correlation_id != NULL
                          ? sqlite3_bind_text(ins, 5, e->correlation_id, -1, SQLITE_STATIC)
                          : sqlite3_bind_null(ins, 5)) != SQLITE_OK ||
                (rc = sqlite3_bind_text(ins, 6, committed_at, -1, SQLITE_STATIC)) !=
                    SQLITE_OK ||
                (rc = run(ins)) != SQLITE_DONE)
                goto fail;
        }
    }

    if (q->token != NULL) {
        doing = "recording the idempotency key";
        sqlite3_stmt *st = c->q[Q_TOKEN_PUT];
        sqlite3_bind_text(st, 1, q->token, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)(now + STORE_IDEMPOTENCY_MS));
        if ((rc = run(st)) != SQLITE_DONE)
            goto fail;
        /* Pruning here, now and then, keeps the table to about ten minutes
         * of keys without a background task. */
        if (now >= q->s->next_prune_ms) {
            st = c->q[Q_TOKEN_PRUNE];
            sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
            if ((rc = run(st)) != SQLITE_DONE)
                goto fail;
            q->s->next_prune_ms = now + PRUNE_EVERY_MS;
        }
    }

    r->outcome = STORE_APPENDED;
    r->count = q->total;
    memcpy(r->revision, rev, sizeof rev);
    return;

fail:
    q->status = db_fail(c, rc, q->err, doing);
}

/* Answers every request in qs[from..k) with the same failure, when the
 * transaction they ran in did not commit. That is every request from the
 * first one that kept a write on: an append or a snapshot save lost it, and
 * a later one that wrote nothing may still have read it (an idempotent
 * repeat of a token first written in the group, a conflict with a head
 * written in it), so its answer stood on the COMMIT too. Those before the
 * first write read only committed state and keep their answers. The
 * message is formatted once: SQLite's is gone after the next statement. */
static void fail_requests(request **qs, size_t from, size_t k, store_status status,
                          const char *msg)
{
    for (size_t i = from; i < k; i++) {
        request *q = qs[i];
        if (q->status == STORE_OK)
            q->status = store_fail(q->err, status, "%s", msg);
        q->wrote = false;
        memset(q->r, 0, sizeof *q->r);
        q->r->outcome = STORE_UNCHANGED;
    }
}

/* Commits the writes qs[0..k) in one transaction on c, the leader's
 * connection: each in a savepoint (none for a group of one), so that one
 * that conflicts or fails is undone alone; one COMMIT, one fsync, for all
 * that wrote. A group in which nothing was written rolls back. *committed
 * is the number of appends (not snapshots) committed. When the transaction
 * fails, every request whose answer depended on it fails (fail_requests). */
static void commit_group(sqlite_store *c, request **qs, size_t k, size_t *committed)
{
    bool solo = k == 1;
    size_t i = 0;
    size_t first = k; /* the first request that kept a write */
    int rc;
    const char *doing = "beginning the append";
    *committed = 0;

    if ((rc = run(c->q[Q_BEGIN])) != SQLITE_DONE)
        goto txn_failed;
    for (i = 0; i < k; i++) {
        request *q = qs[i];
        doing = "opening a savepoint";
        if (!solo && (rc = run(c->q[Q_SAVEPOINT])) != SQLITE_DONE)
            goto txn_failed;
        apply(c, q);
        if (q->status != STORE_OK && sqlite3_get_autocommit(c->db)) {
            /* SQLite ended the whole transaction (it does on some I/O and
             * out-of-memory errors): the appends before it lost their
             * writes, those after it never ran. */
            char msg[512];
            snprintf(msg, sizeof msg, "sqlite: a group commit was rolled back by another "
                     "append's error: %s", q->err != NULL && *q->err != NULL ? *q->err : "");
            q->wrote = false;
            fail_requests(qs, first < i ? first : i, k, q->status, msg);
            return;
        }
        if (!solo) {
            doing = "closing a savepoint";
            if (!q->wrote || q->status != STORE_OK) {
                q->wrote = false;
                if ((rc = run(c->q[Q_ROLLBACK_TO])) != SQLITE_DONE)
                    goto txn_failed;
            }
            if ((rc = run(c->q[Q_RELEASE])) != SQLITE_DONE)
                goto txn_failed;
        }
        if (q->wrote && q->status == STORE_OK && first == k)
            first = i;
    }

    size_t n = 0, appends = 0;
    for (i = 0; i < k; i++)
        if (qs[i]->wrote && qs[i]->status == STORE_OK) {
            n++;
            appends += qs[i]->snap_key == NULL;
        }
    if (n == 0) {
        run(c->q[Q_ROLLBACK]); /* conflicts and repeats only: nothing to keep */
        return;
    }
    doing = "committing";
    i = k; /* every append has run */
    if ((rc = run(c->q[Q_COMMIT])) != SQLITE_DONE)
        goto txn_failed;
    *committed = appends;
    if (appends > 0)
        wake_all();
    return;

txn_failed: {
        /* Every answer from the first write on stood on this transaction;
         * those that have not run yet (from index i on) fail too, as they
         * would have alone. */
        char msg[512];
        const char *what = sqlite3_errmsg(c->db);
        snprintf(msg, sizeof msg, "sqlite: %s: %s", doing, what != NULL ? what : "error");
        store_status status = (rc & 0xff) == SQLITE_NOMEM ? STORE_NOMEM : STORE_IO;
        if (!sqlite3_get_autocommit(c->db))
            run(c->q[Q_ROLLBACK]);
        fail_requests(qs, first < i ? first : i, k, status, msg);
    }
}

/* An append inside the caller's transaction on its own handle (begin):
 * in a savepoint, so it can fail alone and still commit with the rest; it
 * takes no part in group commit, the transaction holding the write lock. */
static store_status append_in_txn(sqlite_store *s, request *q)
{
    store_status status;
    int rc;
    if ((status = txn_alive(s, q->err)) != STORE_OK)
        return status;
    if ((rc = write_begin(s)) != SQLITE_DONE)
        return db_fail(s, rc, q->err, "beginning the append");
    apply(s, q);
    if (q->status != STORE_OK || !q->wrote) {
        rollback(s); /* a failure, a conflict or a repeat: nothing to keep */
        return q->status;
    }
    if ((rc = write_commit(s)) != SQLITE_DONE) {
        status = db_fail(s, rc, q->err, "committing");
        rollback(s);
        memset(q->r, 0, sizeof *q->r);
        q->r->outcome = STORE_UNCHANGED;
        return status;
    }
    s->txn_appended = true; /* subscribers wake when it commits */
    return STORE_OK;
}

/* Runs a write through the file's group: it leads a commit when none is
 * running, else waits to be answered or to lead the next one (see the file
 * comment). Without a group (in memory) it commits alone. */
static store_status submit(sqlite_store *s, request *q)
{
    size_t committed;
    request *batch[GROUP_MAX];
    group *g = s->group;
    if (g == NULL) {
        batch[0] = q;
        commit_group(s, batch, 1, &committed);
        return q->status;
    }

    pthread_cond_init(&q->wake, NULL);
    pthread_mutex_lock(&g->lock);
    if (g->tail != NULL)
        g->tail->next = q;
    else
        g->head = q;
    g->tail = q;
    if (g->committing)
        while (!q->done && !q->lead)
            pthread_cond_wait(&q->wake, &g->lock);
    else
        g->committing = true; /* the queue was empty: q leads */
    if (q->done) {
        pthread_mutex_unlock(&g->lock);
        pthread_cond_destroy(&q->wake);
        return q->status;
    }

    /* Leading: q is at the head; take it and those behind it. */
    size_t k = 0;
    while (g->head != NULL && k < GROUP_MAX) {
        batch[k++] = g->head;
        g->head = g->head->next;
    }
    if (g->head == NULL)
        g->tail = NULL;
    pthread_mutex_unlock(&g->lock);

    commit_group(s, batch, k, &committed);

    pthread_mutex_lock(&g->lock);
    if (committed > 0) {
        g->commits++;
        g->appends += committed;
        if (committed > g->largest)
            g->largest = committed;
    }
    for (size_t i = 1; i < k; i++) {
        batch[i]->done = true;
        pthread_cond_signal(&batch[i]->wake);
    }
    if (g->head != NULL) {
        g->head->lead = true;
        pthread_cond_signal(&g->head->wake);
    } else {
        g->committing = false;
    }
    pthread_mutex_unlock(&g->lock);
    pthread_cond_destroy(&q->wake);
    return q->status;
}

/* The one write path: append is append_many with one batch. Checks what
 * it can before touching the database, then goes through the group. */
static store_status commit_batches(sqlite_store *s, const store_batch *b, size_t n,
                                   const char *token, bool many,
                                   store_append_result *r, char **err)
{
    store_status status;
    size_t total;

    memset(r, 0, sizeof *r);
    r->outcome = STORE_UNCHANGED;
    if ((status = check_batches(b, n, token, many, &total, err)) != STORE_OK ||
        total == 0)
        return status;

    request q = {.s = s, .b = b, .n = n, .total = total, .token = token, .r = r,
                 .err = err};
    if (s->txn)
        return append_in_txn(s, &q);
    return submit(s, &q);
}

static store_status sqlite_append(store *st, const char *key, const store_pending *events,
                                  size_t count, const store_append_opts *opts,
                                  store_append_result *result, char **err)
{
    store_batch batch = {key, events, count, opts != NULL ? opts->expected_revision : NULL};
    return commit_batches((sqlite_store *)st, &batch, 1,
                          opts != NULL ? opts->idempotency_key : NULL, false, result, err);
}

static store_status sqlite_append_many(store *st, const store_batch *batches, size_t n,
                                       const char *idempotency_key,
                                       store_append_result *result, char **err)
{
    return commit_batches((sqlite_store *)st, batches, n, idempotency_key, true, result,
                          err);
}

static store_status sqlite_head(store *st, const char *key, char out[STORE_REVISION_SIZE],
                                char **err)
{
    sqlite_store *s = (sqlite_store *)st;
    const char *why = store_check_text(key, false);
    if (why != NULL)
        return store_fail(err, STORE_INVALID, "key %s", why);
    int rc = max_revision(s, key, out);
    if (rc != SQLITE_DONE) {
        copy_revision(out, NULL);
        return db_fail(s, rc, err, "reading a head");
    }
    return STORE_OK;
}

/* ------------------------------------------------------------------ */
/* Reads                                                               */

/* Turns the options into exclusive bounds, lo < revision < hi, so a page
 * can resume after the last revision it saw with the same statement. Every
 * stored revision is 26 valid characters, so "> prev(R)" is ">= R" and
 * "< next(R)" is "<= R"; "0" and "Z" are below and above them all. */
static void bounds(const store_read_opts *o, char lo[STORE_REVISION_SIZE],
                   char hi[STORE_REVISION_SIZE])
{
    const char *from = o->from != NULL ? o->from : STORE_START;
    const char *to = o->to != NULL ? o->to : STORE_END;
    if (o->from_exclusive || !revision_valid(from))
        copy_revision(lo, (const unsigned char *)from);
    else if (!revision_prev(from, lo))
        copy_revision(lo, (const unsigned char *)STORE_START);
    if (o->to_exclusive || !revision_valid(to))
        copy_revision(hi, (const unsigned char *)to);
    else if (!revision_next(to, hi))
        copy_revision(hi, (const unsigned char *)STORE_END);
}

static const char *column(sqlite3_stmt *q, int i, size_t *len)
{
    const char *t = (const char *)sqlite3_column_text(q, i);
    *len = t != NULL ? (size_t)sqlite3_column_bytes(q, i) : 0;
    return t != NULL ? t : "";
}

/* Appends n bytes and a NUL to the text; returns the offset, or SIZE_MAX
 * when out of memory. */
static size_t put_text(textbuf *b, const char *t, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap > 0 ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (p == NULL)
            return SIZE_MAX;
        b->data = p;
        b->cap = cap;
    }
    size_t at = b->len;
    memcpy(b->data + at, t, n);
    b->data[at + n] = '\0';
    b->len += n + 1;
    return at;
}

/* Copies an event into a row and its text; false when out of memory. */
static bool keep_event(textbuf *b, row *r, const store_event *ev)
{
    r->key = put_text(b, ev->key, strlen(ev->key));
    r->type = put_text(b, ev->type, strlen(ev->type));
    r->data = put_text(b, ev->data, ev->data_len);
    r->data_len = ev->data_len;
    r->has_corr = ev->correlation_id != NULL;
    r->corr = r->has_corr ? put_text(b, ev->correlation_id, strlen(ev->correlation_id)) : 0;
    memcpy(r->revision, ev->revision, sizeof r->revision);
    memcpy(r->committed_at, ev->committed_at, sizeof r->committed_at);
    return r->key != SIZE_MAX && r->type != SIZE_MAX && r->data != SIZE_MAX &&
           r->corr != SIZE_MAX;
}

/* The event a kept row stands for, pointing into its text. */
static void row_event(const textbuf *b, const row *r, store_event *ev)
{
    ev->key = b->data + r->key;
    ev->type = b->data + r->type;
    ev->data = b->data + r->data;
    ev->data_len = r->data_len;
    ev->correlation_id = r->has_corr ? b->data + r->corr : NULL;
    memcpy(ev->revision, r->revision, sizeof ev->revision);
    memcpy(ev->committed_at, r->committed_at, sizeof ev->committed_at);
}

/* Reads the next page: up to PAGE_ROWS rows after the last one seen,
 * keeping those that match the filter. The statement is reset before
 * returning, so no read transaction stays open between pages and appends
 * on the same handle can run while the cursor is alive. */
static store_status fill(store_cursor *c, char **err)
{
    sqlite_store *s = c->s;
    sqlite3_stmt *q = s->q[c->key != NULL ? (c->backward ? Q_KEY_BACK : Q_KEY_FWD)
                                          : (c->backward ? Q_ALL_BACK : Q_ALL_FWD)];
    int64_t want = PAGE_ROWS;
    if (c->filter == NULL && c->remaining >= 0 && c->remaining < want)
        want = c->remaining;
    sqlite3_bind_text(q, 1, c->lo, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, c->hi, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, want);
    if (c->key != NULL)
        sqlite3_bind_text(q, 4, c->key, -1, SQLITE_STATIC);

    c->nrows = c->pos = 0;
    c->text.len = 0;
    int64_t scanned = 0;
    store_event ev;
    char last[STORE_REVISION_SIZE] = "";
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        size_t ignored, at_len;
        scanned++;
        copy_revision(ev.revision, sqlite3_column_text(q, 0));
        memcpy(last, ev.revision, sizeof last);
        /* A key's read knows its key: one column fewer to fetch per row. */
        ev.key = c->key != NULL ? c->key : column(q, 1, &ignored);
        ev.type = column(q, 2, &ignored);
        ev.data = column(q, 3, &ev.data_len);
        ev.correlation_id = sqlite3_column_type(q, 4) == SQLITE_NULL ? NULL
                            : column(q, 4, &ignored);
        const char *at = column(q, 5, &at_len);
        if (at_len >= STORE_TIMESTAMP_SIZE)
            at_len = STORE_TIMESTAMP_SIZE - 1;
        memcpy(ev.committed_at, at, at_len);
        ev.committed_at[at_len] = '\0';
        if (!filter_match(c->filter, &ev))
            continue;

        if (!keep_event(&c->text, &c->rows[c->nrows], &ev)) {
            sqlite3_reset(q);
            c->nrows = 0;
            return store_fail(err, STORE_NOMEM, "sqlite: out of memory reading events");
        }
        c->nrows++;
        if ((c->remaining >= 0 && (int64_t)c->nrows >= c->remaining) ||
            c->text.len >= PAGE_BYTES)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        store_status status = db_fail(s, rc, err, "reading events");
        sqlite3_reset(q);
        c->nrows = 0;
        return status;
    }
    sqlite3_reset(q);
    c->drained = rc == SQLITE_DONE && scanned < want;
    if (scanned > 0)
        memcpy(c->backward ? c->hi : c->lo, last, sizeof last);
    return STORE_OK;
}

static void sqlite_cursor_close(store_cursor *c)
{
    if (c == NULL)
        return;
    free(c->key);
    filter_free(c->filter);
    free(c->rows);
    free(c->text.data);
    free(c);
}

static store_status sqlite_read(store *st, const char *key, const store_read_opts *opts,
                                store_cursor **out, char **err)
{
    static const store_read_opts defaults = {NULL, false, NULL, false, -1, false, NULL};
    store_status status = STORE_NOMEM;
    store_cursor *c = NULL;
    const char *why;
    *out = NULL;
    if (opts == NULL)
        opts = &defaults;

    if (key != NULL && (why = store_check_text(key, false)) != NULL)
        return store_fail(err, STORE_INVALID, "key %s", why);
    if (opts->from != NULL && !revision_bound_valid(opts->from))
        return store_fail(err, STORE_INVALID, "read bound \"%s\" is not a revision, "
                          "START or END", opts->from);
    if (opts->to != NULL && !revision_bound_valid(opts->to))
        return store_fail(err, STORE_INVALID, "read bound \"%s\" is not a revision, "
                          "START or END", opts->to);
    if (opts->filter != NULL && (why = filter_check(opts->filter)) != NULL)
        return store_fail(err, STORE_INVALID, "bad filter: %s", why);

    if ((c = calloc(1, sizeof *c)) == NULL ||
        (key != NULL && (c->key = strdup(key)) == NULL) ||
        filter_copy(opts->filter, &c->filter) != STORE_OK ||
        (c->rows = malloc(PAGE_ROWS * sizeof *c->rows)) == NULL)
        goto fail;
    c->s = (sqlite_store *)st;
    c->backward = opts->backward;
    c->remaining = opts->limit < 0 ? -1 : opts->limit;
    bounds(opts, c->lo, c->hi);
    *out = c;
    return STORE_OK;

fail:
    sqlite_cursor_close(c);
    return store_fail(err, status, "sqlite: out of memory opening a cursor");
}

static store_status sqlite_next(store_cursor *c, const store_event **ev, char **err)
{
    *ev = NULL;
    while (c->pos == c->nrows) {
        if (c->drained || c->remaining == 0)
            return STORE_OK;
        store_status status = fill(c, err);
        if (status != STORE_OK)
            return status;
    }
    row_event(&c->text, &c->rows[c->pos++], &c->ev);
    if (c->remaining > 0)
        c->remaining--;
    *ev = &c->ev;
    return STORE_OK;
}

/* ------------------------------------------------------------------ */
/* Snapshots                                                           */

static store_status sqlite_save_snapshot(store *st, const char *key, const char *revision,
                                         const char *state, size_t state_len, bool *saved,
                                         char **err)
{
    sqlite_store *s = (sqlite_store *)st;
    const char *why;
    *saved = false;
    if ((why = store_check_text(key, false)) != NULL)
        return store_fail(err, STORE_INVALID, "key %s", why);
    if (revision == NULL || (strcmp(revision, STORE_START) != 0 && !revision_valid(revision)))
        return store_fail(err, STORE_INVALID, "snapshot revision \"%s\" is not a revision",
                          revision != NULL ? revision : "(null)");
    if (state == NULL || state_len == 0)
        return store_fail(err, STORE_INVALID, "snapshot state is empty");
    if (state_len > INT_MAX)
        return store_fail(err, STORE_LIMIT, "snapshot state is over 2 GB");

    /* Outside a transaction of the caller's, through the group, so it
     * shares a commit with appends instead of taking the write lock in
     * their way: the aggregate runner saves one right after an append. */
    if (!s->txn && s->group != NULL) {
        store_append_result unused;
        request r = {.s = s, .snap_key = key, .snap_revision = revision,
                     .snap_state = state, .snap_len = state_len, .r = &unused, .err = err};
        store_status status = submit(s, &r);
        *saved = status == STORE_OK && r.wrote;
        return status;
    }
    /* One upsert, atomic on its own: the WHERE keeps a newer snapshot, an
     * equal revision overwrites. */
    sqlite3_stmt *q = s->q[Q_SNAP_PUT];
    int rc;
    if ((rc = sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC)) != SQLITE_OK ||
        (rc = sqlite3_bind_text(q, 2, revision, -1, SQLITE_STATIC)) != SQLITE_OK ||
        (rc = sqlite3_bind_text(q, 3, state, (int)state_len, SQLITE_STATIC)) != SQLITE_OK)
        return db_fail(s, rc, err, "saving a snapshot");
    rc = run(q);
    if (rc != SQLITE_DONE)
        return db_fail(s, rc, err, "saving a snapshot");
    *saved = sqlite3_changes(s->db) > 0;
    return STORE_OK;
}

static store_status sqlite_snapshot(store *st, const char *key, store_snapshot *snap,
                                    bool *found, char **err)
{
    sqlite_store *s = (sqlite_store *)st;
    store_status status = STORE_OK;
    const char *why;
    *found = false;
    memset(snap, 0, sizeof *snap);
    if ((why = store_check_text(key, false)) != NULL)
        return store_fail(err, STORE_INVALID, "key %s", why);

    sqlite3_stmt *q = s->q[Q_SNAP_GET];
    sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        size_t len;
        const char *state = column(q, 1, &len);
        if ((snap->state = malloc(len + 1)) == NULL) {
            status = store_fail(err, STORE_NOMEM, "sqlite: out of memory reading a "
                                "snapshot");
        } else {
            memcpy(snap->state, state, len);
            snap->state[len] = '\0';
            snap->state_len = len;
            copy_revision(snap->revision, sqlite3_column_text(q, 0));
            *found = true;
        }
    } else if (rc != SQLITE_DONE)
        status = db_fail(s, rc, err, "reading a snapshot");
    sqlite3_reset(q);
    return status;
}

/* ------------------------------------------------------------------ */
/* Subscriptions                                                       */

static void sqlite_sub_close(store_sub *sub)
{
    if (sub == NULL)
        return;
    if (sub->s != NULL) {
        store_sub **pp = &sub->s->subs;
        while (*pp != NULL && *pp != sub)
            pp = &(*pp)->next;
        if (*pp != NULL)
            *pp = sub->next;
    }
    free(sub->name);
    pattern_free(sub->keys, sub->nkeys);
    pattern_free(sub->types, sub->ntypes);
    filter_free(sub->filter);
    free(sub->rows);
    free(sub->text.data);
    free(sub->events);
    free(sub);
}

/* The stored checkpoint of a named subscription into out ("0": none). */
static int stored_checkpoint(sqlite_store *s, const char *name, char out[STORE_REVISION_SIZE])
{
    sqlite3_stmt *q = s->q[Q_SUB_GET];
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    copy_revision(out, NULL);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        copy_revision(out, sqlite3_column_text(q, 0));
        rc = SQLITE_DONE;
    }
    sqlite3_reset(q);
    return rc;
}

/* Puts the subscription where a consumer of its name starts now: after the
 * stored checkpoint, else at its start (the end of the store, for "Z"). */
static store_status rewind_sub(store_sub *sub, char **err)
{
    sqlite_store *s = sub->s;
    int rc;
    if (sub->name != NULL && (rc = stored_checkpoint(s, sub->name, sub->known)) != SQLITE_DONE)
        return db_fail(s, rc, err, "reading a checkpoint");
    if (strcmp(sub->known, STORE_START) != 0) {
        memcpy(sub->at, sub->known, sizeof sub->at);
    } else if (strcmp(sub->start, STORE_END) == 0) {
        if ((rc = max_revision(s, NULL, sub->at)) != SQLITE_DONE)
            return db_fail(s, rc, err, "reading the last revision");
    } else {
        memcpy(sub->at, sub->start, sizeof sub->at);
    }
    memcpy(sub->committed, sub->known, sizeof sub->committed);
    sub->nrows = 0;
    return STORE_OK;
}

/* A commit makes the checkpoints acked inside the transaction the known
 * ones; a rollback forgets them, so the fence compares against what is
 * really stored. */
static void settle_subs(sqlite_store *s, bool committed)
{
    for (store_sub *sub = s->subs; sub != NULL; sub = sub->next) {
        if (committed)
            memcpy(sub->committed, sub->known, sizeof sub->committed);
        else
            memcpy(sub->known, sub->committed, sizeof sub->known);
    }
}

static store_status sqlite_subscribe(store *st, const char *name, const store_sub_opts *opts,
                                     store_sub **out, char **err)
{
    static const store_sub_opts defaults = {NULL, 0, NULL, 0, NULL, NULL};
    sqlite_store *s = (sqlite_store *)st;
    store_status status = STORE_NOMEM;
    store_sub *sub = NULL;
    *out = NULL;
    if (opts == NULL)
        opts = &defaults;
    if ((status = store_check_subscription(name, opts, err)) != STORE_OK)
        return status;

    if ((sub = calloc(1, sizeof *sub)) == NULL ||
        (name != NULL && (sub->name = strdup(name)) == NULL) ||
        filter_copy(opts->filter, &sub->filter) != STORE_OK)
        goto fail;
    sub->s = s;
    sub->next = s->subs; /* linked first, so sqlite_sub_close can unlink it */
    s->subs = sub;
    copy_revision(sub->start, (const unsigned char *)(opts->start != NULL ? opts->start
                                                                        : STORE_START));
    copy_revision(sub->known, NULL);
    if ((status = pattern_copy(opts->keys, opts->nkeys, "key", &sub->keys, &sub->nkeys,
                                err)) != STORE_OK ||
        (status = pattern_copy(opts->types, opts->ntypes, "type", &sub->types,
                                &sub->ntypes, err)) != STORE_OK ||
        (status = rewind_sub(sub, err)) != STORE_OK)
        goto fail_reported;
    /* An ephemeral subscription's checkpoint is where it starts. */
    if (sub->name == NULL) {
        memcpy(sub->known, sub->at, sizeof sub->known);
        memcpy(sub->committed, sub->at, sizeof sub->committed);
    }
    *out = sub;
    return STORE_OK;

fail:
    store_fail(err, status, "sqlite: out of memory opening a subscription");
fail_reported:
    sqlite_sub_close(sub);
    return status;
}

static bool sub_matches(const store_sub *sub, const store_event *ev)
{
    return pattern_match_any((const char *const *)sub->keys, sub->nkeys, ev->key) &&
           pattern_match_any((const char *const *)sub->types, sub->ntypes, ev->type) &&
           filter_match(sub->filter, ev);
}

/* Reads on from sub->at through an ordinary cursor (a page at a time, no
 * read transaction held between pages), keeping up to max matching events
 * in sub->events; sub->at follows every event looked at, matching or not.
 * On failure it hands out nothing and puts sub->at back, so the next poll
 * looks at the same events again. */
static store_status scan(store_sub *sub, size_t max, char **err)
{
    char from[STORE_REVISION_SIZE];
    store_read_opts o = {from, true, NULL, false, -1, false, NULL};
    store_cursor *c = NULL;
    const store_event *ev;
    store_status status;

    memcpy(from, sub->at, sizeof from);
    sub->nrows = 0;
    sub->text.len = 0;
    if ((status = sqlite_read(&sub->s->base, NULL, &o, &c, err)) != STORE_OK)
        return status;
    while ((status = sqlite_next(c, &ev, err)) == STORE_OK && ev != NULL) {
        if (sub_matches(sub, ev)) {
            if (sub->nrows == sub->rows_cap) {
                size_t cap = sub->rows_cap > 0 ? sub->rows_cap * 2 : 64;
                row *rows = realloc(sub->rows, cap * sizeof *rows);
                if (rows == NULL)
                    goto nomem;
                sub->rows = rows;
                sub->rows_cap = cap;
            }
            if (!keep_event(&sub->text, &sub->rows[sub->nrows], ev))
                goto nomem;
            sub->nrows++;
        }
        memcpy(sub->at, ev->revision, sizeof sub->at);
        if (sub->nrows == max)
            break;
    }
    sqlite_cursor_close(c);
    c = NULL;
    if (status != STORE_OK)
        goto failed;

    /* The text is complete, so the events can point into it. */
    free(sub->events);
    sub->events = NULL;
    if (sub->nrows > 0 && (sub->events = malloc(sub->nrows * sizeof *sub->events)) == NULL)
        goto nomem;
    for (size_t i = 0; i < sub->nrows; i++)
        row_event(&sub->text, &sub->rows[i], &sub->events[i]);
    return STORE_OK;

nomem:
    sqlite_cursor_close(c);
    status = store_fail(err, STORE_NOMEM, "sqlite: out of memory polling a subscription");
failed:
    sub->nrows = 0;
    memcpy(sub->at, from, sizeof sub->at);
    return status;
}

static int data_version(sqlite_store *s, int64_t *out)
{
    sqlite3_stmt *q = s->q[Q_DATA_VERSION];
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(q, 0);
        rc = SQLITE_DONE;
    }
    sqlite3_reset(q);
    return rc;
}

static store_status sqlite_poll(store_sub *sub, int64_t timeout_ms, size_t max,
                                const store_event **events, size_t *count,
                                char position[STORE_REVISION_SIZE], char **err)
{
    sqlite_store *s = sub->s;
    store_status status;
    int rc;
    *events = NULL;
    *count = 0;
    memcpy(position, sub->at, STORE_REVISION_SIZE);
    if (max == 0)
        return store_fail(err, STORE_INVALID, "poll: max must be at least 1");
    if (timeout_ms > 0 && s->txn)
        return store_fail(err, STORE_INVALID, "poll: cannot wait inside a transaction "
                          "(it holds the write lock)");

    int64_t deadline = mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        /* Both marks are taken before the scan, so a commit that lands
         * while it runs still ends the wait that follows. */
        uint64_t seen = wake_generation();
        int64_t version = 0, now_version = 0;
        if ((rc = data_version(s, &version)) != SQLITE_DONE)
            return db_fail(s, rc, err, "polling a subscription");
        if ((status = scan(sub, max, err)) != STORE_OK)
            return status;
        if (sub->nrows > 0)
            break;
        for (;;) {
            int64_t left = deadline - mono_ms();
            if (left <= 0)
                goto done;
            if (wake_wait(seen, left < WAKE_CHECK_MS ? left : WAKE_CHECK_MS))
                break;
            if ((rc = data_version(s, &now_version)) != SQLITE_DONE)
                return db_fail(s, rc, err, "polling a subscription");
            if (now_version != version)
                break;
        }
    }

done:
    *events = sub->events;
    *count = sub->nrows;
    memcpy(position, sub->at, STORE_REVISION_SIZE);
    return STORE_OK;
}

static store_status sqlite_ack(store_sub *sub, const char *revision, bool *acked, char **err)
{
    sqlite_store *s = sub->s;
    store_status status;
    *acked = false;
    if (!revision_valid(revision))
        return store_fail(err, STORE_INVALID, "ack: \"%s\" is not a revision",
                          revision != NULL ? revision : "(null)");
    /* Never backwards: acking what is already acknowledged writes nothing. */
    if (strcmp(revision, sub->known) <= 0) {
        *acked = true;
        return STORE_OK;
    }
    if (sub->name != NULL) {
        if ((status = txn_alive(s, err)) != STORE_OK)
            return status;
        bool first = strcmp(sub->known, STORE_START) == 0;
        sqlite3_stmt *q = s->q[first ? Q_SUB_INSERT : Q_SUB_UPDATE];
        sqlite3_bind_text(q, 1, sub->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, revision, -1, SQLITE_STATIC);
        if (!first)
            sqlite3_bind_text(q, 3, sub->known, -1, SQLITE_STATIC);
        int rc = run(q);
        if (rc != SQLITE_DONE)
            return db_fail(s, rc, err, "storing a checkpoint");
        if (sqlite3_changes(s->db) == 0) {
            /* Another consumer moved it: start again from where it left
             * things, rather than apply what it has applied. */
            return rewind_sub(sub, err);
        }
    }
    copy_revision(sub->known, (const unsigned char *)revision);
    if (!s->txn)
        memcpy(sub->committed, sub->known, sizeof sub->committed);
    if (strcmp(revision, sub->at) > 0)
        memcpy(sub->at, sub->known, sizeof sub->at);
    *acked = true;
    return STORE_OK;
}

static store_status sqlite_checkpoint(store_sub *sub, char out[STORE_REVISION_SIZE],
                                      char **err)
{
    if (sub->name == NULL) {
        memcpy(out, sub->known, STORE_REVISION_SIZE);
        return STORE_OK;
    }
    int rc = stored_checkpoint(sub->s, sub->name, out);
    if (rc != SQLITE_DONE)
        return db_fail(sub->s, rc, err, "reading a checkpoint");
    return STORE_OK;
}

static store_status sqlite_sub_reset(store *st, const char *name, char **err)
{
    sqlite_store *s = (sqlite_store *)st;
    store_status status;
    const char *why = store_check_text(name, false);
    if (why != NULL)
        return store_fail(err, STORE_INVALID, "subscription name %s", why);
    if ((status = txn_alive(s, err)) != STORE_OK)
        return status;
    sqlite3_stmt *q = s->q[Q_SUB_RESET];
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    int rc = run(q);
    if (rc != SQLITE_DONE)
        return db_fail(s, rc, err, "resetting a subscription");
    return STORE_OK;
}

/* ------------------------------------------------------------------ */
/* Views                                                               */

static store_status check_view(const char *view, const char *id, char **err)
{
    const char *why;
    if ((why = store_check_text(view, false)) != NULL)
        return store_fail(err, STORE_INVALID, "view name %s", why);
    if (id != NULL && (why = store_check_text(id, false)) != NULL)
        return store_fail(err, STORE_INVALID, "view document id %s", why);
    return STORE_OK;
}

static store_status sqlite_view_get(store *st, const char *view, const char *id, char **doc,
                                    size_t *doc_len, char revision[STORE_REVISION_SIZE],
                                    bool *found, char **err)
{
    sqlite_store *s = (sqlite_store *)st;
    store_status status;
    *doc = NULL;
    *doc_len = 0;
    *found = false;
    copy_revision(revision, NULL);
    if (id == NULL)
        return store_fail(err, STORE_INVALID, "view document id is missing");
    if ((status = check_view(view, id, err)) != STORE_OK)
        return status;

    sqlite3_stmt *q = s->q[Q_VIEW_GET];
    sqlite3_bind_text(q, 1, view, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        size_t len;
        const char *text = column(q, 1, &len);
        if ((*doc = malloc(len + 1)) == NULL) {
            status = store_fail(err, STORE_NOMEM, "sqlite: out of memory reading a view");
        } else {
            memcpy(*doc, text, len);
            (*doc)[len] = '\0';
            *doc_len = len;
            copy_revision(revision, sqlite3_column_text(q, 0));
            *found = true;
        }
    } else if (rc != SQLITE_DONE) {
        status = db_fail(s, rc, err, "reading a view");
    }
    sqlite3_reset(q);
    return status;
}

static store_status sqlite_view_put(store *st, const char *view, const char *id,
                                    const char *doc, size_t doc_len, const char *revision,
                                    bool *stored, char **err)
{
    sqlite_store *s = (sqlite_store *)st;
    store_status status;
    *stored = false;
    if (id == NULL)
        return store_fail(err, STORE_INVALID, "view document id is missing");
    if ((status = check_view(view, id, err)) != STORE_OK)
        return status;
    if (revision == NULL || (strcmp(revision, STORE_START) != 0 && !revision_valid(revision)))
        return store_fail(err, STORE_INVALID, "view revision \"%s\" is not a revision",
                          revision != NULL ? revision : "(null)");
    if (doc == NULL || doc_len == 0)
        return store_fail(err, STORE_INVALID, "view document is empty");
    if (doc_len > INT_MAX)
        return store_fail(err, STORE_LIMIT, "view document is over 2 GB");
    if ((status = txn_alive(s, err)) != STORE_OK)
        return status;

    /* One upsert, atomic on its own, like snapshots: the WHERE keeps a
     * newer document. */
    sqlite3_stmt *q = s->q[Q_VIEW_PUT];
    int rc;
    if ((rc = sqlite3_bind_text(q, 1, view, -1, SQLITE_STATIC)) != SQLITE_OK ||
        (rc = sqlite3_bind_text(q, 2, id, -1, SQLITE_STATIC)) != SQLITE_OK ||
        (rc = sqlite3_bind_text(q, 3, revision, -1, SQLITE_STATIC)) != SQLITE_OK ||
        (rc = sqlite3_bind_text(q, 4, doc, (int)doc_len, SQLITE_STATIC)) != SQLITE_OK)
        return db_fail(s, rc, err, "writing a view");
    if ((rc = run(q)) != SQLITE_DONE)
        return db_fail(s, rc, err, "writing a view");
    *stored = sqlite3_changes(s->db) > 0;
    return STORE_OK;
}

static store_status sqlite_view_revision(store *st, const char *view,
                                         char out[STORE_REVISION_SIZE], char **err)
{
    sqlite_store *s = (sqlite_store *)st;
    store_status status;
    copy_revision(out, NULL);
    if ((status = check_view(view, NULL, err)) != STORE_OK)
        return status;
    sqlite3_stmt *q = s->q[Q_VIEW_SEEN];
    sqlite3_bind_text(q, 1, view, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        copy_revision(out, sqlite3_column_text(q, 0));
        rc = SQLITE_DONE;
    }
    sqlite3_reset(q);
    if (rc != SQLITE_DONE)
        return db_fail(s, rc, err, "reading a view's revision");
    return STORE_OK;
}

static store_status sqlite_view_advance(store *st, const char *view, const char *revision,
                                        char **err)
{
    sqlite_store *s = (sqlite_store *)st;
    store_status status;
    if ((status = check_view(view, NULL, err)) != STORE_OK)
        return status;
    if (!revision_valid(revision))
        return store_fail(err, STORE_INVALID, "view revision \"%s\" is not a revision",
                          revision != NULL ? revision : "(null)");
    if ((status = txn_alive(s, err)) != STORE_OK)
        return status;
    sqlite3_stmt *q = s->q[Q_VIEW_ADVANCE];
    sqlite3_bind_text(q, 1, view, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, revision, -1, SQLITE_STATIC);
    int rc = run(q);
    if (rc != SQLITE_DONE)
        return db_fail(s, rc, err, "advancing a view's revision");
    return STORE_OK;
}

static store_status sqlite_view_clear(store *st, const char *view, char **err)
{
    sqlite_store *s = (sqlite_store *)st;
    store_status status;
    int rc;
    if ((status = check_view(view, NULL, err)) != STORE_OK ||
        (status = txn_alive(s, err)) != STORE_OK)
        return status;
    sqlite3_bind_text(s->q[Q_VIEW_CLEAR_DOCS], 1, view, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->q[Q_VIEW_CLEAR_SEEN], 1, view, -1, SQLITE_STATIC);
    if ((rc = write_begin(s)) != SQLITE_DONE ||
        (rc = run(s->q[Q_VIEW_CLEAR_DOCS])) != SQLITE_DONE ||
        (rc = run(s->q[Q_VIEW_CLEAR_SEEN])) != SQLITE_DONE ||
        (rc = write_commit(s)) != SQLITE_DONE) {
        status = db_fail(s, rc, err, "clearing a view");
        rollback(s);
        return status;
    }
    return STORE_OK;
}

/* ------------------------------------------------------------------ */
/* Transactions                                                        */

static store_status sqlite_begin(store *st, char **err)
{
    sqlite_store *s = (sqlite_store *)st;
    if (s->txn)
        return store_fail(err, STORE_INVALID, "a transaction is already open");
    int rc = run(s->q[Q_BEGIN]);
    if (rc != SQLITE_DONE)
        return db_fail(s, rc, err, "beginning a transaction");
    s->txn = true;
    s->txn_appended = false;
    return STORE_OK;
}

static store_status sqlite_commit(store *st, char **err)
{
    sqlite_store *s = (sqlite_store *)st;
    if (!s->txn)
        return store_fail(err, STORE_INVALID, "no transaction is open");
    s->txn = false;
    if (sqlite3_get_autocommit(s->db)) {
        settle_subs(s, false);
        return store_fail(err, STORE_IO, "sqlite: the transaction was rolled back by an "
                          "earlier error; nothing of it was committed");
    }
    int rc = run(s->q[Q_COMMIT]);
    if (rc != SQLITE_DONE) {
        store_status status = db_fail(s, rc, err, "committing a transaction");
        if (!sqlite3_get_autocommit(s->db))
            run(s->q[Q_ROLLBACK]);
        settle_subs(s, false);
        return status;
    }
    settle_subs(s, true);
    if (s->txn_appended)
        wake_all();
    return STORE_OK;
}

static void sqlite_rollback(store *st)
{
    sqlite_store *s = (sqlite_store *)st;
    if (!s->txn)
        return;
    s->txn = false;
    if (!sqlite3_get_autocommit(s->db))
        run(s->q[Q_ROLLBACK]);
    settle_subs(s, false);
}

/* ------------------------------------------------------------------ */
/* Administration                                                      */

/* Runs a one-off query (not on the hot path, so not cached) yielding one
 * row of integers. */
static int count_rows(sqlite_store *s, const char *query, sqlite3_int64 *out, int n)
{
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(s->db, query, -1, &q, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        for (int i = 0; i < n; i++)
            out[i] = sqlite3_column_int64(q, i);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(q);
    return rc;
}

/* DEPLOY: the schema is ensured at open; this checks it again and reports.
 * INFO: counts events, keys, snapshots, subscriptions and views, and the
 * last revision; with group_commit, this process's appends to the file so
 * far: transactions committed, appends they carried and the most one
 * carried.
 * DESTROY: deletes every event, idempotency key, snapshot, checkpoint and
 * view in one transaction but keeps the file and its tables, so other
 * processes that have it open go on working on an empty store; the space
 * is reused, not returned to the file system. */
static store_status sqlite_admin(store *st, store_admin action, char **out, char **err)
{
    sqlite_store *s = (sqlite_store *)st;
    store_status status = STORE_NOMEM;
    json_t *doc = NULL;
    sqlite3_int64 n[5] = {0, 0, 0, 0, 0};
    char last[STORE_REVISION_SIZE];
    int rc;
    *out = NULL;
    if (s->txn)
        return store_fail(err, STORE_INVALID, "store %s cannot run inside a transaction",
                          action == STORE_INFO ? "info" : "admin");

    switch (action) {
    case STORE_DEPLOY:
        if ((status = ensure_schema(s, err)) != STORE_OK)
            return status;
        doc = json_pack("{s:s, s:s, s:i, s:b}", "backend", "sqlite", "path", s->path,
                        "schema_version", SCHEMA_VERSION, "deployed", 1);
        break;
    case STORE_INFO:
        rc = count_rows(s, "SELECT (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM"
                        " (SELECT DISTINCT key FROM events)), (SELECT COUNT(*) FROM"
                        " snapshots), (SELECT COUNT(*) FROM subscriptions), (SELECT"
                        " COUNT(*) FROM (SELECT DISTINCT view FROM views UNION SELECT view"
                        " FROM view_revisions))", n, 5);
        if (rc != SQLITE_OK)
            return db_fail(s, rc, err, "describing the store");
        if ((rc = max_revision(s, NULL, last)) != SQLITE_DONE)
            return db_fail(s, rc, err, "describing the store");
        doc = json_pack("{s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:s}", "backend",
                        "sqlite", "path", s->path, "schema_version", SCHEMA_VERSION,
                        "events", (json_int_t)n[0], "keys", (json_int_t)n[1],
                        "snapshots", (json_int_t)n[2], "subscriptions", (json_int_t)n[3],
                        "views", (json_int_t)n[4], "last_revision", last);
        if (doc != NULL && s->group != NULL) {
            group *g = s->group;
            pthread_mutex_lock(&g->lock);
            json_t *gc = json_pack("{s:I, s:I, s:I}", "commits", (json_int_t)g->commits,
                                   "appends", (json_int_t)g->appends,
                                   "largest", (json_int_t)g->largest);
            pthread_mutex_unlock(&g->lock);
            if (gc == NULL || json_object_set_new(doc, "group_commit", gc) != 0) {
                json_decref(doc);
                doc = NULL;
            }
        }
        break;
    case STORE_DESTROY:
        rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc == SQLITE_OK && (rc = sqlite3_exec(s->db, "DELETE FROM events", NULL,
                                                  NULL, NULL)) == SQLITE_OK) {
            n[0] = sqlite3_changes64(s->db);
            rc = sqlite3_exec(s->db, "DELETE FROM idempotency; DELETE FROM snapshots;"
                              " DELETE FROM subscriptions; DELETE FROM views;"
                              " DELETE FROM view_revisions; COMMIT", NULL, NULL, NULL);
        }
        if (rc != SQLITE_OK) {
            status = db_fail(s, rc, err, "destroying the store");
            rollback(s);
            return status;
        }
        doc = json_pack("{s:s, s:s, s:b, s:I}", "backend", "sqlite", "path", s->path,
                        "destroyed", 1, "events_deleted", (json_int_t)n[0]);
        break;
    default:
        return store_fail(err, STORE_INVALID, "unknown admin action %d", (int)action);
    }

    /* json_pack fails on a path that is not UTF-8, as well as on no memory. */
    if (doc == NULL || (*out = json_dumps(doc, JSON_COMPACT)) == NULL) {
        json_decref(doc);
        return store_fail(err, status, "sqlite: cannot describe the store (out of memory, "
                          "or the path is not UTF-8)");
    }
    json_decref(doc);
    return STORE_OK;
}

const store_ops store_sqlite_ops = {
    .name = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .append = sqlite_append,
    .append_many = sqlite_append_many,
    .head = sqlite_head,
    .read = sqlite_read,
    .next = sqlite_next,
    .cursor_close = sqlite_cursor_close,
    .save_snapshot = sqlite_save_snapshot,
    .snapshot = sqlite_snapshot,
    .admin = sqlite_admin,
    .subscribe = sqlite_subscribe,
    .poll = sqlite_poll,
    .ack = sqlite_ack,
    .checkpoint = sqlite_checkpoint,
    .sub_close = sqlite_sub_close,
    .sub_reset = sqlite_sub_reset,
    .view_get = sqlite_view_get,
    .view_put = sqlite_view_put,
    .view_revision = sqlite_view_revision,
    .view_advance = sqlite_view_advance,
    .view_clear = sqlite_view_clear,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
};
