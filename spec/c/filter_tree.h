/*
 * filter_tree.h - filter trees (filter.h) built in place from compound
 * literals, for the C tests of filters and of their DynamoDB conversion:
 * ALL(FIELD("type", OP(FILTER_EQ, STR("x"))), DATA("n", EXISTS)).
 */
#ifndef AEON_FILTER_TREE_H
#define AEON_FILTER_TREE_H

#include "filter.h"

#define NODE(k, ...) (&(store_filter){.kind = (k), __VA_ARGS__})
#define OP(k, v) NODE(k, .value = v)
#define STR(s) ((store_scalar){.kind = SCALAR_STRING, .string = (s)})
#define INT(i) ((store_scalar){.kind = SCALAR_INTEGER, .integer = (i)})
#define FLT(d) ((store_scalar){.kind = SCALAR_FLOAT, .number = (d)})
#define BOOL(b) ((store_scalar){.kind = SCALAR_BOOLEAN, .boolean = (b)})
#define KIDS(...)                                                                                  \
    .children = (store_filter *[]){__VA_ARGS__},                                                   \
    .nchildren = sizeof((store_filter *[]){__VA_ARGS__}) / sizeof(store_filter *)
#define FIELD(n, child) NODE(FILTER_FIELD, .name = (n), KIDS(child))
#define ALL(...) NODE(FILTER_ALL, KIDS(__VA_ARGS__))
#define ANY(...) NODE(FILTER_ANY, KIDS(__VA_ARGS__))
#define EXISTS NODE(FILTER_EXISTS)
#define DATA(n, child) FIELD("data", FIELD(n, child))

#endif
