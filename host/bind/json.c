/*
 * json.c - exact Lua <-> JSON conversion (see json.h for the rules).
 *
 * JSON null is the light userdata NULL in Lua (exposed as aeon.null), so
 * arrays with nulls keep their length and documents round-trip.
 */
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

/* ------------------------------------------------------------------ */
/* Buffer                                                              */

static int grow(json_buf *b, size_t need) {
    if (b->len + need <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + need) cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int json_buf_put(json_buf *b, const char *s, size_t len) {
    if (grow(b, len)) return -1;
    memcpy(b->data + b->len, s, len);
    b->len += len;
    return 0;
}

void json_buf_free(json_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int json_utf8_valid(const char *str, size_t len) {
    const unsigned char *s = (const unsigned char *)str, *end = s + len;
    while (s < end) {
        unsigned c = *s;
        if (c < 0x80) {
            s++;
            continue;
        }
        size_t n;
        unsigned cp;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else
            return 0;
        if ((size_t)(end - s) <= n) return 0;
        for (size_t i = 1; i <= n; i++) {
            if ((s[i] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        s += n + 1;
    }
    return 1;
}

int json_buf_string(json_buf *b, const char *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    /* Worst case every byte becomes \u00XX. */
    if (grow(b, len * 6 + 2)) return -1;
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"':
            *o++ = '"';
            break;
        case '\\':
            *o++ = '\\';
            break;
        case '\n':
            *o++ = 'n';
            break;
        case '\r':
            *o++ = 'r';
            break;
        case '\t':
            *o++ = 't';
            break;
        case '\b':
            *o++ = 'b';
            break;
        case '\f':
            *o++ = 'f';
            break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Encoder                                                             */

typedef struct encoder {
    lua_State *L;   /* the state holding the value */
    json_buf *buf;  /* output */
    char *msg;      /* error message out */
    size_t msgsize; /* its size */
} encoder;

/* Sets the message and returns it, so callers can `return fail(...)`. */
static const char *fail(encoder *e, const char *fmt, const char *detail) {
    snprintf(e->msg, e->msgsize, fmt, detail);
    return e->msg;
}

/* Prefixes the message with where the failure was, as the error unwinds:
 * a path like data.items[3].price reads best. */
static void prefix_path(encoder *e, lua_State *L, int keyidx) {
    char seg[96];
    if (lua_type(L, keyidx) == LUA_TNUMBER)
        snprintf(seg, sizeof seg, "[%lld]", (long long)lua_tointeger(L, keyidx));
    else
        snprintf(seg, sizeof seg, ".%.80s", lua_tostring(L, keyidx));
    size_t sl = strlen(seg), ml = strlen(e->msg);
    /* The message starts "at <path>: ..." once a path exists. */
    if (strncmp(e->msg, "at ", 3) != 0) {
        if (ml + 5 >= e->msgsize) return;
        memmove(e->msg + 5, e->msg, ml + 1);
        memcpy(e->msg, "at : ", 5);
        ml += 5;
    }
    if (ml + sl >= e->msgsize) return;
    memmove(e->msg + 3 + sl, e->msg + 3, ml - 3 + 1);
    memcpy(e->msg + 3, seg, sl);
}

static const char *encode_value(encoder *e, int idx, int depth);
static const char *encode_object(encoder *e, int idx, int depth);

static const char *encode_number(encoder *e, int idx) {
    lua_State *L = e->L;
    char tmp[40];
    int n;
    if (lua_isinteger(L, idx)) {
        n = snprintf(tmp, sizeof tmp, "%lld", (long long)lua_tointeger(L, idx));
    } else {
        double d = lua_tonumber(L, idx);
        if (!isfinite(d))
            return fail(e, "%s cannot be stored (JSON has no NaN or infinity)",
                        isnan(d) ? "NaN" : "infinity");
        /* The shortest of 15, 16, 17 digits that reads back to the same bits. */
        for (int prec = 15; prec <= 17; prec++) {
            n = snprintf(tmp, sizeof tmp, "%.*g", prec, d);
            if (strtod(tmp, NULL) == d) break;
        }
        /* A float must read back as a float: 1.0, not 1. */
        if (!strpbrk(tmp, ".e")) {
            tmp[n++] = '.';
            tmp[n++] = '0';
            tmp[n] = 0;
        }
    }
    if (json_buf_put(e->buf, tmp, (size_t)n)) return fail(e, "%s", "out of memory");
    return NULL;
}

static const char *encode_string(encoder *e, int idx) {
    size_t len;
    const char *s = lua_tolstring(e->L, idx, &len);
    if (!json_utf8_valid(s, len)) return fail(e, "%s", "string is not valid UTF-8");
    if (json_buf_string(e->buf, s, len)) return fail(e, "%s", "out of memory");
    return NULL;
}

/* Classifies a table: returns its length n when its keys are exactly 1..n,
 * 0 for an object (only string keys, or empty), -1 for anything else. */
static lua_Integer table_shape(lua_State *L, int idx, const char **why) {
    lua_Integer count = 0, max = 0;
    int strings = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            strings = 1;
        } else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
            lua_Integer k = lua_tointeger(L, -1);
            if (k > max) max = k;
            count++;
        } else {
            lua_pop(L, 1);
            *why = "table keys must be strings, or 1..n for an array";
            return -1;
        }
    }
    if (strings && count) {
        *why = "table mixes string keys and array indices";
        return -1;
    }
    if (count && max != count) {
        *why = "array has holes (use aeon.null for a JSON null)";
        return -1;
    }
    return count;
}

static const char *encode_table(encoder *e, int idx, int depth) {
    lua_State *L = e->L;
    const char *why = NULL, *err;
    if (depth > JSON_MAX_DEPTH)
        return fail(e, "%s", "nesting too deep (or a table contains itself)");
    if (!lua_checkstack(L, 8)) return fail(e, "%s", "Lua stack exhausted");
    lua_Integer n = table_shape(L, idx, &why);
    if (n < 0) return fail(e, "%s", why);
    if (n > 0) {
        if (json_buf_put(e->buf, "[", 1)) return fail(e, "%s", "out of memory");
        for (lua_Integer i = 1; i <= n; i++) {
            if (i > 1 && json_buf_put(e->buf, ",", 1)) return fail(e, "%s", "out of memory");
            lua_rawgeti(L, idx, i);
            if ((err = encode_value(e, lua_gettop(L), depth + 1))) {
                lua_pushinteger(L, i);
                prefix_path(e, L, -1);
                lua_pop(L, 2);
                return err;
            }
            lua_pop(L, 1);
        }
        if (json_buf_put(e->buf, "]", 1)) return fail(e, "%s", "out of memory");
        return NULL;
    }
    return encode_object(e, idx, depth);
}

/* One key of an object being written, and where the keys table holds it. */
typedef struct okey {
    const char *s; /* the key's bytes, kept alive by the keys table */
    size_t len;    /* its length */
    lua_Integer i; /* its index in the keys table */
} okey;

/* Byte order, a prefix first: the order of UTF-8 code points. */
static int okey_cmp(const void *a, const void *b) {
    const okey *x = a, *y = b;
    int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
    if (c) return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

/* Objects are written with their keys sorted, so the same value is always
 * the same bytes (a Lua table has no order of its own): answers can be
 * compared and examples shown as they print. */
static const char *encode_object(encoder *e, int idx, int depth) {
    lua_State *L = e->L;
    const char *err;
    lua_Integer n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        n++;
    }
    if (json_buf_put(e->buf, "{", 1)) return fail(e, "%s", "out of memory");
    if (n == 0) return json_buf_put(e->buf, "}", 1) ? fail(e, "%s", "out of memory") : NULL;
    if ((size_t)n > SIZE_MAX / sizeof(okey)) return fail(e, "%s", "out of memory");
    /* The keys table anchors the strings the scratch array points into;
     * both are Lua objects, so an error leaves nothing to free. */
    lua_createtable(L, (int)n, 0);
    int keys = lua_gettop(L);
    okey *ks = lua_newuserdatauv(L, (size_t)n * sizeof(okey), 0);
    lua_Integer i = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        ks[i].s = lua_tolstring(L, -1, &ks[i].len); /* keys are strings here */
        ks[i].i = i + 1;
        lua_pushvalue(L, -1);
        lua_rawseti(L, keys, ++i);
    }
    qsort(ks, (size_t)n, sizeof(okey), okey_cmp);
    for (i = 0; i < n; i++) {
        if (!json_utf8_valid(ks[i].s, ks[i].len)) {
            lua_pop(L, 2);
            return fail(e, "%s", "table key is not valid UTF-8");
        }
        if ((i > 0 && json_buf_put(e->buf, ",", 1)) ||
            json_buf_string(e->buf, ks[i].s, ks[i].len) || json_buf_put(e->buf, ":", 1)) {
            lua_pop(L, 2);
            return fail(e, "%s", "out of memory");
        }
        lua_rawgeti(L, keys, ks[i].i);
        lua_pushvalue(L, -1);
        lua_rawget(L, idx);
        if ((err = encode_value(e, lua_gettop(L), depth + 1))) {
            prefix_path(e, L, -2);
            lua_pop(L, 4);
            return err;
        }
        lua_pop(L, 2);
    }
    lua_pop(L, 2);
    if (json_buf_put(e->buf, "}", 1)) return fail(e, "%s", "out of memory");
    return NULL;
}

static const char *encode_value(encoder *e, int idx, int depth) {
    lua_State *L = e->L;
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
        return encode_number(e, idx);
    case LUA_TSTRING:
        return encode_string(e, idx);
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx) ? json_buf_put(e->buf, "true", 4)
                                  : json_buf_put(e->buf, "false", 5))
            return fail(e, "%s", "out of memory");
        return NULL;
    case LUA_TTABLE:
        return encode_table(e, idx, depth);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            if (json_buf_put(e->buf, "null", 4)) return fail(e, "%s", "out of memory");
            return NULL;
        }
        /* fall through */
    default:
        return fail(e, "a %s cannot be stored as JSON", luaL_typename(L, idx));
    }
}

