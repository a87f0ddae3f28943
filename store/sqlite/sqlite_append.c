/*
 * sqlite_append.c - appends to the embedded store (checked by
 * store_check_batches first): one append inside a transaction, and group commit,
 * which lets the appends of a process that arrive together share one
 * transaction and its fsync (sqlite.c's opening comment explains it).
 */
#include "sqlite_store.h"

/* ------------------------------------------------------------------ */
/* Appends                                                             */

/* The embedded store takes any key; event data up to the contract's cap. */
static const store_limits limits = {.event_bytes = STORE_MAX_EVENT_BYTES};

/* One upsert: the WHERE keeps a newer snapshot, an equal revision
 * overwrites; wrote says whether it was saved. */
static void apply_snapshot(sqlite_store *c, request *q) {
    sqlite3_stmt *st = c->q[Q_SNAP_PUT];
    int rc;
    if ((rc = sqlite3_bind_text(st, 1, q->snap_key, -1, SQLITE_STATIC)) != SQLITE_OK ||
        (rc = sqlite3_bind_text(st, 2, q->snap_revision, -1, SQLITE_STATIC)) != SQLITE_OK ||
        (rc = sqlite3_bind_text(st, 3, q->snap_state, (int)q->snap_len, SQLITE_STATIC)) !=
            SQLITE_OK ||
        (rc = sqlite_run(st)) != SQLITE_DONE) {
        q->status = sqlite_db_fail(c, rc, q->err, "saving a snapshot");
        return;
    }
    q->wrote = sqlite3_changes(c->db) > 0;
}

/* The stages of an append below return SQLITE_DONE to go on, or SQLite's
 * error with *doing saying what failed; *answered is set when the request
 * has its answer without going further (a repeat, a conflict). */

/* A repeat of an idempotency key still remembered is UNCHANGED, as q->r
 * starts. */
static int check_token(sqlite_store *c, request *q, uint64_t now, bool *answered,
                       const char **doing) {
    if (q->token == NULL) return SQLITE_DONE;
    *doing = "checking the idempotency key";
    sqlite3_stmt *st = c->q[Q_TOKEN_SEEN];
    sqlite3_bind_text(st, 1, q->token, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)now);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) {
        *answered = true;
        return SQLITE_DONE;
    }
    return rc;
}

/* Every expected revision must be its key's head: the first that is not
 * is the conflict. */
static int check_heads(sqlite_store *c, request *q, bool *answered, const char **doing) {
    const store_batch *b = q->b;
    store_append_result *r = q->r;
    *doing = "reading a head";
    for (size_t i = 0; i < q->n; i++) {
        if (b[i].expected_revision == NULL) continue;
        char head[STORE_REVISION_SIZE];
        int rc = sqlite_max_revision(c, b[i].key, head);
        if (rc != SQLITE_DONE) return rc;
        if (strcmp(head, b[i].expected_revision) != 0) {
            r->outcome = STORE_CONFLICT;
            sqlite_copy_revision(r->expected, (const unsigned char *)b[i].expected_revision);
            memcpy(r->actual, head, sizeof head);
            r->failed = i;
            *answered = true;
            return SQLITE_DONE;
        }
    }
    return SQLITE_DONE;
}

/* Numbers the events above the store's last revision and inserts them;
 * rev ends as the last one's. */
