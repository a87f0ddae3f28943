/*
 * sqlite_view.c - snapshots, views and the caller's transactions on the
 * embedded store: a key's snapshot (saved through the commit group) and
 * the list of them, read-model documents with each view's revision, and
 * begin/commit/rollback, inside which every write is a savepoint.
 */
#include "sqlite_store.h"

/* ------------------------------------------------------------------ */
/* Snapshots                                                           */

store_status sqlite_save_snapshot(store *st, const char *key, const char *revision,
                                  const char *state, size_t state_len, bool *saved, char **err) {
    if (st->damaged) return sqlite_damaged((sqlite_store *)st, err);
    sqlite_store *s = (sqlite_store *)st;
    store_status status;
    const char *why;
    *saved = false;
    if ((why = store_check_text(key, false)) != NULL)
        return store_fail(err, STORE_INVALID, "key %s", why);
    if ((status = store_check_document("snapshot revision", revision, "snapshot state", state,
                                       state_len, err)) != STORE_OK)
        return status;
    if (state_len > INT_MAX) return store_fail(err, STORE_LIMIT, "snapshot state is over 2 GB");

    /* Outside a transaction of the caller's, through the group, so it
     * shares a commit with appends instead of taking the write lock in
     * their way: the aggregate runner saves one right after an append. */
    if (!s->txn && s->group != NULL) {
        store_append_result unused;
        request r = {.s = s,
                     .snap_key = key,
                     .snap_revision = revision,
                     .snap_state = state,
                     .snap_len = state_len,
                     .r = &unused,
                     .err = err};
        status = sqlite_submit(s, &r);
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
        return sqlite_db_fail(s, rc, err, "saving a snapshot");
    rc = sqlite_run(q);
    if (rc != SQLITE_DONE) return sqlite_db_fail(s, rc, err, "saving a snapshot");
    *saved = sqlite3_changes(s->db) > 0;
    return STORE_OK;
}

store_status sqlite_snapshot(store *st, const char *key, store_snapshot *snap, bool *found,
                             char **err) {
    if (st->damaged) return sqlite_damaged((sqlite_store *)st, err);
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
        const char *state = sqlite_column(q, 1, &len);
        if ((snap->state = malloc(len + 1)) == NULL) {
            status = store_fail(err, STORE_NOMEM,
                                "sqlite: out of memory reading a "
                                "snapshot");
        } else {
            memcpy(snap->state, state, len);
            snap->state[len] = '\0';
            snap->state_len = len;
            sqlite_copy_revision(snap->revision, sqlite3_column_text(q, 0));
            *found = true;
        }
    } else if (rc != SQLITE_DONE)
        status = sqlite_db_fail(s, rc, err, "reading a snapshot");
    sqlite3_reset(q);
    return status;
}

/* ------------------------------------------------------------------ */
/* Views                                                               */

store_status sqlite_view_get(store *st, const char *view, const char *id, char **doc,
                             size_t *doc_len, char revision[STORE_REVISION_SIZE], bool *found,
                             char **err) {
    if (st->damaged) return sqlite_damaged((sqlite_store *)st, err);
    sqlite_store *s = (sqlite_store *)st;
    store_status status;
    *doc = NULL;
    *doc_len = 0;
    *found = false;
    sqlite_copy_revision(revision, NULL);
    if (id == NULL) return store_fail(err, STORE_INVALID, "view document id is missing");
    if ((status = store_check_view(view, id, err)) != STORE_OK) return status;

    sqlite3_stmt *q = s->q[Q_VIEW_GET];
    sqlite3_bind_text(q, 1, view, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        size_t len;
        const char *text = sqlite_column(q, 1, &len);
        if ((*doc = strndup(text, len)) == NULL) {
            status = store_fail(err, STORE_NOMEM, "sqlite: out of memory reading a view");
        } else {
            *doc_len = len;
            sqlite_copy_revision(revision, sqlite3_column_text(q, 0));
            *found = true;
        }
    } else if (rc != SQLITE_DONE) {
        status = sqlite_db_fail(s, rc, err, "reading a view");
    }
    sqlite3_reset(q);
    return status;
}

