/*
 * ddb_value.c - JSON values <-> DynamoDB AttributeValues (see ddb_value.h).
 *
 * Provides marshalling with DynamoDB's limits checked, unmarshalling that
 * restores integer-vs-float through the float marks, N text in both
 * directions, and item size estimates. Uses jansson and libc's strtod and
 * snprintf (made independent of LC_NUMERIC, since a host may set a locale
 * with a decimal comma).
 */
#include "ddb_value.h"
#include "revision.h"

#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DIGITS 38       /* significant digits DynamoDB keeps */
#define MAX_EXPONENT 125    /* largest magnitude: 9.99...E+125 */
#define MIN_EXPONENT (-130) /* smallest nonzero magnitude: 1E-130 */
#define READ_NESTING 64     /* guard when reading what a backend sent */

/* A JSON Pointer under construction, for error messages and float marks. */
typedef struct path {
    char *buf;  /* NUL-terminated, "" for the root */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated */
} path;

/* What a marshal or unmarshal walk carries along. */
typedef struct walk {
    path at;       /* where the walk is */
    json_t *marks; /* marshal: float marks found ({"S":ptr} elements);
                          unmarshal: set of marked pointers (object keys) */
    char **err;    /* where failures go */
} walk;

/* Appends "/" + key (escaped as RFC 6901 says) and returns the old length,
 * to truncate back to; (size_t)-1 on no memory. */
static size_t path_push(path *p, const char *key, size_t n) {
    size_t old = p->len, need = p->len + 2 + 2 * n + 1;
    if (need > p->cap) {
        size_t cap = p->cap ? p->cap : 64;
        while (cap < need) cap *= 2;
        char *b = realloc(p->buf, cap);
        if (!b) return (size_t)-1;
        p->buf = b;
        p->cap = cap;
    }
    p->buf[p->len++] = '/';
    for (size_t i = 0; i < n; i++) {
        if (key[i] == '~' || key[i] == '/') {
            p->buf[p->len++] = '~';
            p->buf[p->len++] = key[i] == '~' ? '0' : '1';
        } else {
            p->buf[p->len++] = key[i];
        }
    }
    p->buf[p->len] = '\0';
    return old;
}

static void path_pop(path *p, size_t old) {
    p->len = old;
    if (p->buf) p->buf[old] = '\0';
}

static const char *path_show(const path *p) { return p->len ? p->buf : "/"; }

/* ------------------------------------------------------------------ */
/* Numbers                                                             */

/* Rewrites the locale's decimal point as '.'. */
static void to_c_locale(char *s) {
    const char *dp = localeconv()->decimal_point;
    if (dp && dp[0] && dp[0] != '.' && !dp[1])
        for (; *s; s++)
            if (*s == dp[0]) *s = '.';
}

/* strtod that reads '.' whatever the locale; false unless all of s was a
 * finite number. */
static bool parse_double(const char *s, double *out) {
    char buf[512];
    const char *dp = localeconv()->decimal_point;
    size_t n = strlen(s);
    if (n >= sizeof buf) return false; /* DynamoDB never sends a number this long */
    memcpy(buf, s, n + 1);
    if (dp && dp[0] && dp[0] != '.' && !dp[1])
        for (char *p = buf; *p; p++)
            if (*p == '.') *p = dp[0];
    char *end = NULL;
    errno = 0;
    *out = strtod(buf, &end);
    return end && *end == '\0' && end != buf && isfinite(*out);
}

