/*
 * sqlite.c - the embedded backend: one SQLite file (or an in-memory
 * database) holding events, idempotency keys, snapshots, subscription
 * checkpoints and views. Provides store_sqlite_ops. Uses SQLite, revision.h
 * to number events, filter.h and pattern.h to filter reads and
 * subscriptions, pthreads to wake subscribers and jansson to describe the
 * store. This file holds the schema, the statements, waking, opening and
 * closing, admin and the ops table; the other concerns have a file each
 * (sqlite_store.h names them and holds what they share).
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
 *   events(revision PK, key, type, data, correlation_id, committed_at,
 *     more) WITHOUT ROWID, since appends land at the end of the revision order
 *     and it measured faster than a rowid table with a unique revision;
 *     events_by_key(key, revision, then every other column) serves
 *     per-key reads and heads. It covers the whole row so that reading a
 *     key's events is one index scan, not a seek into the table per event:
 *     replaying a stream measured 1.4-1.6x faster, for about 40% more
 *     space with small events (up to twice it with large ones). Versions
 *     1 and 2 indexed (key, revision) only; opening one rebuilds the index.
 *     `more` is how many events of the same append follow the event (NULL
 *     for none), so that store copy can keep appends whole; the key index
 *     leaves it out, only reads of every key need it.
 *   idempotency(token PK, expires_ms), indexed by expiry for pruning.
 *   snapshots(key PK, revision, state).
 *   subscriptions(name PK, checkpoint): durable checkpoints.
 *   leases(name PK, holder, beat, lease_ms): who consumes each name now
 *     (lease.h); apart from the checkpoints, so a reset keeps it.
 *   views(view, id, revision, doc), PK (view, id): read-model documents;
 *   view_revisions(view PK, revision): the revision each view has seen.
 * A key's head and the store's last revision are derived (MAX(revision)),
 * never stored twice. Version 1 stores (no subscriptions or views) gain the
 * new tables when first opened; version 3 made events_by_key covering;
 * version 4 added `more` (older events read as appends of one); version 5
 * added leases.
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
#include "sqlite_store.h"

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS events ("
    " revision TEXT NOT NULL PRIMARY KEY,"
    " key TEXT NOT NULL,"
    " type TEXT NOT NULL,"
    " data TEXT NOT NULL,"
    " correlation_id TEXT,"
    " committed_at TEXT NOT NULL,"
    " more INTEGER"
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
    "CREATE TABLE IF NOT EXISTS leases ("
    " name TEXT NOT NULL PRIMARY KEY,"
    " holder TEXT NOT NULL,"
    " beat INTEGER NOT NULL,"
    " lease_ms INTEGER NOT NULL"
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
    "PRAGMA user_version = 5;";

/* Versions 1 and 2 indexed events by (key, revision) only: the index goes
 * before the schema above makes it anew, covering. */
static const char drop_old_index_sql[] = "DROP INDEX IF EXISTS events_by_key;";

/* Versions 1 to 3 did not keep how appends were grouped: their events read
 * as appends of one (more NULL). */
static const char add_more_sql[] = "ALTER TABLE events ADD COLUMN more INTEGER;";

#define EVENT_COLUMNS "revision, key, type, data, correlation_id, committed_at"

