/*
 * dynamodb_response_fuzz.c - libFuzzer harness for what the DynamoDB backend
 * reads from the network and from disk: a response body taken as a Query
 * answer (every item made into an event), as a cancelled transaction (the
 * reasons read for conflicts and clock skew) and as an error; and the same
 * bytes as an AWS credentials/config file. Malformed input must come back
 * as an error, never a crash. It reaches the backend's readers through
 * its private header, store/dynamodb/ddb_store.h.
 */
#include "ddb_store.h"

static void as_query_answer(const json_t *answer) {
    ddb_store s = {.events = "events"};
    store_cursor c = {.s = &s};
    const json_t *items = json_object_get(answer, "Items");
    for (size_t i = 0; i < json_array_size(items); i++) {
        char *err = NULL;
        if (ddb_to_event(&c, json_array_get(items, i), &err) == STORE_OK) {
            if (!c.ev.key || !c.ev.type || !c.ev.data || !revision_valid(c.ev.revision)) abort();
            if (strlen(c.data) != c.ev.data_len) abort();
        } else if (err == NULL) {
            abort(); /* every failure says why */
        }
        free(err);
    }
    free(c.data);
}

static void as_cancellation(json_t *answer) {
    http_response r = {.status = 400, .json = answer, .error = "TransactionCanceledException"};
    store_pending ev = {.type = "t", .data = "{}", .data_len = 2};
    store_batch b[3] = {
        {.key = "a", .events = &ev, .count = 1, .expected_revision = STORE_START},
        {.key = "b", .events = &ev, .count = 1, .expected_revision = NULL},
        {.key = "c", .events = NULL, .count = 0, .expected_revision = "01ARYZ6S410000000000000000"},
    };
    plan p = {.b = b, .n = 3};
    char actual[STORE_REVISION_SIZE] = STORE_START, floor[STORE_REVISION_SIZE] = STORE_START;
    const char *other = NULL;
    size_t i = ddb_cancelled(&p, &r, actual, floor, &other);
    if (i > p.n) abort();
    if (i < p.n && !revision_bound_valid(actual)) abort();
    if (!revision_bound_valid(floor)) abort();
    char *err = NULL;
    if (http_fail(&r, "TransactWriteItems", &err) == STORE_OK) abort();
    free(err);
}

static void as_ini(const uint8_t *data, size_t size) {
    aws_ini ini;
    char *err = NULL;
    if (aws_ini_parse((const char *)data, size, &ini, &err) == STORE_OK) {
        aws_ini_get(&ini, "default", "region");
        aws_ini_has_section(&ini, "profile x");
    }
    aws_ini_free(&ini);
    free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_t *answer = json_loadb((const char *)data, size, 0, NULL);
    if (answer) {
        as_query_answer(answer);
        as_cancellation(answer);
        json_decref(answer);
    }
    as_ini(data, size);
    return 0;
}
