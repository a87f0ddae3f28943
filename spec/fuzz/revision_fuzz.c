/*
 * revision_fuzz.c - libFuzzer harness for store/revision.c: validation of
 * arbitrary text, and next/prev staying inverse and ordered on any valid
 * revision.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "revision.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char text[64];
    if (size >= sizeof text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    bool valid = revision_valid(text);
    if (valid && !revision_bound_valid(text)) abort();
    if (!valid) return 0;
    if (strlen(text) != STORE_REVISION_LEN) abort();
    char next[STORE_REVISION_SIZE], back[STORE_REVISION_SIZE];
    if (revision_next(text, next)) {
        if (!revision_valid(next) || strcmp(next, text) <= 0) abort();
        if (!revision_prev(next, back) || strcmp(back, text) != 0) abort();
    }
    if (revision_prev(text, back)) {
        if (!revision_valid(back) || strcmp(back, text) >= 0) abort();
        if (!revision_next(back, next) || strcmp(next, text) != 0) abort();
    }
    char ts[STORE_TIMESTAMP_SIZE];
    revision_timestamp(revision_time(text), ts);
    if (strlen(ts) != STORE_TIMESTAMP_SIZE - 1) abort();
    return 0;
}
