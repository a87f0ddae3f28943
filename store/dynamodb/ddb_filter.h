/*
 * ddb_filter.h - store_filter trees (store.h) compiled into DynamoDB
 * FilterExpressions that select exactly the events filter_match selects.
 *
 * Provides ddb_filter_compile. Every attribute name and every value in the
 * tree becomes a placeholder (#f0, :f0, ...): nothing from the filter is ever
 * written into the expression text, so no name or value can change its
 * meaning. The event attributes map to Aeon's item attributes: key, type,
 * correlation_id -> correlationId, committed_at -> committedAt, data.
 *
 * Where DynamoDB's own rules differ from store.h's, the expression says more:
 *  - `a <> v` is true in DynamoDB when `a` is absent; ne must be false there:
 *    (attribute_exists(a) AND a <> v);
 *  - Aeon stores an absent correlation id as NULL, which attribute_exists
 *    sees: exists and ne on correlation_id test attribute_type(.., S);
 *  - a Query may not filter on the table's partition key, so when one key is
 *    read, conditions on `key` are decided here, against that key;
 *  - a float operand DynamoDB cannot hold (beyond 9.99e125, or nonzero below
 *    1e-130) cannot equal any stored number, and orders like the stored
 *    numbers' bound: the comparison is rewritten accordingly;
 *  - conditions that can only be true or only false (a comparison across
 *    types on a string attribute, an attribute the event does not have)
 *    fold away; a filter that can never match says so, and no query is sent.
 * Expressions beyond DynamoDB's limits (4 KB of text, 300 operators, paths
 * 32 deep) are not sent at all: the caller evaluates the tree itself with
 * filter_match. Uses jansson, filter.h and ddb_value.h.
 */
#ifndef AEON_DDB_FILTER_H
#define AEON_DDB_FILTER_H

#include <stdbool.h>

#include <jansson.h>

#include "store.h"

#define DDB_EXPRESSION_MAX 4096 /* bytes of expression text DynamoDB takes */
#define DDB_OPERATORS_MAX 300   /* operators and functions in one expression */
#define DDB_PATH_MAX 32         /* levels in one document path */

typedef struct ddb_filter {
    char *expression; /* the FilterExpression; NULL when every event matches
                         (or when `local`) */
    json_t *names;    /* ExpressionAttributeNames, "#f0" -> "data"; NULL if none */
    json_t *values;   /* ExpressionAttributeValues, ":f0" -> {"S":"x"}; NULL if none */
    bool none;        /* no event can match: there is nothing to read */
    bool local;       /* over DynamoDB's limits: filter with filter_match */
} ddb_filter;

/* Compiles `f` (NULL: every event). `key` is the one key being read, or
 * NULL for a read across keys. The placeholders start with "#f", ":f" and
 * ":t", so a caller may add its own (":pk", "#rev") beside them. On success
 * the caller frees *out with ddb_filter_free. STORE_INVALID for a malformed
 * tree (filter_check's verdict). */
store_status ddb_filter_compile(const store_filter *f, const char *key, ddb_filter *out,
                                char **err);

/* Frees what ddb_filter_compile made and zeroes it. Safe on a zeroed struct. */
void ddb_filter_free(ddb_filter *f);

#endif
