/*
 * lease.h - one consumer per subscription name at a time: the lease every
 * backend's named subscriptions hold (store.h's subscribe), written once.
 *
 * A name's lease is a small record the backend stores beside the
 * checkpoint: the holder (a random token drawn at each takeover, "" when
 * nobody holds it), a beat the holder bumps to renew it, and the lease
 * time the holder renews within. The backend offers three atomic steps on
 * it (lease_io); this file decides when to take which:
 *  - the holder renews every third of its lease, before it hands out a
 *    batch, so a batch always leaves it two thirds of the lease to handle;
 *  - a standby watches the record and takes it over when it is free
 *    (released by close) or when the beat has not moved for a whole lease
 *    of the standby's own monotonic clock, so clocks of different machines
 *    never have to agree;
 *  - the holder token is the fencing token: the backend's ack writes only
 *    while the stored holder is the acker's token.
 *  - a holder that handles a batch for long renews as it goes (lease_keep,
 *    the store's renew), not only in its polls, so a batch that outlasts
 *    the lease does not lose it to a standby while it is handled.
 * Uses store.h (the env's randomness for tokens).
 */
#ifndef AEON_LEASE_H
#define AEON_LEASE_H

#include "store.h"

#define LEASE_TOKEN_SIZE 33          /* 32 hex digits + NUL */
#define LEASE_DEFAULT_MS (10 * 1000) /* store_sub_opts.lease_ms 0 means this */
#define LEASE_MIN_MS 100             /* the shortest lease subscribe takes */
#define LEASE_MAX_MS (3600 * 1000)   /* ... and the longest */

/* The stored record, as read. */
typedef struct lease_record {
    bool found;                    /* there is one */
    char holder[LEASE_TOKEN_SIZE]; /* the holder's token; "" when free */
    int64_t beat;                  /* bumped at every renewal */
    int64_t lease_ms;              /* the holder's lease time */
} lease_record;

/* The backend's atomic steps on one name's record; ctx is its subscription. */
typedef struct lease_io {
    /* Reads the record into *out (out->found false when there is none). */
    store_status (*get)(void *ctx, lease_record *out, char **err);
    /* Makes `holder` the holder with beat 0 and `lease_ms`, only if the
     * record is still `seen` (no record, or the same holder and beat; a
     * free record: free still). *won tells whether it did. */
    store_status (*take)(void *ctx, const lease_record *seen, const char *holder, int64_t lease_ms,
                         bool *won, char **err);
    /* Bumps the beat, only while `holder` holds it; *held tells. */
    store_status (*renew)(void *ctx, const char *holder, int64_t lease_ms, bool *held, char **err);
    /* Frees the record, only while `holder` holds it. */
    store_status (*release)(void *ctx, const char *holder, char **err);
} lease_io;

/* One subscription's side of its name's lease. */
typedef struct lease {
    const lease_io *io;          /* the backend's steps */
    void *ctx;                   /* passed to them */
    const store_env *env;        /* randomness for tokens */
    int64_t lease_ms;            /* this consumer's lease time */
    char mine[LEASE_TOKEN_SIZE]; /* the token it holds with; "" as standby */
    int64_t beat;                /* the beat it last wrote, while holding */
    int64_t renewed;             /* monotonic ms of the last take or renewal */
    lease_record seen;           /* the record as a standby last saw it */
    int64_t seen_since;          /* monotonic ms since it has looked so */
} lease;

/* Sets l up for a subscription; lease_ms 0 is LEASE_DEFAULT_MS. */
void lease_init(lease *l, const lease_io *io, void *ctx, const store_env *env, int64_t lease_ms);

/* STORE_INVALID unless lease_ms is 0 or within LEASE_MIN_MS..LEASE_MAX_MS. */
store_status lease_check(int64_t lease_ms, char **err);

/* Makes sure the subscription holds the lease, renewing it when a third of
 * it has gone and taking it when it is free or its holder stopped renewing.
 * *held tells whether it holds it now, *taken whether it has just taken it
 * (the caller then starts again from the stored checkpoint). A standby
 * reads the record at each call. */
store_status lease_hold(lease *l, bool *held, bool *taken, char **err);

/* The holder's renewal outside a poll, while it handles a batch: renews
 * when a third of the lease has gone since the last renewal (else only
 * looks at the clock); never takes the lease. *held tells whether the
 * subscription still holds it: false for a standby, and once another
 * consumer took it over (the batch is then that one's to handle). */
store_status lease_keep(lease *l, bool *held, char **err);

/* Takes the lease for a consumer that will not stand by: STORE_BUSY when
 * its holder renews it, else once it is free or its holder has stopped
 * renewing for a lease (so it may take that long). */
store_status lease_claim(lease *l, const char *name, char **err);

/* How long a waiting poll may sleep before it calls lease_hold again. */
int64_t lease_wait_ms(const lease *l);

/* The subscription learnt it lost the lease (an ack wrote nothing): the
 * next lease_hold checks with the store instead of trusting the time. */
void lease_doubt(lease *l);

/* Gives the lease up, if held, so a standby takes over at once. Errors
 * are dropped: the lease then runs out on its own. */
void lease_release(lease *l);

/* Monotonic milliseconds, the clock leases are timed with. */
int64_t lease_now_ms(void);

#endif