store_status ddb_number_check(const char *n, char **err) {
    const char *p = n;
    long first = -1, last = -1, digits = 0, point = -1, exp = 0;
    if (!n) return store_fail(err, STORE_INVALID, "number: none given");
    if (*p == '-' || *p == '+') p++;
    for (; (*p >= '0' && *p <= '9') || (*p == '.' && point < 0); p++) {
        if (*p == '.') {
            point = digits;
            continue;
        }
        if (*p != '0') {
            if (first < 0) first = digits;
            last = digits;
        }
        digits++;
    }
    if (digits == 0) return store_fail(err, STORE_INVALID, "number \"%s\" is not a number", n);
    if (*p == 'e' || *p == 'E') {
        bool neg = false;
        p++;
        if (*p == '-' || *p == '+') neg = *p++ == '-';
        if (!(*p >= '0' && *p <= '9'))
            return store_fail(err, STORE_INVALID, "number \"%s\" is not a number", n);
        for (; *p >= '0' && *p <= '9'; p++)
            if (exp < 100000) exp = exp * 10 + (*p - '0');
        exp = neg ? -exp : exp;
    }
    if (*p) return store_fail(err, STORE_INVALID, "number \"%s\" is not a number", n);
    if (first < 0) return STORE_OK; /* zero */
    if (last - first + 1 > MAX_DIGITS)
        return store_fail(err, STORE_LIMIT,
                          "number %s has more than %d significant digits, "
                          "more than DynamoDB can store",
                          n, MAX_DIGITS);
    /* The power of ten of the leading digit. */
    long lead = (point < 0 ? digits : point) - 1 - first + exp;
    if (lead > MAX_EXPONENT)
        return store_fail(err, STORE_LIMIT,
                          "number %s is too large for DynamoDB (largest magnitude "
                          "9.9999999999999999999999999999999999999E+125)",
                          n);
    if (lead < MIN_EXPONENT)
        return store_fail(err, STORE_LIMIT,
                          "number %s is too small for DynamoDB (smallest nonzero "
                          "magnitude 1E-130)",
                          n);
    return STORE_OK;
}

/* Rewrites "1.5e+25" as "15000000000000000000000000": the digits of an
 * integral value. Aeon's reader (@aws-sdk/util-dynamodb) turns a number
 * beyond 2^53 into a BigInt, and BigInt("1e+20") throws, failing the whole
 * read; it takes digits. The significant digits stay the same, so
 * DynamoDB's 38-digit limit is met as before. */
static void integral_digits(char out[DDB_NUMBER_SIZE]) {
    char *e = strchr(out, 'e');
    if (e == NULL || e[1] != '+') return;
    long exp = strtol(e + 2, NULL, 10);
    char digits[DDB_NUMBER_SIZE], *d = digits;
    const char *p = out;
    bool negative = *p == '-';
    if (negative) p++;
    long after = -1; /* digits after the point */
    for (; p < e; p++) {
        if (*p == '.')
            after = 0;
        else {
            *d++ = *p;
            if (after >= 0) after++;
        }
    }
    long zeros = exp - (after < 0 ? 0 : after);
    if (zeros < 0 || (d - digits) + zeros + 2 > DDB_NUMBER_SIZE)
        return; /* not integral as written, or too long: keep it */
    char *o = out;
    if (negative) *o++ = '-';
    memcpy(o, digits, (size_t)(d - digits));
    o += d - digits;
    memset(o, '0', (size_t)zeros);
    o[zeros] = '\0';
}

store_status ddb_number_text(double d, char out[DDB_NUMBER_SIZE], char **err) {
    if (!isfinite(d)) {
        snprintf(out, DDB_NUMBER_SIZE, "%s", isnan(d) ? "NaN" : "Infinity");
        return store_fail(err, STORE_INVALID, "number %s cannot be stored", out);
    }
    if (d == 0) { /* -0.0 too: DynamoDB has no negative zero */
        snprintf(out, DDB_NUMBER_SIZE, "0");
        return STORE_OK;
    }
    /* The shortest of 15, 16, 17 digits that reads back exactly: any
     * decimal of 15 digits or fewer that round-trips is what %.15g gives. */
    for (int prec = 15; prec <= 17; prec++) {
        double back;
        snprintf(out, DDB_NUMBER_SIZE, "%.*g", prec, d);
        to_c_locale(out);
        if (parse_double(out, &back) && back == d) break;
    }
    if (ddb_number_check(out, NULL) == STORE_LIMIT) {
        /* Rounding to fewer digits may cross a limit the double itself is
         * inside of: the double nearest 1e126 is 9.99...92e125, which
         * DynamoDB takes written with all 17 digits. */
        snprintf(out, DDB_NUMBER_SIZE, "%.17g", d);
        to_c_locale(out);
    }
    if (d == floor(d)) integral_digits(out);
    return ddb_number_check(out, err);
}

/* Reads N text into a JSON number: a marked float, or a float when it has
 * a '.' or exponent or does not fit int64, else an integer. */
static json_t *number_value(const char *n, bool marked) {
    bool integral = !marked && n[strspn(n, "-+0123456789")] == '\0';
    if (integral) {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(n, &end, 10);
        if (errno == 0 && end && *end == '\0' && end != n) return json_integer((json_int_t)v);
    }
    double d;
    if (!parse_double(n, &d)) return NULL;
    return json_real(d);
}

