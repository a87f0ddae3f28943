/*
 * ddb_sub.c - subscriptions of the DynamoDB backend: catching up through
 * the by-revision index, then following the events table's stream; acks,
 * checkpoints and fencing in the metadata table.
 */
#include "ddb_store.h"
#include "lease.h"

/* ------------------------------------------------------------------ */
/* Subscriptions                                                       */

/* A subscription catches up by polling the by-revision index from where it
 * is, then follows the stream ("Following the stream" below). Revision
 * order is commit order for this library's writers (the store head), so a
 * scan never passes an event that commits later, except for the time
 * AWS's index takes to show a write: a revision the scan reached counts as
 * settled - everything below it seen - only INDEX_SETTLE_MS after it was
 * read. Events read above the settled mark are remembered (`seen`), so a
 * later scan over them hands out only what it had not. DynamoDB Local
 * writes its index with the table, so nothing waits there.
 *
 * The checkpoint item {pk=NAME, sk="subscription"} holds the revision acked
 * (what checkpoint() says), the settled mark and seen revisions that go
 * with it, a version number for fencing and, once following, the stream's
 * ARN and shard positions; beside them, the name's lease (lease.h:
 * holder, beat, lease_ms), which an ack carries over and a reset keeps. */

#define SUB_WAIT_MS 100 /* a waiting poll looks again this often */
#define WAKE_STEP_MS 10 /* ... and for appends in this process this often */
#define SUB_HISTORY 64  /* recent polls remembered for acks */

/* A revision looked at above the mark, and the poll that looked. */
typedef struct seen_rev {
    char rev[STORE_REVISION_SIZE]; /* the event's revision (first: rev_search) */
    uint64_t poll;                 /* poll number; 0: loaded with a checkpoint */
} seen_rev;

/* Where one recent poll left the mark, for acking its position. */
typedef struct poll_mark {
    uint64_t poll;                  /* poll number */
    char mark[STORE_REVISION_SIZE]; /* the mark after it: its position */
} poll_mark;

/* A poll's highest revision read, waiting to settle. */
typedef struct settling {
    char rev[STORE_REVISION_SIZE]; /* highest revision the poll read */
    uint64_t at_ms;                /* when (store_env clock) */
} settling;

/* One shard of the events table's stream and how far it was read. */
typedef struct shard {
    char *id;     /* ShardId */
    char *parent; /* ParentShardId, NULL when none */
    char *seq;    /* last record read, NULL: none (TRIM_HORIZON) */
    char *before; /* seq when the last poll began, for acks */
    char *acked;  /* seq the stored checkpoint holds, or NULL */
    char *iter;   /* iterator to go on with, NULL: get one */
    bool listed;  /* in the last DescribeStream */
    bool done;    /* closed and read to its end */
} shard;

/* Where a batch event came from in the stream. */
typedef struct record_mark {
    size_t shard; /* index in shards; SIZE_MAX: the index */
    char *seq;    /* its record's SequenceNumber, malloc'd */
} record_mark;

/* A sorted set of revisions. */
typedef struct rev_set {
    char (*v)[STORE_REVISION_SIZE]; /* the revisions, ascending */
    size_t n;                       /* entries in v */
    size_t cap;                     /* entries allocated */
} rev_set;

struct store_sub {
    ddb_store *s;                    /* the handle it reads and acks through */
    char *name;                      /* NULL when ephemeral */
    char **keys;                     /* key patterns */
    size_t nkeys;                    /* entries in keys */
    char **types;                    /* type patterns */
    size_t ntypes;                   /* entries in types */
    store_filter *filter;            /* copy of the caller's filter, or NULL */
    char start[STORE_REVISION_SIZE]; /* where to begin without a checkpoint */
    char known[STORE_REVISION_SIZE]; /* the checkpoint as last read or written */
    int64_t version;                 /* of the stored checkpoint; 0: none */
    char mark[STORE_REVISION_SIZE];  /* every event at or below was looked at */
    seen_rev *seen;                  /* looked at above mark, sorted */
    size_t nseen;                    /* entries in seen */
    size_t seen_cap;                 /* entries allocated */
    settling pending[SUB_HISTORY];   /* reads not yet settled, oldest first */
    size_t npending;                 /* entries in pending */
    poll_mark history[SUB_HISTORY];  /* recent polls' positions, oldest first */
    size_t nhistory;                 /* entries in history */
    uint64_t polls;                  /* polls made */
    store_event *events;             /* the last batch */
    char **blocks;                   /* each event's strings, one block each */
    size_t nevents;                  /* events in the batch */
    size_t events_cap;               /* entries allocated */
    /* following the stream (see "Following the stream") */
    bool stream_checked;            /* the table's stream was looked for */
    bool following;                 /* caught up: the stream delivers */
    char *stream;                   /* its ARN, NULL when there is none */
    char base[STORE_REVISION_SIZE]; /* records at or below: before the start */
    shard *shards;                  /* the stream's shards, parents first */
    size_t nshards;                 /* entries in shards */
    bool relist;                    /* list the shards at the next look */
    uint64_t listed_ms;             /* when they were last listed */
    uint64_t stream_polls;          /* polls that read the stream */
    record_mark *marks;             /* per batch event: where it was read */
    size_t marks_cap;               /* entries allocated */
    rev_set caught;                 /* what the catch-up looked at, recent */
    lease lease;                    /* its side of the name's lease */
};

/* Appends in this process wake its waiting polls at once. */
static pthread_mutex_t wake_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t wake_gen;

void ddb_wake_all(void) {
    pthread_mutex_lock(&wake_lock);
    wake_gen++;
    pthread_mutex_unlock(&wake_lock);
}

static uint64_t wake_now(void) {
    pthread_mutex_lock(&wake_lock);
    uint64_t g = wake_gen;
    pthread_mutex_unlock(&wake_lock);
    return g;
}

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void free_batch(store_sub *sub) {
    for (size_t i = 0; i < sub->nevents; i++) {
        free(sub->blocks[i]);
        free(sub->marks[i].seq);
    }
    sub->nevents = 0;
}

static void free_shards(store_sub *sub) {
    for (size_t i = 0; i < sub->nshards; i++) {
        free(sub->shards[i].id);
        free(sub->shards[i].parent);
        free(sub->shards[i].seq);
        free(sub->shards[i].before);
        free(sub->shards[i].acked);
        free(sub->shards[i].iter);
    }
    free(sub->shards);
    sub->shards = NULL;
    sub->nshards = 0;
}

/* Forgets the stream: the next poll catches up through the index. */
static void stop_following(store_sub *sub) {
    free_shards(sub);
    free(sub->stream);
    sub->stream = NULL;
    sub->following = sub->stream_checked = false;
    sub->stream_polls = 0;
    sub->caught.n = 0;
}