/* Reads bind ?1 and ?2 as exclusive bounds, ?3 the page size, ?4 the key. */
static const char *const sql[Q_COUNT] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_LAST] = "SELECT MAX(revision) FROM events",
    [Q_HEAD] = "SELECT MAX(revision) FROM events WHERE key = ?1",
    [Q_INSERT] = "INSERT INTO events (" EVENT_COLUMNS ", more) VALUES (?1, ?2, ?3, ?4, ?5,"
                 " ?6, ?7)",
    [Q_TOKEN_SEEN] = "SELECT 1 FROM idempotency WHERE token = ?1 AND expires_ms > ?2",
    [Q_TOKEN_PUT] = "INSERT OR REPLACE INTO idempotency (token, expires_ms) VALUES (?1, ?2)",
    [Q_TOKEN_PRUNE] = "DELETE FROM idempotency WHERE expires_ms <= ?1",
    [Q_SNAP_GET] = "SELECT revision, state FROM snapshots WHERE key = ?1",
    [Q_SNAP_PUT] = "INSERT INTO snapshots (key, revision, state) VALUES (?1, ?2, ?3)"
                   " ON CONFLICT (key) DO UPDATE SET revision = excluded.revision,"
                   " state = excluded.state WHERE excluded.revision >= snapshots.revision",
    [Q_ALL_FWD] = "SELECT " EVENT_COLUMNS ", more FROM events WHERE revision > ?1 AND"
                  " revision < ?2 ORDER BY revision LIMIT ?3",
    [Q_ALL_BACK] = "SELECT " EVENT_COLUMNS ", more FROM events WHERE revision > ?1 AND"
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
    /* The fenced ack: only while the acker holds the name's lease; the
     * first checkpoint is inserted only if there is none, a later one
     * replaces only the one the subscription knew, so a consumer that
     * lost the lease or fell behind changes nothing (no row changes). */
    [Q_SUB_INSERT] = "INSERT INTO subscriptions (name, checkpoint) SELECT ?1, ?2 WHERE"
                     " EXISTS (SELECT 1 FROM leases WHERE name = ?1 AND holder = ?3)"
                     " ON CONFLICT (name) DO NOTHING",
    [Q_SUB_UPDATE] = "UPDATE subscriptions SET checkpoint = ?2 WHERE name = ?1 AND"
                     " checkpoint = ?3 AND EXISTS (SELECT 1 FROM leases WHERE name = ?1"
                     " AND holder = ?4)",
    [Q_SUB_RESET] = "DELETE FROM subscriptions WHERE name = ?1",
    /* The lease steps of lease.h, each one atomic statement. A take binds
     * the holder and beat it saw (NULL holder: no record), so it loses to
     * anyone who moved the record since. */
    [Q_LEASE_GET] = "SELECT holder, beat, lease_ms FROM leases WHERE name = ?1",
    [Q_LEASE_TAKE] = "INSERT INTO leases (name, holder, beat, lease_ms) VALUES (?1, ?2, 0, ?3)"
                     " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, beat = 0,"
                     " lease_ms = excluded.lease_ms WHERE leases.holder = ?4 AND"
                     " leases.beat = ?5",
    [Q_LEASE_RENEW] = "UPDATE leases SET beat = beat + 1, lease_ms = ?3 WHERE name = ?1 AND"
                      " holder = ?2",
    [Q_LEASE_RELEASE] = "UPDATE leases SET holder = '', beat = beat + 1 WHERE name = ?1 AND"
                        " holder = ?2",
    [Q_VIEW_GET] = "SELECT revision, doc FROM views WHERE view = ?1 AND id = ?2",
    [Q_VIEW_PUT] = "INSERT INTO views (view, id, revision, doc) VALUES (?1, ?2, ?3, ?4)"
                   " ON CONFLICT (view, id) DO UPDATE SET revision = excluded.revision,"
                   " doc = excluded.doc WHERE excluded.revision >= views.revision",
    [Q_VIEW_SEEN] = "SELECT revision FROM view_revisions WHERE view = ?1",
    [Q_VIEW_ADVANCE] = "INSERT INTO view_revisions (view, revision) VALUES (?1, ?2)"
                       " ON CONFLICT (view) DO UPDATE SET revision = excluded.revision"
                       " WHERE excluded.revision > view_revisions.revision",
    [Q_VIEW_CLEAR_DOCS] = "DELETE FROM views WHERE view = ?1",
    [Q_VIEW_CLEAR_SOME] = "DELETE FROM views WHERE view = ?1 AND id IN"
                          " (SELECT id FROM views WHERE view = ?1 ORDER BY id LIMIT ?2)",
    [Q_VIEW_CLEAR_SEEN] = "DELETE FROM view_revisions WHERE view = ?1",
    /* Every id is non-empty, so "" as ?2 lists from the first. */
    [Q_VIEW_LIST] = "SELECT id, revision, doc FROM views WHERE view = ?1 AND id > ?2"
                    " ORDER BY id LIMIT ?3",
    /* Every key is non-empty too. */
    [Q_SNAP_LIST] = "SELECT key, revision, state FROM snapshots WHERE key > ?1"
                    " ORDER BY key LIMIT ?2",
};

