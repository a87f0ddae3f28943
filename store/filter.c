/*
 * filter.c - evaluating, copying and checking store_filter trees with the
 * semantics stated in store.h. Provides filter.h. Uses jansson to look into
 * event data, parsed at most once per event and only when the filter
 * reaches into `data`.
 */
#include "filter.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Deeper trees are refused by filter_check, so evaluation cannot run out of
 * stack on a hostile filter. */
#define MAX_DEPTH 64

/* A value a filter node is applied to. */
typedef enum vkind {
    V_ABSENT, /* the attribute is not there */
    V_EVENT,  /* the event itself, seen as an object */
    V_TEXT,   /* one of the event's string attributes */
    V_JSON,   /* something inside data */
} vkind;

typedef struct value {
    vkind kind;       /* which members are set */
    const char *text; /* V_TEXT: the string */
    size_t len;       /* V_TEXT: its bytes */
    json_t *json;     /* V_JSON: borrowed from the parsed data */
} value;

/* One evaluation: the event and its data, parsed on first use. */
typedef struct match {
    const store_event *ev; /* the event under test */
    json_t *data;          /* parsed data, once parsed */
    bool parsed;           /* data has been parsed (or failed to) */
} match;

static value text_value(const char *s) {
    value v = {V_TEXT, s, strlen(s), NULL};
    return v;
}

static value field(match *m, value v, const char *name) {
    value absent = {V_ABSENT, NULL, 0, NULL};
    if (v.kind == V_EVENT) {
        const store_event *ev = m->ev;
        if (strcmp(name, "key") == 0) return text_value(ev->key);
        if (strcmp(name, "type") == 0) return text_value(ev->type);
        if (strcmp(name, "committed_at") == 0) return text_value(ev->committed_at);
        if (strcmp(name, "correlation_id") == 0)
            return ev->correlation_id != NULL ? text_value(ev->correlation_id) : absent;
        if (strcmp(name, "data") == 0) {
            if (!m->parsed) {
                m->parsed = true;
                m->data =
                    json_loadb(ev->data, ev->data_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
            }
            /* Stored data always parses; if it ever did not, it is as good
             * as absent to a filter. */
            value d = {V_JSON, NULL, 0, m->data};
            return m->data != NULL ? d : absent;
        }
        return absent;
    }
    if (v.kind == V_JSON && json_is_object(v.json)) {
        json_t *j = json_object_get(v.json, name);
        value d = {V_JSON, NULL, 0, j};
        return j != NULL ? d : absent;
    }
    return absent;
}

/* Classes of operands that compare with each other. */
typedef enum vclass { C_STRING, C_NUMBER, C_BOOLEAN, C_OTHER } vclass;

static vclass value_class(value v) {
    if (v.kind == V_TEXT) return C_STRING;
    if (v.kind != V_JSON) return C_OTHER;
    if (json_is_string(v.json)) return C_STRING;
    if (json_is_number(v.json)) return C_NUMBER;
    if (json_is_boolean(v.json)) return C_BOOLEAN;
    return C_OTHER;
}

static vclass scalar_class(const store_scalar *s) {
    switch (s->kind) {
    case SCALAR_STRING:
        return C_STRING;
    case SCALAR_INTEGER:
    case SCALAR_FLOAT:
        return C_NUMBER;
    case SCALAR_BOOLEAN:
        return C_BOOLEAN;
    }
    return C_OTHER;
}

/* The bytes of a string value, an event attribute or a JSON string. */
static const char *text_of(value v, size_t *len) {
    if (v.kind == V_TEXT) {
        *len = v.len;
        return v.text;
    }
    *len = json_string_length(v.json);
    return json_string_value(v.json);
}

static int sign(int x) { return (x > 0) - (x < 0); }

/* Orders an integer against a double exactly: converting a large int64 to
 * double would round, so compare with the double's integer part instead. */
static int cmp_int_double(int64_t i, double d) {
    if (d >= 9223372036854775808.0) return -1;
    if (d < -9223372036854775808.0) return 1;
    double fl = floor(d);
    int64_t di = (int64_t)fl;
    if (i != di) return i < di ? -1 : 1;
    return fl < d ? -1 : 0;
}

static int cmp_bytes(const char *a, size_t alen, const char *b, size_t blen) {
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0) return sign(c);
    return (alen > blen) - (alen < blen);
}