void ddb_sub_close(store_sub *sub) {
    if (sub == NULL) return;
    if (sub->name != NULL && sub->lease.io != NULL) lease_release(&sub->lease);
    free_batch(sub);
    stop_following(sub);
    free(sub->caught.v);
    free(sub->marks);
    free(sub->events);
    free(sub->blocks);
    free(sub->seen);
    free(sub->name);
    pattern_free(sub->keys, sub->nkeys);
    pattern_free(sub->types, sub->ntypes);
    filter_free(sub->filter);
    free(sub);
}

/* Binary search of n entries of `size` bytes at base, ascending by the
 * revision each begins with (a seen_rev, a rev_set entry): whether rev is
 * there, and *at its index or where it would go. */
static bool rev_search(const void *base, size_t n, size_t size, const char *rev, size_t *at) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp((const char *)base + mid * size, rev);
        if (c == 0) {
            *at = mid;
            return true;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *at = lo;
    return false;
}

/* Index of rev in sub->seen, or where it would go (*found false). */
static size_t seen_find(const store_sub *sub, const char *rev, bool *found) {
    size_t at;
    *found = rev_search(sub->seen, sub->nseen, sizeof *sub->seen, rev, &at);
    return at;
}

static bool seen_add(store_sub *sub, const char *rev, uint64_t poll) {
    bool found;
    size_t at = seen_find(sub, rev, &found);
    if (found) return true;
    if (sub->nseen == sub->seen_cap) {
        size_t cap = sub->seen_cap > 0 ? sub->seen_cap * 2 : 64;
        seen_rev *v = realloc(sub->seen, cap * sizeof *v);
        if (v == NULL) return false;
        sub->seen = v;
        sub->seen_cap = cap;
    }
    memmove(&sub->seen[at + 1], &sub->seen[at], (sub->nseen - at) * sizeof *sub->seen);
    ddb_copy_rev(sub->seen[at].rev, rev);
    sub->seen[at].poll = poll;
    sub->nseen++;
    return true;
}

/* Drops what the mark now covers. */
static void seen_prune(store_sub *sub) {
    size_t keep = 0;
    for (size_t i = 0; i < sub->nseen; i++)
        if (strcmp(sub->seen[i].rev, sub->mark) > 0) sub->seen[keep++] = sub->seen[i];
    sub->nseen = keep;
}

/* The store's last revision: the store head, or (for stores Aeon's own
 * client wrote, which have none) the index's last event, whichever is
 * higher. */
static store_status store_last(ddb_store *s, char out[STORE_REVISION_SIZE], char **err) {
    http_response r = {0};
    const json_t *item;
    store_cursor *c = NULL;
    const store_event *ev;
    store_read_opts o = {NULL, false, NULL, false, 1, true, NULL};
    ddb_copy_rev(out, STORE_START);
    store_status status = ddb_get_meta(s, "slice", STORE_HEAD_SK, &r, &item, err);
    if (status == STORE_OK && ddb_item_s(item, "revision") != NULL &&
        revision_valid(ddb_item_s(item, "revision")))
        ddb_copy_rev(out, ddb_item_s(item, "revision"));
    http_response_free(&r);
    if (status != STORE_OK || (status = ddb_read(&s->base, NULL, &o, &c, err)) != STORE_OK)
        return status;
    if ((status = ddb_next(c, &ev, err)) == STORE_OK && ev != NULL && strcmp(ev->revision, out) > 0)
        ddb_copy_rev(out, ev->revision);
    ddb_cursor_close(c);
    return status;
}

static json_t *sub_key(const char *name) {
    return json_pack("{s:{s:s}, s:{s:s}}", "pk", "S", name, "sk", "S", "subscription");
}

static store_status load_shards(store_sub *sub, const json_t *item, char **err);

/* Puts the subscription where a consumer of its name starts now: at the
 * stored checkpoint (its mark and seen revisions), else at its start. */
static store_status rewind_sub(store_sub *sub, char **err) {
    ddb_store *s = sub->s;
    store_status status = STORE_OK;
    http_response r = {0};
    free_batch(sub);
    stop_following(sub);
    sub->nseen = sub->npending = sub->nhistory = 0;
    ddb_copy_rev(sub->known, STORE_START);
    sub->version = 0;
    const json_t *item = NULL;
    if (sub->name != NULL) {
        json_t *body = json_pack("{s:s, s:o, s:b}", "TableName", s->metadata, "Key",
                                 sub_key(sub->name), "ConsistentRead", 1);
        if ((status = ddb_call(s, "GetItem", body, true, NULL, &r, err)) != STORE_OK) goto done;
        item = json_object_get(r.json, "Item");
    }
    /* An item with the lease only (before the first ack, after a reset)
     * holds no checkpoint. */
    if (item != NULL && json_object_get(item, "revision") == NULL &&
        json_object_get(item, "version") == NULL)
        item = NULL;
    if (item != NULL) {
        const char *rev = ddb_item_s(item, "revision"), *mark = ddb_item_s(item, "mark");
        const char *version =
            json_string_value(json_object_get(json_object_get(item, "version"), "N"));
        if (rev == NULL || !revision_valid(rev) || version == NULL) {
            status = store_fail(err, STORE_IO,
                                "dynamodb: the checkpoint of subscription \"%s\" "
                                "in %s is malformed",
                                sub->name, s->metadata);
            goto done;
        }
        ddb_copy_rev(sub->known, rev);
        ddb_copy_rev(sub->mark,
                     mark != NULL && (revision_valid(mark) || strcmp(mark, STORE_START) == 0)
                         ? mark
                         : rev);
        sub->version = strtoll(version, NULL, 10);
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(json_object_get(item, "seen"), "L"), i, v) {
            const char *seen = json_string_value(json_object_get(v, "S"));
            if (seen != NULL && revision_valid(seen) && strcmp(seen, sub->mark) > 0 &&
                !seen_add(sub, seen, 0)) {
                status = ddb_nomem(err);
                goto done;
            }
        }
        if ((status = load_shards(sub, item, err)) != STORE_OK) goto done;
    } else if (strcmp(sub->start, STORE_END) == 0) {
        status = store_last(s, sub->mark, err);
    } else {
        ddb_copy_rev(sub->mark, sub->start);
    }
    /* A catch-up hands out what is above the mark; the stream after it
     * skips what is not. Stored shard positions need no such floor. */
    ddb_copy_rev(sub->base, sub->following ? STORE_START : sub->mark);
done:
    http_response_free(&r);
    return status;
}

/* lease.h's steps: conditional updates of the lease attributes of the
 * checkpoint item, leaving the checkpoint alone. DynamoDB refuses names
 * and values an expression does not use, so each step passes its own. */
static store_status lease_update(store_sub *sub, const char *update, const char *condition,
                                 json_t *names, json_t *values, bool *done, char **err) {
    ddb_store *s = sub->s;
    http_response r = {0};
    json_t *body =
        json_pack("{s:s, s:o, s:s, s:s, s:o, s:o}", "TableName", s->metadata, "Key",
                  sub_key(sub->name), "UpdateExpression", update, "ConditionExpression", condition,
                  "ExpressionAttributeNames", names, "ExpressionAttributeValues", values);
    /* Not resent blindly, as an ack: a resend would find its own write. */
    store_status status =
        ddb_call(s, "UpdateItem", body, false,
                 (const char *const[]){"ConditionalCheckFailedException", NULL}, &r, err);
    *done = status == STORE_OK && r.error == NULL;
    http_response_free(&r);
    return status;
}

