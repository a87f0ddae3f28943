/*
 * ddb_filter.c - store_filter trees -> DynamoDB FilterExpressions (see
 * ddb_filter.h). Provides ddb_filter_compile. Uses jansson for the name and
 * value maps, ddb_value_scalar for operands, and filter_match to decide
 * conditions on a known key with exactly store.h's semantics.
 *
 * The compiler walks the tree once, carrying the attribute path from the
 * event down; each node yields TRUE, FALSE or an expression, and ALL/ANY
 * fold their children's constants away.
 */
#include "ddb_filter.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ddb_value.h"
#include "filter.h"

/* What one node compiled to. */
typedef enum verdict { V_FALSE, V_TRUE, V_EXPR } verdict;

typedef struct part {
    verdict kind; /* constant, or an expression in text */
    char *text;   /* V_EXPR: malloc'd */
} part;

/* The attributes an event item has, and what they hold. */
typedef enum attr {
    A_NONE, /* not an event attribute: always absent */
    A_TEXT, /* key, type, committedAt: always a string */
    A_CORR, /* correlationId: a string, or NULL for none */
    A_DATA, /* data: any value, with paths into it */
} attr;

typedef struct compiler {
    const char *key;                /* the one key read, or NULL */
    json_t *names;                  /* "#fN" -> attribute name */
    json_t *by_name;                /* attribute name -> "#fN", to reuse */
    json_t *values;                 /* ":fN" / ":tS" -> AttributeValue */
    size_t nvalues;                 /* next :fN */
    int operators;                  /* counted toward DDB_OPERATORS_MAX */
    bool too_big;                   /* over a DynamoDB limit */
    const char *path[DDB_PATH_MAX]; /* names from the event down */
    size_t depth;                   /* entries of path in use */
    size_t overflow;                /* levels below DDB_PATH_MAX not recorded */
    char **err;                     /* where failures go */
} compiler;

static const part p_false = {V_FALSE, NULL};
static const part p_true = {V_TRUE, NULL};

static store_status nomem(compiler *c) {
    return store_fail(c->err, STORE_NOMEM, "dynamodb filter: out of memory");
}

static store_status expr(compiler *c, part *out, char *text) {
    if (text == NULL) return nomem(c);
    if (strlen(text) > DDB_EXPRESSION_MAX) c->too_big = true;
    out->kind = V_EXPR;
    out->text = text;
    return STORE_OK;
}

/* The placeholder for an attribute name, one per distinct name. */
static const char *name_ph(compiler *c, const char *name) {
    json_t *known = json_object_get(c->by_name, name);
    if (known != NULL) return json_string_value(known);
    char ph[32];
    snprintf(ph, sizeof ph, "#f%zu", json_object_size(c->names));
    if (json_object_set_new(c->names, ph, json_string(name)) != 0 ||
        json_object_set_new(c->by_name, name, json_string(ph)) != 0)
        return NULL;
    return json_string_value(json_object_get(c->by_name, name));
}

/* "#f0.#f1.#f2" for the current path, malloc'd. */
static char *path_text(compiler *c) {
    size_t cap = c->depth * 32 + 1, len = 0;
    char *s = malloc(cap);
    if (s == NULL) return NULL;
    s[0] = '\0';
    for (size_t i = 0; i < c->depth; i++) {
        const char *ph = name_ph(c, c->path[i]);
        if (ph == NULL) {
            free(s);
            return NULL;
        }
        len += (size_t)snprintf(s + len, cap - len, "%s%s", i > 0 ? "." : "", ph);
    }
    return s;
}

/* A new value placeholder holding av (taken over). */
static const char *value_ph(compiler *c, json_t *av, char ph[32]) {
    snprintf(ph, 32, ":f%zu", c->nvalues++);
    if (av == NULL || json_object_set_new(c->values, ph, av) != 0) return NULL;
    return ph;
}

/* ":tS" / ":tN": the type names attribute_type compares with. */
static const char *type_ph(compiler *c, const char *type) {
    static const char *const phs[2] = {":tS", ":tN"};
    const char *ph = type[0] == 'S' ? phs[0] : phs[1];
    if (json_object_get(c->values, ph) == NULL) {
        json_t *av = json_pack("{s:s}", "S", type);
        if (av == NULL || json_object_set_new(c->values, ph, av) != 0) return NULL;
    }
    return ph;
}

static const char *op_text(store_filter_kind k) {
    switch (k) {
    case FILTER_EQ:
        return "=";
    case FILTER_NE:
        return "<>";
    case FILTER_GT:
        return ">";
    case FILTER_GTE:
        return ">=";
    case FILTER_LT:
        return "<";
    case FILTER_LTE:
        return "<=";
    default:
        return NULL;
    }
}

