/*
 * pattern.h - the key and type patterns of subscriptions (store.h): an
 * exact string, or one where '*' stands for any run of characters, the
 * empty run included, as Aeon's subscriptions write them. Every other
 * character matches itself, bytewise, so UTF-8 needs no special care.
 * Shared by the backends that match events themselves, with the copies
 * their subscriptions keep. Uses libc and store.h.
 */
#ifndef AEON_PATTERN_H
#define AEON_PATTERN_H

#include <stdbool.h>
#include <stddef.h>

#include "store.h"

/* True when text matches pattern. */
bool pattern_match(const char *pattern, const char *text);

/* True when text matches one of the n patterns; n == 0 matches everything. */
bool pattern_match_any(const char *const *patterns, size_t n, const char *text);

/* True when the pattern has no '*': it matches one string only, itself. */
bool pattern_is_exact(const char *pattern);

/* Copies n patterns for a subscription to keep, checking each is text the
 * store takes (`what` names them in messages: "key", "type"). On failure
 * *out holds what was copied so far, for pattern_free. */
store_status pattern_copy(const char *const *in, size_t n, const char *what, char ***out,
                          size_t *nout, char **err);

/* Frees what pattern_copy made. Safe on NULL. */
void pattern_free(char **patterns, size_t n);

#endif