static json_t *av_n(int64_t n) {
    char text[24];
    snprintf(text, sizeof text, "%" PRId64, n);
    return json_pack("{s:s}", "N", text);
}

static store_status lease_get(void *ctx, lease_record *out, char **err) {
    store_sub *sub = ctx;
    http_response r = {0};
    const json_t *item;
    memset(out, 0, sizeof *out);
    store_status status = ddb_get_meta(sub->s, sub->name, "subscription", &r, &item, err);
    const char *beat = json_string_value(json_object_get(json_object_get(item, "beat"), "N"));
    if (status == STORE_OK && beat != NULL) {
        const char *holder = ddb_item_s(item, "holder");
        const char *ms = json_string_value(json_object_get(json_object_get(item, "lease_ms"), "N"));
        out->found = true;
        snprintf(out->holder, sizeof out->holder, "%s", holder != NULL ? holder : "");
        out->beat = strtoll(beat, NULL, 10);
        out->lease_ms = ms != NULL ? strtoll(ms, NULL, 10) : 0;
    }
    http_response_free(&r);
    return status;
}

static store_status lease_take(void *ctx, const lease_record *seen, const char *holder,
                               int64_t lease_ms, bool *won, char **err) {
    json_t *names = json_pack("{s:s, s:s, s:s}", "#h", "holder", "#b", "beat", "#l", "lease_ms");
    json_t *values = json_pack("{s:o, s:o, s:o}", ":h", ddb_av_s(holder), ":zero", av_n(0), ":l",
                               av_n(lease_ms));
    const char *condition = "attribute_not_exists(#b)";
    if (seen->found) {
        json_object_set_new(values, ":beat", av_n(seen->beat));
        condition = "#b = :beat AND attribute_not_exists(#h)";
        if (seen->holder[0] != '\0') {
            json_object_set_new(values, ":was", ddb_av_s(seen->holder));
            condition = "#b = :beat AND #h = :was";
        }
    }
    return lease_update(ctx, "SET #h = :h, #b = :zero, #l = :l", condition, names, values, won,
                        err);
}

static store_status lease_renew(void *ctx, const char *holder, int64_t lease_ms, bool *held,
                                char **err) {
    json_t *names = json_pack("{s:s, s:s, s:s}", "#h", "holder", "#b", "beat", "#l", "lease_ms");
    json_t *values =
        json_pack("{s:o, s:o, s:o}", ":h", ddb_av_s(holder), ":one", av_n(1), ":l", av_n(lease_ms));
    return lease_update(ctx, "SET #b = #b + :one, #l = :l", "#h = :h", names, values, held, err);
}

static store_status lease_free(void *ctx, const char *holder, char **err) {
    bool done;
    json_t *names = json_pack("{s:s, s:s}", "#h", "holder", "#b", "beat");
    json_t *values = json_pack("{s:o, s:o}", ":h", ddb_av_s(holder), ":one", av_n(1));
    return lease_update(ctx, "REMOVE #h SET #b = #b + :one", "#h = :h", names, values, &done, err);
}

static const lease_io ddb_lease_io = {lease_get, lease_take, lease_renew, lease_free};

/* As sqlite_sub.c's: whether the subscription may be handed events now;
 * one that has just taken the lease over starts from the stored
 * checkpoint. */
static store_status hold(store_sub *sub, bool *held, char **err) {
    bool taken = false;
    *held = true;
    if (sub->name == NULL) return STORE_OK;
    store_status status = lease_hold(&sub->lease, held, &taken, err);
    if (status == STORE_OK && taken) status = rewind_sub(sub, err);
    return status;
}

bool ddb_sub_active(store_sub *sub) { return sub->name == NULL || sub->lease.mine[0] != '\0'; }

store_status ddb_sub_renew(store_sub *sub, bool *held, char **err) {
    *held = true;
    return sub->name == NULL ? STORE_OK : lease_keep(&sub->lease, held, err);
}

store_status ddb_subscribe(store *st, const char *name, const store_sub_opts *opts, store_sub **out,
                           char **err) {
    static const store_sub_opts defaults = {0};
    ddb_store *s = (ddb_store *)st;
    store_status status = STORE_NOMEM;
    store_sub *sub = NULL;
    *out = NULL;
    if (opts == NULL) opts = &defaults;
    if ((status = store_check_subscription(name, opts, err)) != STORE_OK ||
        (status = lease_check(opts->lease_ms, err)) != STORE_OK)
        return status;
    if (name != NULL && strlen(name) > KEY_BYTES)
        return store_fail(err, STORE_LIMIT, "dynamodb: subscription name is over %d bytes",
                          KEY_BYTES);
    if ((sub = calloc(1, sizeof *sub)) == NULL ||
        (name != NULL && (sub->name = strdup(name)) == NULL) ||
        filter_copy(opts->filter, &sub->filter) != STORE_OK)
        goto nomem;
    sub->s = s;
    lease_init(&sub->lease, &ddb_lease_io, sub, &s->base.env, opts->lease_ms);
    ddb_copy_rev(sub->start, opts->start != NULL ? opts->start : STORE_START);
    bool held = false;
    if ((status = pattern_copy(opts->keys, opts->nkeys, "key", &sub->keys, &sub->nkeys, err)) !=
            STORE_OK ||
        (status = pattern_copy(opts->types, opts->ntypes, "type", &sub->types, &sub->ntypes,
                               err)) != STORE_OK ||
        /* The lease first, so the checkpoint read after it is the last one
         * a former holder could write. */
        (name != NULL && (status = opts->nowait ? lease_claim(&sub->lease, name, err)
                                                : hold(sub, &held, err)) != STORE_OK) ||
        (status = rewind_sub(sub, err)) != STORE_OK)
        goto fail;
    /* An ephemeral subscription's checkpoint is where it starts. */
    if (sub->name == NULL) ddb_copy_rev(sub->known, sub->mark);
    *out = sub;
    return STORE_OK;
nomem:
    status = ddb_nomem(err);
fail:
    ddb_sub_close(sub);
    return status;
}

static bool sub_matches(const store_sub *sub, const store_event *ev) {
    return pattern_match_any((const char *const *)sub->keys, sub->nkeys, ev->key) &&
           pattern_match_any((const char *const *)sub->types, sub->ntypes, ev->type) &&
           filter_match(sub->filter, ev);
}

