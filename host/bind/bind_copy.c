/*
 * bind_copy.c - what `aeon-host store copy` and `store verify` (aeon.cli.copy)
 * need from C: batches of events held in C memory, filled from a store's
 * read of every key or from an export file, written to a store (import) or
 * to an export file, and shown to Lua one event at a time for comparing.
 *
 *   aeon.core.batch()                     -> an empty batch
 *   batch:read(store, after, to, max)     -> count | nil, message
 *   batch:read_ndjson(file, line, max [, snapshots])
 *                                         -> count, next line | nil, message
 *   batch:write_ndjson(file [, only])     -> true | nil, message
 *   batch:import(store)                   -> { imported, present, writes, split }
 *                                            | nil, message
 *   batch:count(), batch:last()           -> events held; the last revision
 *   batch:event(i)                        -> { key, revision, type, data, ... }
 *   batch:list_snapshots(store, after, max, upto),
 *     batch:save_snapshots(store [, only]), batch:snapshot_count(),
 *     batch:snapshot(i)                   -> { key, revision, state }
 *   batch:tail_ndjson(path), batch:find(rev), batch:drop_through(rev)
 *   aeon.core.sha256(text)                -> 64 hex digits
 *
 * Event data never becomes a Lua table here: Lua tables cannot tell [] from
 * {} (both are an empty table), so a copy through them would not be exact.
 * Data read from a store is kept as the store's JSON text; an export file's
 * lines are parsed with jansson, which keeps integers (to 2^63-1) apart from
 * floats and reads floats exactly, and data is written back with 17
 * significant digits (every bit) and a '.' or exponent on every float.
 * batch:event gives data in a canonical form (object keys sorted), so data
 * read from two backends compares as text. Uses store.h, revision.h, json.h
 * (string literals), jansson and OpenSSL's SHA-256.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>
#include <openssl/sha.h>
#include <unistd.h>

#include "bind.h"
#include "json.h"
#include "revision.h"
#include "store.h"

#define BATCH_MT "aeon.batch"

/* How export data and canonical data are written: floats with every bit
 * and always a '.' or exponent (jansson adds ".0"), integers as digits. */
#define DUMP_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17))

/* A key's snapshot on its way. */
typedef struct snap {
    char *key;                          /* malloc'd */
    char revision[STORE_REVISION_SIZE]; /* what it folds in */
    char *state;                        /* JSON text, malloc'd */
    size_t state_len;                   /* bytes in state */
} snap;

/* A batch: events and snapshots whose strings it owns (each malloc'd). */
typedef struct batch {
    store_event *ev; /* the events, in the order read */
    size_t n;        /* events held */
    size_t cap;      /* events allocated */
    snap *snaps;     /* snapshots, after the events */
    size_t nsnaps;   /* snapshots held */
    size_t snapcap;  /* snapshots allocated */
} batch;

static batch *check_batch(lua_State *L, int idx) { return luaL_checkudata(L, idx, BATCH_MT); }

static void free_event(store_event *e) {
    free((char *)e->key);
    free((char *)e->type);
    free((char *)e->data);
    free((char *)e->correlation_id);
}

static void clear_snaps(batch *b) {
    for (size_t i = 0; i < b->nsnaps; i++) {
        free(b->snaps[i].key);
        free(b->snaps[i].state);
    }
    b->nsnaps = 0;
}

static void clear(batch *b) {
    for (size_t i = 0; i < b->n; i++) free_event(&b->ev[i]);
    b->n = 0;
    clear_snaps(b);
}

/* Takes over key and state (freed when out of memory). */
static bool add_snap(batch *b, char *key, const char *revision, char *state, size_t len) {
    if (b->nsnaps == b->snapcap) {
        size_t cap = b->snapcap ? b->snapcap * 2 : 64;
        snap *p = key && state ? realloc(b->snaps, cap * sizeof *p) : NULL;
        if (!p) {
            free(key);
            free(state);
            return false;
        }
        b->snaps = p;
        b->snapcap = cap;
    }
    snap *sn = &b->snaps[b->nsnaps++];
    sn->key = key;
    snprintf(sn->revision, sizeof sn->revision, "%s", revision);
    sn->state = state;
    sn->state_len = len;
    return true;
}

