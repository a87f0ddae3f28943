/*
 * sqlite.c - the embedded backend: one SQLite file (or an in-memory
 * database) holding events, idempotency keys and snapshots. Provides
 * store_sqlite_ops. Uses SQLite, revision.h to number events, filter.h to
 * filter reads and jansson to describe the store.
 *
 * Durability and concurrency: the file is in WAL mode with synchronous=FULL,
 * so a commit is on disk when append returns, readers never block the
 * writer, and several processes can share the file; writers queue on the
 * write lock for up to BUSY_TIMEOUT_MS. Appends take the write lock first
 * (BEGIN IMMEDIATE) and number their events above the store's highest
 * revision inside that transaction, so revisions increase in commit order
 * across the store and across processes.
 *
 * Schema (PRAGMA user_version = SCHEMA_VERSION):
 *   events(revision PK, key, type, data, correlation_id, committed_at)
 *     WITHOUT ROWID, since appends land at the end of the revision order
 *     and it measured faster than a rowid table with a unique revision;
 *     events_by_key(key, revision) serves per-key reads and heads.
 *   idempotency(token PK, expires_ms), indexed by expiry for pruning.
 *   snapshots(key PK, revision, state).
 * A key's head and the store's last revision are derived (MAX(revision)),
 * never stored twice.
 */
#include "filter.h"
#include "revision.h"
#include "store.h"

#include <jansson.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_VERSION 1
#define BUSY_TIMEOUT_MS 10000
#define PAGE_ROWS 256              /* rows a cursor reads per page at most */
#define PAGE_BYTES (1u << 20)      /* ... and text it buffers, past one row */
#define PRUNE_EVERY_MS (60 * 1000) /* expired idempotency keys go this often */

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS events ("
    " revision TEXT NOT NULL PRIMARY KEY,"
    " key TEXT NOT NULL,"
    " type TEXT NOT NULL,"
    " data TEXT NOT NULL,"
    " correlation_id TEXT,"
    " committed_at TEXT NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS events_by_key ON events (key, revision);"
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
    "PRAGMA user_version = 1;";

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
};

typedef struct sqlite_store {
    store base;                /* ops and env; first, so a store * is one */
    sqlite3 *db;               /* the connection */
    char *path;                /* the file, or ":memory:" */
    sqlite3_stmt *q[Q_COUNT];  /* prepared at open, reset after each use */
    uint64_t next_prune_ms;    /* when to drop expired idempotency keys */
} sqlite_store;

/* One buffered event of a cursor's page; strings live in the cursor's text
 * buffer, by offset because the buffer moves as it grows. */
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
    char *text;                    /* strings of the page's rows */
    size_t text_len;               /* bytes of text in use */
    size_t text_cap;               /* bytes allocated */
    store_event ev;                /* the event last handed out */
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

/* Ends a failed write transaction, unless SQLite already rolled it back
 * (it does on some I/O and out-of-memory errors). */
static void rollback(sqlite_store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        run(s->q[Q_ROLLBACK]);
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

/* Creates the tables when the file has none. The version is read first
 * without a lock so an open of an existing store writes nothing; creation
 * runs under the write lock and checks again, since another process may
 * be creating them at the same time. */
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
    if ((rc = user_version(s->db, &version)) == SQLITE_OK && version == 0)
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

static void sqlite_close(store *st)
{
    sqlite_store *s = (sqlite_store *)st;
    if (s == NULL)
        return;
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

    if ((s = calloc(1, sizeof *s)) == NULL || (s->path = strdup(path)) == NULL)
        goto fail;
    s->base.ops = &store_sqlite_ops;
    s->base.env = opts != NULL && opts->env != NULL ? *opts->env : store_env_default;

    /* NOMUTEX: a handle is used by one thread at a time (store.h). */
    int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                             SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        status = db_fail(s, rc, err, path);
        goto fail_reported;
    }
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(s->db, 1);

    if (!memory && (rc = use_wal(s->db)) != SQLITE_OK) {
        status = db_fail(s, rc, err, "switching to WAL");
        goto fail_reported;
    }
    if ((rc = sqlite3_exec(s->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL)) !=
        SQLITE_OK) {
        status = db_fail(s, rc, err, path);
        goto fail_reported;
    }
    if ((status = ensure_schema(s, err)) != STORE_OK)
        goto fail_reported;
    for (int i = 0; i < Q_COUNT; i++) {
        rc = sqlite3_prepare_v3(s->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->q[i],
                                NULL);
        if (rc != SQLITE_OK) {
            status = db_fail(s, rc, err, "preparing statements");
            goto fail_reported;
        }
    }
    *out = &s->base;
    return STORE_OK;

fail:
    store_fail(err, status, "sqlite: out of memory opening %s", path);
fail_reported:
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
            if (e->data_len > INT_MAX)
                return store_fail(err, STORE_LIMIT, "%sevent %zu: data is over 2 GB",
                                  where, j + 1);
            if (e->correlation_id != NULL &&
                (why = store_check_text(e->correlation_id, false)) != NULL)
                return store_fail(err, STORE_INVALID, "%sevent %zu: correlation_id %s",
                                  where, j + 1, why);
        }
        *total += b[i].count;
    }

    if (n > 1) {
        if ((keys = malloc(n * sizeof *keys)) == NULL)
            goto fail;
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
    goto done;
fail:
    store_fail(err, status, "out of memory");
done:
    free(keys);
    return status;
}