/* Copies an event into the batch: its strings in one block. */
static bool keep(store_sub *sub, const store_event *ev) {
    if (sub->nevents == sub->events_cap) {
        size_t cap = sub->events_cap > 0 ? sub->events_cap * 2 : 16;
        store_event *e = realloc(sub->events, cap * sizeof *e);
        if (e == NULL) return false;
        sub->events = e;
        char **b = realloc(sub->blocks, cap * sizeof *b);
        if (b == NULL) return false;
        sub->blocks = b;
        record_mark *m = realloc(sub->marks, cap * sizeof *m);
        if (m == NULL) return false;
        sub->marks = m;
        sub->events_cap = cap;
    }
    size_t kl = strlen(ev->key), tl = strlen(ev->type);
    size_t cl = ev->correlation_id != NULL ? strlen(ev->correlation_id) : 0;
    char *block = malloc(kl + tl + ev->data_len + cl + 4);
    if (block == NULL) return false;
    store_event *e = &sub->events[sub->nevents];
    *e = *ev;
    char *p = block;
    e->key = memcpy(p, ev->key, kl + 1);
    p += kl + 1;
    e->type = memcpy(p, ev->type, tl + 1);
    p += tl + 1;
    memcpy(p, ev->data, ev->data_len);
    p[ev->data_len] = '\0';
    e->data = p;
    p += ev->data_len + 1;
    e->correlation_id = ev->correlation_id != NULL ? memcpy(p, ev->correlation_id, cl + 1) : NULL;
    sub->marks[sub->nevents] = (record_mark){SIZE_MAX, NULL};
    sub->blocks[sub->nevents++] = block;
    return true;
}

/* Records a poll's highest revision read (if any) to settle, moves the mark
 * to what has settled and remembers where the poll left it. */
static void settle(store_sub *sub, const char *last, uint64_t now, uint64_t poll) {
    uint64_t settle = sub->s->settle_ms;
    if (last[0] != '\0') {
        if (sub->npending == SUB_HISTORY) {
            /* keep the newest reads; the oldest settles now (rarely: a poll
             * per millisecond would be needed to get here) */
            if (strcmp(sub->pending[0].rev, sub->mark) > 0)
                ddb_copy_rev(sub->mark, sub->pending[0].rev);
            memmove(&sub->pending[0], &sub->pending[1], (SUB_HISTORY - 1) * sizeof *sub->pending);
            sub->npending--;
        }
        ddb_copy_rev(sub->pending[sub->npending].rev, last);
        sub->pending[sub->npending++].at_ms = now;
    }
    size_t gone = 0;
    while (gone < sub->npending && sub->pending[gone].at_ms + settle <= now) {
        if (strcmp(sub->pending[gone].rev, sub->mark) > 0)
            ddb_copy_rev(sub->mark, sub->pending[gone].rev);
        gone++;
    }
    memmove(&sub->pending[0], &sub->pending[gone], (sub->npending - gone) * sizeof *sub->pending);
    sub->npending -= gone;
    seen_prune(sub);

    if (sub->nhistory == SUB_HISTORY) {
        memmove(&sub->history[0], &sub->history[1], (SUB_HISTORY - 1) * sizeof *sub->history);
        sub->nhistory--;
    }
    sub->history[sub->nhistory].poll = poll;
    ddb_copy_rev(sub->history[sub->nhistory++].mark, sub->mark);
}

/* -- Following the stream ---------------------------------------------- */
/* Once a scan has reached the end of the index, the subscription follows
 * the events table's stream instead: every committed event is a record
 * there, in commit order within a shard (and so within a key, whose items
 * stay in one shard until it splits: parents are read before children),
 * whatever its revision. So an event that commits late, below a revision
 * already delivered, is still delivered. The stream starts at each shard's
 * TRIM_HORIZON; records at or below `base` (where the catch-up began) or
 * that the catch-up looked at (`caught`) were handled by the index. Acks
 * store each shard's last sequence number beside the checkpoint, so a new
 * subscription of the name resumes after them; when those are gone from
 * the stream (24 h retention, another stream) it catches up again. */

#define STREAM_KEPT_MS (25ull * 60 * 60 * 1000) /* the stream's 24 h, and slack */
#define SHARD_LIST_MS 60000                     /* shards are listed again this often */
#define RECORDS_PAGE 1000                       /* GetRecords Limit (its maximum) */

static bool set_has(const rev_set *set, const char *rev, size_t *at) {
    return rev_search(set->v, set->n, sizeof *set->v, rev, at);
}

static bool set_add(rev_set *set, const char *rev) {
    size_t at;
    if (set_has(set, rev, &at)) return true;
    if (set->n == set->cap) {
        size_t cap = set->cap > 0 ? set->cap * 2 : 256;
        char(*v)[STORE_REVISION_SIZE] = realloc(set->v, cap * sizeof *v);
        if (v == NULL) return false;
        set->v = v;
        set->cap = cap;
    }
    memmove(&set->v[at + 1], &set->v[at], (set->n - at) * sizeof *set->v);
    ddb_copy_rev(set->v[at], rev);
    set->n++;
    return true;
}

/* Replaces *slot with a copy of v (NULL allowed); false on no memory. */
static bool set_str(char **slot, const char *v) {
    char *copy = NULL;
    if (v != NULL && (copy = strdup(v)) == NULL) return false;
    free(*slot);
    *slot = copy;
    return true;
}

/* Calls a Streams API operation, opening its client on first use: the
 * DynamoDB endpoint itself when it was given (DynamoDB Local serves both),
 * else the region's streams.dynamodb endpoint. */
static store_status stream_call(ddb_store *s, const char *op, json_t *body,
                                const char *const *expected, http_response *r, char **err) {
    store_status status = STORE_OK;
    if (body == NULL) return ddb_nomem(err);
    if (s->streams == NULL) {
        static const char aws[] = "https://dynamodb.";
        char *endpoint = NULL;
        if (strncmp(s->aws.endpoint, aws, sizeof aws - 1) == 0 &&
            strstr(s->aws.endpoint, ".amazonaws.com") != NULL) {
            size_t n = strlen(s->aws.endpoint) + sizeof "streams.";
            if ((endpoint = malloc(n)) != NULL)
                snprintf(endpoint, n, "https://streams.%s", s->aws.endpoint + 8);
        } else {
            endpoint = strdup(s->aws.endpoint);
        }
        if (endpoint == NULL) {
            json_decref(body);
            return ddb_nomem(err);
        }
        http_config cfg = {
            .endpoint = endpoint,
            .api = HTTP_STREAMS,
            .region = s->aws.region,
            .creds = {s->aws.access_key, s->aws.secret_key, s->aws.session_token},
            .env = &s->base.env,
        };
        status = http_open(&cfg, &s->streams, err);
        free(endpoint);
    }
    /* Every Streams operation reads: safe to repeat. */
    if (status == STORE_OK) status = http_call_json(s->streams, op, body, true, r, err);
    json_decref(body);
    if (status != STORE_OK) return status;
    return ddb_answered(r, expected) ? STORE_OK : http_fail(r, op, err);
}

