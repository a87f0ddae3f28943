/*
 * lease.c - when a subscription renews, takes over or gives up its name's
 * lease (lease.h). The backends store the record and make each step atomic;
 * the timing rules, the same on every backend, are here.
 */
#include "lease.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOOK_MIN_MS 25   /* a standby looks at the record at most this often ... */
#define LOOK_MAX_MS 1000 /* ... and at least this often, beside a tenth of the lease */

int64_t lease_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void lease_init(lease *l, const lease_io *io, void *ctx, const store_env *env, int64_t lease_ms) {
    memset(l, 0, sizeof *l);
    l->io = io;
    l->ctx = ctx;
    l->env = env;
    l->lease_ms = lease_ms > 0 ? lease_ms : LEASE_DEFAULT_MS;
}

store_status lease_check(int64_t lease_ms, char **err) {
    if (lease_ms != 0 && (lease_ms < LEASE_MIN_MS || lease_ms > LEASE_MAX_MS))
        return store_fail(err, STORE_INVALID,
                          "subscribe: the lease must be between %d ms "
                          "and %d s",
                          LEASE_MIN_MS, LEASE_MAX_MS / 1000);
    return STORE_OK;
}

int64_t lease_wait_ms(const lease *l) {
    int64_t ms = l->lease_ms / 10;
    return ms < LOOK_MIN_MS ? LOOK_MIN_MS : ms > LOOK_MAX_MS ? LOOK_MAX_MS : ms;
}

void lease_doubt(lease *l) { l->renewed = INT64_MIN / 2; }

/* A fresh holder token: 16 random bytes in hex, so a token is never drawn
 * twice, even after the record was deleted (a reset) and made anew. */
static void new_token(const lease *l, char out[LEASE_TOKEN_SIZE]) {
    uint8_t raw[16];
    l->env->random(l->env->ctx, raw, sizeof raw);
    for (size_t i = 0; i < sizeof raw; i++) snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

static bool same_record(const lease_record *a, const lease_record *b) {
    return a->found == b->found && strcmp(a->holder, b->holder) == 0 && a->beat == b->beat;
}

/* The holder's step: trust the lease for a third of it after the last
 * renewal (no standby can take it before a whole lease has passed since it
 * saw that beat), else renew. */
static store_status keep(lease *l, int64_t now, bool *held, char **err) {
    *held = true;
    if (now - l->renewed < l->lease_ms / 3) return STORE_OK;
    /* Timed from before the write: the lease runs from no later than the
     * moment a standby can see the new beat. */
    store_status status = l->io->renew(l->ctx, l->mine, l->lease_ms, held, err);
    if (status != STORE_OK) return status;
    if (*held) {
        l->renewed = now;
        l->beat++;
    } else {
        l->mine[0] = '\0';
    }
    return STORE_OK;
}

/* The standby's step: take the record when it is free, or when it has not
 * changed for a whole lease (its holder's) since this consumer first saw it
 * so. One read a call: waiting polls call it every lease_wait_ms. */
static store_status watch(lease *l, int64_t now, bool *held, bool *taken, char **err) {
    lease_record rec;
    store_status status;
    if ((status = l->io->get(l->ctx, &rec, err)) != STORE_OK) return status;
    if (!same_record(&rec, &l->seen) || l->seen_since == 0) {
        l->seen = rec;
        l->seen_since = now;
    }
    bool vacant = !rec.found || rec.holder[0] == '\0';
    int64_t their = rec.lease_ms > 0 ? rec.lease_ms : LEASE_DEFAULT_MS;
    if (!vacant && now - l->seen_since < their) return STORE_OK;
    char token[LEASE_TOKEN_SIZE];
    bool won = false;
    new_token(l, token);
    if ((status = l->io->take(l->ctx, &rec, token, l->lease_ms, &won, err)) != STORE_OK)
        return status;
    if (won) {
        memcpy(l->mine, token, sizeof token);
        l->beat = 0;
        l->renewed = now;
        *held = *taken = true;
    }
    return STORE_OK;
}

store_status lease_hold(lease *l, bool *held, bool *taken, char **err) {
    int64_t now = lease_now_ms();
    store_status status;
    *held = *taken = false;
    if (l->mine[0] != '\0') {
        if ((status = keep(l, now, held, err)) != STORE_OK || *held) return status;
    }
    return watch(l, now, held, taken, err);
}

store_status lease_keep(lease *l, bool *held, char **err) {
    *held = false;
    if (l->mine[0] == '\0') return STORE_OK;
    return keep(l, lease_now_ms(), held, err);
}

static void nap(int64_t ms) {
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0) {}
}

store_status lease_claim(lease *l, const char *name, char **err) {
    bool held, taken;
    store_status status = lease_hold(l, &held, &taken, err);
    lease_record first = l->seen;
    while (status == STORE_OK && !held) {
        if (!same_record(&l->seen, &first) && l->seen.holder[0] != '\0')
            return store_fail(err, STORE_BUSY,
                              "subscription \"%s\" is in use by another "
                              "consumer, which renews its lease",
                              name);
        nap(lease_wait_ms(l));
        status = lease_hold(l, &held, &taken, err);
    }
    return status;
}

void lease_release(lease *l) {
    char *err = NULL;
    if (l->mine[0] == '\0') return;
    (void)l->io->release(l->ctx, l->mine, &err);
    free(err);
    l->mine[0] = '\0';
}
