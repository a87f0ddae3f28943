/*
 * dynamodb.h - what the DynamoDB backend offers besides its store_ops
 * (store_dynamodb_ops, store.h).
 *
 * Provides the tables `store deploy` makes, as data, for tools that
 * deploy them another way (a CloudFormation template) and must make them
 * exactly alike. Uses store.h.
 */
#ifndef AEON_DYNAMODB_H
#define AEON_DYNAMODB_H

#include <stdint.h>

#include "store.h"

/* The CreateTable requests deploy sends for the store at uri
 * ("dynamodb:NAME" or Aeon's config JSON), without opening it (no region
 * or credentials needed): malloc'd JSON text, an array of request bodies
 * each with a "role" ("events", "metadata", "views") added. STORE_INVALID
 * for a URI the backend refuses. */
store_status ddb_tables(const char *uri, char **json, char **err);

/* Requests a DynamoDB store handle has sent of operation op ("Query"), on
 * all of its connections, each attempt counted; op NULL: of every
 * operation. 0 for a handle of another backend. For measuring round trips
 * (spec/c/dynamodb_test.c, bench/). */
uint64_t ddb_requests(const store *st, const char *op);

#endif