/* ------------------------------------------------------------------ */
/* Marshalling                                                         */

static json_t *av1(const char *type, json_t *v) {
    json_t *o = v ? json_object() : NULL;
    if (o && json_object_set_new(o, type, v) == 0) return o;
    json_decref(o);
    if (!o) json_decref(v);
    return NULL;
}

static store_status nomem(char **err) {
    return store_fail(err, STORE_NOMEM, "dynamodb value: out of memory");
}

static store_status marshal(walk *w, const json_t *v, int depth, json_t **out);

static store_status marshal_real(walk *w, const json_t *v, json_t **out) {
    char num[DDB_NUMBER_SIZE];
    double d = json_real_value(v);
    char *why = NULL;
    store_status st = ddb_number_text(d, num, &why);
    if (st != STORE_OK) {
        st = store_fail(w->err, st, "%s at %s", why ? why : "bad number", path_show(&w->at));
        free(why);
        return st;
    }
    /* DynamoDB will hand this back as digits alone: mark it a float. */
    if (w->marks && d == floor(d) &&
        json_array_append_new(w->marks, av1("S", json_string(w->at.buf ? w->at.buf : ""))))
        return nomem(w->err);
    *out = av1("N", json_string(num));
    return STORE_OK;
}

/* Each element of an array into acc, with its index on the path. */
static store_status marshal_array(walk *w, const json_t *v, int depth, json_t *acc) {
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        char idx[24];
        json_t *child = NULL;
        int n = snprintf(idx, sizeof idx, "%zu", i);
        size_t old = path_push(&w->at, idx, (size_t)n);
        if (old == (size_t)-1) return nomem(w->err);
        store_status st = marshal(w, e, depth + 1, &child);
        path_pop(&w->at, old);
        if (st != STORE_OK) return st;
        if (json_array_append_new(acc, child)) return nomem(w->err);
    }
    return STORE_OK;
}

/* Each member of an object into acc, with its key on the path. */
static store_status marshal_object(walk *w, const json_t *v, int depth, json_t *acc) {
    const char *key;
    size_t klen;
    json_t *e;
    json_object_keylen_foreach((json_t *)v, key, klen, e) {
        json_t *child = NULL;
        size_t old = path_push(&w->at, key, klen);
        if (old == (size_t)-1) return nomem(w->err);
        if (klen == 0)
            return store_fail(w->err, STORE_LIMIT,
                              "empty object key at %s: DynamoDB cannot "
                              "store an empty attribute name",
                              path_show(&w->at));
        store_status st = marshal(w, e, depth + 1, &child);
        path_pop(&w->at, old);
        if (st != STORE_OK) return st;
        if (json_object_setn_new_nocheck(acc, key, klen, child)) return nomem(w->err);
    }
    return STORE_OK;
}

/* An array as L, an object as M, no deeper than DynamoDB nests. */
static store_status marshal_container(walk *w, const json_t *v, int depth, json_t **out) {
    bool array = json_is_array(v);
    if (depth >= DDB_MAX_NESTING)
        return store_fail(w->err, STORE_LIMIT,
                          "value nested deeper than DynamoDB's %d levels at %s", DDB_MAX_NESTING,
                          path_show(&w->at));
    json_t *acc = array ? json_array() : json_object();
    if (!acc) return nomem(w->err);
    store_status st = array ? marshal_array(w, v, depth, acc) : marshal_object(w, v, depth, acc);
    if (st != STORE_OK) {
        json_decref(acc);
        return st;
    }
    *out = av1(array ? "L" : "M", acc);
    return STORE_OK;
}

static store_status marshal(walk *w, const json_t *v, int depth, json_t **out) {
    store_status st = STORE_OK;
    char num[DDB_NUMBER_SIZE];

    *out = NULL;
    switch (json_typeof(v)) {
    case JSON_NULL:
        *out = av1("NULL", json_true());
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        *out = av1("BOOL", json_boolean(json_is_true(v)));
        break;
    case JSON_STRING:
        *out = av1("S", json_stringn_nocheck(json_string_value(v), json_string_length(v)));
        break;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        *out = av1("N", json_string(num));
        break;
    case JSON_REAL:
        st = marshal_real(w, v, out);
        break;
    case JSON_ARRAY:
    case JSON_OBJECT:
        st = marshal_container(w, v, depth, out);
        break;
    default:
        return store_fail(w->err, STORE_INVALID, "not a JSON value at %s", path_show(&w->at));
    }
    if (st == STORE_OK && !*out) return nomem(w->err);
    return st;
}

