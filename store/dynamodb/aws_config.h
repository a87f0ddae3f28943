/*
 * aws_config.h - where a DynamoDB store's region, endpoint and credentials
 * come from, following the AWS conventions (API.md section 2).
 *
 * Provides aws_settings_load, which resolves, in order:
 *   region      the caller's (aeon.open's opts.region), AWS_REGION,
 *               AWS_DEFAULT_REGION, the profile's `region` in the config file;
 *   endpoint    the caller's, AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL, the
 *               profile's `endpoint_url`, else https://dynamodb.REGION.amazonaws.com;
 *   credentials AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN),
 *               else the profile's aws_access_key_id / aws_secret_access_key /
 *               aws_session_token in the credentials file, then the config file.
 * The profile is AWS_PROFILE, else AWS_DEFAULT_PROFILE, else "default"; it is
 * section [NAME] of the credentials file ($AWS_SHARED_CREDENTIALS_FILE, else
 * ~/.aws/credentials) and [profile NAME] of the config file ($AWS_CONFIG_FILE,
 * else ~/.aws/config), where the default profile is [default].
 *
 * Also provides the INI reader for those files, in the dialect botocore reads
 * (Python's configparser): `key = value` or `key: value`, whole-line comments
 * starting with '#' or ';', keys case-insensitive, indented lines belonging to
 * a nested block (ignored), no inline comments.
 *
 * Environment lookups go through a function the caller passes, so tests need
 * not touch the process environment. Uses libc only.
 */
#ifndef AEON_AWS_CONFIG_H
#define AEON_AWS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "store.h"

/* What a DynamoDB client needs, all malloc'd; session_token may be NULL. */
typedef struct aws_settings {
    char *region;           /* signing region, "eu-west-1" */
    char *endpoint;         /* "https://dynamodb.eu-west-1.amazonaws.com" */
    char *access_key;       /* access key id */
    char *secret_key;       /* secret access key */
    char *session_token;    /* temporary credentials' token, or NULL */
    char *profile;          /* the profile the files were read for */
    char *credentials_from; /* "environment" or "profile NAME in FILE" */
    char *region_from;      /* where the region came from, same style */
} aws_settings;

/* Looks up an environment variable: NULL when unset. */
typedef const char *(*aws_getenv_fn)(void *ctx, const char *name);

/* Resolves everything as described above. region and endpoint are the
 * caller's choices (NULL: look further). getenv NULL means the process
 * environment. STORE_INVALID with a message naming every place looked at
 * when no region or no credentials are found, or a profile asked for does
 * not exist or needs what this library cannot do (role_arn, SSO,
 * credential_process); STORE_IO when a file exists but cannot be read. */
store_status aws_settings_load(const char *region, const char *endpoint, aws_getenv_fn getenv,
                               void *ctx, aws_settings *out, char **err);

/* Frees what aws_settings_load filled in (wiping the secret) and zeroes it.
 * Safe on a zeroed struct. */
void aws_settings_free(aws_settings *s);

/* ------------------------------------------------------------------ */
/* The shared-file reader                                              */

typedef struct aws_ini_entry {
    char *section; /* as written between the brackets, trimmed */
    char *key;     /* lower-cased */
    char *value;   /* trimmed; may be "" */
} aws_ini_entry;

typedef struct aws_ini {
    aws_ini_entry *entries; /* in file order */
    size_t count;           /* entries used */
    char **sections;        /* every section header seen, even empty ones */
    size_t nsections;       /* entries in sections */
} aws_ini;

/* Parses len bytes of INI text into *ini (zeroed first). Lines that are not
 * a section, a key or a comment are skipped, as botocore's reader would
 * refuse the file but a store should still open from the environment.
 * Only STORE_NOMEM fails. */
store_status aws_ini_parse(const char *text, size_t len, aws_ini *ini, char **err);

/* The value of `key` (any case) in `section`, or NULL. A key given twice
 * keeps the last. */
const char *aws_ini_get(const aws_ini *ini, const char *section, const char *key);

/* True when the section header appears in the file. */
bool aws_ini_has_section(const aws_ini *ini, const char *section);

/* Frees what aws_ini_parse made. Safe on a zeroed struct. */
void aws_ini_free(aws_ini *ini);

#endif