static attr attribute(const char *name, const char **item_name) {
    static const struct {
        const char *event, *item;
        attr kind;
    } map[] = {
        {"key", "key", A_TEXT},
        {"type", "type", A_TEXT},
        {"committed_at", "committedAt", A_TEXT},
        {"correlation_id", "correlationId", A_CORR},
        {"data", "data", A_DATA},
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (strcmp(name, map[i].event) == 0) {
            *item_name = map[i].item;
            return map[i].kind;
        }
    return A_NONE;
}

/* `p op v`, `begins_with(p, v)`, or for ne on an attribute that may be
 * absent `(guard AND p <> v)`. guard is NULL when the attribute is always
 * there. Takes av over. */
static store_status compare(compiler *c, const store_filter *f, json_t *av, const char *guard,
                            part *out) {
    char ph[32];
    char *p = path_text(c);
    const char *v = value_ph(c, av, ph);
    if (p == NULL || v == NULL) {
        free(p);
        return nomem(c);
    }
    char *text;
    c->operators++;
    if (f->kind == FILTER_PREFIX)
        text = store_format("begins_with(%s, %s)", p, v);
    else if (f->kind == FILTER_NE && guard != NULL) {
        c->operators += 2;
        text = store_format("(%s AND %s <> %s)", guard, p, v);
    } else
        text = store_format("%s %s %s", p, op_text(f->kind), v);
    free(p);
    return expr(c, out, text);
}

/* attribute_exists(p) or attribute_type(p, :tX), malloc'd. */
static char *presence(compiler *c, const char *type) {
    char *p = path_text(c);
    if (p == NULL) return NULL;
    c->operators++;
    char *text;
    if (type == NULL)
        text = store_format("attribute_exists(%s)", p);
    else {
        const char *t = type_ph(c, type);
        text = t != NULL ? store_format("attribute_type(%s, %s)", p, t) : NULL;
    }
    free(p);
    return text;
}

/* A float operand DynamoDB cannot hold. No stored number equals it, and it
 * lies beyond every stored number (huge) or between zero and the smallest
 * stored magnitude (tiny): rewrite the comparison to one DynamoDB can do. */
static store_status out_of_range(compiler *c, const store_filter *f, double d, part *out) {
    bool huge = fabs(d) > 1.0, up = f->kind == FILTER_GT || f->kind == FILTER_GTE;
    if (f->kind == FILTER_EQ) {
        *out = p_false;
        return STORE_OK;
    }
    if (f->kind == FILTER_NE) return expr(c, out, presence(c, NULL));
    if (huge) {
        /* d > 0: only lt/lte hold, for every number; d < 0: only gt/gte. */
        if ((d > 0) == up) {
            *out = p_false;
            return STORE_OK;
        }
        return expr(c, out, presence(c, "N"));
    }
    /* Tiny: against stored numbers, > d is > 0 when d > 0 and >= 0 when
     * d < 0; < d is <= 0 when d > 0 and < 0 when d < 0. */
    store_filter zero = *f;
    zero.kind = up ? (d > 0 ? FILTER_GT : FILTER_GTE) : (d > 0 ? FILTER_LTE : FILTER_LT);
    return compare(c, &zero, json_pack("{s:s}", "N", "0"), NULL, out);
}

/* A leaf decided against the known key, with filter_match's own semantics. */
static part on_known_key(const compiler *c, const store_filter *f) {
    store_filter *kids[1] = {(store_filter *)f};
    store_filter field = {.kind = FILTER_FIELD, .name = "key", .children = kids, .nchildren = 1};
    store_event ev = {.key = c->key, .type = "", .data = "null", .data_len = 4};
    return filter_match(&field, &ev) ? p_true : p_false;
}

static store_status leaf(compiler *c, const store_filter *f, part *out) {
    *out = p_false;
    if (c->depth == 0 && c->overflow == 0) {
        /* The event itself: present, and an object, so it equals no scalar. */
        if (f->kind == FILTER_EXISTS || f->kind == FILTER_NE) *out = p_true;
        return STORE_OK;
    }
    const char *item_name;
    attr a = attribute(c->path[0], &item_name);
    size_t levels = c->depth + c->overflow;
    if (a == A_NONE || (a != A_DATA && levels > 1))
        return STORE_OK; /* absent: every condition is false */
    if (levels > DDB_PATH_MAX) {
        c->too_big = true;
        return STORE_OK;
    }
    if (a == A_TEXT && c->key != NULL && strcmp(c->path[0], "key") == 0) {
        *out = on_known_key(c, f);
        return STORE_OK;
    }

    /* The item's attribute name replaces the event's at the top. */
    const char *top = c->path[0];
    c->path[0] = item_name;
    store_status status = STORE_OK;
    bool string_only = a != A_DATA; /* key, type, committedAt, correlationId */
    const char *guard_type = a == A_CORR ? "S" : NULL;

    if (f->kind == FILTER_EXISTS) {
        if (a == A_TEXT)
            *out = p_true;
        else
            status = expr(c, out, presence(c, guard_type));
        goto done;
    }
    if (string_only && f->value.kind != SCALAR_STRING) {
        /* A string never equals nor orders against a number or boolean. */
        if (f->kind == FILTER_NE) {
            if (a == A_TEXT)
                *out = p_true;
            else
                status = expr(c, out, presence(c, "S"));
        }
        goto done;
    }

    json_t *av = NULL;
    char *why = NULL;
    status = ddb_value_scalar(&f->value, &av, &why);
    if (status == STORE_LIMIT && f->value.kind == SCALAR_FLOAT) {
        free(why);
        status = out_of_range(c, f, f->value.number, out);
        goto done;
    }
    if (status != STORE_OK) {
        status = store_fail(c->err, status, "dynamodb filter: %s", why ? why : "bad value");
        free(why);
        goto done;
    }
    char *guard = NULL;
    if (f->kind == FILTER_NE && a != A_TEXT && (guard = presence(c, guard_type)) == NULL) {
        json_decref(av);
        status = nomem(c);
        goto done;
    }
    status = compare(c, f, av, guard, out);
    free(guard);
done:
    c->path[0] = top;
    return status;
}

static void part_free(part *p) {
    free(p->text);
    p->text = NULL;
}

static store_status node(compiler *c, const store_filter *f, part *out);

/* ALL / ANY: constants fold, the rest join with AND / OR. */
static store_status join(compiler *c, const store_filter *f, part *out) {
    bool all = f->kind == FILTER_ALL;
    verdict absorbing = all ? V_FALSE : V_TRUE;
    char *acc = NULL;
    size_t n = 0;
    *out = all ? p_true : p_false;
    for (size_t i = 0; i < f->nchildren; i++) {
        part kid = p_false;
        store_status status = node(c, f->children[i], &kid);
        if (status != STORE_OK) {
            free(acc);
            return status;
        }
        if (kid.kind == absorbing) {
            free(acc);
            *out = kid;
            return STORE_OK;
        }
        if (kid.kind != V_EXPR) continue;
        if (acc == NULL) {
            acc = kid.text;
        } else {
            char *both = store_format("%s %s %s", acc, all ? "AND" : "OR", kid.text);
            free(acc);
            part_free(&kid);
            if (both == NULL) return nomem(c);
            acc = both;
            c->operators++;
        }
        n++;
    }
    if (acc == NULL) return STORE_OK;
    if (n == 1) return expr(c, out, acc);
    char *text = store_format("(%s)", acc);
    free(acc);
    return expr(c, out, text);
}

static store_status node(compiler *c, const store_filter *f, part *out) {
    *out = p_false;
    switch (f->kind) {
    case FILTER_ALL:
    case FILTER_ANY:
        return join(c, f, out);
    case FILTER_FIELD: {
        if (c->depth < DDB_PATH_MAX)
            c->path[c->depth++] = f->name;
        else
            c->overflow++;
        store_status status = node(c, f->children[0], out);
        if (c->overflow > 0)
            c->overflow--;
        else
            c->depth--;
        return status;
    }
    default:
        return leaf(c, f, out);
    }
}

void ddb_filter_free(ddb_filter *f) {
    if (f == NULL) return;
    free(f->expression);
    json_decref(f->names);
    json_decref(f->values);
    memset(f, 0, sizeof *f);
}

store_status ddb_filter_compile(const store_filter *f, const char *key, ddb_filter *out,
                                char **err) {
    compiler c = {.key = key, .err = err};
    part result = p_true;
    store_status status = STORE_NOMEM;
    const char *why;
    memset(out, 0, sizeof *out);
    if (f == NULL) return STORE_OK;
    if ((why = filter_check(f)) != NULL)
        return store_fail(err, STORE_INVALID, "bad filter: %s", why);

    c.names = json_object();
    c.by_name = json_object();
    c.values = json_object();
    if (c.names == NULL || c.by_name == NULL || c.values == NULL) {
        status = nomem(&c);
        goto done;
    }
    if ((status = node(&c, f, &result)) != STORE_OK) goto done;
    if (c.too_big || c.operators > DDB_OPERATORS_MAX) {
        out->local = true;
    } else if (result.kind == V_FALSE) {
        out->none = true;
    } else if (result.kind == V_EXPR) {
        out->expression = result.text;
        result.text = NULL;
        if (json_object_size(c.names) > 0) {
            out->names = c.names;
            c.names = NULL;
        }
        if (json_object_size(c.values) > 0) {
            out->values = c.values;
            c.values = NULL;
        }
    }
done:
    part_free(&result);
    json_decref(c.names);
    json_decref(c.by_name);
    json_decref(c.values);
    return status;
}