const char *json_encode(lua_State *L, int idx, json_buf *buf, char *msg, size_t msgsize) {
    encoder e = {L, buf, msg, msgsize};
    return encode_value(&e, lua_absindex(L, idx), 0);
}

/* ------------------------------------------------------------------ */
/* Decoder                                                             */

typedef struct decoder {
    lua_State *L;        /* where values are pushed */
    const char *p;       /* next byte */
    const char *end;     /* one past the last byte */
    const char *start;   /* first byte, for offsets in messages */
    char *msg;           /* error message out */
    size_t msgsize;      /* its size */
    char *scratch;       /* unescaping buffer, malloc'd */
    size_t scap;         /* its size */
    json_strings *cache; /* recent strings, or NULL */
    int table;           /* index of the table holding cache's Lua strings */
} decoder;

static const char *dfail(decoder *d, const char *what) {
    snprintf(d->msg, d->msgsize, "malformed JSON at byte %zu: %s", (size_t)(d->p - d->start), what);
    return d->msg;
}

static void skip_ws(decoder *d) {
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\n' || *d->p == '\r' || *d->p == '\t'))
        d->p++;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_hex4(decoder *d, unsigned *out) {
    if (d->end - d->p < 4) return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(d->p[i]);
        if (h < 0) return -1;
        v = (v << 4) | (unsigned)h;
    }
    d->p += 4;
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The byte a one-letter escape stands for, or 0 when the letter is not one. */
static char simple_escape(char e) {
    switch (e) {
    case '"':
        return '"';
    case '\\':
        return '\\';
    case '/':
        return '/';
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    default:
        return 0;
    }
}

/* Pushes the string starting after the opening quote. */
static const char *decode_string(decoder *d) {
    const char *s = d->p;
    /* Fast path: no escapes, which is nearly every string in event data;
     * the UTF-8 check runs only when a byte is not ASCII. */
    unsigned char high = 0;
    while (d->p < d->end && *d->p != '"' && *d->p != '\\') {
        unsigned char c = (unsigned char)*d->p;
        if (c < 0x20) return dfail(d, "control character in string");
        high |= c;
        d->p++;
    }
    if (d->p >= d->end) return dfail(d, "unterminated string");
    if (*d->p == '"') {
        size_t n = (size_t)(d->p - s);
        json_strings *c = d->cache;
        unsigned h = 0;
        if (c && n > 0 && n <= JSON_STRING_MAX) {
            h = (unsigned)(n * 131u + (unsigned char)s[0] * 31u + (unsigned char)s[n - 1]) %
                JSON_STRINGS;
            if (c->len[h] == n && memcmp(c->text[h], s, n) == 0) {
                /* Seen and checked before. */
                lua_rawgeti(d->L, d->table, (lua_Integer)h + 1);
                d->p++;
                return NULL;
            }
        }
        if ((high & 0x80) && !json_utf8_valid(s, n)) return dfail(d, "string is not valid UTF-8");
        lua_pushlstring(d->L, s, n);
        if (c && n > 0 && n <= JSON_STRING_MAX) {
            lua_pushvalue(d->L, -1);
            lua_rawseti(d->L, d->table, (lua_Integer)h + 1);
            memcpy(c->text[h], s, n);
            c->len[h] = (unsigned char)n;
        }
        d->p++;
        return NULL;
    }
    /* Slow path: unescape into scratch; the output is never longer than
     * the input. */
    size_t maxlen = (size_t)(d->end - s);
    if (maxlen > d->scap) {
        char *n = realloc(d->scratch, maxlen);
        if (!n) return dfail(d, "out of memory");
        d->scratch = n;
        d->scap = maxlen;
    }
    size_t o = (size_t)(d->p - s);
    memcpy(d->scratch, s, o);
    while (d->p < d->end && *d->p != '"') {
        unsigned char c = (unsigned char)*d->p++;
        if (c < 0x20) return dfail(d, "control character in string");
        if (c != '\\') {
            d->scratch[o++] = (char)c;
            continue;
        }
        if (d->p >= d->end) break;
        char e = *d->p++;
        if (e != 'u') {
            char out = simple_escape(e);
            if (!out) return dfail(d, "bad escape in string");
            d->scratch[o++] = out;
            continue;
        }
        unsigned cp, lo;
        if (read_hex4(d, &cp)) return dfail(d, "bad \\u escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (d->end - d->p < 6 || d->p[0] != '\\' || d->p[1] != 'u')
                return dfail(d, "unpaired surrogate in \\u escape");
            d->p += 2;
            if (read_hex4(d, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                return dfail(d, "unpaired surrogate in \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return dfail(d, "unpaired surrogate in \\u escape");
        }
        o += put_utf8(d->scratch + o, cp);
    }
    if (d->p >= d->end) return dfail(d, "unterminated string");
    d->p++;
    if (!json_utf8_valid(d->scratch, o)) return dfail(d, "string is not valid UTF-8");
    lua_pushlstring(d->L, d->scratch, o);
    return NULL;
}

static const char *decode_number(decoder *d) {
    const char *s = d->p;
    int neg = 0, is_float = 0;
    if (d->p < d->end && *d->p == '-') {
        neg = 1;
        d->p++;
    }
    if (d->p >= d->end || *d->p < '0' || *d->p > '9') return dfail(d, "bad number");
    if (*d->p == '0' && d->p + 1 < d->end && d->p[1] >= '0' && d->p[1] <= '9')
        return dfail(d, "leading zero in number");
    /* Integers accumulate as unsigned so -2^63 fits; overflow turns float. */
    unsigned long long acc = 0;
    int overflow = 0;
    while (d->p < d->end && *d->p >= '0' && *d->p <= '9') {
        unsigned digit = (unsigned)(*d->p++ - '0');
        if (acc > (~0ULL - digit) / 10)
            overflow = 1;
        else
            acc = acc * 10 + digit;
    }
    if (d->p < d->end && *d->p == '.') {
        is_float = 1;
        d->p++;
        if (d->p >= d->end || *d->p < '0' || *d->p > '9') return dfail(d, "bad number");
        while (d->p < d->end && *d->p >= '0' && *d->p <= '9') d->p++;
    }
    if (d->p < d->end && (*d->p == 'e' || *d->p == 'E')) {
        is_float = 1;
        d->p++;
        if (d->p < d->end && (*d->p == '+' || *d->p == '-')) d->p++;
        if (d->p >= d->end || *d->p < '0' || *d->p > '9') return dfail(d, "bad number");
        while (d->p < d->end && *d->p >= '0' && *d->p <= '9') d->p++;
    }
    if (!is_float && !overflow) {
        if (!neg && acc <= (unsigned long long)LUA_MAXINTEGER) {
            lua_pushinteger(d->L, (lua_Integer)acc);
            return NULL;
        }
        if (neg && acc <= (unsigned long long)LUA_MAXINTEGER + 1) {
            lua_pushinteger(d->L, (lua_Integer)(0 - acc));
            return NULL;
        }
    }
    /* strtod needs a terminated copy: the input need not end after it. */
    char tmp[64], *heap = NULL, *num = tmp;
    size_t n = (size_t)(d->p - s);
    if (n >= sizeof tmp && !(num = heap = malloc(n + 1))) return dfail(d, "out of memory");
    memcpy(num, s, n);
    num[n] = 0;
    double v = strtod(num, NULL);
    free(heap);
    /* 1e999 would become infinity, which nothing downstream can store. */
    if (isinf(v)) return dfail(d, "number out of range");
    lua_pushnumber(d->L, v);
    return NULL;
}

static int literal(decoder *d, const char *word, size_t len) {
    if ((size_t)(d->end - d->p) < len || memcmp(d->p, word, len) != 0) return 0;
    d->p += len;
    return 1;
}

/* Members of an object or elements of an array gather on the Lua stack,
 * up to this many, so the table is made at its final size: growing one
 * member at a time rehashes it at 1, 2, 4 ... members. Past that it is
 * made this big and grows as it must. */
#define GATHER 32

/* Makes the table for the n members or elements gathered above `base`
 * (key, value pairs for an object), sized for `size` of them, and leaves
 * it at base + 1 with nothing above. Pairs are set in order, so the last
 * of duplicate keys wins. */
static void gather(lua_State *L, int base, int n, int size, int object) {
    if (object) {
        lua_createtable(L, 0, size);
        for (int i = 0; i < n; i++) {
            lua_pushvalue(L, base + 1 + 2 * i);
            lua_pushvalue(L, base + 2 + 2 * i);
            lua_rawset(L, -3);
        }
    } else {
        lua_createtable(L, size, 0);
        for (int i = 0; i < n; i++) {
            lua_pushvalue(L, base + 1 + i);
            lua_rawseti(L, -2, i + 1);
        }
    }
    lua_replace(L, base + 1);
    lua_settop(L, base + 1);
}

static const char *decode_value(decoder *d, int depth) {
    lua_State *L = d->L;
    const char *err;
    skip_ws(d);
    if (d->p >= d->end) return dfail(d, "unexpected end of input");
    if (depth > JSON_MAX_DEPTH) return dfail(d, "nesting too deep");
    switch (*d->p) {
    case '{': {
        d->p++;
        if (!lua_checkstack(L, 2 * GATHER + 4)) return dfail(d, "Lua stack exhausted");
        int base = lua_gettop(L), n = 0;
        skip_ws(d);
        if (d->p < d->end && *d->p == '}') {
            d->p++;
            lua_createtable(L, 0, 0);
            return NULL;
        }
        for (;;) {
            skip_ws(d);
            if (d->p >= d->end || *d->p != '"') return dfail(d, "expected a string key");
            d->p++;
            if ((err = decode_string(d))) return err;
            skip_ws(d);
            if (d->p >= d->end || *d->p != ':') return dfail(d, "expected ':'");
            d->p++;
            if ((err = decode_value(d, depth + 1))) return err;
            if (++n == GATHER)
                gather(L, base, n, n, 1);
            else if (n > GATHER)
                lua_rawset(L, base + 1);
            skip_ws(d);
            if (d->p < d->end && *d->p == ',') {
                d->p++;
                continue;
            }
            if (d->p < d->end && *d->p == '}') {
                d->p++;
                if (n < GATHER) gather(L, base, n, n, 1);
                return NULL;
            }
            return dfail(d, "expected ',' or '}'");
        }
    }
    case '[': {
        d->p++;
        if (!lua_checkstack(L, GATHER + 4)) return dfail(d, "Lua stack exhausted");
        int base = lua_gettop(L), n = 0;
        skip_ws(d);
        if (d->p < d->end && *d->p == ']') {
            d->p++;
            lua_createtable(L, 0, 0);
            return NULL;
        }
        for (;;) {
            if ((err = decode_value(d, depth + 1))) return err;
            if (++n == GATHER)
                gather(L, base, n, n, 0);
            else if (n > GATHER)
                lua_rawseti(L, base + 1, n);
            skip_ws(d);
            if (d->p < d->end && *d->p == ',') {
                d->p++;
                continue;
            }
            if (d->p < d->end && *d->p == ']') {
                d->p++;
                if (n < GATHER) gather(L, base, n, n, 0);
                return NULL;
            }
            return dfail(d, "expected ',' or ']'");
        }
    }
    case '"':
        d->p++;
        return decode_string(d);
    case 't':
        if (!literal(d, "true", 4)) return dfail(d, "unexpected word");
        lua_pushboolean(L, 1);
        return NULL;
    case 'f':
        if (!literal(d, "false", 5)) return dfail(d, "unexpected word");
        lua_pushboolean(L, 0);
        return NULL;
    case 'n':
        if (!literal(d, "null", 4)) return dfail(d, "unexpected word");
        lua_pushlightuserdata(L, NULL);
        return NULL;
    default:
        return decode_number(d);
    }
}

const char *json_decode(lua_State *L, const char *text, size_t len, char *msg, size_t msgsize) {
    return json_decode_cached(L, text, len, NULL, 0, msg, msgsize);
}

const char *json_decode_cached(lua_State *L, const char *text, size_t len, json_strings *cache,
                               int table, char *msg, size_t msgsize) {
    decoder d = {L,       text, text + len, text,  msg,
                 msgsize, NULL, 0,          cache, cache ? lua_absindex(L, table) : 0};
    int top = lua_gettop(L);
    /* A scalar takes one slot; containers check for what they gather. */
    if (!lua_checkstack(L, 2)) return dfail(&d, "Lua stack exhausted");
    const char *err = decode_value(&d, 0);
    if (!err) {
        skip_ws(&d);
        if (d.p != d.end) err = dfail(&d, "trailing characters after the value");
    }
    free(d.scratch);
    if (err) lua_settop(L, top);
    return err;
}