store_status sqlite_view_put(store *st, const char *view, const char *id, const char *doc,
                             size_t doc_len, const char *revision, bool *stored, char **err) {
    if (st->damaged) return sqlite_damaged((sqlite_store *)st, err);
    sqlite_store *s = (sqlite_store *)st;
    store_status status;
    *stored = false;
    if (id == NULL) return store_fail(err, STORE_INVALID, "view document id is missing");
    if ((status = store_check_view(view, id, err)) != STORE_OK) return status;
    if ((status = store_check_document("view revision", revision, "view document", doc, doc_len,
                                       err)) != STORE_OK)
        return status;
    if (doc_len > INT_MAX) return store_fail(err, STORE_LIMIT, "view document is over 2 GB");
    if ((status = sqlite_txn_alive(s, err)) != STORE_OK) return status;

    /* One upsert, atomic on its own, like snapshots: the WHERE keeps a
     * newer document. */
    sqlite3_stmt *q = s->q[Q_VIEW_PUT];
    int rc;
    if ((rc = sqlite3_bind_text(q, 1, view, -1, SQLITE_STATIC)) != SQLITE_OK ||
        (rc = sqlite3_bind_text(q, 2, id, -1, SQLITE_STATIC)) != SQLITE_OK ||
        (rc = sqlite3_bind_text(q, 3, revision, -1, SQLITE_STATIC)) != SQLITE_OK ||
        (rc = sqlite3_bind_text(q, 4, doc, (int)doc_len, SQLITE_STATIC)) != SQLITE_OK)
        return sqlite_db_fail(s, rc, err, "writing a view");
    if ((rc = sqlite_run(q)) != SQLITE_DONE) return sqlite_db_fail(s, rc, err, "writing a view");
    *stored = sqlite3_changes(s->db) > 0;
    return STORE_OK;
}

store_status sqlite_view_revision(store *st, const char *view, char out[STORE_REVISION_SIZE],
                                  char **err) {
    if (st->damaged) return sqlite_damaged((sqlite_store *)st, err);
    sqlite_store *s = (sqlite_store *)st;
    store_status status;
    sqlite_copy_revision(out, NULL);
    if ((status = store_check_view(view, NULL, err)) != STORE_OK) return status;
    sqlite3_stmt *q = s->q[Q_VIEW_SEEN];
    sqlite3_bind_text(q, 1, view, -1, SQLITE_STATIC);
    int rc = sqlite_step_revision(q, out);
    if (rc != SQLITE_DONE) return sqlite_db_fail(s, rc, err, "reading a view's revision");
    return STORE_OK;
}

store_status sqlite_view_advance(store *st, const char *view, const char *revision, char **err) {
    if (st->damaged) return sqlite_damaged((sqlite_store *)st, err);
    sqlite_store *s = (sqlite_store *)st;
    store_status status;
    if ((status = store_check_view(view, NULL, err)) != STORE_OK) return status;
    if ((status = store_check_revision("view revision", revision, false, err)) != STORE_OK)
        return status;
    if ((status = sqlite_txn_alive(s, err)) != STORE_OK) return status;
    sqlite3_stmt *q = s->q[Q_VIEW_ADVANCE];
    sqlite3_bind_text(q, 1, view, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, revision, -1, SQLITE_STATIC);
    int rc = sqlite_run(q);
    if (rc != SQLITE_DONE) return sqlite_db_fail(s, rc, err, "advancing a view's revision");
    return STORE_OK;
}

/* With a limit, the first `limit` documents in id order go (one indexed
 * range); the seen revision goes with the last of them. */
store_status sqlite_view_clear(store *st, const char *view, size_t limit, bool *done, char **err) {
    if (st->damaged) return sqlite_damaged((sqlite_store *)st, err);
    sqlite_store *s = (sqlite_store *)st;
    store_status status;
    int rc;
    if (done != NULL) *done = false;
    if ((status = store_check_view(view, NULL, err)) != STORE_OK ||
        (status = sqlite_txn_alive(s, err)) != STORE_OK)
        return status;
    sqlite3_stmt *docs = s->q[limit > 0 ? Q_VIEW_CLEAR_SOME : Q_VIEW_CLEAR_DOCS];
    sqlite3_bind_text(docs, 1, view, -1, SQLITE_STATIC);
    if (limit > 0)
        sqlite3_bind_int64(docs, 2, limit > INT64_MAX ? INT64_MAX : (sqlite3_int64)limit);
    sqlite3_bind_text(s->q[Q_VIEW_CLEAR_SEEN], 1, view, -1, SQLITE_STATIC);
    bool all = false;
    if ((rc = sqlite_write_begin(s)) == SQLITE_DONE && (rc = sqlite_run(docs)) == SQLITE_DONE) {
        all = limit == 0 || (size_t)sqlite3_changes(s->db) < limit;
        if (all) rc = sqlite_run(s->q[Q_VIEW_CLEAR_SEEN]);
    }
    if (rc != SQLITE_DONE || (rc = sqlite_write_commit(s)) != SQLITE_DONE) {
        status = sqlite_db_fail(s, rc, err, "clearing a view");
        sqlite_write_rollback(s);
        return status;
    }
    if (done != NULL) *done = all;
    return STORE_OK;
}

/* One indexed range query (the primary key is view, id): documents after
 * `after` in id order, at most `limit`. */
/* Steps q (bound) for up to `limit` rows of (name, revision, text) into a
 * malloc'd array of documents: a view's, or the snapshots as documents. */