store_status ddb_value_marshal(const json_t *value, json_t **av, json_t **floats, char **err) {
    walk w = {.err = err};
    store_status st = STORE_NOMEM;
    *av = NULL;
    if (floats) *floats = NULL;
    if (!value) return store_fail(err, STORE_INVALID, "dynamodb value: no value");
    if (floats && !(w.marks = json_array())) return nomem(err);
    st = marshal(&w, value, 0, av);
    if (st == STORE_OK && floats && json_array_size(w.marks) > 0) {
        *floats = av1("L", w.marks);
        w.marks = NULL;
        if (!*floats) {
            json_decref(*av);
            *av = NULL;
            st = nomem(err);
        }
    }
    json_decref(w.marks);
    free(w.at.buf);
    return st;
}

store_status ddb_value_from_json(const char *json, size_t len, json_t **av, json_t **floats,
                                 char **err) {
    json_error_t e;
    *av = NULL;
    if (floats) *floats = NULL;
    json_t *v = json_loadb(json, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!v)
        return store_fail(err, STORE_INVALID, "invalid JSON: %s (at byte %d)", e.text, e.position);
    store_status st = ddb_value_marshal(v, av, floats, err);
    json_decref(v);
    return st;
}

store_status ddb_value_scalar(const store_scalar *s, json_t **av, char **err) {
    char num[DDB_NUMBER_SIZE];
    store_status st;
    *av = NULL;
    switch (s->kind) {
    case SCALAR_STRING:
        if (!s->string) return store_fail(err, STORE_INVALID, "filter: string operand missing");
        *av = av1("S", json_string_nocheck(s->string));
        break;
    case SCALAR_INTEGER:
        snprintf(num, sizeof num, "%" PRId64, s->integer);
        *av = av1("N", json_string(num));
        break;
    case SCALAR_FLOAT:
        if ((st = ddb_number_text(s->number, num, err)) != STORE_OK) return st;
        *av = av1("N", json_string(num));
        break;
    case SCALAR_BOOLEAN:
        *av = av1("BOOL", json_boolean(s->boolean));
        break;
    default:
        return store_fail(err, STORE_INVALID, "filter: unknown operand kind");
    }
    return *av ? STORE_OK : nomem(err);
}

/* ------------------------------------------------------------------ */
/* Unmarshalling                                                       */

static store_status bad(walk *w, const char *what) {
    return store_fail(w->err, STORE_IO, "dynamodb value: %s at %s", what, path_show(&w->at));
}

/* The one type tag and its payload of an AttributeValue. */
static const char *av_type(const json_t *av, json_t **payload) {
    if (!json_is_object(av) || json_object_size(av) != 1) return NULL;
    void *it = json_object_iter((json_t *)av);
    *payload = json_object_iter_value(it);
    return json_object_iter_key(it);
}

static store_status unmarshal(walk *w, const json_t *av, int depth, json_t **out);

/* Unmarshals the elements of an L (or a set) into a new array. */
static store_status unmarshal_list(walk *w, const json_t *list, int depth, const char *set_type,
                                   json_t **out) {
    json_t *arr = json_array(), *child = NULL;
    store_status st = STORE_NOMEM;
    size_t i;
    json_t *e;
    if (!arr) return nomem(w->err);
    json_array_foreach(list, i, e) {
        char idx[24];
        int n = snprintf(idx, sizeof idx, "%zu", i);
        size_t old = path_push(&w->at, idx, (size_t)n);
        if (old == (size_t)-1) goto nomem;
        if (set_type) { /* set elements are bare strings */
            json_t *wrapped = av1(set_type, json_incref(e));
            if (!wrapped) {
                path_pop(&w->at, old);
                goto nomem;
            }
            st = unmarshal(w, wrapped, depth + 1, &child);
            json_decref(wrapped);
        } else {
            st = unmarshal(w, e, depth + 1, &child);
        }
        path_pop(&w->at, old);
        if (st != STORE_OK) goto fail;
        if (json_array_append_new(arr, child)) goto nomem;
    }
    *out = arr;
    return STORE_OK;
nomem:
    st = nomem(w->err);
fail:
    json_decref(arr);
    return st;
}

