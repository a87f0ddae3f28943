/*
 * full_disk_test.c - "acknowledged means durable" on a really full disk:
 * the SQLite backend's group commit answers nothing as stored that its
 * COMMIT did not store (sqlite.c's file comment, group commit).
 *
 * The store lives on a small tmpfs mounted for the test, and a filler file
 * takes the space left, so the WAL cannot grow and COMMITs fail with
 * "database or disk is full" now and then. Each round, pairs of threads
 * (each with a handle of its own, so they share commit groups) append the
 * same event under the same idempotency key at the same moment, and then
 * save a snapshot. Afterwards the filler goes, the file is reopened, and
 * every answer is held against what is stored:
 *  - "appended": its revision is stored, with its token;
 *  - "unchanged" (an idempotent repeat): its token's event is stored;
 *  - a saved snapshot is stored;
 *  - no token is stored twice.
 * Mounting needs root (CI runs as root); elsewhere the test says it skips.
 */
#include "test.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    ROUNDS = 400, /* rounds of concurrent repeats */
    PAIRS = 4,    /* tokens per round, each sent by two threads */
    THREADS = 2 * PAIRS,
    DATA_BYTES = 1500, /* an event's data: a few go past a WAL page */
};

#define FS_SIZE "16m" /* the tmpfs: store, WAL and filler */
#define SNAP_REVISION "00000000000000000000000001"

/* One thread's requests in one round and what it was told. */
typedef struct answer {
    char token[32];                     /* the idempotency key sent */
    store_status status;                /* the append's status */
    store_outcome outcome;              /* ... and outcome when STORE_OK */
    char revision[STORE_REVISION_SIZE]; /* APPENDED: its revision */
    char snap_key[32];                  /* the snapshot saved after it */
    bool saved;                         /* the save succeeded and stored */
} answer;

typedef struct worker {
    pthread_t thread;         /* the thread */
    int index;                /* 0-based; index / 2 is its pair */
    store *s;                 /* its own handle on the file */
    answer *answers;          /* ROUNDS of them */
    pthread_barrier_t *start; /* every round starts together */
} worker;

static char dir[64];
static char path[128];
static char filler[128];
static char data[DATA_BYTES + 64];

/* Fills the file system: the filler grows until a write fails with ENOSPC,
 * then gives back `spare` bytes. */
static void fill_disk(off_t spare) {
    static char block[4096];
    int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    off_t size = 0;
    ssize_t n;
    if (fd < 0) return;
    while ((n = write(fd, block, sizeof block)) > 0) size += n;
    fsync(fd);
    if (ftruncate(fd, size > spare ? size - spare : 0) != 0) perror("ftruncate");
    close(fd);
}

static void *run_worker(void *arg) {
    worker *w = arg;
    for (int r = 0; r < ROUNDS; r++) {
        answer *a = &w->answers[r];
        snprintf(a->token, sizeof a->token, "t%d-%d", r, w->index / 2);
        snprintf(a->snap_key, sizeof a->snap_key, "snap/%d/%d", r, w->index);
        char body[DATA_BYTES + 64];
        int len = snprintf(body, sizeof body, "{\"token\":\"%s\",\"pad\":\"%s\"}", a->token, data);
        store_pending ev = {"written", body, (size_t)len, NULL};
        store_append_result res;
        char *err = NULL;

        pthread_barrier_wait(w->start);
        a->status = w->s->ops->append(w->s, "disk", &ev, 1, &(store_append_opts){NULL, a->token},
                                      &res, &err);
        a->outcome = res.outcome;
        memcpy(a->revision, res.revision, sizeof a->revision);
        free(err);
        err = NULL;
        bool saved = false;
        if (w->s->ops->save_snapshot(w->s, a->snap_key, SNAP_REVISION, "1", 1, &saved, &err) ==
            STORE_OK)
            a->saved = saved;
        free(err);
        pthread_barrier_wait(w->start); /* the main thread refills between rounds */
    }
    return NULL;
}

/* The token in an event's data, or NULL. */
static char *token_of(const store_event *ev) {
    json_t *doc = json_loadb(ev->data, ev->data_len, 0, NULL);
    const char *t = json_string_value(json_object_get(doc, "token"));
    char *out = t != NULL ? strdup(t) : NULL;
    json_decref(doc);
    return out;
}

typedef struct stored {
    char *token;                        /* the event's token */
    char revision[STORE_REVISION_SIZE]; /* its revision */
} stored;

static int by_token(const void *a, const void *b) {
    return strcmp(((const stored *)a)->token, ((const stored *)b)->token);
}