/* Orders the value against the operand; both are of class `cls`, which is
 * C_STRING, C_NUMBER or C_BOOLEAN. */
static int compare(value v, const store_scalar *s, vclass cls) {
    if (cls == C_STRING) {
        size_t n;
        const char *t = text_of(v, &n);
        return cmp_bytes(t, n, s->string, strlen(s->string));
    }
    if (cls == C_BOOLEAN) return json_is_true(v.json) - s->boolean;
    if (json_is_integer(v.json)) {
        int64_t i = json_integer_value(v.json);
        if (s->kind == SCALAR_INTEGER) return (i > s->integer) - (i < s->integer);
        return cmp_int_double(i, s->number);
    }
    double d = json_real_value(v.json);
    if (s->kind == SCALAR_INTEGER) return -cmp_int_double(s->integer, d);
    return (d > s->number) - (d < s->number);
}

static bool has_prefix(value v, const char *prefix) {
    size_t n, m = strlen(prefix);
    const char *t = text_of(v, &n);
    return n >= m && memcmp(t, prefix, m) == 0;
}

static bool eval(match *m, const store_filter *f, value v) {
    switch (f->kind) {
    case FILTER_ALL:
        for (size_t i = 0; i < f->nchildren; i++)
            if (!eval(m, f->children[i], v)) return false;
        return true;
    case FILTER_ANY:
        for (size_t i = 0; i < f->nchildren; i++)
            if (eval(m, f->children[i], v)) return true;
        return false;
    case FILTER_FIELD:
        return eval(m, f->children[0], field(m, v, f->name));
    case FILTER_EXISTS:
        return v.kind != V_ABSENT;
    default:
        break;
    }
    if (v.kind == V_ABSENT) return false;
    vclass cls = value_class(v);
    bool same = cls != C_OTHER && cls == scalar_class(&f->value);
    switch (f->kind) {
    case FILTER_PREFIX:
        return cls == C_STRING && same && has_prefix(v, f->value.string);
    case FILTER_EQ:
        return same && compare(v, &f->value, cls) == 0;
    case FILTER_NE:
        return !same || compare(v, &f->value, cls) != 0;
    case FILTER_GT:
        return same && cls != C_BOOLEAN && compare(v, &f->value, cls) > 0;
    case FILTER_GTE:
        return same && cls != C_BOOLEAN && compare(v, &f->value, cls) >= 0;
    case FILTER_LT:
        return same && cls != C_BOOLEAN && compare(v, &f->value, cls) < 0;
    case FILTER_LTE:
        return same && cls != C_BOOLEAN && compare(v, &f->value, cls) <= 0;
    default:
        return false;
    }
}

bool filter_match(const store_filter *f, const store_event *ev) {
    if (f == NULL) return true;
    match m = {ev, NULL, false};
    value root = {V_EVENT, NULL, 0, NULL};
    bool ok = eval(&m, f, root);
    json_decref(m.data);
    return ok;
}

/* Only a FIELD "data" reached through ALL/ANY from the root looks into
 * data: deeper FIELD nodes apply to what their parent found. */
bool filter_uses_data(const store_filter *f) {
    if (f == NULL) return false;
    if (f->kind == FILTER_FIELD) return f->name != NULL && strcmp(f->name, "data") == 0;
    if (f->kind == FILTER_ALL || f->kind == FILTER_ANY)
        for (size_t i = 0; i < f->nchildren; i++)
            if (filter_uses_data(f->children[i])) return true;
    return false;
}