static int batch_gc(lua_State *L) {
    batch *b = check_batch(L, 1);
    clear(b);
    free(b->ev);
    free(b->snaps);
    b->ev = NULL;
    b->snaps = NULL;
    b->cap = b->snapcap = 0;
    return 0;
}

static char *copy_text(const char *s, size_t len) {
    char *p = malloc(len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = 0;
    }
    return p;
}

/* JSON text in a canonical form (keys sorted, floats with every bit), so
 * the same value read from two backends is the same string: malloc'd, or
 * NULL with je set. */
static char *canonical(const char *text, size_t len, json_error_t *je) {
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, je);
    char *canon = v ? json_dumps(v, DUMP_FLAGS | JSON_SORT_KEYS) : NULL;
    if (v && !canon) snprintf(je->text, sizeof je->text, "out of memory");
    json_decref(v);
    return canon;
}

/* Appends a copy of ev; the data, when `data` is not NULL, is taken over
 * (malloc'd, data_len bytes) rather than copied. Returns false when out of
 * memory, with nothing added (and `data` freed). */
static bool add(batch *b, const store_event *ev, char *data) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        store_event *p = realloc(b->ev, cap * sizeof *p);
        if (!p) {
            free(data);
            return false;
        }
        b->ev = p;
        b->cap = cap;
    }
    store_event *e = &b->ev[b->n];
    *e = *ev;
    e->key = copy_text(ev->key, strlen(ev->key));
    e->type = copy_text(ev->type, strlen(ev->type));
    e->data = data ? data : copy_text(ev->data, ev->data_len);
    e->correlation_id =
        ev->correlation_id ? copy_text(ev->correlation_id, strlen(ev->correlation_id)) : NULL;
    if (!e->key || !e->type || !e->data || (ev->correlation_id && !e->correlation_id)) {
        free_event(e);
        return false;
    }
    b->n++;
    return true;
}

/* ------------------------------------------------------------------ */
/* From and to stores                                                  */

/* batch:read(store, after, to, max [, at]): the events after `after` (at
 * it too when `at` is true) up to `to` (inclusive), at least `max` unless
 * the range ends first, and then on to the end of the append the last one
 * belongs to, so a batch holds whole appends. */
static int l_read(lua_State *L) {
    batch *b = check_batch(L, 1);
    store *s = bind_check_store(L, 2);
    const char *after = luaL_checkstring(L, 3), *to = luaL_checkstring(L, 4);
    lua_Integer max = luaL_checkinteger(L, 5);
    luaL_argcheck(L, revision_bound_valid(after), 3, "not a revision");
    luaL_argcheck(L, revision_bound_valid(to), 4, "not a revision");
    luaL_argcheck(L, max > 0, 5, "must be positive");
    clear(b);
    store_read_opts o = {.from = after,
                         .from_exclusive = !lua_toboolean(L, 6),
                         .to = to,
                         .limit = -1};
    store_cursor *c = NULL;
    char *err = NULL;
    store_status st = s->ops->read(s, NULL, &o, &c, &err);
    while (st == STORE_OK) {
        const store_event *ev = NULL;
        if ((st = s->ops->next(c, &ev, &err)) != STORE_OK || !ev) break;
        if (!add(b, ev, NULL)) {
            st = store_fail(&err, STORE_NOMEM, "out of memory");
            break;
        }
        if ((lua_Integer)b->n >= max && ev->more == 0) break;
    }
    s->ops->cursor_close(c);
    if (st != STORE_OK) {
        clear(b);
        return bind_fail(L, st, err);
    }
    lua_pushinteger(L, (lua_Integer)b->n);
    return 1;
}

