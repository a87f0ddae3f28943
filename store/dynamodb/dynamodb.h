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

#include "store.h"

/* The CreateTable requests deploy sends for the store at uri
 * ("dynamodb:NAME" or Aeon's config JSON), without opening it (no region
 * or credentials needed): malloc'd JSON text, an array of request bodies
 * each with a "role" ("events", "metadata", "views") added. STORE_INVALID
 * for a URI the backend refuses. */
store_status ddb_tables(const char *uri, char **json, char **err);

#endif
