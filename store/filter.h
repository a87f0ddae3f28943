/*
 * filter.h - evaluating and releasing store_filter trees (store.h) over
 * committed events, with the semantics store.h states. Backends that cannot
 * push a filter down evaluate it here; the DynamoDB backend compiles the
 * same tree into a FilterExpression instead. Uses jansson for event data.
 */
#ifndef AEON_FILTER_H
#define AEON_FILTER_H

#include <stdbool.h>

#include "store.h"

/* True when the event matches. NULL filter matches everything. */
bool filter_match(const store_filter *f, const store_event *ev);

/* True when the filter looks at `data` at all (so callers can skip parsing). */
bool filter_uses_data(const store_filter *f);

/* Deep copy (names, strings, children), for cursors that outlive the
 * caller's options. NULL in, NULL out. STORE_NOMEM leaves *out NULL. */
store_status filter_copy(const store_filter *f, store_filter **out);

/* Frees a tree made by filter_copy. Safe on NULL. */
void filter_free(store_filter *f);

/* Checks the tree is well formed (operator operands of the right types,
 * FIELD with one child and a name). NULL when fine, else what is wrong. */
const char *filter_check(const store_filter *f);

#endif