/* batch:import(store): the events into a store, as they are. */
static int l_import(lua_State *L) {
    batch *b = check_batch(L, 1);
    store *s = bind_check_store(L, 2);
    if (!s->ops->import) return bind_unsupported(L, s, "importing events");
    store_import_result r = {0};
    char *err = NULL;
    store_status st = b->n ? s->ops->import(s, b->ev, b->n, &r, &err) : STORE_OK;
    if (st != STORE_OK) return bind_fail(L, st, err);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)r.imported);
    lua_setfield(L, -2, "imported");
    lua_pushinteger(L, (lua_Integer)r.present);
    lua_setfield(L, -2, "present");
    lua_pushinteger(L, (lua_Integer)r.writes);
    lua_setfield(L, -2, "writes");
    lua_pushinteger(L, (lua_Integer)r.split);
    lua_setfield(L, -2, "split");
    return 1;
}

/* batch:list_snapshots(store, after, max, upto): a page of the store's
 * snapshots (store_ops.snapshot_list: after key `after`, nil for the
 * first; at most max), in place of those the batch had, keeping those at
 * or below revision `upto` (what a copy has of the events). Returns how
 * many were listed, kept or not (fewer than max: the last page), and the
 * last key listed. */
static int l_list_snapshots(lua_State *L) {
    batch *b = check_batch(L, 1);
    store *s = bind_check_store(L, 2);
    const char *after = luaL_optstring(L, 3, NULL);
    lua_Integer max = luaL_checkinteger(L, 4);
    const char *upto = luaL_checkstring(L, 5);
    luaL_argcheck(L, max >= 1 && max <= 100000, 4, "must be 1 to 100000");
    if (!s->ops->snapshot_list) return bind_unsupported(L, s, "listing snapshots");
    clear_snaps(b);
    store_view_doc *docs = NULL;
    size_t n = 0;
    char *err = NULL;
    store_status st = s->ops->snapshot_list(s, after, (size_t)max, &docs, &n, &err);
    if (st != STORE_OK) return bind_fail(L, st, err);
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        if (strcmp(docs[i].revision, upto) > 0) continue;
        ok = add_snap(b, docs[i].id, docs[i].revision, docs[i].doc, docs[i].doc_len);
        docs[i].id = docs[i].doc = NULL; /* taken over, or freed */
    }
    lua_pushinteger(L, (lua_Integer)n);
    if (n > 0 && ok)
        lua_pushstring(L, docs[n - 1].id ? docs[n - 1].id : b->snaps[b->nsnaps - 1].key);
    store_view_docs_free(docs, n);
    if (!ok) return luaL_error(L, "out of memory");
    return n > 0 ? 2 : 1;
}

/* Whether the store holds sn as it is (the same revision and state). */
static store_status holds(store *s, const snap *sn, bool *same, char **err) {
    store_snapshot cur;
    bool found = false;
    *same = false;
    store_status st = s->ops->snapshot(s, sn->key, &cur, &found, err);
    if (st != STORE_OK || !found) return st;
    if (strcmp(cur.revision, sn->revision) == 0) {
        json_error_t je;
        char *a = canonical(cur.state, cur.state_len, &je);
        char *b = a ? canonical(sn->state, sn->state_len, &je) : NULL;
        *same = a && b && strcmp(a, b) == 0;
        free(a);
        free(b);
    }
    free(cur.state);
    return STORE_OK;
}

/* Whether snapshot i (0-based) is among those `only` (at idx, a table of
 * 1-based indices, or none: all) names. */
static bool wanted(lua_State *L, int idx, size_t i) {
    if (lua_isnoneornil(L, idx)) return true;
    luaL_checktype(L, idx, LUA_TTABLE);
    bool yes = lua_rawgeti(L, idx, (lua_Integer)i + 1) != LUA_TNIL;
    lua_pop(L, 1);
    return yes;
}

/* batch:save_snapshots(store [, only]): saves the batch's snapshots (those
 * whose indices are true in `only`, when given) the store does not hold
 * as they are (so a repeated copy writes nothing); returns how many were
 * saved (an older one than the store holds is not). */
