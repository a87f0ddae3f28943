/*
 * filter_fuzz.c - libFuzzer harness for store/filter.c: the bytes build a
 * filter tree (any shape, any operand) and an event whose data is the rest
 * of the input; filter_check either refuses the tree or filter_match runs,
 * and a filter_copy always matches the same way as its original. The same
 * tree compiles into a DynamoDB FilterExpression in which no name or value
 * appears itself: only placeholders, operators and function names.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ddb_filter.h"
#include "filter.h"

typedef struct input {
    const uint8_t *p;   /* next byte */
    const uint8_t *end; /* one past the last */
} input;

static uint8_t byte(input *in) { return in->p < in->end ? *in->p++ : 0; }

static const char *const NAMES[] =
    {"key", "type", "correlation_id", "committed_at", "data", "a", "b", "n", "", "x"};
static const char *const STRINGS[] = {"", "a", "ab", "counter/", "Vanilla", "\xc3\xa9", "1"};

static store_filter *build(input *in, int depth) {
    store_filter *f = calloc(1, sizeof *f);
    f->kind = (store_filter_kind)(byte(in) % (FILTER_LTE + 1));
    if (depth > 6 && (f->kind == FILTER_ALL || f->kind == FILTER_ANY || f->kind == FILTER_FIELD))
        f->kind = FILTER_EXISTS;
    switch (f->kind) {
    case FILTER_ALL:
    case FILTER_ANY:
        f->nchildren = byte(in) % 4;
        f->children = calloc(f->nchildren + 1, sizeof *f->children);
        for (size_t i = 0; i < f->nchildren; i++) f->children[i] = build(in, depth + 1);
        break;
    case FILTER_FIELD:
        f->name = byte(in) % 11 == 10 ? NULL : NAMES[byte(in) % 10];
        f->nchildren = byte(in) % 3 == 0 ? 0 : 1;
        f->children = calloc(2, sizeof *f->children);
        if (f->nchildren) f->children[0] = build(in, depth + 1);
        break;
    case FILTER_EXISTS:
        break;
    default:
        f->value.kind = (store_scalar_kind)(byte(in) % 4);
        f->value.string = STRINGS[byte(in) % 7];
        f->value.integer = (int64_t)(((uint64_t)byte(in) << 56 | byte(in)) - 128u);
        f->value.number = byte(in) % 5 == 0 ? 1.0 / 0.0 : byte(in) / 3.0;
        f->value.boolean = byte(in) & 1;
    }
    return f;
}

static void destroy(store_filter *f) {
    if (!f) return;
    for (size_t i = 0; i < f->nchildren; i++) destroy(f->children[i]);
    free(f->children);
    free(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    input in = {data, data + size};
    store_filter *f = build(&in, 0);
    store_event ev = {
        .key = "counter/a",
        .type = "incremented",
        .correlation_id = byte(&in) & 1 ? "c" : NULL,
        .data = (const char *)in.p,
        .data_len = (size_t)(in.end - in.p),
        .revision = "01ARYZ6S410000000000000000",
        .committed_at = "2026-11-26T20:29:24.016Z",
    };
    if (!filter_check(f)) {
        store_filter *copy = NULL;
        bool m = filter_match(f, &ev);
        filter_uses_data(f);
        if (filter_copy(f, &copy) != STORE_OK) abort();
        if (filter_match(copy, &ev) != m) abort();
        filter_free(copy);
        for (int single = 0; single < 2; single++) {
            ddb_filter out = {0};
            char *err = NULL;
            if (ddb_filter_compile(f, single ? "counter/a" : NULL, &out, &err) != STORE_OK) abort();
            for (const char *e = out.expression; e && *e; e++)
                if (*e == '/' || *e == '"' || *e == '\'' || (unsigned char)*e >= 0x80) abort();
            ddb_filter_free(&out);
            free(err);
        }
    }
    destroy(f);
    return 0;
}
