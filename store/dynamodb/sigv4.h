/*
 * sigv4.h - AWS Signature Version 4 request signing (header form).
 *
 * Provides sigv4_sign: given a request's method, path, query, headers and
 * payload, a region, a service name, credentials and the time, it builds the
 * canonical request and string to sign and returns the Authorization header
 * plus the X-Amz-Date (and X-Amz-Content-Sha256) values to send with it.
 * The time is a parameter, so signatures can be checked against AWS's
 * published vectors and against other SDKs. Uses OpenSSL (SHA-256, HMAC).
 *
 * The rules are those for every service but S3: the path is normalised
 * (empty, "." and ".." segments resolved) and each segment percent-encoded
 * once more; query keys and values are decoded, re-encoded and sorted;
 * header values are trimmed with inner whitespace runs collapsed.
 */
#ifndef AEON_SIGV4_H
#define AEON_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define SIGV4_DATE_SIZE 17 /* "20150830T123600Z" + NUL */
#define SIGV4_HASH_SIZE 65 /* 64 lower-case hex digits + NUL */

typedef struct sigv4_credentials {
    const char *access_key;    /* AWS_ACCESS_KEY_ID */
    const char *secret_key;    /* AWS_SECRET_ACCESS_KEY */
    const char *session_token; /* AWS_SESSION_TOKEN; NULL or "" when none */
} sigv4_credentials;

typedef struct sigv4_header {
    const char *name;  /* any case; headers of one name are joined with ',' */
    const char *value; /* as sent; trimmed and space-collapsed for signing */
} sigv4_header;

typedef struct sigv4_request {
    const char *method;          /* "POST", upper case as sent */
    const char *path;            /* the URL path as sent, e.g. "/" */
    const char *query;           /* without '?'; NULL or "" when none */
    const sigv4_header *headers; /* headers to sign; must include Host, must
                                    not include X-Amz-Date, X-Amz-Security-Token,
                                    X-Amz-Content-Sha256 or Authorization */
    size_t nheaders;             /* entries in headers */
    const void *payload;         /* the body; NULL when payload_len is 0 */
    size_t payload_len;          /* bytes in payload */
    bool sign_content_sha256;    /* also send and sign X-Amz-Content-Sha256 */
} sigv4_request;

typedef struct sigv4_signed {
    char amz_date[SIGV4_DATE_SIZE];     /* send as X-Amz-Date */
    char payload_hash[SIGV4_HASH_SIZE]; /* hex SHA-256 of the payload; send as
                                           X-Amz-Content-Sha256 when asked */
    char *authorization;                /* send as Authorization; malloc'd */
    char *canonical_request;            /* what was hashed; malloc'd */
    char *string_to_sign;               /* what was signed; malloc'd */
} sigv4_signed;

/* Signs `req` for `region` and `service` at Unix time `now_ms`. When the
 * credentials carry a session token it is signed too and must be sent as
 * X-Amz-Security-Token. On success the caller frees *out with
 * sigv4_signed_free. STORE_INVALID for a missing Host header or credential,
 * or a header the signer adds itself. */
store_status sigv4_sign(const sigv4_request *req, const sigv4_credentials *cred, const char *region,
                        const char *service, uint64_t now_ms, sigv4_signed *out, char **err);

/* Frees what sigv4_sign put in *s and clears it. Safe on a zeroed struct. */
void sigv4_signed_free(sigv4_signed *s);

/* Lower-case hex SHA-256 of len bytes. */
void sigv4_sha256_hex(const void *data, size_t len, char out[SIGV4_HASH_SIZE]);

/* The ISO-8601 basic form SigV4 uses, "20150830T123600Z", for a Unix time
 * in milliseconds. */
void sigv4_amz_date(uint64_t now_ms, char out[SIGV4_DATE_SIZE]);

#endif