static int l_save_snapshots(lua_State *L) {
    batch *b = check_batch(L, 1);
    store *s = bind_check_store(L, 2);
    lua_Integer saved = 0;
    for (size_t i = 0; i < b->nsnaps; i++) {
        const snap *sn = &b->snaps[i];
        bool ok = false, same = false;
        if (!wanted(L, 3, i)) continue;
        char *err = NULL;
        store_status st = holds(s, sn, &same, &err);
        if (st == STORE_OK && !same)
            st = s->ops->save_snapshot(s, sn->key, sn->revision, sn->state, sn->state_len, &ok,
                                       &err);
        if (st != STORE_OK) return bind_fail(L, st, err);
        saved += ok;
    }
    lua_pushinteger(L, saved);
    return 1;
}

/* ------------------------------------------------------------------ */
/* Export files (docs/API.md, "Export files")                          */

/* Appends one export line for e (without the newline). The data goes in
 * as the text it is held as, which is already exact JSON. */
static int put_line(json_buf *o, const store_event *e) {
    char more[32];
    int bad = json_buf_put(o, "{\"revision\":", 12) ||
              json_buf_string(o, e->revision, strlen(e->revision)) ||
              json_buf_put(o, ",\"key\":", 7) || json_buf_string(o, e->key, strlen(e->key)) ||
              json_buf_put(o, ",\"type\":", 8) || json_buf_string(o, e->type, strlen(e->type)) ||
              json_buf_put(o, ",\"committed_at\":", 16) ||
              json_buf_string(o, e->committed_at, strlen(e->committed_at));
    if (!bad && e->correlation_id)
        bad = json_buf_put(o, ",\"correlation_id\":", 18) ||
              json_buf_string(o, e->correlation_id, strlen(e->correlation_id));
    if (!bad && e->more) {
        int n = snprintf(more, sizeof more, ",\"more\":%zu", e->more);
        bad = json_buf_put(o, more, (size_t)n);
    }
    return bad || json_buf_put(o, ",\"data\":", 8) || json_buf_put(o, e->data, e->data_len) ||
           json_buf_put(o, "}\n", 2);
}

/* batch:write_ndjson(file [, only]): the batch's event lines, then its
 * snapshot lines (those whose indices are true in `only`, when given), so
 * a snapshot follows the events it folds in. */
static int l_write_ndjson(lua_State *L) {
    batch *b = check_batch(L, 1);
    luaL_Stream *f = luaL_checkudata(L, 2, LUA_FILEHANDLE);
    luaL_argcheck(L, f->closef != NULL, 2, "file is closed");
    json_buf o = {0};
    bool bad = false;
    for (size_t i = 0; i < b->n && !bad; i++) bad = put_line(&o, &b->ev[i]);
    for (size_t i = 0; i < b->nsnaps && !bad; i++) {
        const snap *sn = &b->snaps[i];
        if (!wanted(L, 3, i)) continue;
        bad = json_buf_put(&o, "{\"snapshot\":", 12) ||
              json_buf_string(&o, sn->key, strlen(sn->key)) ||
              json_buf_put(&o, ",\"revision\":", 12) ||
              json_buf_string(&o, sn->revision, strlen(sn->revision)) ||
              json_buf_put(&o, ",\"state\":", 9) || json_buf_put(&o, sn->state, sn->state_len) ||
              json_buf_put(&o, "}\n", 2);
    }
    if (bad) {
        json_buf_free(&o);
        return luaL_error(L, "out of memory");
    }
    size_t wrote = o.len ? fwrite(o.data, 1, o.len, f->f) : 0;
    size_t len = o.len;
    json_buf_free(&o);
    if (wrote != len) {
        lua_pushnil(L);
        lua_pushstring(L, "cannot write the export file");
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static bool iso_time(const char *s) {
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (strlen(s) != sizeof shape - 1) return false;
    for (size_t i = 0; shape[i]; i++)
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i]) return false;
    return true;
}

