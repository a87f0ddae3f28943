/*
 * group_commit_test.c - group commit in the SQLite backend (sqlite.c's file
 * comment): threads of one process, each with a handle of its own, share
 * transactions and fsyncs, and every append keeps its own checks, outcome
 * and durability.
 *
 *  - A race of threads with expected revisions on shared keys grants each
 *    head once, and what is stored is exactly what was acknowledged.
 *  - Inside one group, appends that conflict, repeat an idempotency key or
 *    fail leave the others committed, and snapshot saves share the commit.
 *    Groups are made to form by holding the write lock from a raw
 *    connection while the appends queue up.
 *  - A child process appending from threads and killed -9 keeps every
 *    append it acknowledged.
 */
#include "test.h"
#include "store.h"

#include <dirent.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static store *open_store(const char *path) {
    store *s = NULL;
    char *err = NULL;
    if (store_open(path, NULL, &s, &err) != STORE_OK) {
        fprintf(stderr, "open %s: %s\n", path, err);
        free(err);
    }
    CHECK(s != NULL);
    return s;
}

static void pause_ms(int ms) {
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0) {}
}

/* The events of a key (every key when NULL), as revisions; returns how
 * many, at most max. */
static int revisions(store *s, const char *key, char (*out)[STORE_REVISION_SIZE], int max) {
    store_cursor *c = NULL;
    const store_event *ev;
    char *err = NULL;
    int n = 0;
    if (s->ops->read(s, key, NULL, &c, &err) != STORE_OK) {
        fprintf(stderr, "read: %s\n", err);
        free(err);
        return -1;
    }
    while (s->ops->next(c, &ev, &err) == STORE_OK && ev != NULL) {
        if (n < max) memcpy(out[n], ev->revision, STORE_REVISION_SIZE);
        n++;
    }
    free(err);
    s->ops->cursor_close(c);
    return n;
}

/* INFO's group_commit counters for this process. */
static void group_stats(store *s, long long *commits, long long *appends, long long *largest) {
    char *out = NULL, *err = NULL;
    *commits = *appends = *largest = -1;
    if (s->ops->admin(s, STORE_INFO, &out, &err) != STORE_OK) {
        fprintf(stderr, "info: %s\n", err);
        free(err);
        return;
    }
    json_t *doc = json_loads(out, 0, NULL);
    json_t *g = json_object_get(doc, "group_commit");
    *commits = json_integer_value(json_object_get(g, "commits"));
    *appends = json_integer_value(json_object_get(g, "appends"));
    *largest = json_integer_value(json_object_get(g, "largest"));
    json_decref(doc);
    free(out);
}

/* ------------------------------------------------------------------ */
/* The race                                                            */

enum { THREADS = 8, EACH = 40, KEYS = 3 };

/* What one successful append of the race was told and asked for. */
typedef struct grant {
    int key;                            /* which of the KEYS */
    char expected[STORE_REVISION_SIZE]; /* the head it expected */
    char revision[STORE_REVISION_SIZE]; /* the revision it got */
} grant;

/* One racing thread. */
typedef struct racer {
    pthread_t thread;   /* the thread */
    int index;          /* 0-based */
    store *s;           /* its own handle */
    grant grants[EACH]; /* its appends, in order */
    int conflicts;      /* appends refused on their expected revision */
    bool failed;        /* an append or head failed */
} racer;

static void *race(void *arg) {
    racer *r = arg;
    char *err = NULL;
    for (int i = 0; i < EACH; i++) {
        int k = (r->index + i) % KEYS;
        char key[16], data[48];
        snprintf(key, sizeof key, "race/%d", k);
        snprintf(data, sizeof data, "{\"thread\":%d,\"i\":%d}", r->index, i);
        store_pending ev = {"raced", data, strlen(data), NULL};
        grant *g = &r->grants[i];
        for (;;) {
            store_append_result res;
            if (r->s->ops->head(r->s, key, g->expected, &err) != STORE_OK ||
                r->s->ops->append(r->s, key, &ev, 1, &(store_append_opts){g->expected, NULL}, &res,
                                  &err) != STORE_OK) {
                fprintf(stderr, "racer %d: %s\n", r->index, err);
                free(err);
                r->failed = true;
                return NULL;
            }
            if (res.outcome == STORE_APPENDED) {
                g->key = k;
                memcpy(g->revision, res.revision, sizeof g->revision);
                break;
            }
            r->conflicts++;
        }
    }
    return NULL;
}

