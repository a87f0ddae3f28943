/*
 * sqlite_read.c - cursors of the embedded store: pages of rows read
 * between exclusive revision bounds, holding no statement or transaction
 * between calls, and the buffered rows subscriptions reuse.
 */
#include "sqlite_store.h"

/* ------------------------------------------------------------------ */
/* Reads                                                               */

/* Turns the options into exclusive bounds, lo < revision < hi, so a page
 * can resume after the last revision it saw with the same statement. Every
 * stored revision is 26 valid characters, so "> prev(R)" is ">= R" and
 * "< next(R)" is "<= R"; "0" and "Z" are below and above them all. */
static void bounds(const store_read_opts *o, char lo[STORE_REVISION_SIZE],
                   char hi[STORE_REVISION_SIZE]) {
    const char *from = o->from != NULL ? o->from : STORE_START;
    const char *to = o->to != NULL ? o->to : STORE_END;
    if (o->from_exclusive || !revision_valid(from))
        sqlite_copy_revision(lo, (const unsigned char *)from);
    else if (!revision_prev(from, lo))
        sqlite_copy_revision(lo, (const unsigned char *)STORE_START);
    if (o->to_exclusive || !revision_valid(to))
        sqlite_copy_revision(hi, (const unsigned char *)to);
    else if (!revision_next(to, hi))
        sqlite_copy_revision(hi, (const unsigned char *)STORE_END);
}

const char *sqlite_column(sqlite3_stmt *q, int i, size_t *len) {
    const char *t = (const char *)sqlite3_column_text(q, i);
    *len = t != NULL ? (size_t)sqlite3_column_bytes(q, i) : 0;
    return t != NULL ? t : "";
}

/* Appends n bytes and a NUL to the text; returns the offset, or SIZE_MAX
 * when out of memory. */
static size_t put_text(textbuf *b, const char *t, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap > 0 ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->data, cap);
        if (p == NULL) return SIZE_MAX;
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
bool sqlite_keep_event(textbuf *b, row *r, const store_event *ev) {
    r->key = put_text(b, ev->key, strlen(ev->key));
    r->type = put_text(b, ev->type, strlen(ev->type));
    r->data = put_text(b, ev->data, ev->data_len);
    r->data_len = ev->data_len;
    r->has_corr = ev->correlation_id != NULL;
    r->corr = r->has_corr ? put_text(b, ev->correlation_id, strlen(ev->correlation_id)) : 0;
    r->more = ev->more;
    memcpy(r->revision, ev->revision, sizeof r->revision);
    memcpy(r->committed_at, ev->committed_at, sizeof r->committed_at);
    return r->key != SIZE_MAX && r->type != SIZE_MAX && r->data != SIZE_MAX && r->corr != SIZE_MAX;
}

/* The event a kept row stands for, pointing into its text. */
void sqlite_row_event(const textbuf *b, const row *r, store_event *ev) {
    ev->key = b->data + r->key;
    ev->type = b->data + r->type;
    ev->data = b->data + r->data;
    ev->data_len = r->data_len;
    ev->correlation_id = r->has_corr ? b->data + r->corr : NULL;
    ev->more = r->more;
    memcpy(ev->revision, r->revision, sizeof ev->revision);
    memcpy(ev->committed_at, r->committed_at, sizeof ev->committed_at);
}

/* Reads the next page: up to PAGE_ROWS rows after the last one seen,
 * keeping those that match the filter. The statement is reset before
 * returning, so no read transaction stays open between pages and appends
 * on the same handle can run while the cursor is alive. */