/* A string member of an export line, checked as the store checks it;
 * NULL with *why set when missing or wrong. */
static const char *member(json_t *line, const char *name, bool optional, const char **why) {
    json_t *v = json_object_get(line, name);
    if (!v || (optional && json_is_null(v))) {
        if (!optional) *why = "has no";
        return NULL;
    }
    const char *s = json_string_value(v);
    if (!s || store_check_text(s, false) || strlen(s) != json_string_length(v)) {
        *why = "has a bad";
        return NULL;
    }
    return s;
}

/* Parses one export line into b. Returns NULL, or what is wrong with it
 * (into msg). */
static const char *parse_line(batch *b, const char *text, size_t len, char *msg, size_t size) {
    json_error_t je;
    json_t *line = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!line) {
        snprintf(msg, size, "not JSON: %s", je.text);
        return msg;
    }
    const char *why = NULL, *what = NULL;
    store_event ev = {0};
    if (json_object_get(line, "snapshot")) {
        const char *key = member(line, what = "snapshot", false, &why);
        const char *rev = why ? NULL : member(line, what = "revision", false, &why);
        json_t *state = json_object_get(line, "state");
        if (!why && !revision_valid(rev)) why = "has a bad", what = "revision";
        if (!why && !state) why = "has no", what = "state";
        char *text_out = why ? NULL : json_dumps(state, DUMP_FLAGS);
        if (!why && (!text_out ||
                     !add_snap(b, copy_text(key, strlen(key)), rev, text_out, strlen(text_out))))
            why = "out of memory", what = "";
        if (why) snprintf(msg, size, "%s %s", why, what);
        json_decref(line);
        return why ? msg : NULL;
    }
    const char *rev = member(line, what = "revision", false, &why);
    if (!why) ev.key = member(line, what = "key", false, &why);
    if (!why) ev.type = member(line, what = "type", false, &why);
    const char *at = why ? NULL : member(line, what = "committed_at", false, &why);
    if (!why) ev.correlation_id = member(line, what = "correlation_id", true, &why);
    json_t *more = json_object_get(line, "more"), *data = json_object_get(line, "data");
    if (!why && (!rev || !revision_valid(rev))) why = "has a bad", what = "revision";
    if (!why && (!at || !iso_time(at))) why = "has a bad", what = "committed_at";
    if (!why && more && (!json_is_integer(more) || json_integer_value(more) < 0))
        why = "has a bad", what = "more";
    if (!why && !data) why = "has no", what = "data";
    if (why) {
        snprintf(msg, size, "%s %s", why, what);
        json_decref(line);
        return msg;
    }
    snprintf(ev.revision, sizeof ev.revision, "%s", rev);
    snprintf(ev.committed_at, sizeof ev.committed_at, "%s", at);
    ev.more = more ? (size_t)json_integer_value(more) : 0;
    char *text_out = json_dumps(data, DUMP_FLAGS);
    const char *res = NULL;
    if (!text_out) {
        res = "out of memory";
    } else {
        ev.data = text_out;
        ev.data_len = strlen(text_out);
        if (!add(b, &ev, text_out)) res = "out of memory";
    }
    json_decref(line);
    return res;
}

/* batch:read_ndjson(file, line, max [, snapshots]): lines of an export
 * file from the file's position, `line` being the number of the next one
 * (for messages), as read: at least max events and on to the end of an
 * append, or to the end of the file. Blank lines are skipped. Returns the
 * count and the number of the next line. With `snapshots` true, only the
 * snapshot lines, at most max, and their count: a line not naming
 * "snapshot" is not even parsed, so a pass for them is quick. */