/* Maps a SQLite result code to a status, with SQLite's own message. Call
 * it before anything else runs on the connection, which would replace the
 * message. */
store_status sqlite_db_fail(sqlite_store *s, int rc, char **err, const char *doing) {
    store_status status = STORE_IO;
    const char *msg = s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        status = STORE_NOMEM;
        break;
    case SQLITE_TOOBIG:
        status = STORE_LIMIT;
        break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        /* Damage is loud: from now on every call on the handle fails (see
         * damaged), rather than go on writing beside what may be lost. */
        s->base.damaged = true;
        return store_fail(err, STORE_DAMAGED, STORE_DAMAGED_MESSAGE " (%s: %s: %s)", s->path, doing,
                          msg);
    case SQLITE_READONLY:
        return store_fail(err, STORE_IO,
                          "the store file %s is read-only: it can be read, not "
                          "written (sqlite: %s: %s)",
                          s->path, doing, msg);
    }
    return store_fail(err, status, "sqlite: %s: %s", doing, msg);
}

/* What every call on a handle found damaged answers (db_fail marks it). */
store_status sqlite_damaged(sqlite_store *s, char **err) {
    return store_fail(err, STORE_DAMAGED, STORE_DAMAGED_MESSAGE " (%s)", s->path);
}

/* Steps a statement that yields at most one wanted row and resets it;
 * SQLITE_ROW and SQLITE_DONE both mean success. */
int sqlite_run(sqlite3_stmt *q) {
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    return rc == SQLITE_ROW ? SQLITE_DONE : rc;
}

/* A write opens its own BEGIN IMMEDIATE transaction, taking the write
 * lock before it reads so that what it checks still holds when it writes;
 * inside the caller's transaction it opens a savepoint instead, so it can
 * fail alone and still commit with the rest. */
int sqlite_write_begin(sqlite_store *s) { return sqlite_run(s->q[s->txn ? Q_SAVEPOINT : Q_BEGIN]); }

int sqlite_write_commit(sqlite_store *s) { return sqlite_run(s->q[s->txn ? Q_RELEASE : Q_COMMIT]); }

/* Undoes a failed write, unless SQLite already rolled the transaction back
 * (it does on some I/O and out-of-memory errors). */
void sqlite_write_rollback(sqlite_store *s) {
    if (sqlite3_get_autocommit(s->db)) return;
    if (s->txn) {
        sqlite_run(s->q[Q_ROLLBACK_TO]);
        sqlite_run(s->q[Q_RELEASE]);
    } else {
        sqlite_run(s->q[Q_ROLLBACK]);
    }
}

/* SQLite ends a whole transaction by itself after some errors; a write
 * after that would run outside the caller's transaction and commit on its
 * own, so refuse it. */
store_status sqlite_txn_alive(sqlite_store *s, char **err) {
    if (s->txn && sqlite3_get_autocommit(s->db))
        return store_fail(err, STORE_IO,
                          "sqlite: the transaction was rolled back by an "
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

static void wake_init(void) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&wake_cond, &attr);
    pthread_condattr_destroy(&attr);
}

uint64_t sqlite_wake_generation(void) {
    pthread_once(&wake_once, wake_init);
    pthread_mutex_lock(&wake_lock);
    uint64_t g = wake_count;
    pthread_mutex_unlock(&wake_lock);
    return g;
}

void sqlite_wake_all(void) {
    pthread_once(&wake_once, wake_init);
    pthread_mutex_lock(&wake_lock);
    wake_count++;
    pthread_cond_broadcast(&wake_cond);
    pthread_mutex_unlock(&wake_lock);
}

int64_t sqlite_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps up to ms, or until a commit moves the count past `seen`. True
 * when one did. */