static int insert_events(sqlite_store *c, request *q, const char *committed_at,
                         char rev[STORE_REVISION_SIZE], bool *answered, const char **doing) {
    const store_batch *b = q->b;
    char last[STORE_REVISION_SIZE];
    *doing = "reading the last revision";
    int rc = sqlite_max_revision(c, NULL, last);
    if (rc != SQLITE_DONE) return rc;
    revision_after(last, &q->s->base.env, rev);

    *doing = "inserting an event";
    sqlite3_stmt *ins = c->q[Q_INSERT];
    bool first = true;
    size_t written = 0; /* events of this append bound so far: `more` is the rest */
    q->wrote = true;
    for (size_t i = 0; i < q->n; i++) {
        for (size_t j = 0; j < b[i].count; j++) {
            const store_pending *e = &b[i].events[j];
            /* Later events of one append follow the first by one each: the
             * transaction orders them already, no clock or random needed. */
            if (!first && !revision_next(rev, rev)) {
                q->status = store_fail(q->err, STORE_LIMIT, "sqlite: no revisions left");
                *answered = true;
                return SQLITE_DONE;
            }
            first = false;
            /* A bind fails on a string over SQLite's length limit; going on
             * would insert what the slot held before. */
            if ((rc = sqlite3_bind_text(ins, 1, rev, STORE_REVISION_LEN, SQLITE_STATIC)) !=
                    SQLITE_OK ||
                (rc = sqlite3_bind_text(ins, 2, b[i].key, -1, SQLITE_STATIC)) != SQLITE_OK ||
                (rc = sqlite3_bind_text(ins, 3, e->type, -1, SQLITE_STATIC)) != SQLITE_OK ||
                (rc = sqlite3_bind_text(ins, 4, e->data, (int)e->data_len, SQLITE_STATIC)) !=
                    SQLITE_OK ||
                (rc = e->correlation_id != NULL
                          ? sqlite3_bind_text(ins, 5, e->correlation_id, -1, SQLITE_STATIC)
                          : sqlite3_bind_null(ins, 5)) != SQLITE_OK ||
                (rc = sqlite3_bind_text(ins, 6, committed_at, -1, SQLITE_STATIC)) != SQLITE_OK ||
                (rc = ++written < q->total
                          ? sqlite3_bind_int64(ins, 7, (sqlite3_int64)(q->total - written))
                          : sqlite3_bind_null(ins, 7)) != SQLITE_OK ||
                (rc = sqlite_run(ins)) != SQLITE_DONE)
                return rc;
        }
    }
    return SQLITE_DONE;
}

/* Remembers the idempotency key. Pruning here, now and then, keeps the
 * table to about ten minutes of keys without a background task. */