static int l_read_ndjson(lua_State *L) {
    batch *b = check_batch(L, 1);
    luaL_Stream *f = luaL_checkudata(L, 2, LUA_FILEHANDLE);
    luaL_argcheck(L, f->closef != NULL, 2, "file is closed");
    lua_Integer line = luaL_checkinteger(L, 3), max = luaL_checkinteger(L, 4);
    luaL_argcheck(L, max > 0, 4, "must be positive");
    bool snaps_only = lua_toboolean(L, 5);
    clear(b);
    char *text = NULL, msg[256];
    size_t cap = 0;
    ssize_t len;
    const char *bad = NULL;
    while ((len = getline(&text, &cap, f->f)) >= 0) {
        line++;
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r')) len--;
        if (len == 0) continue;
        if (snaps_only) {
            text[len] = 0;
            if (!strstr(text, "\"snapshot\"")) continue;
        }
        if ((bad = parse_line(b, text, (size_t)len, msg, sizeof msg))) break;
        if (snaps_only) {
            for (size_t i = 0; i < b->n; i++) free_event(&b->ev[i]);
            b->n = 0;
            if ((lua_Integer)b->nsnaps >= max) break;
        } else if ((lua_Integer)b->n >= max && b->ev[b->n - 1].more == 0) {
            break;
        }
    }
    free(text);
    if (!bad && ferror(f->f)) bad = "cannot read the export file";
    if (bad) {
        clear(b);
        lua_pushnil(L);
        lua_pushfstring(L, "line %I: %s", line, bad);
        return 2;
    }
    lua_pushinteger(L, (lua_Integer)(snaps_only ? b->nsnaps : b->n));
    lua_pushinteger(L, line);
    return 2;
}

/* ------------------------------------------------------------------ */
/* Looking at events                                                   */

/* batch:tail_ndjson(path): the last event line of an export file into
 * the batch (0 or 1 events). A last line without its newline is what a
 * killed copy left: it is cut off the file first, so writing goes on
 * after the last whole line. */
static int l_tail_ndjson(lua_State *L) {
    batch *b = check_batch(L, 1);
    const char *path = luaL_checkstring(L, 2);
    clear(b);
    FILE *f = fopen(path, "rb");
    if (!f) {
        lua_pushinteger(L, 0);
        return 1;
    }
    char *text = NULL, *last = NULL, msg[256];
    size_t cap = 0, lastcap = 0;
    ssize_t len, lastlen = -1;
    long whole = 0, at = 0;
    while ((len = getline(&text, &cap, f)) >= 0) {
        at += len;
        if (text[len - 1] != '\n') break; /* cut off */
        whole = at;
        /* Lines that are events only: snapshots follow their events. */
        if (len > 1 && strncmp(text, "{\"snapshot\":", 12) != 0) {
            if (lastcap < cap) {
                char *p = realloc(last, cap);
                if (!p) break;
                last = p;
                lastcap = cap;
            }
            memcpy(last, text, (size_t)len);
            lastlen = len - 1;
        }
    }
    bool failed = ferror(f);
    fclose(f);
    free(text);
    const char *bad = failed ? "cannot read it" : NULL;
    if (!bad && at != whole && truncate(path, whole) != 0) bad = "cannot cut off its last line";
    if (!bad && lastlen > 0) bad = parse_line(b, last, (size_t)lastlen, msg, sizeof msg);
    free(last);
    if (bad) {
        clear(b);
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path, bad);
        return 2;
    }
    lua_pushinteger(L, (lua_Integer)b->n);
    return 1;
}

/* batch:find(revision): the index of the event with that revision, or nil. */
static int l_find(lua_State *L) {
    batch *b = check_batch(L, 1);
    const char *rev = luaL_checkstring(L, 2);
    for (size_t i = 0; i < b->n; i++)
        if (strcmp(b->ev[i].revision, rev) == 0) {
            lua_pushinteger(L, (lua_Integer)i + 1);
            return 1;
        }
    return 0;
}

/* batch:drop_through(revision): removes the events at or below it (from
 * the front: a batch is in revision order); returns how many. */