/* The ARN of the events table's stream, malloc'd, or NULL when it has no
 * stream with new images (the subscription then stays on the index). */
static store_status stream_arn(ddb_store *s, char **arn, char **err) {
    json_t *desc = NULL;
    *arn = NULL;
    store_status status = ddb_describe(s, s->events, &desc, err);
    if (status != STORE_OK) return status;
    const json_t *spec = json_object_get(desc, "StreamSpecification");
    const char *view = json_string_value(json_object_get(spec, "StreamViewType"));
    const char *latest = json_string_value(json_object_get(desc, "LatestStreamArn"));
    if (json_is_true(json_object_get(spec, "StreamEnabled")) && latest != NULL && view != NULL &&
        strstr(view, "NEW") != NULL && (*arn = strdup(latest)) == NULL)
        status = ddb_nomem(err);
    json_decref(desc);
    return status;
}

static shard *find_shard(store_sub *sub, const char *id) {
    for (size_t i = 0; id != NULL && i < sub->nshards; i++)
        if (strcmp(sub->shards[i].id, id) == 0) return &sub->shards[i];
    return NULL;
}

static shard *add_shard(store_sub *sub, const char *id) {
    shard *v = realloc(sub->shards, (sub->nshards + 1) * sizeof *v);
    if (v == NULL) return NULL;
    sub->shards = v;
    shard *sh = &v[sub->nshards];
    memset(sh, 0, sizeof *sh);
    if ((sh->id = strdup(id)) == NULL) return NULL;
    sub->nshards++;
    return sh;
}

/* Lists the stream's shards (DescribeStream, page by page), adding new ones
 * to be read from their start. *lost when the stream or a shard not read to
 * its end is gone: what it held can no longer be read. */
static store_status list_shards(store_sub *sub, bool *lost, char **err) {
    ddb_store *s = sub->s;
    http_response r = {0};
    store_status status = STORE_OK;
    char *from = NULL;
    *lost = false;
    if (sub->stream == NULL || (sub->stream_polls == 0 && sub->listed_ms == 0)) {
        /* The stream a stored checkpoint names must still be the table's. */
        char *arn = NULL;
        if ((status = stream_arn(s, &arn, err)) != STORE_OK) return status;
        *lost = arn == NULL || (sub->stream != NULL && strcmp(arn, sub->stream) != 0);
        free(sub->stream);
        sub->stream = arn;
        if (*lost) return STORE_OK;
    }
    for (size_t i = 0; i < sub->nshards; i++) sub->shards[i].listed = false;
    do {
        json_t *body = json_pack("{s:s, s:i}", "StreamArn", sub->stream, "Limit", 100);
        if (body != NULL && from != NULL)
            json_object_set_new(body, "ExclusiveStartShardId", json_string(from));
        status = stream_call(s, "DescribeStream", body,
                             (const char *const[]){"ResourceNotFoundException", NULL}, &r, err);
        if (status != STORE_OK) goto done;
        if (r.error != NULL) {
            *lost = true;
            goto done;
        }
        const json_t *d = json_object_get(r.json, "StreamDescription"), *v;
        size_t i;
        json_array_foreach(json_object_get(d, "Shards"), i, v) {
            const char *id = json_string_value(json_object_get(v, "ShardId"));
            const char *parent = json_string_value(json_object_get(v, "ParentShardId"));
            if (id == NULL) continue;
            shard *sh = find_shard(sub, id);
            if ((sh == NULL && (sh = add_shard(sub, id)) == NULL) ||
                (sh->parent == NULL && !set_str(&sh->parent, parent)))
                goto nomem;
            sh->listed = true;
        }
        if (!set_str(&from, json_string_value(json_object_get(d, "LastEvaluatedShardId"))))
            goto nomem;
        http_response_free(&r);
    } while (from != NULL);
    /* Shards aged out of the stream: fine when they were read to the end. */
    size_t kept = 0;
    for (size_t i = 0; i < sub->nshards; i++) {
        shard *sh = &sub->shards[i];
        if (!sh->listed && !sh->done) *lost = true;
        if (sh->listed) {
            sub->shards[kept++] = *sh;
        } else {
            free(sh->id);
            free(sh->parent);
            free(sh->seq);
            free(sh->before);
            free(sh->acked);
            free(sh->iter);
        }
    }
    sub->nshards = kept;
    sub->relist = false;
    sub->listed_ms = s->base.env.now_ms(s->base.env.ctx);
    goto done;
nomem:
    status = ddb_nomem(err);
done:
    free(from);
    http_response_free(&r);
    return status;
}

/* A shard is read once its parent is read to its end (or gone). */
static bool shard_ready(store_sub *sub, const shard *sh) {
    const shard *parent = find_shard(sub, sh->parent);
    return parent == NULL || parent->done;
}

/* Takes one INSERT record's new image: hands it out when it matches, is
 * above base and was not the catch-up's. The same conversion as reads. */
static store_status take(store_sub *sub, const json_t *image, size_t from, const char *seq,
                         char top[STORE_REVISION_SIZE], char **err) {
    const char *rev = ddb_item_s(image, "revision");
    if (rev == NULL || ddb_item_s(image, "key") == NULL || !revision_valid(rev))
        return STORE_OK; /* not an event */
    size_t at;
    if (strcmp(rev, sub->base) <= 0 || set_has(&sub->caught, rev, &at)) return STORE_OK;
    if (strcmp(rev, top) > 0) ddb_copy_rev(top, rev);
    store_cursor c = {.s = sub->s};
    store_status status = ddb_to_event(&c, image, err);
    if (status == STORE_OK && sub_matches(sub, &c.ev)) {
        if (!keep(sub, &c.ev) || (sub->marks[sub->nevents - 1].seq = strdup(seq)) == NULL)
            status = ddb_nomem(err);
        else
            sub->marks[sub->nevents - 1].shard = from;
    }
    free(c.data);
    return status;
}

/* A fresh iterator for sh: after its sequence number, or from the start.
 * *stop when there is none: the shard is closed with nothing after it, or
 * gone (*lost). */
static store_status shard_iterator(store_sub *sub, shard *sh, bool *lost, bool *stop, char **err) {
    http_response r = {0};
    json_t *body =
        json_pack("{s:s, s:s, s:s}", "StreamArn", sub->stream, "ShardId", sh->id,
                  "ShardIteratorType", sh->seq != NULL ? "AFTER_SEQUENCE_NUMBER" : "TRIM_HORIZON");
    if (body != NULL && sh->seq != NULL)
        json_object_set_new(body, "SequenceNumber", json_string(sh->seq));
    store_status status = stream_call(sub->s, "GetShardIterator", body,
                                      (const char *const[]){"TrimmedDataAccessException",
                                                            "ResourceNotFoundException", NULL},
                                      &r, err);
    *stop = true;
    if (status == STORE_OK && !(*lost = r.error != NULL)) {
        const char *it = json_string_value(json_object_get(r.json, "ShardIterator"));
        if (it == NULL) /* closed, nothing after seq */
            sh->done = sub->relist = true;
        else if (!set_str(&sh->iter, it))
            status = ddb_nomem(err);
        else
            *stop = false;
    }
    http_response_free(&r);
    return status;
}