/* Holds every answer against the reopened store. */
static void verify(worker *ws) {
    store *s = NULL;
    store_cursor *c = NULL;
    const store_event *ev;
    char *err = NULL;
    CHECK(store_open(path, NULL, &s, &err) == STORE_OK);
    if (s == NULL) {
        fprintf(stderr, "reopen: %s\n", err);
        free(err);
        return;
    }
    size_t n = 0, cap = ROUNDS * PAIRS + 1;
    stored *rows = calloc(cap, sizeof *rows);
    CHECK(s->ops->read(s, "disk", NULL, &c, &err) == STORE_OK);
    while (c != NULL && s->ops->next(c, &ev, &err) == STORE_OK && ev != NULL) {
        CHECK(n < cap); /* at most one event per token */
        if (n == cap) break;
        rows[n].token = token_of(ev);
        memcpy(rows[n].revision, ev->revision, STORE_REVISION_SIZE);
        n++;
    }
    s->ops->cursor_close(c);
    qsort(rows, n, sizeof *rows, by_token);
    int twice = 0;
    for (size_t i = 1; i < n; i++) twice += strcmp(rows[i - 1].token, rows[i].token) == 0;
    CHECK(twice == 0);

    long appended = 0, unchanged = 0, failed = 0, lost = 0, snaps = 0, snaps_lost = 0;
    for (int t = 0; t < THREADS; t++) {
        for (int r = 0; r < ROUNDS; r++) {
            answer *a = &ws[t].answers[r];
            stored key = {a->token, ""};
            stored *hit = bsearch(&key, rows, n, sizeof *rows, by_token);
            if (a->status != STORE_OK) {
                failed++;
            } else if (a->outcome == STORE_APPENDED) {
                appended++;
                if (hit == NULL || strcmp(hit->revision, a->revision) != 0) lost++;
            } else {
                unchanged++;
                if (hit == NULL) lost++;
            }
            if (a->saved) {
                bool found = false;
                store_snapshot snap = {0};
                snaps++;
                if (s->ops->snapshot(s, a->snap_key, &snap, &found, &err) != STORE_OK || !found)
                    snaps_lost++;
                free(snap.state);
            }
        }
    }
    printf("full disk: %d rounds, %d threads, %d requests: %ld appended, %ld unchanged, "
           "%ld failed, %zu events stored; %ld acknowledged but not stored; "
           "%ld snapshots saved, %ld of them not stored\n",
           ROUNDS, THREADS, ROUNDS * THREADS, appended, unchanged, failed, n, lost, snaps,
           snaps_lost);
    CHECK(lost == 0);
    CHECK(snaps_lost == 0);
    /* The disk really was full at times, and not always. */
    CHECK(failed > 0);
    CHECK(appended > 0);
    CHECK(unchanged > 0);
    for (size_t i = 0; i < n; i++) free(rows[i].token);
    free(rows);
    free(err);
    store_close(s);
}

int main(void) {
    if (geteuid() != 0) {
        printf("SKIP full_disk_test: mounting the small tmpfs it fills needs root\n");
        return test_report();
    }
    strcpy(dir, "/tmp/aeon-full-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    if (mount("tmpfs", dir, "tmpfs", 0, "size=" FS_SIZE) != 0) {
        printf("SKIP full_disk_test: cannot mount a tmpfs here (%s)\n", strerror(errno));
        rmdir(dir);
        return test_report();
    }
    snprintf(path, sizeof path, "%s/store.db", dir);
    snprintf(filler, sizeof filler, "%s/filler", dir);
    memset(data, 'x', DATA_BYTES);

    worker ws[THREADS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, THREADS + 1);
    bool opened = true;
    for (int t = 0; t < THREADS; t++) {
        char *err = NULL;
        ws[t] = (worker){.index = t, .start = &start, .answers = calloc(ROUNDS, sizeof(answer))};
        if (store_open(path, NULL, &ws[t].s, &err) != STORE_OK) {
            fprintf(stderr, "open: %s\n", err);
            free(err);
            opened = false;
        }
    }
    CHECK(opened);
    if (opened) {
        for (int t = 0; t < THREADS; t++) pthread_create(&ws[t].thread, NULL, run_worker, &ws[t]);
        for (int r = 0; r < ROUNDS; r++) {
            /* Room for a few pages at most: some commits of the round find
             * space (a WAL reset after a checkpoint reuses its own), some
             * do not. */
            fill_disk((off_t)(r % 5) * 32768);
            pthread_barrier_wait(&start);
            pthread_barrier_wait(&start);
        }
        for (int t = 0; t < THREADS; t++) pthread_join(ws[t].thread, NULL);
    }
    for (int t = 0; t < THREADS; t++) store_close(ws[t].s);
    unlink(filler);
    if (opened) verify(ws);
    for (int t = 0; t < THREADS; t++) free(ws[t].answers);
    pthread_barrier_destroy(&start);
    if (umount(dir) != 0) perror("umount");
    rmdir(dir);
    return test_report();
}