/* Each node is one allocation: the node, its child pointers, then its name
 * and string operand, so filter_free has one block per node to release. */
store_status filter_copy(const store_filter *f, store_filter **out) {
    *out = NULL;
    if (f == NULL) return STORE_OK;
    size_t name_len = f->name != NULL ? strlen(f->name) + 1 : 0;
    bool has_string = f->value.kind == SCALAR_STRING && f->value.string != NULL;
    size_t str_len = has_string ? strlen(f->value.string) + 1 : 0;
    size_t kids = f->nchildren * sizeof(store_filter *);
    store_filter *c = malloc(sizeof *c + kids + name_len + str_len);
    if (c == NULL) return STORE_NOMEM;
    *c = *f;
    c->children = f->nchildren > 0 ? (store_filter **)(c + 1) : NULL;
    char *p = (char *)(c + 1) + kids;
    if (name_len > 0) {
        c->name = memcpy(p, f->name, name_len);
        p += name_len;
    }
    c->value.string = has_string ? memcpy(p, f->value.string, str_len) : NULL;
    for (size_t i = 0; i < f->nchildren; i++) c->children[i] = NULL;
    for (size_t i = 0; i < f->nchildren; i++) {
        if (filter_copy(f->children[i], &c->children[i]) != STORE_OK) {
            filter_free(c);
            return STORE_NOMEM;
        }
    }
    *out = c;
    return STORE_OK;
}

void filter_free(store_filter *f) {
    if (f == NULL) return;
    for (size_t i = 0; i < f->nchildren; i++) filter_free(f->children[i]);
    free(f);
}

static const char *check(const store_filter *f, int depth) {
    if (f == NULL) return "a filter node is missing";
    if (depth > MAX_DEPTH) return "filter is nested too deeply";
    switch (f->kind) {
    case FILTER_ALL:
    case FILTER_ANY:
        if (f->nchildren > 0 && f->children == NULL) return "all_of/any_of has no children array";
        for (size_t i = 0; i < f->nchildren; i++) {
            const char *why = check(f->children[i], depth + 1);
            if (why != NULL) return why;
        }
        return NULL;
    case FILTER_FIELD:
        if (f->name == NULL || f->name[0] == '\0') return "a filter attribute name is empty";
        if (store_check_text(f->name, false) != NULL)
            return "a filter attribute name is not valid UTF-8";
        if (f->nchildren != 1 || f->children == NULL)
            return "a filter attribute needs exactly one condition";
        return check(f->children[0], depth + 1);
    case FILTER_EXISTS:
    case FILTER_PREFIX:
    case FILTER_EQ:
    case FILTER_NE:
    case FILTER_GT:
    case FILTER_GTE:
    case FILTER_LT:
    case FILTER_LTE:
        break;
    default:
        return "unknown filter operator";
    }
    if (f->nchildren != 0) return "a filter condition cannot have children";
    if (f->kind == FILTER_EXISTS) return NULL;

    const store_scalar *v = &f->value;
    switch (v->kind) {
    case SCALAR_STRING:
        if (store_check_text(v->string, true) != NULL)
            return "a filter string is missing or not valid UTF-8";
        break;
    case SCALAR_FLOAT:
        if (!isfinite(v->number)) return "a filter number is not finite";
        /* fall through */
    case SCALAR_INTEGER:
        if (f->kind == FILTER_PREFIX) return "prefix needs a string";
        break;
    case SCALAR_BOOLEAN:
        if (f->kind != FILTER_EQ && f->kind != FILTER_NE)
            return f->kind == FILTER_PREFIX ? "prefix needs a string"
                                            : "gt/gte/lt/lte need a number or a string";
        break;
    default:
        return "unknown filter value type";
    }
    return NULL;
}

const char *filter_check(const store_filter *f) { return check(f, 0); }
