/*
 * sqlite_sub.c - subscriptions of the embedded store: a position that is
 * one revision, polls that wait on the process's commits and on
 * PRAGMA data_version, and fenced, durable checkpoints.
 */
#include "sqlite_store.h"

/* ------------------------------------------------------------------ */
/* Subscriptions                                                       */

void sqlite_sub_close(store_sub *sub) {
    if (sub == NULL) return;
    if (sub->name != NULL && sub->lease.io != NULL) lease_release(&sub->lease);
    if (sub->s != NULL) {
        store_sub **pp = &sub->s->subs;
        while (*pp != NULL && *pp != sub) pp = &(*pp)->next;
        if (*pp != NULL) *pp = sub->next;
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
static int stored_checkpoint(sqlite_store *s, const char *name, char out[STORE_REVISION_SIZE]) {
    sqlite3_stmt *q = s->q[Q_SUB_GET];
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    sqlite_copy_revision(out, NULL);
    return sqlite_step_revision(q, out);
}

/* Puts the subscription where a consumer of its name starts now: after the
 * stored checkpoint, else at its start (the end of the store, for "Z"). */
static store_status rewind_sub(store_sub *sub, char **err) {
    sqlite_store *s = sub->s;
    int rc;
    if (sub->name != NULL && (rc = stored_checkpoint(s, sub->name, sub->known)) != SQLITE_DONE)
        return sqlite_db_fail(s, rc, err, "reading a checkpoint");
    if (strcmp(sub->known, STORE_START) != 0) {
        memcpy(sub->at, sub->known, sizeof sub->at);
    } else if (strcmp(sub->start, STORE_END) == 0) {
        if ((rc = sqlite_max_revision(s, NULL, sub->at)) != SQLITE_DONE)
            return sqlite_db_fail(s, rc, err, "reading the last revision");
    } else {
        memcpy(sub->at, sub->start, sizeof sub->at);
    }
    memcpy(sub->committed, sub->known, sizeof sub->committed);
    sub->nrows = 0;
    return STORE_OK;
}

/* lease.h's steps on the leases table, each one autocommit statement. */
static store_status lease_get(void *ctx, lease_record *out, char **err) {
    store_sub *sub = ctx;
    sqlite3_stmt *q = sub->s->q[Q_LEASE_GET];
    memset(out, 0, sizeof *out);
    sqlite3_bind_text(q, 1, sub->name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        const unsigned char *h = sqlite3_column_text(q, 0);
        out->found = true;
        snprintf(out->holder, sizeof out->holder, "%s", h != NULL ? (const char *)h : "");
        out->beat = sqlite3_column_int64(q, 1);
        out->lease_ms = sqlite3_column_int64(q, 2);
        rc = SQLITE_DONE;
    }
    if (rc != SQLITE_DONE) {
        store_status status = sqlite_db_fail(sub->s, rc, err, "reading a lease");
        sqlite3_reset(q);
        return status;
    }
    sqlite3_reset(q);
    return STORE_OK;
}

/* Runs a lease write bound by the caller; *changed tells whether a row did. */
static store_status lease_write(store_sub *sub, sqlite3_stmt *q, bool *changed, char **err) {
    int rc = sqlite_run(q);
    if (rc != SQLITE_DONE) return sqlite_db_fail(sub->s, rc, err, "writing a lease");
    *changed = sqlite3_changes(sub->s->db) > 0;
    return STORE_OK;
}

static store_status lease_take(void *ctx, const lease_record *seen, const char *holder,
                               int64_t lease_ms, bool *won, char **err) {
    store_sub *sub = ctx;
    sqlite3_stmt *q = sub->s->q[Q_LEASE_TAKE];
    sqlite3_bind_text(q, 1, sub->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, holder, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, lease_ms);
    if (seen->found)
        sqlite3_bind_text(q, 4, seen->holder, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(q, 4);
    sqlite3_bind_int64(q, 5, seen->beat);
    return lease_write(sub, q, won, err);
}

static store_status lease_renew(void *ctx, const char *holder, int64_t lease_ms, bool *held,
                                char **err) {
    store_sub *sub = ctx;
    sqlite3_stmt *q = sub->s->q[Q_LEASE_RENEW];
    sqlite3_bind_text(q, 1, sub->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, holder, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, lease_ms);
    return lease_write(sub, q, held, err);
}

static store_status lease_free(void *ctx, const char *holder, char **err) {
    store_sub *sub = ctx;
    bool changed;
    sqlite3_stmt *q = sub->s->q[Q_LEASE_RELEASE];
    sqlite3_bind_text(q, 1, sub->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, holder, -1, SQLITE_STATIC);
    return lease_write(sub, q, &changed, err);
}

static const lease_io sqlite_lease_io = {lease_get, lease_take, lease_renew, lease_free};

/* Whether a named subscription may be handed events now (lease_hold); one
 * that has just taken the lease over starts from the stored checkpoint.
 * Inside the caller's transaction the lease is left as it is: a write
 * there would commit or roll back with the caller's. */
static store_status hold(store_sub *sub, bool *held, char **err) {
    bool taken = false;
    store_status status = STORE_OK;
    *held = true;
    if (sub->name == NULL) return STORE_OK;
    if (sub->s->txn) {
        *held = sub->lease.mine[0] != '\0';
        return STORE_OK;
    }
    status = lease_hold(&sub->lease, held, &taken, err);
    if (status == STORE_OK && taken) status = rewind_sub(sub, err);
    return status;
}

bool sqlite_sub_active(store_sub *sub) { return sub->name == NULL || sub->lease.mine[0] != '\0'; }

/* Unlike a poll's, this renewal is written inside the caller's
 * transaction too (a projection's batch runs in one): a standby cannot
 * take the lease before that commits anyway, since the transaction holds
 * the write lock, and at the commit it sees the new beat. */
store_status sqlite_sub_renew(store_sub *sub, bool *held, char **err) {
    store_status status;
    *held = true;
    if (sub->s->base.damaged) return sqlite_damaged(sub->s, err);
    if (sub->name == NULL) return STORE_OK;
    if ((status = sqlite_txn_alive(sub->s, err)) != STORE_OK) return status;
    return lease_keep(&sub->lease, held, err);
}

/* A commit makes the checkpoints acked inside the transaction the known
 * ones; a rollback forgets them, so the fence compares against what is
 * really stored, and leaves the holders unsure of their leases, since a
 * renewal may have gone with it (their next poll asks the store). */
void sqlite_settle_subs(sqlite_store *s, bool committed) {
    for (store_sub *sub = s->subs; sub != NULL; sub = sub->next) {
        if (committed) {
            memcpy(sub->committed, sub->known, sizeof sub->committed);
        } else {
            memcpy(sub->known, sub->committed, sizeof sub->known);
            if (sub->name != NULL) lease_doubt(&sub->lease);
        }
    }
}

store_status sqlite_subscribe(store *st, const char *name, const store_sub_opts *opts,
                              store_sub **out, char **err) {
    if (st->damaged) return sqlite_damaged((sqlite_store *)st, err);
    static const store_sub_opts defaults = {0};
    sqlite_store *s = (sqlite_store *)st;
    store_status status = STORE_NOMEM;
    store_sub *sub = NULL;
    *out = NULL;
    if (opts == NULL) opts = &defaults;
    if ((status = store_check_subscription(name, opts, err)) != STORE_OK ||
        (status = lease_check(opts->lease_ms, err)) != STORE_OK)
        return status;

    if ((sub = calloc(1, sizeof *sub)) == NULL ||
        (name != NULL && (sub->name = strdup(name)) == NULL) ||
        filter_copy(opts->filter, &sub->filter) != STORE_OK)
        goto fail;
    sub->s = s;
    sub->next = s->subs; /* linked first, so sqlite_sub_close can unlink it */
    s->subs = sub;
    lease_init(&sub->lease, &sqlite_lease_io, sub, &s->base.env, opts->lease_ms);
    sqlite_copy_revision(sub->start,
                         (const unsigned char *)(opts->start != NULL ? opts->start : STORE_START));
    sqlite_copy_revision(sub->known, NULL);
    if ((status = pattern_copy(opts->keys, opts->nkeys, "key", &sub->keys, &sub->nkeys, err)) !=
            STORE_OK ||
        (status = pattern_copy(opts->types, opts->ntypes, "type", &sub->types, &sub->ntypes,
                               err)) != STORE_OK)
        goto fail_reported;
    /* The lease first, so the checkpoint read after it is the last one a
     * former holder could write. */
    bool held = false;
    if (sub->name != NULL && !s->txn &&
        (status = opts->nowait ? lease_claim(&sub->lease, sub->name, err)
                               : hold(sub, &held, err)) != STORE_OK)
        goto fail_reported;
    if ((status = rewind_sub(sub, err)) != STORE_OK) goto fail_reported;
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

static bool sub_matches(const store_sub *sub, const store_event *ev) {
    return pattern_match_any((const char *const *)sub->keys, sub->nkeys, ev->key) &&
           pattern_match_any((const char *const *)sub->types, sub->ntypes, ev->type) &&
           filter_match(sub->filter, ev);
}

/* Reads on from sub->at through an ordinary cursor (a page at a time, no
 * read transaction held between pages), keeping up to max matching events
 * in sub->events; sub->at follows every event looked at, matching or not.
 * On failure it hands out nothing and puts sub->at back, so the next poll
 * looks at the same events again. */
static store_status scan(store_sub *sub, size_t max, char **err) {
    char from[STORE_REVISION_SIZE];
    store_read_opts o = {from, true, NULL, false, -1, false, NULL};
    store_cursor *c = NULL;
    const store_event *ev;
    store_status status;

    memcpy(from, sub->at, sizeof from);
    sub->nrows = 0;
    sub->text.len = 0;
    if ((status = sqlite_read(&sub->s->base, NULL, &o, &c, err)) != STORE_OK) return status;
    while ((status = sqlite_next(c, &ev, err)) == STORE_OK && ev != NULL) {
        if (sub_matches(sub, ev)) {
            if (sub->nrows == sub->rows_cap) {
                size_t cap = sub->rows_cap > 0 ? sub->rows_cap * 2 : 64;
                row *rows = realloc(sub->rows, cap * sizeof *rows);
                if (rows == NULL) goto nomem;
                sub->rows = rows;
                sub->rows_cap = cap;
            }
            if (!sqlite_keep_event(&sub->text, &sub->rows[sub->nrows], ev)) goto nomem;
            sub->nrows++;
        }
        memcpy(sub->at, ev->revision, sizeof sub->at);
        if (sub->nrows == max) break;
    }
    sqlite_cursor_close(c);
    c = NULL;
    if (status != STORE_OK) goto failed;

    /* The text is complete, so the events can point into it. */
    free(sub->events);
    sub->events = NULL;
    if (sub->nrows > 0 && (sub->events = malloc(sub->nrows * sizeof *sub->events)) == NULL)
        goto nomem;
    for (size_t i = 0; i < sub->nrows; i++)
        sqlite_row_event(&sub->text, &sub->rows[i], &sub->events[i]);
    return STORE_OK;

nomem:
    sqlite_cursor_close(c);
    status = store_fail(err, STORE_NOMEM, "sqlite: out of memory polling a subscription");
failed:
    sub->nrows = 0;
    memcpy(sub->at, from, sizeof sub->at);
    return status;
}

static int data_version(sqlite_store *s, int64_t *out) {
    sqlite3_stmt *q = s->q[Q_DATA_VERSION];
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(q, 0);
        rc = SQLITE_DONE;
    }
    sqlite3_reset(q);
    return rc;
}

store_status sqlite_poll(store_sub *sub, int64_t timeout_ms, size_t max, const store_event **events,
                         size_t *count, char position[STORE_REVISION_SIZE], char **err) {
    if (sub->s->base.damaged) return sqlite_damaged(sub->s, err);
    sqlite_store *s = sub->s;
    store_status status;
    int rc;
    *events = NULL;
    *count = 0;
    memcpy(position, sub->at, STORE_REVISION_SIZE);
    if (max == 0) return store_fail(err, STORE_INVALID, "poll: max must be at least 1");
    if (timeout_ms > 0 && s->txn)
        return store_fail(err, STORE_INVALID,
                          "poll: cannot wait inside a transaction "
                          "(it holds the write lock)");

    int64_t deadline = sqlite_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        /* Both marks are taken before the scan, so a commit that lands
         * while it runs still ends the wait that follows. */
        uint64_t seen = sqlite_wake_generation();
        int64_t version = 0, now_version = 0;
        bool held;
        if ((rc = data_version(s, &version)) != SQLITE_DONE)
            return sqlite_db_fail(s, rc, err, "polling a subscription");
        if ((status = hold(sub, &held, err)) != STORE_OK) return status;
        if (held && (status = scan(sub, max, err)) != STORE_OK) return status;
        /* The scan may have taken a while: hand the batch out only while
         * the lease still holds (renewed if a third of it has gone). */
        if (held && sub->nrows > 0 && (status = hold(sub, &held, err)) != STORE_OK) return status;
        if (held && sub->nrows > 0) break;
        sub->nrows = 0;
        /* Back to the lease at least this often: a holder renews, a
         * standby looks for its chance. */
        int64_t look = sqlite_mono_ms() + lease_wait_ms(&sub->lease);
        for (;;) {
            int64_t now = sqlite_mono_ms(), left = deadline - now;
            if (left <= 0) goto done;
            if (now >= look) break;
            if (sqlite_wake_wait(seen, left < WAKE_CHECK_MS ? left : WAKE_CHECK_MS)) break;
            if ((rc = data_version(s, &now_version)) != SQLITE_DONE)
                return sqlite_db_fail(s, rc, err, "polling a subscription");
            if (now_version != version) break;
        }
    }

done:
    *events = sub->events;
    *count = sub->nrows;
    memcpy(position, sub->at, STORE_REVISION_SIZE);
    return STORE_OK;
}

store_status sqlite_ack(store_sub *sub, const char *revision, bool *acked, char **err) {
    if (sub->s->base.damaged) return sqlite_damaged(sub->s, err);
    sqlite_store *s = sub->s;
    store_status status;
    *acked = false;
    if ((status = store_check_revision("ack:", revision, false, err)) != STORE_OK) return status;
    /* Never backwards: acking what is already acknowledged writes nothing. */
    if (strcmp(revision, sub->known) <= 0) {
        *acked = true;
        return STORE_OK;
    }
    if (sub->name != NULL) {
        if ((status = sqlite_txn_alive(s, err)) != STORE_OK) return status;
        if (sub->lease.mine[0] == '\0') return STORE_OK; /* a standby acks nothing */
        bool first = strcmp(sub->known, STORE_START) == 0;
        sqlite3_stmt *q = s->q[first ? Q_SUB_INSERT : Q_SUB_UPDATE];
        sqlite3_bind_text(q, 1, sub->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, 2, revision, -1, SQLITE_STATIC);
        if (!first) sqlite3_bind_text(q, 3, sub->known, -1, SQLITE_STATIC);
        sqlite3_bind_text(q, first ? 3 : 4, sub->lease.mine, -1, SQLITE_STATIC);
        int rc = sqlite_run(q);
        if (rc != SQLITE_DONE) return sqlite_db_fail(s, rc, err, "storing a checkpoint");
        if (sqlite3_changes(s->db) == 0) {
            /* Another consumer took the lease or moved the checkpoint:
             * start again from where it left things, rather than apply
             * what it has applied, and ask the store about the lease at
             * the next poll. */
            lease_doubt(&sub->lease);
            return rewind_sub(sub, err);
        }
    }
    sqlite_copy_revision(sub->known, (const unsigned char *)revision);
    if (!s->txn) memcpy(sub->committed, sub->known, sizeof sub->committed);
    if (strcmp(revision, sub->at) > 0) memcpy(sub->at, sub->known, sizeof sub->at);
    *acked = true;
    return STORE_OK;
}

store_status sqlite_checkpoint(store_sub *sub, char out[STORE_REVISION_SIZE], char **err) {
    if (sub->s->base.damaged) return sqlite_damaged(sub->s, err);
    if (sub->name == NULL) {
        memcpy(out, sub->known, STORE_REVISION_SIZE);
        return STORE_OK;
    }
    int rc = stored_checkpoint(sub->s, sub->name, out);
    if (rc != SQLITE_DONE) return sqlite_db_fail(sub->s, rc, err, "reading a checkpoint");
    return STORE_OK;
}

store_status sqlite_sub_reset(store *st, const char *name, char **err) {
    if (st->damaged) return sqlite_damaged((sqlite_store *)st, err);
    sqlite_store *s = (sqlite_store *)st;
    store_status status;
    const char *why = store_check_text(name, false);
    if (why != NULL) return store_fail(err, STORE_INVALID, "subscription name %s", why);
    if ((status = sqlite_txn_alive(s, err)) != STORE_OK) return status;
    sqlite3_stmt *q = s->q[Q_SUB_RESET];
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite_run(q);
    if (rc != SQLITE_DONE) return sqlite_db_fail(s, rc, err, "resetting a subscription");
    return STORE_OK;
}
