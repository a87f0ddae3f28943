/*
 * ddb_value_fuzz.c - libFuzzer harness for store/ddb_value.c: JSON text to
 * AttributeValues and back is stable after one round (the first round may
 * normalise, e.g. -0.0), and any JSON handed back as an AttributeValue (as
 * a response from the backend would be) converts or is refused, never
 * crashes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ddb_value.h"

static void roundtrip(const uint8_t *data, size_t size) {
    json_t *av = NULL, *floats = NULL, *av2 = NULL, *floats2 = NULL;
    char *json = NULL, *json2 = NULL, *json3 = NULL, *err = NULL;
    size_t len, len2, len3;
    if (ddb_value_from_json((const char *)data, size, &av, &floats, &err) != STORE_OK) goto done;
    if (ddb_value_to_json(av, floats, &json, &len, &err) != STORE_OK) abort();
    if (ddb_value_from_json(json, len, &av2, &floats2, &err) != STORE_OK) abort();
    if (ddb_value_to_json(av2, floats2, &json2, &len2, &err) != STORE_OK) abort();
    /* A second round changes nothing. */
    json_decref(av);
    json_decref(floats);
    av = floats = NULL;
    if (ddb_value_from_json(json2, len2, &av, &floats, &err) != STORE_OK) abort();
    if (ddb_value_to_json(av, floats, &json3, &len3, &err) != STORE_OK) abort();
    if (len2 != len3 || memcmp(json2, json3, len2) != 0) abort();
done:
    free(err);
    free(json);
    free(json2);
    free(json3);
    json_decref(av);
    json_decref(floats);
    json_decref(av2);
    json_decref(floats2);
}

static void from_backend(const uint8_t *data, size_t size) {
    json_t *av = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    if (!av) return;
    char *json = NULL, *err = NULL;
    size_t len;
    ddb_value_to_json(av, NULL, &json, &len, &err);
    free(json);
    free(err);
    json_decref(av);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    roundtrip(data, size);
    from_backend(data, size);
    return 0;
}
