/*
 * stream.c - aeon.lambda's DynamoDB side (see runtime.h): stream records
 * into events, and the tables a store deploys.
 *
 *   lambda.stream(text, selectors [, table]) -> records | nil, message
 *     text: a DynamoDB Streams batch as Lambda delivers it ({"Records":
 *     [...]}); selectors: an array of { key = {patterns}, type = {patterns},
 *     filter = aeon.filter table }, each nil for "any", as a projection
 *     declares them. Every record becomes { sequence, name, key, event,
 *     matches } where event is the table the store's reads give for its
 *     NewImage (the backend's own conversion, ddb_item_event, so numbers
 *     are exact and the layout is Aeon's) and matches[i] says whether it
 *     matches selectors[i] (the store's own pattern and filter matching);
 *     or { sequence, name, key, problem } when the image is missing or is
 *     not an event.
 *   lambda.tables(uri) -> JSON text of the CreateTable requests `store
 *     deploy` makes (ddb_tables) | nil, message
 *
 * Uses jansson, ddb_value.h and dynamodb.h (store/dynamodb/), filter.h and
 * pattern.h (store/), bind.h (events and filters as Lua values).
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <lauxlib.h>

#include "bind.h"
#include "ddb_value.h"
#include "dynamodb.h"
#include "filter.h"
#include "pattern.h"
#include "runtime.h"

/* One projection's choice of events; strings borrowed from the Lua
 * selectors table, which stays on the stack. */
typedef struct selector {
    const char **keys;          /* key patterns */
    size_t nkeys;               /* 0: every key */
    const char **types;         /* type patterns */
    size_t ntypes;              /* 0: every type */
    const store_filter *filter; /* NULL: none */
} selector;

/* The strings of the array field `name` of the table at idx, in a
 * userdata left on the stack; a single string counts as a list of one. */
static const char **patterns(lua_State *L, int idx, const char *name, size_t *n) {
    lua_getfield(L, idx, name);
    int t = lua_gettop(L);
    *n = lua_istable(L, t) ? (size_t)lua_rawlen(L, t) : lua_isstring(L, t) ? 1 : 0;
    const char **out = lua_newuserdatauv(L, (*n + 1) * sizeof *out, 0);
    if (lua_isstring(L, t)) {
        out[0] = lua_tostring(L, t);
    } else {
        for (size_t i = 0; i < *n; i++) {
            lua_rawgeti(L, t, (lua_Integer)i + 1);
            out[i] = lua_tostring(L, -1);
            if (!out[i]) luaL_error(L, "selector %s patterns must be strings", name);
            lua_pop(L, 1); /* still referenced by the table */
        }
    }
    return out;
}

static void set_string(lua_State *L, const char *field, const char *value) {
    if (!value) return;
    lua_pushstring(L, value);
    lua_setfield(L, -2, field);
}

/* The fields every record gets: its stream position, kind and item key. */
static const json_t *record_head(lua_State *L, const json_t *rec) {
    const json_t *dyn = json_object_get(rec, "dynamodb");
    set_string(L, "sequence", json_string_value(json_object_get(dyn, "SequenceNumber")));
    set_string(L, "name", json_string_value(json_object_get(rec, "eventName")));
    set_string(L, "key",
               json_string_value(
                   json_object_get(json_object_get(json_object_get(dyn, "Keys"), "key"), "S")));
    return dyn;
}

static void record(lua_State *L, const json_t *rec, const char *table, const selector *sel,
                   size_t nsel) {
    lua_createtable(L, 0, 5);
    const json_t *dyn = record_head(L, rec);
    const json_t *image = json_object_get(dyn, "NewImage");
    if (!json_is_object(image)) {
        lua_pushliteral(L, "the record has no NewImage (the stream's view type must be "
                           "NEW_IMAGE or NEW_AND_OLD_IMAGES)");
        lua_setfield(L, -2, "problem");
        return;
    }
    store_event ev;
    char *data = NULL, *err = NULL;
    if (ddb_item_event(image, table, &ev, &data, &err) != STORE_OK) {
        lua_pushstring(L, err ? err : "out of memory");
        lua_setfield(L, -2, "problem");
        free(err);
        free(data);
        return;
    }
    lua_createtable(L, (int)nsel, 0);
    for (size_t i = 0; i < nsel; i++) {
        bool yes = pattern_match_any(sel[i].keys, sel[i].nkeys, ev.key) &&
                   pattern_match_any(sel[i].types, sel[i].ntypes, ev.type) &&
                   filter_match(sel[i].filter, &ev);
        lua_pushboolean(L, yes);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "matches");
    /* bind_push_event raises only when out of memory; data goes first. */
    lua_pushlstring(L, data, ev.data_len);
    free(data);
    ev.data = lua_tolstring(L, -1, &ev.data_len);
    bind_push_event(L, &ev);
    lua_setfield(L, -3, "event");
    lua_pop(L, 1);
}

/* Frees the parsed batch if a Lua error unwinds past it. */
static int batch_gc(lua_State *L) {
    json_t **root = lua_touserdata(L, 1);
    json_decref(*root);
    *root = NULL;
    return 0;
}

static int l_stream(lua_State *L) {
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    luaL_checktype(L, 2, LUA_TTABLE);
    const char *table = luaL_optstring(L, 3, "events");
    size_t nsel = (size_t)lua_rawlen(L, 2);
    selector *sel = lua_newuserdatauv(L, (nsel + 1) * sizeof *sel, 0);
    for (size_t i = 0; i < nsel; i++) {
        luaL_checkstack(L, 8, "too many selectors");
        lua_rawgeti(L, 2, (lua_Integer)i + 1);
        int t = lua_gettop(L);
        luaL_argcheck(L, lua_istable(L, t), 2, "selectors must be tables");
        /* Each helper leaves what owns its memory on the stack. */
        sel[i].keys = patterns(L, t, "key", &sel[i].nkeys);
        sel[i].types = patterns(L, t, "type", &sel[i].ntypes);
        lua_getfield(L, t, "filter");
        sel[i].filter = bind_check_filter(L, lua_gettop(L));
    }

    json_t **root = lua_newuserdatauv(L, sizeof *root, 0);
    *root = NULL;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, batch_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    json_error_t jerr;
    if (!(*root = json_loadb(text, len, 0, &jerr))) {
        lua_pushnil(L);
        lua_pushfstring(L, "the stream batch is not JSON: %s", jerr.text);
        return 2;
    }
    const json_t *records = json_object_get(*root, "Records");
    if (!json_is_array(records)) {
        lua_pushnil(L);
        lua_pushliteral(L, "the stream batch has no Records array");
        return 2;
    }
    size_t n = json_array_size(records);
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        luaL_checkstack(L, 8, "stream batch");
        record(L, json_array_get(records, i), table, sel, nsel);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    json_decref(*root);
    *root = NULL;
    return 1;
}

static int l_tables(lua_State *L) {
    const char *uri = luaL_checkstring(L, 1);
    char *json = NULL, *err = NULL;
    store_status st = ddb_tables(uri, &json, &err);
    if (st != STORE_OK) {
        lua_pushnil(L);
        lua_pushstring(L, err ? err : "out of memory");
        free(err);
        return 2;
    }
    lua_pushstring(L, json);
    free(json);
    return 1;
}

void lambda_stream_open(lua_State *L) {
    lua_pushcfunction(L, l_stream);
    lua_setfield(L, -2, "stream");
    lua_pushcfunction(L, l_tables);
    lua_setfield(L, -2, "tables");
}