static int by_revision(const void *a, const void *b) {
    return strcmp(((const grant *)a)->revision, ((const grant *)b)->revision);
}

/* Each key's stored events are exactly the appends acknowledged on it, and
 * the append that wrote each event expected the one before it (START for
 * the first): every head was granted to exactly one append. */
static void test_race(void) {
    const char *path = test_path("race.db");
    static racer racers[THREADS];
    store *main_s = open_store(path);
    for (int t = 0; t < THREADS; t++) {
        racers[t] = (racer){.index = t, .s = open_store(path)};
        CHECK(pthread_create(&racers[t].thread, NULL, race, &racers[t]) == 0);
    }
    int conflicts = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(racers[t].thread, NULL);
        CHECK(!racers[t].failed);
        conflicts += racers[t].conflicts;
    }

    static grant all[THREADS * EACH];
    static char stored[THREADS * EACH + 1][STORE_REVISION_SIZE];
    int total = 0;
    for (int k = 0; k < KEYS; k++) {
        int n = 0;
        for (int t = 0; t < THREADS; t++)
            for (int i = 0; i < EACH; i++)
                if (racers[t].grants[i].key == k) all[n++] = racers[t].grants[i];
        qsort(all, (size_t)n, sizeof *all, by_revision);
        char key[16];
        snprintf(key, sizeof key, "race/%d", k);
        int m = revisions(main_s, key, stored, THREADS * EACH + 1);
        CHECK(m == n);
        bool chained = m == n;
        for (int j = 0; chained && j < n; j++)
            chained = strcmp(all[j].revision, stored[j]) == 0 &&
                      strcmp(all[j].expected, j == 0 ? STORE_START : stored[j - 1]) == 0;
        CHECK(chained);
        total += m;
    }
    CHECK(total == THREADS * EACH);
    CHECK(revisions(main_s, NULL, stored, THREADS * EACH + 1) == THREADS * EACH);

    long long commits, appends, largest;
    group_stats(main_s, &commits, &appends, &largest);
    CHECK(appends == THREADS * EACH);
    CHECK(commits >= 1 && commits <= appends && largest >= 1 && largest <= THREADS);
    printf("  race: %d threads x %d appends, %d conflicts; %lld commits carried %lld appends "
           "(%.2f each, at most %lld)\n",
           THREADS, EACH, conflicts, commits, appends,
           commits > 0 ? (double)appends / (double)commits : 0.0, largest);
    for (int t = 0; t < THREADS; t++) store_close(racers[t].s);
    store_close(main_s);
}

/* ------------------------------------------------------------------ */
/* Groups made to form                                                 */

/* One append (or snapshot save) of a staged group, and what came of it. */
typedef struct job {
    const char *key;       /* the stream */
    const char *expected;  /* expected revision, or NULL */
    const char *token;     /* idempotency key, or NULL */
    int count;             /* events to append */
    const char *snapshot;  /* instead: save a snapshot at this revision */
    store *s;              /* its own handle */
    pthread_t thread;      /* the thread appending it */
    store_status status;   /* what append returned */
    store_append_result r; /* its result */
    bool saved;            /* the snapshot was saved */
    char *err;             /* its message */
} job;

static void *run_job(void *arg) {
    job *j = arg;
    if (j->snapshot != NULL) {
        j->status = j->s->ops->save_snapshot(j->s, j->key, j->snapshot, "7", 1, &j->saved, &j->err);
        return NULL;
    }
    store_pending ev[4];
    for (int i = 0; i < j->count && i < 4; i++) ev[i] = (store_pending){"staged", "{}", 2, NULL};
    j->status = j->s->ops->append(j->s, j->key, ev, (size_t)j->count,
                                  &(store_append_opts){j->expected, j->token}, &j->r, &j->err);
    return NULL;
}

/* Whether the file's group has a leader at work and `waiting` appends
 * queued behind it, by INFO. */
