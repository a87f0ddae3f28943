/*
 * json.h - exact conversion between Lua values and JSON text.
 *
 * Provides the one path event data, snapshots and view documents take
 * between Lua and the store: integers stay integers (to 2^63-1), floats keep
 * every bit (17 significant digits at most, always with a '.' or exponent so
 * they read back as floats), strings must be valid UTF-8, and tables become
 * arrays (keys 1..n) or objects (string keys). The decoder builds Lua tables
 * directly from the text, with no intermediate tree, because replay speed
 * depends on it. Uses the Lua C API only.
 */
#ifndef AEON_JSON_H
#define AEON_JSON_H

#include <stddef.h>

#include <lua.h>

/* Deepest nesting either direction accepts; deeper input is an error, never
 * a C stack overflow. */
#define JSON_MAX_DEPTH 200

/* A growable output buffer, owned by the caller. */
typedef struct json_buf {
    char *data; /* malloc'd bytes, not NUL-terminated */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated */
} json_buf;

/* Appends the JSON text of the Lua value at `idx` to buf. Returns NULL on
 * success, else a message (in a static or buf-independent buffer `msg` of
 * `msgsize` bytes) saying what cannot be encoded and where. */
const char *json_encode(lua_State *L, int idx, json_buf *buf, char *msg, size_t msgsize);

/* Pushes the Lua value of `len` bytes of JSON text. Returns NULL on
 * success (one value pushed), else a message in msg and nothing pushed. */
const char *json_decode(lua_State *L, const char *text, size_t len, char *msg, size_t msgsize);

/* Short strings a decoder has pushed lately, to push again without
 * hashing and interning them anew: event data repeats its keys ("type",
 * "name") and many of its values from one event to the next. The bytes
 * live here, direct-mapped by length and end bytes; the Lua strings live
 * in a table the caller keeps alive (made by lua_createtable(L,
 * JSON_STRINGS, 0)), passed to json_decode_cached by stack index or
 * upvalue index. Zeroed means empty. */
#define JSON_STRINGS 64
#define JSON_STRING_MAX 24

typedef struct json_strings {
    unsigned char len[JSON_STRINGS];          /* bytes in each slot; 0: empty */
    char text[JSON_STRINGS][JSON_STRING_MAX]; /* the bytes of each */
} json_strings;

/* json_decode, reusing and remembering strings in `cache` and the table at
 * `table`. */
const char *json_decode_cached(lua_State *L, const char *text, size_t len, json_strings *cache,
                               int table, char *msg, size_t msgsize);

/* Releases a buffer's memory. */
void json_buf_free(json_buf *buf);

/* Appends a JSON string literal of s (len bytes, already valid UTF-8). */
int json_buf_string(json_buf *buf, const char *s, size_t len);

/* Appends raw bytes. Returns 0 on success, -1 when out of memory. */
int json_buf_put(json_buf *buf, const char *s, size_t len);

/* True when the bytes are valid UTF-8 (no overlongs, no surrogates). */
int json_utf8_valid(const char *s, size_t len);

#endif