/* Takes the INSERTs of one GetRecords page into the batch until it holds
 * max events; *looked is how many records that covered. */
static store_status take_records(store_sub *sub, size_t i, const json_t *records, size_t max,
                                 char top[STORE_REVISION_SIZE], size_t *looked, char **err) {
    shard *sh = &sub->shards[i];
    size_t n = json_array_size(records), k;
    store_status status = STORE_OK;
    for (k = 0; k < n && sub->nevents < max && status == STORE_OK; k++) {
        const json_t *rec = json_array_get(records, k);
        const json_t *ddb = json_object_get(rec, "dynamodb");
        const char *seq = json_string_value(json_object_get(ddb, "SequenceNumber"));
        const char *name = json_string_value(json_object_get(rec, "eventName"));
        if (seq == NULL) continue;
        if (name != NULL && strcmp(name, "INSERT") == 0)
            status = take(sub, json_object_get(ddb, "NewImage"), i, seq, top, err);
        if (status == STORE_OK && !set_str(&sh->seq, seq)) status = ddb_nomem(err);
    }
    *looked = k;
    return status;
}

/* Reads shard i on from where it is until max events are in the batch or
 * it has no more for now. *lost when its records are gone. */
static store_status read_shard(store_sub *sub, size_t i, size_t max, char top[STORE_REVISION_SIZE],
                               bool *lost, char **err) {
    http_response r = {0};
    store_status status = STORE_OK;
    int expired = 0;
    while (sub->nevents < max) {
        shard *sh = &sub->shards[i];
        bool stop = false;
        if (sh->iter == NULL &&
            ((status = shard_iterator(sub, sh, lost, &stop, err)) != STORE_OK || stop))
            break;
        json_t *body = json_pack("{s:s, s:i}", "ShardIterator", sh->iter, "Limit", RECORDS_PAGE);
        status = stream_call(sub->s, "GetRecords", body,
                             (const char *const[]){"ExpiredIteratorException",
                                                   "TrimmedDataAccessException",
                                                   "ResourceNotFoundException", NULL},
                             &r, err);
        if (status != STORE_OK) break;
        if (r.error != NULL && strcmp(r.error, "ExpiredIteratorException") == 0 && expired++ == 0) {
            free(sh->iter); /* 15 minutes old: get another from seq */
            sh->iter = NULL;
            http_response_free(&r);
            continue;
        }
        if ((*lost = r.error != NULL)) break;
        const json_t *records = json_object_get(r.json, "Records");
        size_t n = json_array_size(records), k;
        if ((status = take_records(sub, i, records, max, top, &k, err)) != STORE_OK) break;
        const char *next = json_string_value(json_object_get(r.json, "NextShardIterator"));
        /* Stopped inside the page: the next poll goes on after seq. */
        if (!set_str(&sh->iter, k < n ? NULL : next)) {
            status = ddb_nomem(err);
            break;
        }
        if (k == n && next == NULL) {
            sh->done = sub->relist = true;
            break;
        }
        http_response_free(&r);
        if (n == 0 || k < n) break;
    }
    http_response_free(&r);
    return status;
}

/* One look at the stream; falls back to catching up through the index
 * (following off) when what it needs was trimmed. On failure nothing is
 * handed out and every shard stays where it was. */
static store_status follow(store_sub *sub, size_t max, char **err) {
    ddb_store *s = sub->s;
    uint64_t now = s->base.env.now_ms(s->base.env.ctx);
    char top[STORE_REVISION_SIZE] = "";
    store_status status = STORE_OK;
    bool lost = false;
    if (sub->relist || now - sub->listed_ms >= SHARD_LIST_MS) {
        if ((status = list_shards(sub, &lost, err)) != STORE_OK) return status;
    }
    for (size_t i = 0; i < sub->nshards && !lost; i++)
        if (!set_str(&sub->shards[i].before, sub->shards[i].seq)) return ddb_nomem(err);
    for (size_t i = 0; i < sub->nshards && sub->nevents < max && !lost; i++)
        if (!sub->shards[i].done && shard_ready(sub, &sub->shards[i]) &&
            (status = read_shard(sub, i, max, top, &lost, err)) != STORE_OK)
            break;
    if (status != STORE_OK || lost) {
        free_batch(sub);
        for (size_t i = 0; i < sub->nshards; i++) {
            shard *sh = &sub->shards[i];
            free(sh->iter);
            sh->iter = NULL;
            if (!set_str(&sh->seq, sh->before)) status = ddb_nomem(err);
        }
        if (status == STORE_OK) {
            /* Catch up from the mark; what was delivered above it may come again. */
            stop_following(sub);
            ddb_copy_rev(sub->base, sub->mark);
        }
        return status;
    }
    sub->stream_polls++;
    /* The position: what was read, once the settle window (the time an
     * event may take to commit) has passed; reads the catch-up left
     * settling settle as before. */
    settle(sub, top, now, ++sub->polls);
    return STORE_OK;
}

/* Starts following the stream after a scan reached the end of the index;
 * stays on the index when the table has no stream. */
static store_status start_following(store_sub *sub, char **err) {
    sub->stream_checked = true;
    store_status status = stream_arn(sub->s, &sub->stream, err);
    if (status == STORE_OK && sub->stream != NULL) {
        sub->following = sub->relist = true;
        sub->stream_polls = 0;
        sub->listed_ms = 0;
    }
    return status;
}

/* Resumes following the stream from the shard positions a checkpoint
 * item stores, if it has them. */
static store_status load_shards(store_sub *sub, const json_t *item, char **err) {
    const char *arn = ddb_item_s(item, "stream");
    const json_t *list = json_object_get(json_object_get(item, "shards"), "L"), *v;
    size_t i;
    if (arn == NULL || list == NULL) return STORE_OK;
    if ((sub->stream = strdup(arn)) == NULL) return ddb_nomem(err);
    json_array_foreach(list, i, v) {
        const json_t *m = json_object_get(v, "M");
        const char *id = ddb_item_s(m, "id");
        shard *sh;
        if (id == NULL) continue;
        if ((sh = add_shard(sub, id)) == NULL || !set_str(&sh->seq, ddb_item_s(m, "seq")) ||
            !set_str(&sh->acked, sh->seq))
            return ddb_nomem(err);
        sh->done = json_is_true(json_object_get(json_object_get(m, "done"), "BOOL"));
    }
    sub->following = sub->stream_checked = sub->relist = true;
    sub->listed_ms = 0;
    return STORE_OK;
}

/* One look: reads the index after the mark, skipping what was seen, and
 * keeps up to max matching events; then moves the mark to what has
 * settled. On failure nothing is handed out and nothing is marked seen. */