static bool group_is(store *s, bool committing, long long waiting) {
    char *out = NULL, *err = NULL;
    if (s->ops->admin(s, STORE_INFO, &out, &err) != STORE_OK) {
        free(err);
        return false;
    }
    json_t *doc = json_loads(out, 0, NULL);
    json_t *g = json_object_get(doc, "group_commit");
    bool is = json_is_true(json_object_get(g, "committing")) == committing &&
              json_integer_value(json_object_get(g, "waiting")) == waiting;
    json_decref(doc);
    free(out);
    return is;
}

/* Holds the file's write lock from a raw connection while jobs[0] starts
 * (it leads, and waits for the lock) and the others queue behind it, in
 * order; then lets go. jobs[0] commits alone, the rest as one group. Each
 * job starts once the one before it is in place (INFO says so), so the
 * queue order is the start order however slow the machine. */
static void stage(const char *path, job *jobs, int n) {
    sqlite3 *raw = NULL;
    CHECK(sqlite3_open(path, &raw) == SQLITE_OK);
    CHECK(sqlite3_exec(raw, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
    store *watch = open_store(path);
    for (int i = 0; i < n; i++) {
        jobs[i].s = open_store(path);
        CHECK(pthread_create(&jobs[i].thread, NULL, run_job, &jobs[i]) == 0);
        int waited = 0; /* ms; a limit on hanging, 60 s */
        while (!group_is(watch, true, i) && waited < 60000) {
            pause_ms(5);
            waited += 5;
        }
        CHECK(group_is(watch, true, i));
    }
    store_close(watch);
    CHECK(sqlite3_exec(raw, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(raw);
    for (int i = 0; i < n; i++) {
        pthread_join(jobs[i].thread, NULL);
        store_close(jobs[i].s);
    }
}

static store_status append_one(store *s, const char *key, store_append_result *r) {
    char *err = NULL;
    store_pending ev = {"before", "{}", 2, NULL};
    store_status st = s->ops->append(s, key, &ev, 1, NULL, r, &err);
    free(err);
    return st;
}

/* Conflicts and an idempotent repeat inside a group change nothing for the
 * other appends of the group, which commit together. */
static void test_conflicts_in_a_group(void) {
    const char *path = test_path("group.db");
    store *s = open_store(path);
    store_append_result b;
    CHECK(append_one(s, "b", &b) == STORE_OK && b.outcome == STORE_APPENDED);

    job jobs[] = {
        {.key = "solo", .count = 1},                                        /* leads alone */
        {.key = "a", .expected = STORE_START, .count = 1},                  /* appended */
        {.key = "b", .expected = STORE_START, .count = 1},                  /* conflict */
        {.key = "c", .expected = "01ARZ3NDEKTSV4RRFFQ69G5FAV", .count = 1}, /* conflict */
        {.key = "d", .token = "once", .count = 1},                          /* appended */
        {.key = "e", .token = "once", .count = 1},                          /* a repeat */
        {.key = "f", .expected = STORE_START, .count = 3},                  /* appended */
    };
    int n = (int)(sizeof jobs / sizeof *jobs);
    stage(path, jobs, n);

    for (int i = 0; i < n; i++) CHECK(jobs[i].status == STORE_OK);
    CHECK(jobs[0].r.outcome == STORE_APPENDED);
    CHECK(jobs[1].r.outcome == STORE_APPENDED && jobs[1].r.count == 1);
    CHECK(jobs[2].r.outcome == STORE_CONFLICT);
    CHECK_STR(jobs[2].r.actual, b.revision);
    CHECK(jobs[3].r.outcome == STORE_CONFLICT);
    CHECK_STR(jobs[3].r.actual, STORE_START);
    CHECK(jobs[4].r.outcome == STORE_APPENDED);
    CHECK(jobs[5].r.outcome == STORE_UNCHANGED);
    CHECK(jobs[6].r.outcome == STORE_APPENDED && jobs[6].r.count == 3);
    /* The group numbered its appends in queue order. */
    CHECK(strcmp(jobs[0].r.revision, jobs[1].r.revision) < 0);
    CHECK(strcmp(jobs[1].r.revision, jobs[4].r.revision) < 0);
    CHECK(strcmp(jobs[4].r.revision, jobs[6].r.revision) < 0);

    char revs[8][STORE_REVISION_SIZE];
    CHECK(revisions(s, "a", revs, 8) == 1);
    CHECK(revisions(s, "b", revs, 8) == 1);
    CHECK(revisions(s, "c", revs, 8) == 0);
    CHECK(revisions(s, "d", revs, 8) == 1);
    CHECK(revisions(s, "e", revs, 8) == 0);
    CHECK(revisions(s, "f", revs, 8) == 3);
    CHECK(revisions(s, NULL, revs, 8) == 7);

    /* "b" before, "solo" alone, then a, d and f in one transaction. */
    long long commits, appends, largest;
    group_stats(s, &commits, &appends, &largest);
    CHECK(commits == 3);
    CHECK(appends == 5);
    CHECK(largest == 3);
    for (int i = 0; i < n; i++) free(jobs[i].err);
    store_close(s);
}

/* Snapshots saved while appends commit join their group: one commit for
 * both, and an older snapshot still loses to a newer one. */
static void test_snapshots_in_a_group(void) {
    const char *path = test_path("snaps.db");
    store *s = open_store(path);
    store_append_result a, b;
    CHECK(append_one(s, "k", &a) == STORE_OK && append_one(s, "k", &b) == STORE_OK);
    bool saved = false;
    char *err = NULL;
    CHECK(s->ops->save_snapshot(s, "old", b.revision, "1", 1, &saved, &err) == STORE_OK && saved);

    job jobs[] = {
        {.key = "lead", .count = 1},            /* leads alone */
        {.key = "k", .snapshot = b.revision},   /* saved */
        {.key = "x", .count = 2},               /* appended */
        {.key = "old", .snapshot = a.revision}, /* older than the stored one */
    };
    int n = (int)(sizeof jobs / sizeof *jobs);
    stage(path, jobs, n);

    for (int i = 0; i < n; i++) CHECK(jobs[i].status == STORE_OK);
    CHECK(jobs[1].saved);
    CHECK(jobs[2].r.outcome == STORE_APPENDED && jobs[2].r.count == 2);
    CHECK(!jobs[3].saved);
    store_snapshot snap;
    bool found = false;
    CHECK(s->ops->snapshot(s, "k", &snap, &found, &err) == STORE_OK && found);
    CHECK(found && strcmp(snap.revision, b.revision) == 0 && snap.state_len == 1 &&
          snap.state[0] == '7');
    if (found) free(snap.state);
    CHECK(s->ops->snapshot(s, "old", &snap, &found, &err) == STORE_OK && found);
    CHECK(found && strcmp(snap.revision, b.revision) == 0);
    if (found) free(snap.state);
    /* Appends: k twice and "lead" alone, then x with the snapshot. */
    long long commits, appends, largest;
    group_stats(s, &commits, &appends, &largest);
    CHECK(commits == 4 && appends == 4 && largest == 1);
    for (int i = 0; i < n; i++) free(jobs[i].err);
    free(err);
    store_close(s);
}

/* An append that fails inside a group is undone alone. The store is made
 * to run out of revisions: after ...X come only ...Y and ...Z. */
static void test_failure_in_a_group(void) {
    const char *path = test_path("full.db");
    store *s = open_store(path);
    sqlite3 *raw = NULL;
    CHECK(sqlite3_open(path, &raw) == SQLITE_OK);
    CHECK(sqlite3_exec(raw,
                       "INSERT INTO events (revision, key, type, data, committed_at)"
                       " VALUES ('7ZZZZZZZZZZZZZZZZZZZZZZZZX', 'last', 'sentinel', '{}',"
                       " '2026-11-26T20:29:24.016Z')",
                       NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(raw);

    job jobs[] = {
        {.key = "lead", .count = 3},  /* needs X+1..X+3: fails, alone */
        {.key = "big", .count = 3},   /* fails the same way, first in the group */
        {.key = "one", .count = 1},   /* ...Y */
        {.key = "two", .count = 1},   /* ...Z */
        {.key = "three", .count = 1}, /* nothing after Z: fails */
    };
    int n = (int)(sizeof jobs / sizeof *jobs);
    stage(path, jobs, n);

    CHECK(jobs[0].status == STORE_LIMIT);
    CHECK(jobs[1].status == STORE_LIMIT);
    CHECK(jobs[2].status == STORE_OK && jobs[2].r.outcome == STORE_APPENDED);
    CHECK_STR(jobs[2].r.revision, "7ZZZZZZZZZZZZZZZZZZZZZZZZY");
    CHECK(jobs[3].status == STORE_OK && jobs[3].r.outcome == STORE_APPENDED);
    CHECK_STR(jobs[3].r.revision, "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
    CHECK(jobs[4].status != STORE_OK && jobs[4].err != NULL);
    char revs[8][STORE_REVISION_SIZE];
    CHECK(revisions(s, "lead", revs, 8) == 0);
    CHECK(revisions(s, "big", revs, 8) == 0);
    CHECK(revisions(s, "one", revs, 8) == 1);
    CHECK(revisions(s, "two", revs, 8) == 1);
    CHECK(revisions(s, "three", revs, 8) == 0);
    CHECK(revisions(s, NULL, revs, 8) == 3);
    for (int i = 0; i < n; i++) free(jobs[i].err);
    store_close(s);
}

/* ------------------------------------------------------------------ */
/* kill -9                                                             */

enum { WRITERS = 4 };

/* One appending thread of the child; acknowledgements go to a pipe as
 * (writer, i) pairs, written whole (under PIPE_BUF). */
typedef struct writer {
    pthread_t thread; /* the thread */
    int index;        /* which writer */
    store *s;         /* its handle */
    int fd;           /* the pipe */
} writer;

static void *write_events(void *arg) {
    writer *w = arg;
    char key[16], *err = NULL;
    snprintf(key, sizeof key, "crash/%d", w->index);
    for (int i = 0;; i++) {
        char data[32];
        snprintf(data, sizeof data, "{\"i\":%d}", i);
        store_pending ev = {"numbered", data, strlen(data), NULL};
        store_append_result r;
        int ack[2] = {w->index, i};
        if (w->s->ops->append(w->s, key, &ev, 1, NULL, &r, &err) != STORE_OK ||
            write(w->fd, ack, sizeof ack) != (ssize_t)sizeof ack)
            _exit(3);
    }
    return NULL;
}

/* The crashing process: WRITERS threads appending through their own
 * handles, so their appends commit in groups, until it is killed. */
static void crash_writers(int fd, void *path) {
    static writer w[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        char *err = NULL;
        w[i] = (writer){.index = i, .fd = fd};
        if (store_open(path, NULL, &w[i].s, &err) != STORE_OK) _exit(2);
    }
    for (int i = 0; i < WRITERS; i++) pthread_create(&w[i].thread, NULL, write_events, &w[i]);
    pthread_join(w[0].thread, NULL);
    _exit(4);
}

static int acked[WRITERS], total; /* each writer's last acknowledged i; how many */

static bool note_ack(const void *ack, void *ctx) {
    (void)ctx;
    int a[2];
    memcpy(a, ack, sizeof a);
    acked[a[0]] = a[1];
    return ++total < 400;
}

/* Every append a grouped writer acknowledged before a kill -9 is there
 * after reopening, each key gapless. */
static void test_kill9_threads(void) {
    char *path = test_path("crash.db");
    for (int i = 0; i < WRITERS; i++) acked[i] = -1;
    total = 0;
    test_kill9(crash_writers, 2 * sizeof(int), note_ack, path);

    store *s = open_store(path);
    for (int i = 0; i < WRITERS; i++) {
        char key[16];
        snprintf(key, sizeof key, "crash/%d", i);
        store_cursor *c = NULL;
        const store_event *ev;
        char *err = NULL;
        int n = 0;
        bool gapless = true;
        CHECK(s->ops->read(s, key, NULL, &c, &err) == STORE_OK);
        while (s->ops->next(c, &ev, &err) == STORE_OK && ev != NULL) {
            int v = -1;
            sscanf(ev->data, "{\"i\":%d", &v);
            gapless &= v == n++;
        }
        s->ops->cursor_close(c);
        free(err);
        /* One more may have committed before its acknowledgement was sent. */
        CHECK(n >= acked[i] + 1 && n <= acked[i] + 2);
        CHECK(gapless);
    }
    store_close(s);
}

/* ------------------------------------------------------------------ */

TEST_MAIN("aeon-group-", test_race, test_conflicts_in_a_group, test_snapshots_in_a_group,
          test_failure_in_a_group, test_kill9_threads)