bool sqlite_wake_wait(uint64_t seen, int64_t ms) {
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

void sqlite_copy_revision(char out[STORE_REVISION_SIZE], const unsigned char *text) {
    if (text == NULL) text = (const unsigned char *)STORE_START;
    size_t n = strlen((const char *)text);
    if (n > STORE_REVISION_LEN) n = STORE_REVISION_LEN;
    memcpy(out, text, n);
    out[n] = '\0';
}

/* The key's head, or the store's last revision when key is NULL. */
int sqlite_max_revision(sqlite_store *s, const char *key, char out[STORE_REVISION_SIZE]) {
    sqlite3_stmt *q = s->q[key != NULL ? Q_HEAD : Q_LAST];
    if (key != NULL) sqlite3_bind_text(q, 1, key, -1, SQLITE_STATIC);
    return sqlite_step_revision(q, out);
}

int sqlite_step_revision(sqlite3_stmt *q, char out[STORE_REVISION_SIZE]) {
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        sqlite_copy_revision(out, sqlite3_column_text(q, 0));
        rc = SQLITE_DONE;
    }
    sqlite3_reset(q);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Opening and closing                                                 */

static int user_version(sqlite3 *db, int *version) {
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
static store_status ensure_schema(sqlite_store *s, char **err) {
    int version = 0;
    int rc = user_version(s->db, &version);
    if (rc != SQLITE_OK) return sqlite_db_fail(s, rc, err, "reading the schema version");
    if (version == SCHEMA_VERSION) return STORE_OK;
    if (version > SCHEMA_VERSION)
        return store_fail(err, STORE_INVALID,
                          "sqlite: %s has schema version %d; this "
                          "build knows version %d",
                          s->path, version, SCHEMA_VERSION);

    if ((rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) != SQLITE_OK)
        return sqlite_db_fail(s, rc, err, "creating the schema");
    /* Every statement of the schema is IF NOT EXISTS, so it also brings an
     * older version up to date. */
    if ((rc = user_version(s->db, &version)) == SQLITE_OK && version > 0 && version < 3)
        rc = sqlite3_exec(s->db, drop_old_index_sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK && version > 0 && version < 4)
        rc = sqlite3_exec(s->db, add_more_sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK && version < SCHEMA_VERSION)
        rc = sqlite3_exec(s->db, schema_sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        store_status status = sqlite_db_fail(s, rc, err, "creating the schema");
        if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return status;
    }
    if (version > SCHEMA_VERSION)
        return store_fail(err, STORE_INVALID,
                          "sqlite: %s has schema version %d; this "
                          "build knows version %d",
                          s->path, version, SCHEMA_VERSION);
    return STORE_OK;
}

/* WAL is a property of the file and sticks once set. Switching a new file
 * needs an exclusive lock, and SQLite answers SQLITE_BUSY at once, without
 * the busy handler, while another connection holds a lock: exactly what
 * two processes opening a new store together do. So retry, for as long as
 * the busy timeout. On a file system that cannot do WAL SQLite keeps its
 * rollback journal, which is as durable, only less concurrent. */
static int use_wal(sqlite3 *db) {
    for (int waited = 0;; waited += 10) {
        int rc = sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL);
        if ((rc & 0xff) != SQLITE_BUSY || waited >= BUSY_TIMEOUT_MS) return rc;
        sqlite3_sleep(10);
    }
}

/* SQLite's own busy handler sleeps 1, 2, 5 ... 100 ms between tries, while
 * a process appending in a loop takes the write lock back microseconds
 * after releasing it: with four such writers, three waited over 4 s for
 * their first append (and would have failed at the timeout). Trying every
 * 100 us catches those gaps; measured, every writer gets a fair share. */
static int busy_wait(void *ctx, int tries) {
    sqlite_store *s = ctx;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (tries == 0)
        s->busy_since = now;
    else if ((now.tv_sec - s->busy_since.tv_sec) * 1000 +
                 (now.tv_nsec - s->busy_since.tv_nsec) / 1000000 >=
             BUSY_TIMEOUT_MS)
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
static void group_join(sqlite_store *s) {
    const char *file = sqlite3_db_filename(s->db, "main");
    struct stat st;
    if (file == NULL || *file == '\0' || stat(file, &st) != 0) return;
    pid_t pid = getpid();
    pthread_mutex_lock(&registry_lock);
    group *g = registry;
    while (g != NULL && !(g->dev == st.st_dev && g->ino == st.st_ino && g->pid == pid)) g = g->next;
    if (g == NULL && (g = calloc(1, sizeof *g)) != NULL) {
        g->dev = st.st_dev;
        g->ino = st.st_ino;
        g->pid = pid;
        pthread_mutex_init(&g->lock, NULL);
        g->next = registry;
        registry = g;
    }
    if (g != NULL) g->refs++;
    pthread_mutex_unlock(&registry_lock);
    s->group = g;
}

static void group_leave(sqlite_store *s) {
    group *g = s->group;
    if (g == NULL) return;
    s->group = NULL;
    pthread_mutex_lock(&registry_lock);
    if (--g->refs == 0) {
        group **pp = &registry;
        while (*pp != g) pp = &(*pp)->next;
        *pp = g->next;
        pthread_mutex_destroy(&g->lock);
        free(g);
    }
    pthread_mutex_unlock(&registry_lock);
}

static void sqlite_close(store *st) {
    sqlite_store *s = (sqlite_store *)st;
    if (s == NULL) return;
    group_leave(s);
    for (int i = 0; i < Q_COUNT; i++) sqlite3_finalize(s->q[i]);
    sqlite3_close_v2(s->db);
    free(s->path);
    free(s);
}

/* A WAL file in a directory this process cannot write opens for reading
 * only as immutable: without its -shm file, which cannot be created there,
 * SQLite cannot share the WAL index. Nobody can commit to the file through
 * that directory's -wal either, so reading it as it is loses nothing;
 * writes fail as read-only. */
static int reopen_immutable(sqlite_store *s) {
    char *name = NULL;
    size_t len = strlen(s->path), n = 0;
    if ((name = malloc(len * 3 + 32)) == NULL) return SQLITE_NOMEM;
    n += (size_t)sprintf(name, "file:");
    for (const unsigned char *p = (const unsigned char *)s->path; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("/._-~", *p) != NULL)
            name[n++] = (char)*p;
        else
            n += (size_t)sprintf(name + n, "%%%02X", *p);
    }
    strcpy(name + n, "?immutable=1");
    sqlite3_close_v2(s->db);
    s->db = NULL;
    int rc = sqlite3_open_v2(name, &s->db,
                             SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, NULL);
    free(name);
    if (rc == SQLITE_OK) {
        sqlite3_busy_handler(s->db, busy_wait, s);
        sqlite3_extended_result_codes(s->db, 1);
    }
    return rc;
}

/* Takes "sqlite:PATH", "memory:" or a bare PATH (store_open sends those
 * ending in .db). */
static store_status sqlite_open(const char *uri, const store_options *opts, store **out,
                                char **err) {
    store_status status = STORE_NOMEM;
    sqlite_store *s = NULL;
    *out = NULL;

    const char *path = uri;
    if (strncmp(uri, "sqlite:", 7) == 0)
        path = uri + 7;
    else if (strcmp(uri, "memory:") == 0)
        path = ":memory:";
    if (*path == '\0') return store_fail(err, STORE_INVALID, "store URI \"%s\" names no file", uri);
    bool memory = strcmp(path, ":memory:") == 0;

    if ((s = calloc(1, sizeof *s)) == NULL || (s->path = strdup(path)) == NULL) {
        store_fail(err, status, "sqlite: out of memory opening %s", path);
        goto fail;
    }
    s->base.ops = &store_sqlite_ops;
    s->base.env = opts != NULL && opts->env != NULL ? *opts->env : store_env_default;

    /* NOMUTEX: a handle is used by one thread at a time (store.h). */
    int rc =
        sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        status = sqlite_db_fail(s, rc, err, path);
        goto fail;
    }
    sqlite3_busy_handler(s->db, busy_wait, s);
    sqlite3_extended_result_codes(s->db, 1);

    /* In memory is whatever SQLite says is no file: ":memory:", a
     * file::memory: or mode=memory URI, or a temporary database. */
    const char *file = sqlite3_db_filename(s->db, "main");
    memory = s->base.solo = file == NULL || *file == '\0';
    if (!memory && (rc = use_wal(s->db)) != SQLITE_OK) {
        if ((rc & 0xff) == SQLITE_READONLY) /* a read-only directory */
            rc = reopen_immutable(s);
        if (rc != SQLITE_OK) {
            status = sqlite_db_fail(s, rc, err, "switching to WAL");
            goto fail;
        }
    }
    if ((rc = sqlite3_exec(s->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL)) != SQLITE_OK) {
        status = sqlite_db_fail(s, rc, err, "setting synchronous = FULL");
        goto fail;
    }
    if ((status = ensure_schema(s, err)) != STORE_OK) goto fail;
    for (int i = 0; i < Q_COUNT; i++) {
        rc = sqlite3_prepare_v3(s->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->q[i], NULL);
        if (rc != SQLITE_OK) {
            status = sqlite_db_fail(s, rc, err, "preparing statements");
            goto fail;
        }
    }
    if (!memory) group_join(s);
    *out = &s->base;
    return STORE_OK;

fail:
    sqlite_close((store *)s);
    return status;
}