static int l_drop_through(lua_State *L) {
    batch *b = check_batch(L, 1);
    const char *rev = luaL_checkstring(L, 2);
    size_t k = 0;
    while (k < b->n && strcmp(b->ev[k].revision, rev) <= 0) free_event(&b->ev[k++]);
    memmove(b->ev, b->ev + k, (b->n - k) * sizeof *b->ev);
    b->n -= k;
    lua_pushinteger(L, (lua_Integer)k);
    return 1;
}

static int l_count(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)check_batch(L, 1)->n);
    return 1;
}

static int l_last(lua_State *L) {
    batch *b = check_batch(L, 1);
    if (b->n == 0) return 0;
    lua_pushstring(L, b->ev[b->n - 1].revision);
    return 1;
}

/* batch:event(i): event i (1-based) as a table; data is canonical JSON
 * text. */
static int l_event(lua_State *L) {
    batch *b = check_batch(L, 1);
    lua_Integer i = luaL_checkinteger(L, 2);
    luaL_argcheck(L, i >= 1 && (size_t)i <= b->n, 2, "no such event");
    const store_event *e = &b->ev[i - 1];
    json_error_t je;
    char *canon = canonical(e->data, e->data_len, &je);
    if (!canon) return luaL_error(L, "event %s: stored data is not JSON: %s", e->revision, je.text);
    bind_push_event_as(L, e, canon);
    free(canon);
    lua_pushinteger(L, (lua_Integer)e->more);
    lua_setfield(L, -2, "more");
    return 1;
}

static int l_snapshot_count(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)check_batch(L, 1)->nsnaps);
    return 1;
}

/* batch:snapshot(i): snapshot i (1-based) as { key, revision, state },
 * the state canonical JSON text. */
static int l_snapshot(lua_State *L) {
    batch *b = check_batch(L, 1);
    lua_Integer i = luaL_checkinteger(L, 2);
    luaL_argcheck(L, i >= 1 && (size_t)i <= b->nsnaps, 2, "no such snapshot");
    const snap *sn = &b->snaps[i - 1];
    json_error_t je;
    char *canon = canonical(sn->state, sn->state_len, &je);
    if (!canon) return luaL_error(L, "the snapshot of %s: state is not JSON: %s", sn->key, je.text);
    lua_createtable(L, 0, 3);
    lua_pushstring(L, sn->key);
    lua_setfield(L, -2, "key");
    lua_pushstring(L, sn->revision);
    lua_setfield(L, -2, "revision");
    lua_pushstring(L, canon);
    lua_setfield(L, -2, "state");
    free(canon);
    return 1;
}

static int l_new(lua_State *L) {
    batch *b = lua_newuserdatauv(L, sizeof *b, 0);
    memset(b, 0, sizeof *b);
    luaL_setmetatable(L, BATCH_MT);
    return 1;
}

static int l_sha256(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    unsigned char md[SHA256_DIGEST_LENGTH];
    char hex[2 * SHA256_DIGEST_LENGTH + 1];
    SHA256((const unsigned char *)s, len, md);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    lua_pushstring(L, hex);
    return 1;
}

static const luaL_Reg batch_methods[] = {
    {"read", l_read},
    {"import", l_import},
    {"read_ndjson", l_read_ndjson},
    {"write_ndjson", l_write_ndjson},
    {"count", l_count},
    {"last", l_last},
    {"event", l_event},
    {"save_snapshots", l_save_snapshots},
    {"tail_ndjson", l_tail_ndjson},
    {"find", l_find},
    {"drop_through", l_drop_through},
    {"list_snapshots", l_list_snapshots},
    {"snapshot_count", l_snapshot_count},
    {"snapshot", l_snapshot},
    {NULL, NULL},
};

static const luaL_Reg copy_functions[] = {
    {"batch", l_new},
    {"sha256", l_sha256},
    {NULL, NULL},
};

void bind_copy_open(lua_State *L) {
    bind_class(L, BATCH_MT, batch_methods, batch_gc, NULL);
    luaL_setfuncs(L, copy_functions, 0);
}
