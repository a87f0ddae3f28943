/*
 * sqlite_import.c - import for the embedded store: events copied from
 * another store, written as they are (store.h, "Copying").
 *
 * Provides sqlite_import. Uses sqlite_store.h. One call is one BEGIN
 * IMMEDIATE transaction, so every append in it commits with the rest or
 * not at all, and a copy killed at any moment leaves whole calls: the
 * store's last revision is then the end of the last one committed. Each
 * event is an INSERT that does nothing when the revision is there already
 * (the copy repeating itself after a crash); the key of what is there is
 * then checked, since a revision held by another key means the two stores
 * are not what the caller thinks. The append grouping goes in the `more`
 * column. Nothing is numbered, so the clock is not read.
 */
#include "sqlite_store.h"

/* What append checks, for one event given whole. */
static store_status check_event(const store_event *e, const char *prev, char **err) {
    const char *why;
    if ((why = store_check_text(e->key, false)) != NULL)
        return store_fail(err, STORE_INVALID, "sqlite: import: event %s: key %s", e->revision, why);
    if (!revision_valid(e->revision))
        return store_fail(err, STORE_INVALID, "sqlite: import: \"%s\" is not a revision",
                          e->revision);
    if (prev != NULL && strcmp(prev, e->revision) >= 0)
        return store_fail(err, STORE_INVALID,
                          "sqlite: import: revision %s does not "
                          "follow %s: events must come in increasing revision order",
                          e->revision, prev);
    if ((why = store_check_text(e->type, false)) != NULL)
        return store_fail(err, STORE_INVALID, "sqlite: import: event %s: type %s", e->revision,
                          why);
    if (e->correlation_id != NULL && (why = store_check_text(e->correlation_id, false)))
        return store_fail(err, STORE_INVALID, "sqlite: import: event %s: correlation_id %s",
                          e->revision, why);
    if (e->data == NULL || e->data_len == 0)
        return store_fail(err, STORE_INVALID, "sqlite: import: event %s: data is empty",
                          e->revision);
    if (e->data_len > STORE_MAX_EVENT_BYTES)
        return store_fail(err, STORE_LIMIT,
                          "sqlite: import: event %s: data is %zu bytes, "
                          "over the %u-byte limit",
                          e->revision, e->data_len, STORE_MAX_EVENT_BYTES);
    if (strlen(e->committed_at) != STORE_TIMESTAMP_SIZE - 1)
        return store_fail(err, STORE_INVALID,
                          "sqlite: import: event %s: committed_at "
                          "\"%s\" is not an ISO-8601 UTC time with milliseconds",
                          e->revision, e->committed_at);
    return STORE_OK;
}

/* Inserts one event, or finds it there; *fresh says which. */
static int put(sqlite3_stmt *ins, sqlite3_stmt *key_of, const store_event *e, bool *fresh,
               bool *clash) {
    int rc;
    *clash = false;
    if ((rc = sqlite3_bind_text(ins, 1, e->revision, -1, SQLITE_STATIC)) != SQLITE_OK ||
        (rc = sqlite3_bind_text(ins, 2, e->key, -1, SQLITE_STATIC)) != SQLITE_OK ||
        (rc = sqlite3_bind_text(ins, 3, e->type, -1, SQLITE_STATIC)) != SQLITE_OK ||
        (rc = sqlite3_bind_text(ins, 4, e->data, (int)e->data_len, SQLITE_STATIC)) != SQLITE_OK ||
        (rc = e->correlation_id != NULL
                  ? sqlite3_bind_text(ins, 5, e->correlation_id, -1, SQLITE_STATIC)
                  : sqlite3_bind_null(ins, 5)) != SQLITE_OK ||
        (rc = sqlite3_bind_text(ins, 6, e->committed_at, -1, SQLITE_STATIC)) != SQLITE_OK ||
        (rc = e->more > 0 ? sqlite3_bind_int64(ins, 7, (sqlite3_int64)e->more)
                          : sqlite3_bind_null(ins, 7)) != SQLITE_OK ||
        (rc = sqlite_run(ins)) != SQLITE_DONE)
        return rc;
    *fresh = sqlite3_changes(sqlite3_db_handle(ins)) > 0;
    if (*fresh) return SQLITE_DONE;
    sqlite3_bind_text(key_of, 1, e->revision, -1, SQLITE_STATIC);
    if ((rc = sqlite3_step(key_of)) == SQLITE_ROW) {
        const char *held = (const char *)sqlite3_column_text(key_of, 0);
        *clash = held == NULL || strcmp(held, e->key) != 0;
        rc = SQLITE_DONE;
    }
    sqlite3_reset(key_of);
    return rc;
}

store_status sqlite_import(store *st, const store_event *events, size_t count,
                           store_import_result *r, char **err) {
    sqlite_store *s = (sqlite_store *)st;
    sqlite3_stmt *ins = NULL, *key_of = NULL;
    store_status status = STORE_OK;
    const char *doing = "preparing the import";
    size_t i = 0;
    int rc;

    memset(r, 0, sizeof *r);
    if (s->base.damaged) return sqlite_damaged(s, err);
    if (s->txn)
        return store_fail(err, STORE_INVALID,
                          "sqlite: import inside a transaction: "
                          "commit or roll back first");
    for (i = 0; i < count; i++)
        if ((status = check_event(&events[i], i > 0 ? events[i - 1].revision : NULL, err)) !=
            STORE_OK)
            return status;
    if (count == 0) return STORE_OK;

    if ((rc = sqlite3_prepare_v2(s->db,
                                 "INSERT INTO events (revision, key, type, data, correlation_id,"
                                 " committed_at, more) VALUES"
                                 " (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (revision) DO"
                                 " NOTHING",
                                 -1, &ins, NULL)) != SQLITE_OK ||
        (rc = sqlite3_prepare_v2(s->db, "SELECT key FROM events WHERE revision = ?1", -1, &key_of,
                                 NULL)) != SQLITE_OK)
        goto failed;
    doing = "beginning the import";
    if ((rc = sqlite_run(s->q[Q_BEGIN])) != SQLITE_DONE) goto failed;
    doing = "importing an event";
    for (i = 0; i < count; i++) {
        bool fresh = false, clash = false;
        if ((rc = put(ins, key_of, &events[i], &fresh, &clash)) != SQLITE_DONE) goto failed;
        if (clash) {
            status = store_fail(err, STORE_INVALID,
                                "sqlite: import: revision %s is held by "
                                "another key than \"%s\"; nothing imported",
                                events[i].revision, events[i].key);
            sqlite_run(s->q[Q_ROLLBACK]);
            goto done;
        }
        if (fresh)
            r->imported++;
        else
            r->present++;
    }
    doing = "committing the import";
    if ((rc = sqlite_run(s->q[Q_COMMIT])) != SQLITE_DONE) goto failed;
    r->writes = 1;
    if (r->imported > 0) sqlite_wake_all();
    goto done;

failed:
    status = sqlite_db_fail(s, rc, err, doing);
    if (!sqlite3_get_autocommit(s->db)) sqlite_run(s->q[Q_ROLLBACK]);
    memset(r, 0, sizeof *r);
done:
    sqlite3_finalize(ins);
    sqlite3_finalize(key_of);
    return status;
}