/* ------------------------------------------------------------------ */
/* Administration                                                      */

/* Runs a one-off query (not on the hot path, so not cached) yielding one
 * row of integers. */
static int count_rows(sqlite_store *s, const char *query, sqlite3_int64 *out, int n) {
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(s->db, query, -1, &q, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        for (int i = 0; i < n; i++) out[i] = sqlite3_column_int64(q, i);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(q);
    return rc;
}

/* CHECK's view of the store's own invariants: each query yields one line
 * for every thing (20 at most) that breaks what the store promises. The
 * per-key index (events_by_key) is what reads of a key and heads go
 * through, the table (NOT INDEXED) what read_all does; they must agree. */
static const struct {
    const char *what; /* for "cannot check ..." when the query itself fails */
    const char *sql;  /* one text column per problem */
} invariants[] = {
    {"revisions",
     "SELECT 'event ' || quote(revision) || ' (key ' || key || '): its revision is not a"
     " revision' FROM events NOT INDEXED WHERE length(revision) <> 26 OR revision GLOB"
     " '*[^0-9A-HJKMNP-TV-Z]*' LIMIT 20"},
    {"that revisions are unique",
     "SELECT 'revision ' || revision || ' is stored ' || COUNT(*) || ' times' FROM events"
     " INDEXED BY events_by_key GROUP BY revision HAVING COUNT(*) > 1 LIMIT 20"},
    {"the per-key index",
     "SELECT 'the events table holds ' || a || ' events but the per-key index ' || b FROM"
     " (SELECT (SELECT COUNT(*) FROM events NOT INDEXED) AS a, (SELECT COUNT(*) FROM"
     " events INDEXED BY events_by_key) AS b) WHERE a <> b"},
    {"heads",
     "SELECT 'key ' || key || ': its head reads ' || COALESCE(head, 'nothing') || ' but its"
     " newest event is ' || newest FROM (SELECT key, MAX(revision) AS newest, (SELECT"
     " MAX(e.revision) FROM events AS e INDEXED BY events_by_key WHERE e.key = t.key) AS"
     " head FROM events AS t NOT INDEXED GROUP BY key) WHERE head IS NOT newest LIMIT 20"},
    {"event data",
     "SELECT 'event ' || revision || ' (key ' || key || '): its data is not valid JSON'"
     " FROM events NOT INDEXED WHERE NOT json_valid(data) LIMIT 20"},
    {"snapshots",
     "SELECT 'the snapshot of ' || key || ' is at ' || revision || ', which is not one of"
     " its events' FROM snapshots AS s WHERE revision <> '0' AND NOT EXISTS (SELECT 1"
     " FROM events AS e WHERE e.key = s.key AND e.revision = s.revision) LIMIT 20"},
    {"checkpoints",
     "SELECT 'subscription ' || name || ': its checkpoint ' || checkpoint || ' is past the"
     " last event' FROM subscriptions WHERE checkpoint > (SELECT COALESCE(MAX(revision),"
     " '0') FROM events) LIMIT 20"},
    {"views", "SELECT 'view ' || view || ': it has seen ' || revision || ', past the last event'"
              " FROM view_revisions WHERE revision > (SELECT COALESCE(MAX(revision), '0') FROM"
              " events) LIMIT 20"},
};

/* Adds a line to the report's problems; text from a damaged file may not
 * be UTF-8, which JSON cannot carry. */
static void problem(json_t *problems, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    json_t *text = json_string(line);
    json_array_append_new(problems, text != NULL ? text
                                                 : json_string("(a line that is not "
                                                               "UTF-8)"));
}

/* Runs one query of the check, each row a problem (with `prefix`); a query
 * that fails is a problem too. Returns the rows it yielded. */
static int check_query(sqlite_store *s, const char *sql, const char *prefix, const char *what,
                       json_t *problems) {
    sqlite3_stmt *q = NULL;
    int rows = 0;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &q, NULL);
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        if ((rc = sqlite3_step(q)) != SQLITE_ROW) break;
        const char *text = (const char *)sqlite3_column_text(q, 0);
        problem(problems, "%s%s", prefix, text != NULL ? text : "(no text)");
        rows++;
    }
    if (rc != SQLITE_DONE) {
        problem(problems, "cannot check %s: %s", what, sqlite3_errmsg(s->db));
        if ((rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB) s->base.damaged = true;
    }
    sqlite3_finalize(q);
    return rows;
}

