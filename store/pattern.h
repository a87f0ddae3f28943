/*
 * pattern.h - the key and type patterns of subscriptions (store.h): an
 * exact string, or one where '*' stands for any run of characters, the
 * empty run included, as Aeon's subscriptions write them. Every other
 * character matches itself, bytewise, so UTF-8 needs no special care.
 * Shared by the backends that match events themselves. Uses libc only.
 */
#ifndef AEON_PATTERN_H
#define AEON_PATTERN_H

#include <stdbool.h>
#include <stddef.h>

/* True when text matches pattern. */
bool pattern_match(const char *pattern, const char *text);

/* True when text matches one of the n patterns; n == 0 matches everything. */
bool pattern_match_any(const char *const *patterns, size_t n, const char *text);

/* True when the pattern has no '*': it matches one string only, itself. */
bool pattern_is_exact(const char *pattern);

#endif