static store_status list_rows(sqlite_store *s, sqlite3_stmt *q, size_t limit, const char *what,
                              store_view_doc **docs, size_t *n, char **err) {
    store_status status;
    store_view_doc *out = calloc(limit, sizeof *out);
    size_t count = 0;
    if (out == NULL) {
        sqlite3_reset(q);
        return store_fail(err, STORE_NOMEM, "sqlite: out of memory %s", what);
    }
    int rc = SQLITE_DONE;
    while (count < limit && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        size_t idlen, len;
        const char *id = sqlite_column(q, 0, &idlen), *text = sqlite_column(q, 2, &len);
        store_view_doc *d = &out[count++];
        if ((d->id = strndup(id, idlen)) == NULL || (d->doc = strndup(text, len)) == NULL) {
            status = store_fail(err, STORE_NOMEM, "sqlite: out of memory %s", what);
            goto fail;
        }
        d->doc_len = len;
        sqlite_copy_revision(d->revision, sqlite3_column_text(q, 1));
    }
    if (count < limit && rc != SQLITE_DONE) {
        status = sqlite_db_fail(s, rc, err, what);
        goto fail;
    }
    sqlite3_reset(q);
    *docs = out;
    *n = count;
    return STORE_OK;

fail:
    sqlite3_reset(q);
    store_view_docs_free(out, count);
    return status;
}

store_status sqlite_view_list(store *st, const char *view, const char *after, size_t limit,
                              store_view_doc **docs, size_t *n, char **err) {
    if (st->damaged) return sqlite_damaged((sqlite_store *)st, err);
    sqlite_store *s = (sqlite_store *)st;
    store_status status;
    *docs = NULL;
    *n = 0;
    if ((status = store_check_view(view, after, err)) != STORE_OK) return status;
    if (limit < 1 || limit > 100000)
        return store_fail(err, STORE_INVALID, "view list limit must be 1 to 100000");
    sqlite3_stmt *q = s->q[Q_VIEW_LIST];
    sqlite3_bind_text(q, 1, view, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, after != NULL ? after : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, (sqlite3_int64)limit);
    return list_rows(s, q, limit, "listing a view", docs, n, err);
}

/* Snapshots as documents, by key (the table's primary key). */
store_status sqlite_snapshot_list(store *st, const char *after, size_t limit, store_view_doc **docs,
                                  size_t *n, char **err) {
    if (st->damaged) return sqlite_damaged((sqlite_store *)st, err);
    sqlite_store *s = (sqlite_store *)st;
    const char *why;
    *docs = NULL;
    *n = 0;
    if (after != NULL && (why = store_check_text(after, false)) != NULL)
        return store_fail(err, STORE_INVALID, "key %s", why);
    if (limit < 1 || limit > 100000)
        return store_fail(err, STORE_INVALID, "snapshot list limit must be 1 to 100000");
    sqlite3_stmt *q = s->q[Q_SNAP_LIST];
    sqlite3_bind_text(q, 1, after != NULL ? after : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, (sqlite3_int64)limit);
    return list_rows(s, q, limit, "listing snapshots", docs, n, err);
}

/* ------------------------------------------------------------------ */
/* Transactions                                                        */

store_status sqlite_begin(store *st, char **err) {
    if (st->damaged) return sqlite_damaged((sqlite_store *)st, err);
    sqlite_store *s = (sqlite_store *)st;
    if (s->txn) return store_fail(err, STORE_INVALID, "a transaction is already open");
    int rc = sqlite_run(s->q[Q_BEGIN]);
    if (rc != SQLITE_DONE) return sqlite_db_fail(s, rc, err, "beginning a transaction");
    s->txn = true;
    s->txn_appended = false;
    return STORE_OK;
}

store_status sqlite_commit(store *st, char **err) {
    sqlite_store *s = (sqlite_store *)st;
    if (!s->txn) return store_fail(err, STORE_INVALID, "no transaction is open");
    s->txn = false;
    if (s->base.damaged) {
        if (!sqlite3_get_autocommit(s->db)) sqlite_run(s->q[Q_ROLLBACK]);
        sqlite_settle_subs(s, false);
        return sqlite_damaged(s, err);
    }
    if (sqlite3_get_autocommit(s->db)) {
        sqlite_settle_subs(s, false);
        return store_fail(err, STORE_IO,
                          "sqlite: the transaction was rolled back by an "
                          "earlier error; nothing of it was committed");
    }
    int rc = sqlite_run(s->q[Q_COMMIT]);
    if (rc != SQLITE_DONE) {
        store_status status = sqlite_db_fail(s, rc, err, "committing a transaction");
        if (!sqlite3_get_autocommit(s->db)) sqlite_run(s->q[Q_ROLLBACK]);
        sqlite_settle_subs(s, false);
        return status;
    }
    sqlite_settle_subs(s, true);
    if (s->txn_appended) sqlite_wake_all();
    return STORE_OK;
}

void sqlite_rollback(store *st) {
    sqlite_store *s = (sqlite_store *)st;
    if (!s->txn) return;
    s->txn = false;
    if (!sqlite3_get_autocommit(s->db)) sqlite_run(s->q[Q_ROLLBACK]);
    sqlite_settle_subs(s, false);
}