/* CHECK: SQLite's integrity check of the file, then the store's invariants.
 * Reads only; the report says ok only when nothing was found. */
static store_status check(sqlite_store *s, json_t **out) {
    json_t *problems = json_array();
    json_t *doc = NULL;
    sqlite3_int64 events = -1;
    if (problems == NULL) return STORE_NOMEM;
    sqlite3_stmt *q = NULL;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA integrity_check(20)", -1, &q, NULL);
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        if ((rc = sqlite3_step(q)) != SQLITE_ROW) break;
        const char *text = (const char *)sqlite3_column_text(q, 0);
        if (text == NULL || strcmp(text, "ok") != 0)
            problem(problems, "integrity: %s", text != NULL ? text : "(no text)");
    }
    if (rc != SQLITE_DONE)
        problem(problems, "integrity: the check stopped: %s", sqlite3_errmsg(s->db));
    sqlite3_finalize(q);
    if (count_rows(s, "SELECT COUNT(*) FROM events NOT INDEXED", &events, 1) != SQLITE_OK) {
        problem(problems, "cannot count the events: %s", sqlite3_errmsg(s->db));
        events = -1;
    }
    for (size_t i = 0; i < sizeof invariants / sizeof *invariants; i++)
        check_query(s, invariants[i].sql, "", invariants[i].what, problems);
    doc = json_pack("{s:s, s:s, s:b, s:o}", "backend", "sqlite", "path", s->path, "ok",
                    json_array_size(problems) == 0, "problems", problems);
    if (doc == NULL) return STORE_NOMEM;
    if (json_object_set_new(doc, "events", events >= 0 ? json_integer(events) : json_null())) {
        json_decref(doc);
        return STORE_NOMEM;
    }
    *out = doc;
    return STORE_OK;
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
static store_status sqlite_admin(store *st, store_admin action, char **out, char **err) {
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
    if (s->base.damaged && action != STORE_CHECK) return sqlite_damaged(s, err);

    switch (action) {
    case STORE_DEPLOY:
        if ((status = ensure_schema(s, err)) != STORE_OK) return status;
        doc = json_pack("{s:s, s:s, s:i, s:b}", "backend", "sqlite", "path", s->path,
                        "schema_version", SCHEMA_VERSION, "deployed", 1);
        break;
    case STORE_INFO:
        rc = count_rows(s,
                        "SELECT (SELECT COUNT(*) FROM events), (SELECT COUNT(*) FROM"
                        " (SELECT DISTINCT key FROM events)), (SELECT COUNT(*) FROM"
                        " snapshots), (SELECT COUNT(*) FROM subscriptions), (SELECT"
                        " COUNT(*) FROM (SELECT DISTINCT view FROM views UNION SELECT view"
                        " FROM view_revisions))",
                        n, 5);
        if (rc != SQLITE_OK) return sqlite_db_fail(s, rc, err, "describing the store");
        if ((rc = sqlite_max_revision(s, NULL, last)) != SQLITE_DONE)
            return sqlite_db_fail(s, rc, err, "describing the store");
        doc =
            json_pack("{s:s, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:s}", "backend", "sqlite", "path",
                      s->path, "schema_version", SCHEMA_VERSION, "events", (json_int_t)n[0], "keys",
                      (json_int_t)n[1], "snapshots", (json_int_t)n[2], "subscriptions",
                      (json_int_t)n[3], "views", (json_int_t)n[4], "last_revision", last);
        if (doc != NULL && s->group != NULL) {
            group *g = s->group;
            json_int_t waiting = 0;
            pthread_mutex_lock(&g->lock);
            for (const request *q = g->head; q != NULL; q = q->next) waiting++;
            json_t *gc =
                json_pack("{s:I, s:I, s:I, s:b, s:I}", "commits", (json_int_t)g->commits, "appends",
                          (json_int_t)g->appends, "largest", (json_int_t)g->largest, "committing",
                          g->committing, "waiting", waiting);
            pthread_mutex_unlock(&g->lock);
            if (gc == NULL || json_object_set_new(doc, "group_commit", gc) != 0) {
                json_decref(doc);
                doc = NULL;
            }
        }
        break;
    case STORE_CHECK:
        if ((status = check(s, &doc)) != STORE_OK)
            return store_fail(err, status, "sqlite: out of memory checking the store");
        break;
    case STORE_DESTROY:
        rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc == SQLITE_OK &&
            (rc = sqlite3_exec(s->db, "DELETE FROM events", NULL, NULL, NULL)) == SQLITE_OK) {
            n[0] = sqlite3_changes64(s->db);
            rc = sqlite3_exec(s->db,
                              "DELETE FROM idempotency; DELETE FROM snapshots;"
                              " DELETE FROM subscriptions; DELETE FROM views;"
                              " DELETE FROM view_revisions; COMMIT",
                              NULL, NULL, NULL);
        }
        if (rc != SQLITE_OK) {
            status = sqlite_db_fail(s, rc, err, "destroying the store");
            sqlite_write_rollback(s);
            return status;
        }
        doc = json_pack("{s:s, s:s, s:b, s:I}", "backend", "sqlite", "path", s->path, "destroyed",
                        1, "events_deleted", (json_int_t)n[0]);
        break;
    default:
        return store_fail(err, STORE_INVALID, "unknown admin action %d", (int)action);
    }

    /* json_pack fails on a path that is not UTF-8, as well as on no memory. */
    if (doc == NULL || (*out = json_dumps(doc, JSON_COMPACT)) == NULL) {
        json_decref(doc);
        return store_fail(err, status,
                          "sqlite: cannot describe the store (out of memory, "
                          "or the path is not UTF-8)");
    }
    json_decref(doc);
    return STORE_OK;
}