static store_status unmarshal(walk *w, const json_t *av, int depth, json_t **out) {
    json_t *p = NULL, *acc = NULL, *child = NULL;
    store_status st = STORE_NOMEM;
    const char *t = av_type(av, &p);

    *out = NULL;
    if (!t) return bad(w, "not an AttributeValue");
    if (depth >= READ_NESTING) return bad(w, "nested too deep");
    if (!strcmp(t, "S") || !strcmp(t, "B")) {
        if (!json_is_string(p)) return bad(w, "S or B without a string");
        *out = json_stringn_nocheck(json_string_value(p), json_string_length(p));
    } else if (!strcmp(t, "N")) {
        if (!json_is_string(p)) return bad(w, "N without a string");
        bool marked = w->marks && json_object_getn(w->marks, w->at.buf ? w->at.buf : "", w->at.len);
        if (!(*out = number_value(json_string_value(p), marked)))
            return bad(w, "N that is not a number");
    } else if (!strcmp(t, "BOOL")) {
        if (!json_is_boolean(p)) return bad(w, "BOOL without a boolean");
        *out = json_boolean(json_is_true(p));
    } else if (!strcmp(t, "NULL")) {
        *out = json_null();
    } else if (!strcmp(t, "L") || !strcmp(t, "SS") || !strcmp(t, "NS") || !strcmp(t, "BS")) {
        if (!json_is_array(p)) return bad(w, "list without an array");
        return unmarshal_list(w, p, depth, t[0] == 'L' ? NULL : t[0] == 'N' ? "N" : "S", out);
    } else if (!strcmp(t, "M")) {
        const char *key;
        size_t klen;
        json_t *e;
        if (!json_is_object(p)) return bad(w, "M without an object");
        if (!(acc = json_object())) return nomem(w->err);
        json_object_keylen_foreach(p, key, klen, e) {
            size_t old = path_push(&w->at, key, klen);
            if (old == (size_t)-1) goto nomem;
            st = unmarshal(w, e, depth + 1, &child);
            path_pop(&w->at, old);
            if (st != STORE_OK) goto fail;
            if (json_object_setn_new_nocheck(acc, key, klen, child)) goto nomem;
        }
        *out = acc;
        return STORE_OK;
    } else {
        return bad(w, "unknown AttributeValue type");
    }
    return *out ? STORE_OK : nomem(w->err);
nomem:
    st = nomem(w->err);
fail:
    json_decref(acc);
    return st;
}

store_status ddb_value_unmarshal(const json_t *av, const json_t *floats, json_t **value,
                                 char **err) {
    walk w = {.err = err};
    store_status st = STORE_NOMEM;
    json_t *list = NULL;
    *value = NULL;
    if (floats) {
        size_t i;
        json_t *e, *s;
        if (!json_is_object(floats) || !json_is_array(list = json_object_get(floats, "L")))
            return store_fail(err, STORE_IO, "dynamodb value: float marks are not a list");
        if (!(w.marks = json_object())) return nomem(err);
        json_array_foreach(list, i, e) {
            if (!json_is_string(s = json_object_get(e, "S")))
                continue; /* not ours to judge: ignore what we cannot read */
            if (json_object_setn_new_nocheck(w.marks, json_string_value(s), json_string_length(s),
                                             json_true())) {
                st = nomem(err);
                goto done;
            }
        }
    }
    st = unmarshal(&w, av, 0, value);
done:
    json_decref(w.marks);
    free(w.at.buf);
    return st;
}

store_status ddb_value_to_json(const json_t *av, const json_t *floats, char **json, size_t *len,
                               char **err) {
    json_t *v = NULL;
    *json = NULL;
    store_status st = ddb_value_unmarshal(av, floats, &v, err);
    if (st != STORE_OK) return st;
    /* Floats keep 17 significant digits and a '.' or exponent (jansson's
     * default), as store.h's JSON convention wants. */
    *json = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
    json_decref(v);
    if (!*json) return nomem(err);
    if (len) *len = strlen(*json);
    return STORE_OK;
}

/* ------------------------------------------------------------------ */
/* Sizes                                                               */

