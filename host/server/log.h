/*
 * log.h - structured logs: one JSON object per line on stderr.
 *
 * Provides levels (debug, info, warn, error), a process-wide threshold set by
 * --log-level, and a line builder:
 *
 *     log_line l;
 *     if (log_begin(&l, LOG_INFO, "request")) {
 *         log_str(&l, "request_id", id);
 *         log_int(&l, "status", 200);
 *         log_end(&l);
 *     }
 *
 * Every line starts {"ts":"2026-11-26T20:29:24.016Z","level":"info","msg":...}.
 * Lines are written whole under a lock, so threads never interleave. Nothing
 * here knows about requests or tokens: callers decide what is safe to log
 * (the server never logs headers). Uses buf.h.
 */
#ifndef AEON_LOG_H
#define AEON_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

typedef enum log_level {
    LOG_DEBUG,
    LOG_INFO,
    LOG_WARN,
    LOG_ERROR,
} log_level;

/* One line being built. */
typedef struct log_line {
    buf b; /* the JSON object so far */
} log_line;

/* Sets the threshold; lines below it are not written. */
void log_set_level(log_level level);

/* True when a line at `level` would be written. */
bool log_enabled(log_level level);

/* "debug", "info", "warn" (or "warning"), "error" -> level. Returns false
 * for anything else. */
bool log_parse_level(const char *name, log_level *out);

/* The level's name. */
const char *log_level_name(log_level level);

/* Starts a line; false (and nothing to end) when the level is filtered out. */
bool log_begin(log_line *l, log_level level, const char *msg);

/* Fields: a string (any bytes; made valid JSON), a number, a boolean, or
 * text that is already JSON. */
void log_str(log_line *l, const char *key, const char *value);
void log_strn(log_line *l, const char *key, const char *value, size_t len);
void log_int(log_line *l, const char *key, long long value);
void log_num(log_line *l, const char *key, double value);
void log_bool(log_line *l, const char *key, bool value);
void log_raw(log_line *l, const char *key, const char *json, size_t len);

/* Finishes the line and writes it. */
void log_end(log_line *l);

/* A line with a message only, or with one "error" field. */
void log_msg(log_level level, const char *msg);
void log_error_msg(log_level level, const char *msg, const char *error);

/* The fields of a host_call error: "error", the message, and "traceback",
 * the trace host_call appended, when there is one. */
void log_lua_error(log_line *l, const char *error);

#endif