static store_status scan(store_sub *sub, size_t max, bool *end, char **err) {
    ddb_store *s = sub->s;
    bool from_start = strcmp(sub->mark, STORE_START) == 0;
    store_read_opts o = {from_start ? NULL : sub->mark, !from_start, NULL, false, -1, false, NULL};
    store_cursor *c = NULL;
    const store_event *ev = NULL;
    char last[STORE_REVISION_SIZE] = "";
    uint64_t poll = sub->polls + 1;
    uint64_t now = s->base.env.now_ms(s->base.env.ctx);
    store_status status;

    *end = false;
    if ((status = ddb_read(&s->base, NULL, &o, &c, err)) != STORE_OK) return status;
    while ((status = ddb_next(c, &ev, err)) == STORE_OK && ev != NULL) {
        bool found;
        seen_find(sub, ev->revision, &found);
        /* What the stream still holds, it will show again: remember it,
         * also when it was seen before (a restart's checkpoint lists what
         * was handled above its mark, which the stream would hand out
         * again once the catch-up gives way to it). */
        bool kept = revision_time(ev->revision) + STREAM_KEPT_MS >= now;
        if (found) {
            if (kept && !set_add(&sub->caught, ev->revision)) {
                status = ddb_nomem(err);
                break;
            }
            continue;
        }
        if (!seen_add(sub, ev->revision, poll) || (kept && !set_add(&sub->caught, ev->revision)) ||
            (sub_matches(sub, ev) && !keep(sub, ev))) {
            status = ddb_nomem(err);
            break;
        }
        ddb_copy_rev(last, ev->revision);
        if (sub->nevents == max) break;
    }
    *end = status == STORE_OK && ev == NULL;
    ddb_cursor_close(c);
    if (status != STORE_OK) {
        /* forget this poll's reads: the next one looks again */
        size_t keep_n = 0;
        for (size_t i = 0; i < sub->nseen; i++)
            if (sub->seen[i].poll != poll) sub->seen[keep_n++] = sub->seen[i];
        sub->nseen = keep_n;
        free_batch(sub);
        return status;
    }
    sub->polls = poll;

    settle(sub, last, now, poll);
    return STORE_OK;
}

store_status ddb_poll(store_sub *sub, int64_t timeout_ms, size_t max, const store_event **events,
                      size_t *count, char position[STORE_REVISION_SIZE], char **err) {
    store_status status;
    *events = NULL;
    *count = 0;
    ddb_copy_rev(position, sub->mark);
    if (max == 0) return store_fail(err, STORE_INVALID, "poll: max must be at least 1");
    int64_t deadline = mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        uint64_t gen = wake_now();
        bool end = false, held;
        free_batch(sub);
        if ((status = hold(sub, &held, err)) != STORE_OK) return status;
        if (!held) {
            /* A standby: nothing to hand out; wait for its chance. */
            int64_t now = mono_ms(), until = now + lease_wait_ms(&sub->lease);
            if (now >= deadline) break;
            ddb_nap((uint64_t)((until < deadline ? until : deadline) - now));
            continue;
        }
        if (!sub->following) {
            if ((status = scan(sub, max, &end, err)) != STORE_OK) return status;
            if (end && !sub->stream_checked && (status = start_following(sub, err)) != STORE_OK)
                return status;
        }
        /* A batch comes from one source, so an ack maps to one of them. */
        if (sub->following && sub->nevents == 0 && (status = follow(sub, max, err)) != STORE_OK)
            return status;
        /* The reads may have taken a while: hand the batch out only while
         * the lease still holds (renewed if a third of it has gone). */
        if (sub->nevents > 0 && (status = hold(sub, &held, err)) != STORE_OK) return status;
        if (!held) {
            free_batch(sub);
            continue;
        }
        if (sub->nevents > 0 || mono_ms() >= deadline) break;
        /* Wait for an append here (checked often) or the next look. */
        int64_t until = mono_ms() + SUB_WAIT_MS;
        if (until > deadline) until = deadline;
        while (mono_ms() < until && wake_now() == gen) ddb_nap(WAKE_STEP_MS);
    }
    *events = sub->events;
    *count = sub->nevents;
    ddb_copy_rev(position, sub->mark);
    return STORE_OK;
}

/* What acking `revision` says is processed, as a mark and the revisions
 * above it (see store.h's ack): for a poll's position, everything that
 * poll and those before looked at; for an event handed out, that and what
 * was looked at before it. */
static store_status processed(const store_sub *sub, const char *revision,
                              char mark[STORE_REVISION_SIZE], json_t **seen) {
    uint64_t poll = sub->polls;
    bool position = false, found;
    bool in_batch = false;
    for (size_t i = 0; i < sub->nevents && !in_batch; i++)
        in_batch = strcmp(sub->events[i].revision, revision) == 0;
    size_t at = seen_find(sub, revision, &found);
    if (!in_batch && found) {
        poll = sub->seen[at].poll;
    } else if (!in_batch) {
        for (size_t i = sub->nhistory; i > 0; i--)
            if (strcmp(sub->history[i - 1].mark, revision) == 0) {
                poll = sub->history[i - 1].poll;
                position = true;
                break;
            }
    }
    /* The mark after that poll (or the current one when it is gone). */
    ddb_copy_rev(mark, sub->mark);
    for (size_t i = 0; i < sub->nhistory; i++)
        if (sub->history[i].poll == poll) ddb_copy_rev(mark, sub->history[i].mark);
    if (!position && strcmp(revision, mark) < 0) ddb_copy_rev(mark, revision);
    if ((*seen = json_array()) == NULL) return STORE_NOMEM;
    for (size_t i = 0; i < sub->nseen; i++) {
        const seen_rev *v = &sub->seen[i];
        bool done =
            v->poll < poll || (v->poll == poll && (position || strcmp(v->rev, revision) <= 0));
        if (done && strcmp(v->rev, mark) > 0 &&
            json_array_append_new(*seen, json_pack("{s:s}", "S", v->rev)) != 0)
            return STORE_NOMEM;
    }
    return STORE_OK;
}

/* Adds the stream and each shard's position (pos[i], filled) to a
 * checkpoint item: after the last poll for its position, after an event of
 * its batch for that event (and what came before it), else the positions
 * stored already: an older event may sit inside an earlier batch. Adds
 * nothing when no shard has a position yet (a restart catches up). */