static bool sqlite_accepts(const char *uri) {
    size_t n = strlen(uri);
    return strncmp(uri, "sqlite:", 7) == 0 || strcmp(uri, "memory:") == 0 ||
           (n >= 3 && strcmp(uri + n - 3, ".db") == 0);
}

static const char *const uri_forms[] = {"sqlite:PATH", "PATH.db", "memory:", NULL};

const store_ops store_sqlite_ops = {
    .name = "sqlite",
    .uri_forms = uri_forms,
    .accepts = sqlite_accepts,
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
    .snapshot_list = sqlite_snapshot_list,
    .admin = sqlite_admin,
    .import = sqlite_import,
    .subscribe = sqlite_subscribe,
    .poll = sqlite_poll,
    .ack = sqlite_ack,
    .checkpoint = sqlite_checkpoint,
    .sub_close = sqlite_sub_close,
    .sub_reset = sqlite_sub_reset,
    .sub_active = sqlite_sub_active,
    .sub_renew = sqlite_sub_renew,
    .view_get = sqlite_view_get,
    .view_put = sqlite_view_put,
    .view_revision = sqlite_view_revision,
    .view_advance = sqlite_view_advance,
    .view_clear = sqlite_view_clear,
    .view_list = sqlite_view_list,
    .begin = sqlite_begin,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
};
