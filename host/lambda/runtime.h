/*
 * runtime.h - aeon.lambda: what `aeon-host lambda APP.lua` needs from C to
 * be an AWS Lambda custom runtime.
 *
 * Provides luaopen_aeon_lambda, preloaded by aeon-host into its main state.
 * The module is small on purpose: the Runtime API's four calls over
 * libcurl, a time budget for one invocation, and the conversions only C
 * can make exactly (DynamoDB stream images into events, the tables a store
 * deploys). Everything else, what an event means and how it is answered,
 * is aeon.cli.lambda's (lua/aeon/cli/lambda.lua).
 */
#ifndef AEON_LAMBDA_RUNTIME_H
#define AEON_LAMBDA_RUNTIME_H

#include <lua.h>

int luaopen_aeon_lambda(lua_State *L);

/* stream.c: adds stream() and tables() to the module table on top. */
void lambda_stream_open(lua_State *L);

#endif