static bool put_positions(const store_sub *sub, const char *revision, json_t *item,
                          const char **pos) {
    size_t upto = SIZE_MAX;
    for (size_t j = 0; j < sub->nevents && upto == SIZE_MAX; j++)
        if (strcmp(sub->events[j].revision, revision) == 0) upto = j;
    bool all = upto == SIZE_MAX && strcmp(revision, sub->mark) == 0, any = false;
    for (size_t i = 0; i < sub->nshards; i++) {
        const shard *sh = &sub->shards[i];
        pos[i] = all ? sh->seq : upto != SIZE_MAX ? sh->before : sh->acked;
        for (size_t k = 0; upto != SIZE_MAX && k <= upto; k++)
            if (sub->marks[k].shard == i) pos[i] = sub->marks[k].seq;
        any = any || pos[i] != NULL;
    }
    if (!any) return true;
    json_t *list = json_array();
    if (list == NULL || json_object_set_new(item, "stream", ddb_av_s(sub->stream)) != 0 ||
        json_object_set_new(item, "shards", json_pack("{s:o}", "L", list)) != 0)
        return false;
    for (size_t i = 0; i < sub->nshards; i++) {
        const shard *sh = &sub->shards[i];
        bool done = sh->done && (sh->seq == NULL ? pos[i] == NULL
                                                 : pos[i] != NULL && strcmp(pos[i], sh->seq) == 0);
        json_t *m = json_pack("{s:{s:s}, s:{s:b}}", "id", "S", sh->id, "done", "BOOL", done);
        if (m == NULL || (pos[i] != NULL && json_object_set_new(m, "seq", ddb_av_s(pos[i])) != 0) ||
            json_array_append_new(list, json_pack("{s:o}", "M", m)) != 0)
            return false;
    }
    return true;
}

store_status ddb_ack(store_sub *sub, const char *revision, bool *acked, char **err) {
    ddb_store *s = sub->s;
    http_response r = {0};
    json_t *seen = NULL, *item = NULL;
    const char **pos = NULL;
    char mark[STORE_REVISION_SIZE];
    store_status status;
    *acked = false;
    if ((status = store_check_revision("ack:", revision, false, err)) != STORE_OK) return status;
    /* Following the stream, an event below the checkpoint may be new (it
     * committed late): its shard positions still move on. */
    bool streamed = sub->following && sub->stream_polls > 0;
    if (strcmp(revision, sub->known) <= 0 && (!streamed || sub->name == NULL)) {
        *acked = true;
        return STORE_OK;
    }
    const char *stored = strcmp(revision, sub->known) > 0 ? revision : sub->known;
    if (sub->name == NULL) {
        ddb_copy_rev(sub->known, stored);
        *acked = true;
        return STORE_OK;
    }
    if (sub->lease.mine[0] == '\0') return STORE_OK; /* a standby acks nothing */
    /* The mark and seen revisions are the catch-up's, for a restart that
     * has to catch up again; positions are the stream's. */
    if (processed(sub, revision, mark, &seen) != STORE_OK) goto nomem;
    char version[24];
    snprintf(version, sizeof version, "%" PRId64, sub->version + 1);
    item = json_pack("{s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:{s:s}, s:o, s:o, s:o}", "pk", "S",
                     sub->name, "sk", "S", "subscription", "revision", "S", stored, "mark", "S",
                     mark, "version", "N", version, "holder", ddb_av_s(sub->lease.mine), "beat",
                     av_n(sub->lease.beat), "lease_ms", av_n(sub->lease.lease_ms));
    if (item == NULL ||
        (json_array_size(seen) > 0 &&
         json_object_set_new(item, "seen", json_pack("{s:O}", "L", seen)) != 0) ||
        (streamed && ((pos = calloc(sub->nshards + 1, sizeof *pos)) == NULL ||
                      !put_positions(sub, revision, item, pos))))
        goto nomem;
    json_t *body;
    if (sub->version == 0) {
        body = json_pack("{s:s, s:O, s:s, s:{s:s, s:s}, s:{s:o}}", "TableName", s->metadata, "Item",
                         item, "ConditionExpression",
                         "attribute_not_exists(#version) AND #holder = :holder",
                         "ExpressionAttributeNames", "#version", "version", "#holder", "holder",
                         "ExpressionAttributeValues", ":holder", ddb_av_s(sub->lease.mine));
    } else {
        char current[24];
        snprintf(current, sizeof current, "%" PRId64, sub->version);
        body = json_pack("{s:s, s:O, s:s, s:{s:s, s:s}, s:{s:{s:s}, s:o}}", "TableName",
                         s->metadata, "Item", item, "ConditionExpression",
                         "#version = :version AND #holder = :holder", "ExpressionAttributeNames",
                         "#version", "version", "#holder", "holder", "ExpressionAttributeValues",
                         ":version", "N", current, ":holder", ddb_av_s(sub->lease.mine));
    }
    /* Not resent blindly: a resend after a lost answer would find its own
     * write and take it for another consumer's. */
    status = ddb_call(s, "PutItem", body, false,
                      (const char *const[]){"ConditionalCheckFailedException", NULL}, &r, err);
    if (status != STORE_OK) goto done;
    if (r.error != NULL) {
        /* Another consumer took the lease or moved the checkpoint: start
         * again from where it left things, and ask about the lease at the
         * next poll. */
        lease_doubt(&sub->lease);
        status = rewind_sub(sub, err);
        goto done;
    }
    sub->version++;
    ddb_copy_rev(sub->known, stored);
    *acked = true;
    /* Out of memory here keeps an older position: a later ack that falls
     * back on it stores less, never more. */
    for (size_t i = 0; streamed && i < sub->nshards; i++)
        (void)set_str(&sub->shards[i].acked, pos[i]);
    goto done;
nomem:
    status = ddb_nomem(err);
done:
    free(pos);
    json_decref(seen);
    json_decref(item);
    http_response_free(&r);
    return status;
}

store_status ddb_checkpoint(store_sub *sub, char out[STORE_REVISION_SIZE], char **err) {
    ddb_store *s = sub->s;
    http_response r = {0};
    const json_t *item;
    ddb_copy_rev(out, sub->known);
    if (sub->name == NULL) return STORE_OK;
    ddb_copy_rev(out, STORE_START);
    store_status status = ddb_get_meta(s, sub->name, "subscription", &r, &item, err);
    if (status == STORE_OK && ddb_item_s(item, "revision") != NULL &&
        revision_valid(ddb_item_s(item, "revision")))
        ddb_copy_rev(out, ddb_item_s(item, "revision"));
    http_response_free(&r);
    return status;
}

store_status ddb_sub_reset(store *st, const char *name, char **err) {
    ddb_store *s = (ddb_store *)st;
    http_response r = {0};
    const char *why = store_check_text(name, false);
    if (why != NULL) return store_fail(err, STORE_INVALID, "subscription name %s", why);
    /* The checkpoint goes, the lease stays: a consumer holding the name
     * goes on holding it, and starts over at its next ack. */
    json_t *body =
        json_pack("{s:s, s:o, s:s, s:{s:s, s:s, s:s, s:s, s:s, s:s}}", "TableName", s->metadata,
                  "Key", sub_key(name), "UpdateExpression", "REMOVE #r, #m, #s, #v, #st, #sh",
                  "ExpressionAttributeNames", "#r", "revision", "#m", "mark", "#s", "seen", "#v",
                  "version", "#st", "stream", "#sh", "shards");
    store_status status = ddb_call(s, "UpdateItem", body, true, NULL, &r, err);
    http_response_free(&r);
    return status;
}