static int record_token(sqlite_store *c, request *q, uint64_t now, const char **doing) {
    if (q->token == NULL) return SQLITE_DONE;
    *doing = "recording the idempotency key";
    sqlite3_stmt *st = c->q[Q_TOKEN_PUT];
    sqlite3_bind_text(st, 1, q->token, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)(now + STORE_IDEMPOTENCY_MS));
    int rc = sqlite_run(st);
    if (rc != SQLITE_DONE || now < q->s->next_prune_ms) return rc;
    st = c->q[Q_TOKEN_PRUNE];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
    if ((rc = sqlite_run(st)) == SQLITE_DONE) q->s->next_prune_ms = now + PRUNE_EVERY_MS;
    return rc;
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
static void apply(sqlite_store *c, request *q) {
    if (q->snap_key != NULL) {
        apply_snapshot(c, q);
        return;
    }
    const store_env *env = &q->s->base.env;
    uint64_t now = env->now_ms(env->ctx);
    char committed_at[STORE_TIMESTAMP_SIZE], rev[STORE_REVISION_SIZE];
    const char *doing = "";
    bool answered = false;
    revision_timestamp(now, committed_at);

    int rc = check_token(c, q, now, &answered, &doing);
    if (rc == SQLITE_DONE && !answered) rc = check_heads(c, q, &answered, &doing);
    if (rc == SQLITE_DONE && !answered)
        rc = insert_events(c, q, committed_at, rev, &answered, &doing);
    if (rc == SQLITE_DONE && !answered) rc = record_token(c, q, now, &doing);
    if (rc != SQLITE_DONE) {
        q->status = sqlite_db_fail(c, rc, q->err, doing);
        return;
    }
    if (answered) return;
    q->r->outcome = STORE_APPENDED;
    q->r->count = q->total;
    memcpy(q->r->revision, rev, sizeof rev);
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
                          const char *msg) {
    for (size_t i = from; i < k; i++) {
        request *q = qs[i];
        if (q->status == STORE_OK) q->status = store_fail(q->err, status, "%s", msg);
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
static void commit_group(sqlite_store *c, request **qs, size_t k, size_t *committed) {
    bool solo = k == 1;
    size_t i = 0;
    size_t first = k; /* the first request that kept a write */
    int rc;
    const char *doing = "beginning the append";
    *committed = 0;

    if ((rc = sqlite_run(c->q[Q_BEGIN])) != SQLITE_DONE) goto txn_failed;
    for (i = 0; i < k; i++) {
        request *q = qs[i];
        doing = "opening a savepoint";
        if (!solo && (rc = sqlite_run(c->q[Q_SAVEPOINT])) != SQLITE_DONE) goto txn_failed;
        apply(c, q);
        if (q->status != STORE_OK && sqlite3_get_autocommit(c->db)) {
            /* SQLite ended the whole transaction (it does on some I/O and
             * out-of-memory errors): the appends before it lost their
             * writes, those after it never ran. */
            char msg[512];
            snprintf(msg, sizeof msg,
                     "sqlite: a group commit was rolled back by another "
                     "append's error: %s",
                     q->err != NULL && *q->err != NULL ? *q->err : "");
            q->wrote = false;
            fail_requests(qs, first < i ? first : i, k, q->status, msg);
            return;
        }
        if (!solo) {
            doing = "closing a savepoint";
            if (!q->wrote || q->status != STORE_OK) {
                q->wrote = false;
                if ((rc = sqlite_run(c->q[Q_ROLLBACK_TO])) != SQLITE_DONE) goto txn_failed;
            }
            if ((rc = sqlite_run(c->q[Q_RELEASE])) != SQLITE_DONE) goto txn_failed;
        }
        if (q->wrote && q->status == STORE_OK && first == k) first = i;
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
    if ((rc = sqlite_run(c->q[Q_COMMIT])) != SQLITE_DONE) goto txn_failed;
    *committed = appends;
    if (appends > 0) sqlite_wake_all();
    return;

txn_failed : {
    /* Every answer from the first write on stood on this transaction;
         * those that have not run yet (from index i on) fail too, as they
         * would have alone. */
    char msg[512];
    const char *what = sqlite3_errmsg(c->db);
    snprintf(msg, sizeof msg, "sqlite: %s: %s", doing, what != NULL ? what : "error");
    store_status status = (rc & 0xff) == SQLITE_NOMEM ? STORE_NOMEM : STORE_IO;
    if (!sqlite3_get_autocommit(c->db)) sqlite_run(c->q[Q_ROLLBACK]);
    fail_requests(qs, first < i ? first : i, k, status, msg);
}
}

/* An append inside the caller's transaction on its own handle (begin):
 * in a savepoint, so it can fail alone and still commit with the rest; it
 * takes no part in group commit, the transaction holding the write lock. */
static store_status append_in_txn(sqlite_store *s, request *q) {
    store_status status;
    int rc;
    if ((status = sqlite_txn_alive(s, q->err)) != STORE_OK) return status;
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
store_status sqlite_submit(sqlite_store *s, request *q) {
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
        while (!q->done && !q->lead) pthread_cond_wait(&q->wake, &g->lock);
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
    if (g->head == NULL) g->tail = NULL;
    pthread_mutex_unlock(&g->lock);

    commit_group(s, batch, k, &committed);

    pthread_mutex_lock(&g->lock);
    if (committed > 0) {
        g->commits++;
        g->appends += committed;
        if (committed > g->largest) g->largest = committed;
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
                                   const char *token, bool many, store_append_result *r,
                                   char **err) {
    store_status status;
    size_t total;

    memset(r, 0, sizeof *r);
    r->outcome = STORE_UNCHANGED;
    if ((status = store_check_batches(b, n, token, many, &limits, &total, err)) != STORE_OK ||
        total == 0)
        return status;

    if (s->base.damaged) return sqlite_damaged(s, err);
    request q = {.s = s, .b = b, .n = n, .total = total, .token = token, .r = r, .err = err};
    status = s->txn ? append_in_txn(s, &q) : sqlite_submit(s, &q);
    if (status == STORE_DAMAGED) s->base.damaged = true;
    return status;
}

store_status sqlite_append(store *st, const char *key, const store_pending *events, size_t count,
                           const store_append_opts *opts, store_append_result *result, char **err) {
    store_batch batch = {key, events, count, opts != NULL ? opts->expected_revision : NULL};
    return commit_batches((sqlite_store *)st, &batch, 1,
                          opts != NULL ? opts->idempotency_key : NULL, false, result, err);
}

store_status sqlite_append_many(store *st, const store_batch *batches, size_t n,
                                const char *idempotency_key, store_append_result *result,
                                char **err) {
    return commit_batches((sqlite_store *)st, batches, n, idempotency_key, true, result, err);
}

store_status sqlite_head(store *st, const char *key, char out[STORE_REVISION_SIZE], char **err) {
    if (st->damaged) return sqlite_damaged((sqlite_store *)st, err);
    sqlite_store *s = (sqlite_store *)st;
    const char *why = store_check_text(key, false);
    if (why != NULL) return store_fail(err, STORE_INVALID, "key %s", why);
    int rc = sqlite_max_revision(s, key, out);
    if (rc != SQLITE_DONE) {
        sqlite_copy_revision(out, NULL);
        return sqlite_db_fail(s, rc, err, "reading a head");
    }
    return STORE_OK;
}