static store_status fill(store_cursor *c, char **err) {
    sqlite_store *s = c->s;
    sqlite3_stmt *q = s->q[c->key != NULL ? (c->backward ? Q_KEY_BACK : Q_KEY_FWD)
                                          : (c->backward ? Q_ALL_BACK : Q_ALL_FWD)];
    int64_t want = PAGE_ROWS;
    if (c->filter == NULL && c->remaining >= 0 && c->remaining < want) want = c->remaining;
    sqlite3_bind_text(q, 1, c->lo, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, c->hi, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, want);
    if (c->key != NULL) sqlite3_bind_text(q, 4, c->key, -1, SQLITE_STATIC);

    c->nrows = c->pos = 0;
    c->text.len = 0;
    int64_t scanned = 0;
    store_event ev;
    char last[STORE_REVISION_SIZE] = "";
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        size_t ignored, at_len;
        scanned++;
        sqlite_copy_revision(ev.revision, sqlite3_column_text(q, 0));
        memcpy(last, ev.revision, sizeof last);
        /* A key's read knows its key: one column fewer to fetch per row. */
        ev.key = c->key != NULL ? c->key : sqlite_column(q, 1, &ignored);
        ev.type = sqlite_column(q, 2, &ignored);
        ev.data = sqlite_column(q, 3, &ev.data_len);
        ev.correlation_id =
            sqlite3_column_type(q, 4) == SQLITE_NULL ? NULL : sqlite_column(q, 4, &ignored);
        const char *at = sqlite_column(q, 5, &at_len);
        if (at_len >= STORE_TIMESTAMP_SIZE) at_len = STORE_TIMESTAMP_SIZE - 1;
        memcpy(ev.committed_at, at, at_len);
        ev.committed_at[at_len] = '\0';
        /* Only reads of every key select it (the key index does not cover
         * it, and per-key reads stay one index scan). */
        ev.more = c->key == NULL ? (size_t)sqlite3_column_int64(q, 6) : 0;
        if (!filter_match(c->filter, &ev)) continue;

        if (!sqlite_keep_event(&c->text, &c->rows[c->nrows], &ev)) {
            sqlite3_reset(q);
            c->nrows = 0;
            return store_fail(err, STORE_NOMEM, "sqlite: out of memory reading events");
        }
        c->nrows++;
        if ((c->remaining >= 0 && (int64_t)c->nrows >= c->remaining) || c->text.len >= PAGE_BYTES)
            break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        store_status status = sqlite_db_fail(s, rc, err, "reading events");
        sqlite3_reset(q);
        c->nrows = 0;
        return status;
    }
    sqlite3_reset(q);
    c->drained = rc == SQLITE_DONE && scanned < want;
    if (scanned > 0) memcpy(c->backward ? c->hi : c->lo, last, sizeof last);
    return STORE_OK;
}

void sqlite_cursor_close(store_cursor *c) {
    if (c == NULL) return;
    free(c->key);
    filter_free(c->filter);
    free(c->rows);
    free(c->text.data);
    free(c);
}

store_status sqlite_read(store *st, const char *key, const store_read_opts *opts,
                         store_cursor **out, char **err) {
    if (st->damaged) return sqlite_damaged((sqlite_store *)st, err);
    static const store_read_opts defaults = {NULL, false, NULL, false, -1, false, NULL};
    store_status status;
    store_cursor *c = NULL;
    const char *why;
    *out = NULL;
    if (opts == NULL) opts = &defaults;

    if (key != NULL && (why = store_check_text(key, false)) != NULL)
        return store_fail(err, STORE_INVALID, "key %s", why);
    if ((status = store_check_read(opts, err)) != STORE_OK) return status;

    if ((c = calloc(1, sizeof *c)) == NULL || (key != NULL && (c->key = strdup(key)) == NULL) ||
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
    return store_fail(err, STORE_NOMEM, "sqlite: out of memory opening a cursor");
}

store_status sqlite_next(store_cursor *c, const store_event **ev, char **err) {
    if (c->s->base.damaged) return sqlite_damaged(c->s, err);
    *ev = NULL;
    while (c->pos == c->nrows) {
        if (c->drained || c->remaining == 0) return STORE_OK;
        store_status status = fill(c, err);
        if (status != STORE_OK) return status;
    }
    sqlite_row_event(&c->text, &c->rows[c->pos++], &c->ev);
    if (c->remaining > 0) c->remaining--;
    *ev = &c->ev;
    return STORE_OK;
}
