/*
 * sqlite_append.c - appends to the embedded store: the checks made before
 * anything is written, one append inside a transaction, and group commit,
 * which lets the appends of a process that arrive together share one
 * transaction and its fsync (sqlite.c's opening comment explains it).
 */
#include "sqlite_store.h"

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
            (rc = sqlite_run(st)) != SQLITE_DONE)
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
        if ((rc = sqlite_max_revision(c, b[i].key, head)) != SQLITE_DONE)
            goto fail;
        if (strcmp(head, b[i].expected_revision) != 0) {
            r->outcome = STORE_CONFLICT;
            sqlite_copy_revision(r->expected, (const unsigned char *)b[i].expected_revision);
            memcpy(r->actual, head, sizeof head);
            r->failed = i;
            return;
        }
    }

    char last[STORE_REVISION_SIZE], rev[STORE_REVISION_SIZE];
    doing = "reading the last revision";
    if ((rc = sqlite_max_revision(c, NULL, last)) != SQLITE_DONE)
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
                (rc = sqlite_run(ins)) != SQLITE_DONE)
                goto fail;
        }
    }

    if (q->token != NULL) {
        doing = "recording the idempotency key";
        sqlite3_stmt *st = c->q[Q_TOKEN_PUT];
        sqlite3_bind_text(st, 1, q->token, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)(now + STORE_IDEMPOTENCY_MS));
        if ((rc = sqlite_run(st)) != SQLITE_DONE)
            goto fail;
        /* Pruning here, now and then, keeps the table to about ten minutes
         * of keys without a background task. */
        if (now >= q->s->next_prune_ms) {
            st = c->q[Q_TOKEN_PRUNE];
            sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
            if ((rc = sqlite_run(st)) != SQLITE_DONE)
                goto fail;
            q->s->next_prune_ms = now + PRUNE_EVERY_MS;
        }
    }

    r->outcome = STORE_APPENDED;
    r->count = q->total;
    memcpy(r->revision, rev, sizeof rev);
    return;

fail:
    q->status = sqlite_db_fail(c, rc, q->err, doing);
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

    if ((rc = sqlite_run(c->q[Q_BEGIN])) != SQLITE_DONE)
        goto txn_failed;
    for (i = 0; i < k; i++) {
        request *q = qs[i];
        doing = "opening a savepoint";
        if (!solo && (rc = sqlite_run(c->q[Q_SAVEPOINT])) != SQLITE_DONE)
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
                if ((rc = sqlite_run(c->q[Q_ROLLBACK_TO])) != SQLITE_DONE)
                    goto txn_failed;
            }
            if ((rc = sqlite_run(c->q[Q_RELEASE])) != SQLITE_DONE)
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
        sqlite_run(c->q[Q_ROLLBACK]); /* conflicts and repeats only: nothing to keep */
        return;
    }
    doing = "committing";
    i = k; /* every append has run */
    if ((rc = sqlite_run(c->q[Q_COMMIT])) != SQLITE_DONE)
        goto txn_failed;
    *committed = appends;
    if (appends > 0)
        sqlite_wake_all();
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
            sqlite_run(c->q[Q_ROLLBACK]);
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
    if ((status = sqlite_txn_alive(s, q->err)) != STORE_OK)
        return status;
    if ((rc = sqlite_write_begin(s)) != SQLITE_DONE)
        return sqlite_db_fail(s, rc, q->err, "beginning the append");
    apply(s, q);
    if (q->status != STORE_OK || !q->wrote) {
        sqlite_write_rollback(s); /* a failure, a conflict or a repeat: nothing to keep */
        return q->status;
    }
    if ((rc = sqlite_write_commit(s)) != SQLITE_DONE) {
        status = sqlite_db_fail(s, rc, q->err, "committing");
        sqlite_write_rollback(s);
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
store_status sqlite_submit(sqlite_store *s, request *q)
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

    if (s->base.damaged)
        return sqlite_damaged(s, err);
    request q = {.s = s, .b = b, .n = n, .total = total, .token = token, .r = r,
                 .err = err};
    status = s->txn ? append_in_txn(s, &q) : sqlite_submit(s, &q);
    if (status == STORE_DAMAGED)
        s->base.damaged = true;
    return status;
}

store_status sqlite_append(store *st, const char *key, const store_pending *events,
                           size_t count, const store_append_opts *opts,
                           store_append_result *result, char **err)
{
    store_batch batch = {key, events, count, opts != NULL ? opts->expected_revision : NULL};
    return commit_batches((sqlite_store *)st, &batch, 1,
                          opts != NULL ? opts->idempotency_key : NULL, false, result, err);
}

store_status sqlite_append_many(store *st, const store_batch *batches, size_t n,
                                const char *idempotency_key,
                                store_append_result *result, char **err)
{
    return commit_batches((sqlite_store *)st, batches, n, idempotency_key, true, result,
                          err);
}

store_status sqlite_head(store *st, const char *key, char out[STORE_REVISION_SIZE],
                         char **err)
{
    if (st->damaged)
        return sqlite_damaged((sqlite_store *)st, err);
    sqlite_store *s = (sqlite_store *)st;
    const char *why = store_check_text(key, false);
    if (why != NULL)
        return store_fail(err, STORE_INVALID, "key %s", why);
    int rc = sqlite_max_revision(s, key, out);
    if (rc != SQLITE_DONE) {
        sqlite_copy_revision(out, NULL);
        return sqlite_db_fail(s, rc, err, "reading a head");
    }
    return STORE_OK;
}