/* 1 byte per two significant digits, plus 1. */
static size_t number_size(const char *n) {
    long first = -1, last = -1, i = 0;
    for (const char *p = n; *p && *p != 'e' && *p != 'E'; p++) {
        if (*p < '0' || *p > '9') continue;
        if (*p != '0') {
            if (first < 0) first = i;
            last = i;
        }
        i++;
    }
    size_t sig = first < 0 ? 1 : (size_t)(last - first + 1);
    return (sig + 1) / 2 + 1;
}

/* Bytes that base64 text decodes to. */
static size_t base64_size(size_t n, const char *s) {
    if (n % 4) return n * 3 / 4; /* unpadded */
    return n / 4 * 3 - (n > 0 && s[n - 1] == '=') - (n > 1 && s[n - 2] == '=');
}

size_t ddb_value_size(const json_t *av) {
    json_t *p = NULL;
    const char *t = av_type(av, &p);
    size_t n = 0, i;
    json_t *e;
    if (!t) return 0;
    switch (t[0]) {
    case 'S':
        if (t[1] == 'S') { /* SS */
            json_array_foreach(p, i, e) n += json_string_length(e);
            return n;
        }
        return json_string_length(p);
    case 'N':
        if (t[1] == 'S') { /* NS */
            json_array_foreach(p, i, e) n += number_size(json_string_value(e));
            return n;
        }
        if (t[1] == 'U') /* NULL */
            return 1;
        return number_size(json_string_value(p));
    case 'B':
        if (t[1] == 'O') /* BOOL */
            return 1;
        if (t[1] == 'S') { /* BS */
            json_array_foreach(p, i, e) n +=
                base64_size(json_string_length(e), json_string_value(e));
            return n;
        }
        return base64_size(json_string_length(p), json_string_value(p));
    case 'L':
        n = 3;
        json_array_foreach(p, i, e) n += 1 + ddb_value_size(e);
        return n;
    case 'M': {
        const char *k;
        size_t klen;
        n = 3;
        json_object_keylen_foreach(p, k, klen, e) n += 1 + klen + ddb_value_size(e);
        return n;
    }
    }
    return 0;
}

size_t ddb_item_size(const json_t *item) {
    const char *k;
    size_t klen, n = 0;
    json_t *e;
    json_object_keylen_foreach((json_t *)item, k, klen, e) n += klen + ddb_value_size(e);
    return n;
}

static const char *item_string(const json_t *item, const char *name) {
    return json_string_value(json_object_get(json_object_get(item, name), "S"));
}

store_status ddb_item_event(const json_t *item, const char *table, store_event *ev, char **data,
                            char **err) {
    const char *key = item_string(item, "key"), *rev = item_string(item, "revision");
    const char *type = item_string(item, "type"), *at = item_string(item, "committedAt");
    const char *missing = key == NULL    ? "key"
                          : rev == NULL  ? "revision"
                          : type == NULL ? "type"
                          : at == NULL   ? "committedAt"
                                         : NULL;
    *data = NULL;
    if (missing == NULL && !revision_valid(rev)) missing = "a valid revision";
    if (missing != NULL)
        return store_fail(err, STORE_IO,
                          "dynamodb: an item of table %s (key \"%s\", "
                          "revision \"%s\") has no %s",
                          table, key ? key : "?", rev ? rev : "?", missing);
    const json_t *value = json_object_get(item, "data");
    store_status status;
    if (value == NULL) {
        /* Not written by Aeon nor by us; an absent value reads as null. */
        if ((*data = strdup("null")) == NULL) return store_fail(err, STORE_NOMEM, "out of memory");
        ev->data_len = 4;
    } else if ((status = ddb_value_to_json(value, json_object_get(item, "dataFloats"), data,
                                           &ev->data_len, err)) != STORE_OK) {
        return status;
    }
    ev->key = key;
    ev->type = type;
    ev->data = *data;
    ev->correlation_id = item_string(item, "correlationId"); /* NULL for {"NULL": true} */
    /* Ours: the events of the same append after this one (absent: none). */
    const char *more = json_string_value(json_object_get(json_object_get(item, "more"), "N"));
    ev->more = more != NULL ? (size_t)strtoull(more, NULL, 10) : 0;
    snprintf(ev->revision, sizeof ev->revision, "%s", rev);
    snprintf(ev->committed_at, sizeof ev->committed_at, "%s", at);
    return STORE_OK;
}
