/*
 * ddb_value.h - JSON values <-> DynamoDB AttributeValues, exactly.
 *
 * Provides the conversion AWS's util-dynamodb marshall/unmarshall make
 * (null -> NULL, booleans -> BOOL, numbers -> N, strings -> S, arrays -> L,
 * objects -> M), with DynamoDB's limits checked before anything is sent, a
 * filter operand's AttributeValue, and item size estimates for the 400 KB
 * limit. Uses jansson; AttributeValues are jansson objects shaped as in the
 * DynamoDB JSON protocol ({"S":"x"}, {"M":{...}}).
 *
 * Numbers. Integers (exact up to 2^63-1) are written with all their digits;
 * floats with the shortest decimal that reads back as the same double.
 * DynamoDB keeps a number as a decimal and hands it back normalised: "1.0"
 * and "1e3" come back as "1" and "1000" (checked on DynamoDB Local), so the
 * N text cannot say that a float had an integral value. Reading an N, text
 * with '.' or an exponent is a float; digits alone are an integer when they
 * fit int64, else a float. Floats with an integral value (1.0, 1e20, -0.0)
 * are listed in a side list of float marks: JSON Pointers (RFC 6901) to them,
 * as an AttributeValue {"L":[{"S":"/a/0"},...]} the caller stores beside the
 * value and hands back when reading. Items without marks (Aeon's own, written
 * by JavaScript, which has no such distinction) read as integers. -0.0 is
 * written as 0 and comes back as 0.0: DynamoDB has no negative zero.
 *
 * Refused with STORE_LIMIT, naming the place: numbers DynamoDB cannot hold
 * (magnitude above 9.9999999999999999999999999999999999999E+125 or nonzero
 * below 1E-130, more than 38 significant digits), empty object keys (DynamoDB
 * rejects empty attribute names, nested ones too), and more than
 * DDB_MAX_NESTING nested arrays/objects. Empty strings are fine.
 *
 * Read-only extras from items other SDKs wrote: B (base64 text) becomes a
 * string, SS/NS/BS sets become arrays. Object keys come back sorted:
 * DynamoDB does not keep their order.
 */
#ifndef AEON_DDB_VALUE_H
#define AEON_DDB_VALUE_H

#include <stddef.h>

#include <jansson.h>

#include "store.h"

#define DDB_ITEM_MAX 409600 /* bytes: DynamoDB's item size limit (400 KB) */
#define DDB_MAX_NESTING                                                                            \
    31 /* arrays/objects inside one another, the outer
                                one included; DynamoDB Local refuses 32 */
#define DDB_NUMBER_SIZE                                                                            \
    136 /* room for any N text ddb_number_text writes: an
                                 integral float up to 9.99e125 in digits */

/* JSON text (any JSON value) -> *av, a new AttributeValue. *floats gets a
 * new float-marks AttributeValue, or NULL when there are none; pass NULL
 * for floats to drop them (filter operands, keys). STORE_INVALID for text
 * that is not JSON (or an integer beyond int64), STORE_LIMIT for a value
 * DynamoDB cannot hold. */
store_status ddb_value_from_json(const char *json, size_t len, json_t **av, json_t **floats,
                                 char **err);

/* AttributeValue (+ its float marks or NULL) -> malloc'd JSON text in *json,
 * *len bytes (NUL-terminated too). STORE_IO for a malformed AttributeValue:
 * it came from the backend. */
store_status ddb_value_to_json(const json_t *av, const json_t *floats, char **json, size_t *len,
                               char **err);

/* The same two on jansson values: value -> *av (+ *floats), and back. */
store_status ddb_value_marshal(const json_t *value, json_t **av, json_t **floats, char **err);
store_status ddb_value_unmarshal(const json_t *av, const json_t *floats, json_t **value,
                                 char **err);

/* A filter operand as an AttributeValue (S, N or BOOL). A float outside
 * DynamoDB's range is STORE_LIMIT: the caller decides what the comparison
 * means then. */
store_status ddb_value_scalar(const store_scalar *s, json_t **av, char **err);

/* The N text for a double: the shortest decimal that reads back as d.
 * STORE_LIMIT when DynamoDB cannot hold it, STORE_INVALID for NaN or an
 * infinity. */
store_status ddb_number_text(double d, char out[DDB_NUMBER_SIZE], char **err);

/* Checks N text the way DynamoDB does: syntax (STORE_INVALID), then range
 * and at most 38 significant digits (STORE_LIMIT). */
store_status ddb_number_check(const char *n, char **err);

/* An item of the events table (from a read, or a stream record's
 * NewImage) -> *ev, the event the store's reads give: Aeon's attributes
 * key, revision, type, committedAt, correlationId, data (+ dataFloats).
 * ev's strings point into item, but ev->data, which is *data: malloc'd
 * JSON text the caller frees. STORE_IO naming `table` for an item that is
 * not an event (an attribute missing, a revision that is not one) or data
 * that is not an AttributeValue. */
store_status ddb_item_event(const json_t *item, const char *table, store_event *ev, char **data,
                            char **err);

/* Bytes an AttributeValue counts for toward the item size limit, by AWS's
 * published rules (numbers: 1 byte per two significant digits, plus 1;
 * lists and maps: 3 bytes plus 1 per element). An estimate for numbers. */
size_t ddb_value_size(const json_t *av);

/* Bytes a whole item counts for: attribute names plus their values. */
size_t ddb_item_size(const json_t *item);

#endif