/* The one write path: append is append_many with one batch. Inside one
 * write transaction it checks the idempotency key, then every expected
 * revision, then numbers and inserts the events. No allocation: strings
 * are bound in place. */
static store_status commit_batches(sqlite_store *s, const store_batch *b, size_t n,
                                   const char *token, bool many,
                                   store_append_result *r, char **err)
{
    store_status status;
    size_t total;
    int rc;
    const char *doing = "beginning the append";

    memset(r, 0, sizeof *r);
    r->outcome = STORE_UNCHANGED;
    if ((status = check_batches(b, n, token, many, &total, err)) != STORE_OK ||
        total == 0)
        return status;

    const store_env *env = &s->base.env;
    uint64_t now = env->now_ms(env->ctx);
    char committed_at[STORE_TIMESTAMP_SIZE];
    revision_timestamp(now, committed_at);

    if ((rc = run(s->q[Q_BEGIN])) != SQLITE_DONE)
        goto fail;

    if (token != NULL) {
        doing = "checking the idempotency key";
        sqlite3_stmt *q = s->q[Q_TOKEN_SEEN];
        sqlite3_bind_text(q, 1, token, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, (sqlite3_int64)now);
        rc = sqlite3_step(q);
        sqlite3_reset(q);
        if (rc == SQLITE_ROW) {
            rollback(s); /* nothing was written */
            return STORE_OK;
        }
        if (rc != SQLITE_DONE)
            goto fail;
    }

    doing = "reading a head";
    for (size_t i = 0; i < n; i++) {
        if (b[i].expected_revision == NULL)
            continue;
        char head[STORE_REVISION_SIZE];
        if ((rc = max_revision(s, b[i].key, head)) != SQLITE_DONE)
            goto fail;
        if (strcmp(head, b[i].expected_revision) != 0) {
            rollback(s);
            r->outcome = STORE_CONFLICT;
            copy_revision(r->expected, (const unsigned char *)b[i].expected_revision);
            memcpy(r->actual, head, sizeof head);
            r->failed = i;
            return STORE_OK;
        }
    }

    char last[STORE_REVISION_SIZE], rev[STORE_REVISION_SIZE];
    doing = "reading the last revision";
    if ((rc = max_revision(s, NULL, last)) != SQLITE_DONE)
        goto fail;
    revision_after(last, env, rev);

    doing = "inserting an event";
    sqlite3_stmt *ins = s->q[Q_INSERT];
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < b[i].count; j++) {
            const store_pending *e = &b[i].events[j];
            /* Later events of one append follow the first by one each: the
             * transaction orders them already, no clock or random needed. */
            if (!first && !revision_next(rev, rev)) {
                rollback(s);
                return store_fail(err, STORE_LIMIT, "sqlite: no revisions left");
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

    if (token != NULL) {
        doing = "recording the idempotency key";
        sqlite3_stmt *q = s->q[Q_TOKEN_PUT];
        sqlite3_bind_text(q, 1, token, -1, SQLITE_STATIC);
        sqlite3_bind_int64(q, 2, (sqlite3_int64)(now + STORE_IDEMPOTENCY_MS));
        if ((rc = run(q)) != SQLITE_DONE)
            goto fail;
        /* Pruning here, now and then, keeps the table to about ten minutes
         * of keys without a background task. */
        if (now >= s->next_prune_ms) {
            q = s->q[Q_TOKEN_PRUNE];
            sqlite3_bind_int64(q, 1, (sqlite3_int64)now);
            if ((rc = run(q)) != SQLITE_DONE)
                goto fail;
            s->next_prune_ms = now + PRUNE_EVERY_MS;
        }
    }

    doing = "committing";
    if ((rc = run(s->q[Q_COMMIT])) != SQLITE_DONE)
        goto fail;
    r->outcome = STORE_APPENDED;
    r->count = total;
    memcpy(r->revision, rev, sizeof rev);
    return STORE_OK;

fail:
    status = db_fail(s, rc, err, doing);
    rollback(s);
    return status;
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

/* Appends n bytes and a NUL to the page text; returns the offset, or
 * SIZE_MAX when out of memory. */
static size_t put_text(store_cursor *c, const char *t, size_t n)
{
    if (c->text_len + n + 1 > c->text_cap) {
        size_t cap = c->text_cap > 0 ? c->text_cap : 4096;
        while (cap < c->text_len + n + 1)
            cap *= 2;
        char *p = realloc(c->text, cap);
        if (p == NULL)
            return SIZE_MAX;
        c->text = p;
        c->text_cap = cap;
    }
    size_t at = c->text_len;
    memcpy(c->text + at, t, n);
    c->text[at + n] = '\0';
    c->text_len += n + 1;
    return at;
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
    c->text_len = 0;
    int64_t scanned = 0;
    store_event ev;
    char last[STORE_REVISION_SIZE] = "";
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        size_t key_len, type_len, corr_len = 0, at_len;
        scanned++;
        copy_revision(ev.revision, sqlite3_column_text(q, 0));
        memcpy(last, ev.revision, sizeof last);
        ev.key = column(q, 1, &key_len);
        ev.type = column(q, 2, &type_len);
        ev.data = column(q, 3, &ev.data_len);
        ev.correlation_id = sqlite3_column_type(q, 4) == SQLITE_NULL ? NULL
                            : column(q, 4, &corr_len);
        const char *at = column(q, 5, &at_len);
        if (at_len >= STORE_TIMESTAMP_SIZE)
            at_len = STORE_TIMESTAMP_SIZE - 1;
        memcpy(ev.committed_at, at, at_len);
        ev.committed_at[at_len] = '\0';
        if (!filter_match(c->filter, &ev))
            continue;

        row *r = &c->rows[c->nrows];
        r->key = put_text(c, ev.key, key_len);
        r->type = put_text(c, ev.type, type_len);
        r->data = put_text(c, ev.data, ev.data_len);
        r->data_len = ev.data_len;
        r->has_corr = ev.correlation_id != NULL;
        r->corr = r->has_corr ? put_text(c, ev.correlation_id, corr_len) : 0;
        if (r->key == SIZE_MAX || r->type == SIZE_MAX || r->data == SIZE_MAX ||
            r->corr == SIZE_MAX) {
            sqlite3_reset(q);
            c->nrows = 0;
            return store_fail(err, STORE_NOMEM, "sqlite: out of memory reading events");
        }
        memcpy(r->revision, ev.revision, sizeof r->revision);
        memcpy(r->committed_at, ev.committed_at, sizeof r->committed_at);
        c->nrows++;
        if ((c->remaining >= 0 && (int64_t)c->nrows >= c->remaining) ||
            c->text_len >= PAGE_BYTES)
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
    free(c->text);
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
    const row *r = &c->rows[c->pos++];
    c->ev.key = c->text + r->key;
    c->ev.type = c->text + r->type;
    c->ev.data = c->text + r->data;
    c->ev.data_len = r->data_len;
    c->ev.correlation_id = r->has_corr ? c->text + r->corr : NULL;
    memcpy(c->ev.revision, r->revision, sizeof c->ev.revision);
    memcpy(c->ev.committed_at, r->committed_at, sizeof c->ev.committed_at);
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
 * INFO: counts events, keys and snapshots, and the last revision.
 * DESTROY: deletes every event, idempotency key and snapshot in one
 * transaction but keeps the file and its tables, so other processes that
 * have it open go on working on an empty store; the space is reused, not
 * returned to the file system. */
static store_status sqlite_admin(store *st, store_admin action, char **out, char **err)
{
    sqlite_store *s = (sqlite_store *)st;
    store_status status = STORE_NOMEM;
    json_t *doc = NULL;
    sqlite3_int64 n[3] = {0, 0, 0};
    char last[STORE_REVISION_SIZE];
    int rc;
    *out = NULL;

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
                        " snapshots)", n, 3);
        if (rc != SQLITE_OK)
            return db_fail(s, rc, err, "describing the store");
        if ((rc = max_revision(s, NULL, last)) != SQLITE_DONE)
            return db_fail(s, rc, err, "describing the store");
        doc = json_pack("{s:s, s:s, s:i, s:I, s:I, s:I, s:s}", "backend", "sqlite",
                        "path", s->path, "schema_version", SCHEMA_VERSION,
                        "events", (json_int_t)n[0], "keys", (json_int_t)n[1],
                        "snapshots", (json_int_t)n[2], "last_revision", last);
        break;
    case STORE_DESTROY:
        rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc == SQLITE_OK && (rc = sqlite3_exec(s->db, "DELETE FROM events", NULL,
                                                  NULL, NULL)) == SQLITE_OK) {
            n[0] = sqlite3_changes64(s->db);
            rc = sqlite3_exec(s->db, "DELETE FROM idempotency; DELETE FROM snapshots;"
                              " COMMIT", NULL, NULL, NULL);
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
};
