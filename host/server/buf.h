/*
 * buf.h - a growable text buffer for the server's answers, log lines and
 * metrics.
 *
 * Provides appending, printf-style formatting and JSON string literals that
 * survive any bytes (invalid UTF-8 becomes U+FFFD), because URLs and error
 * messages come from clients and scripts. Out of memory is sticky: the
 * buffer remembers it and the caller checks once at the end. Uses libc only.
 */
#ifndef AEON_BUF_H
#define AEON_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct buf {
    char *data;  /* malloc'd, NUL-terminated once anything is written */
    size_t len;  /* bytes used, not counting the NUL */
    size_t cap;  /* bytes allocated */
    bool failed; /* an allocation failed; the contents are incomplete */
} buf;

/* Appends len bytes. */
void buf_put(buf *b, const char *s, size_t len);

/* Appends a NUL-terminated string. */
void buf_puts(buf *b, const char *s);

/* Appends formatted text. */
void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends s as a JSON string literal, quotes included. */
void buf_json_string(buf *b, const char *s, size_t len);

/* Hands the bytes to the caller (who frees them) and empties the buffer.
 * NULL when an allocation failed. */
char *buf_take(buf *b, size_t *len);

/* Releases the buffer's memory. */
void buf_free(buf *b);

#endif
