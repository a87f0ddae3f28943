/*
 * revision.h - revisions: 26-character Crockford base32 strings (the ULID
 * alphabet), a 48-bit millisecond time then 80 bits of randomness, compared
 * as strings. Provides validation, the successor and predecessor used for
 * exclusive bounds, and monotonic generation. Uses store.h's store_env.
 */
#ifndef AEON_REVISION_H
#define AEON_REVISION_H

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

/* True when s is a full 26-character revision (first character 0-7). */
bool revision_valid(const char *s);

/* True when s is STORE_START, STORE_END or a valid revision: what read
 * bounds and expected revisions may be. */
bool revision_bound_valid(const char *s);

/* Encodes a time and 10 random bytes as a revision. */
void revision_make(uint64_t ms, const uint8_t random[10], char out[STORE_REVISION_SIZE]);

/* The millisecond time a revision encodes. */
uint64_t revision_time(const char *rev);

/* The next revision after `rev`; false when rev is the largest possible. */
bool revision_next(const char *rev, char out[STORE_REVISION_SIZE]);

/* The revision before `rev`; false when rev is the smallest possible. */
bool revision_prev(const char *rev, char out[STORE_REVISION_SIZE]);

/* A new revision strictly above `last` (NULL or STORE_START: none yet):
 * from the clock when the clock is ahead of last's time, else last + 1, so
 * revisions keep increasing when clocks go backwards. */
void revision_after(const char *last, const store_env *env, char out[STORE_REVISION_SIZE]);

/* ISO-8601 UTC with milliseconds: "2026-11-26T20:29:24.016Z". */
void revision_timestamp(uint64_t ms, char out[STORE_TIMESTAMP_SIZE]);

#endif
