/*
 * buf.c - the growable text buffer (see buf.h).
 */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool grow(buf *b, size_t more) {
    if (b->failed) return false;
    if (b->len + more + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void buf_put(buf *b, const char *s, size_t len) {
    if (!grow(b, len)) return;
    memcpy(b->data + b->len, s, len);
    b->len += len;
    b->data[b->len] = 0;
}

void buf_puts(buf *b, const char *s) { buf_put(b, s, strlen(s)); }

void buf_printf(buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !grow(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (at most `left` bytes), or 0 when
 * the bytes there are not one: overlongs and surrogates are refused. */
static size_t utf8_len(const unsigned char *s, size_t left) {
    unsigned c = s[0];
    size_t n;
    unsigned min;
    if (c < 0xC2) return 0;
    if (c < 0xE0)
        n = 2, min = 0x80;
    else if (c < 0xF0)
        n = 3, min = 0x800;
    else if (c < 0xF5)
        n = 4, min = 0x10000;
    else
        return 0;
    if (n > left) return 0;
    unsigned cp = c & (0x3F >> (n - 1));
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

void buf_json_string(buf *b, const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    buf_put(b, "\"", 1);
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        if (c >= 0x80) {
            size_t n = utf8_len(p + i, len - i);
            if (n)
                buf_put(b, s + i, n), i += n;
            else
                buf_put(b, "\\ufffd", 6), i++;
            continue;
        }
        switch (c) {
        case '"':
            buf_put(b, "\\\"", 2);
            break;
        case '\\':
            buf_put(b, "\\\\", 2);
            break;
        case '\n':
            buf_put(b, "\\n", 2);
            break;
        case '\r':
            buf_put(b, "\\r", 2);
            break;
        case '\t':
            buf_put(b, "\\t", 2);
            break;
        default:
            if (c < 0x20 || c == 0x7F)
                buf_printf(b, "\\u%04x", c);
            else
                buf_put(b, s + i, 1);
        }
        i++;
    }
    buf_put(b, "\"", 1);
}

char *buf_take(buf *b, size_t *len) {
    char *out = NULL;
    if (!b->failed) {
        if (!b->data) buf_put(b, "", 0);
        out = b->data;
        b->data = NULL;
    }
    if (len) *len = out ? b->len : 0;
    buf_free(b);
    return out;
}

void buf_free(buf *b) {
    free(b->data);
    *b = (buf){0};
}
