/*
 * http.h - a small client for the DynamoDB JSON protocol over libcurl.
 *
 * Provides http_client: one kept-alive connection (one CURL easy handle) to
 * one endpoint, on which http_call POSTs a JSON body with the X-Amz-Target
 * of the operation (DynamoDB_20120810.<Op>, or DynamoDBStreams_20120810.<Op>
 * for a streams client), signs every attempt with SigV4, checks the
 * x-amz-crc32 DynamoDB sends, parses the JSON answer and the error shape
 * ({"__type":"...#Name","Message":"..."}), and retries with exponential
 * backoff and full jitter, bounded in attempts and in total time.
 *
 * What is retried: throttling (ProvisionedThroughputExceededException,
 * ThrottlingException, RequestLimitExceeded), TransactionConflictException,
 * a TransactionCanceledException whose reasons are only conflicts or
 * throttling, and connections that never reached the server - always, since
 * the request had no effect. 5xx answers, timeouts, dropped connections and
 * a bad CRC leave the outcome unknown: they are retried only when the caller
 * says the operation is safe to repeat (reads; appends, which carry a
 * ClientRequestToken and so repeat the same body to the same effect).
 * One resend is curl's own: when a kept-alive connection closes without a
 * byte of answer (the server timed it out as the request went), curl sends
 * the request again on a fresh connection, within the same attempt.
 *
 * Uses sigv4.h, jansson, libcurl, and store_env for the signing clock and
 * the jitter, so tests can fix both; sleeping is injectable too.
 */
#ifndef AEON_HTTP_H
#define AEON_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "sigv4.h"
#include "store.h"

/* Which API an endpoint serves: the X-Amz-Target prefix. */
typedef enum http_api {
    HTTP_DYNAMODB, /* "DynamoDB_20120810." */
    HTTP_STREAMS,  /* "DynamoDBStreams_20120810." (signs as "dynamodb" too) */
} http_api;

typedef struct http_config {
    const char *endpoint;                     /* "https://dynamodb.eu-west-1.amazonaws.com" or
                                     "http://127.0.0.1:8000"; no path, no query */
    http_api api;                             /* DynamoDB or DynamoDB Streams */
    const char *region;                       /* signing region, e.g. "eu-west-1" */
    sigv4_credentials creds;                  /* copied by http_open */
    long connect_timeout_ms;                  /* per connection; 0: 3000 */
    long request_timeout_ms;                  /* per attempt, all included; 0: 15000 */
    int max_attempts;                         /* 1 = no retry; 0: 10 (as AWS SDKs for DynamoDB) */
    long retry_budget_ms;                     /* all attempts and waits of one call; 0: 30000 */
    long base_delay_ms;                       /* the first wait is at most this; 0: 50 */
    long max_delay_ms;                        /* no wait is longer; 0: 5000 */
    const store_env *env;                     /* signing clock and jitter: the store's */
    void (*sleep_ms)(void *ctx, uint64_t ms); /* NULL: nanosleep; tests fake it */
    void *sleep_ctx;                          /* passed to sleep_ms */
} http_config;

typedef struct http_client http_client;

/* What one call ended with. Zero it before the first call; each call frees
 * what the previous one left. */
typedef struct http_response {
    long status;         /* HTTP status of the last attempt; 0 if none answered */
    char *body;          /* the body, malloc'd, NUL-terminated; NULL if none */
    size_t body_len;     /* bytes in body */
    json_t *json;        /* the body parsed, when it is a JSON object; else NULL */
    const char *error;   /* error name from "__type" after '#'
                             ("ConditionalCheckFailedException"); NULL on success */
    const char *message; /* the error's "Message"/"message"; NULL when none */
    int attempts;        /* attempts made */
} http_response;

/* Opens a client for one endpoint. Validates the endpoint and credentials
 * (STORE_INVALID); connects lazily, on the first call. */
store_status http_open(const http_config *cfg, http_client **out, char **err);

/* Closes the connection and frees the client. Safe on NULL. */
void http_close(http_client *c);

/* POSTs `body` (len bytes of JSON) as operation `op` ("GetItem").
 * STORE_OK when an answer came that is not retried: a 2xx, or an error the
 * caller should look at (r->error: "TransactionCanceledException", ...).
 * STORE_IO when retries ran out or an outcome stayed unknown on a call that
 * was not retry_safe; *err says what happened and r holds the last answer,
 * if any. retry_safe: repeating the request cannot do harm (see above). */
store_status http_call(http_client *c, const char *op, const char *body, size_t len,
                       bool retry_safe, http_response *r, char **err);

/* http_call with the body serialised from a jansson value. */
store_status http_call_json(http_client *c, const char *op, const json_t *body, bool retry_safe,
                            http_response *r, char **err);

/* Requests a client sent of one operation (each attempt is one), for
 * measuring round trips; op NULL: of every operation. */
#define HTTP_COUNTED_OPS 16
typedef struct http_count {
    char op[65];       /* "Query"; "" for an unused slot */
    uint64_t requests; /* attempts sent */
} http_count;
uint64_t http_requests(const http_client *c, const char *op);

/* Frees what a call left in *r and zeroes it. */
void http_response_free(http_response *r);

/* A TransactionCanceledException's reasons, one per TransactItem in order:
 * the array of {"Code": "None"|"ConditionalCheckFailed"|..., "Message",
 * "Item"} objects, or NULL when r is no such error. */
const json_t *http_cancellation_reasons(const http_response *r);

/* The Code of reason i ("None" when absent), or NULL past the end. */
const char *http_cancellation_code(const http_response *r, size_t i);

/* Turns an answer the caller did not expect into a status and a one-line
 * *err naming the operation, the error and the HTTP status: STORE_LIMIT for
 * DynamoDB's size limits, STORE_IO for the rest. */
store_status http_fail(const http_response *r, const char *op, char **err);

/* The CRC-32 (zlib's) DynamoDB puts in x-amz-crc32. */
uint32_t http_crc32(const void *data, size_t len);

#endif
