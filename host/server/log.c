/*
 * log.c - structured logs on stderr (see log.h).
 */
#include "log.h"

#include "host.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static atomic_int threshold = LOG_INFO;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const NAMES[] = {"debug", "info", "warn", "error"};

void log_set_level(log_level level) { atomic_store(&threshold, (int)level); }

bool log_enabled(log_level level) { return (int)level >= atomic_load(&threshold); }

bool log_parse_level(const char *name, log_level *out) {
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, NAMES[i]) == 0) {
            *out = (log_level)i;
            return true;
        }
    }
    if (strcmp(name, "warning") == 0) {
        *out = LOG_WARN;
        return true;
    }
    return false;
}

const char *log_level_name(log_level level) {
    return level >= LOG_DEBUG && level <= LOG_ERROR ? NAMES[level] : "info";
}

bool log_begin(log_line *l, log_level level, const char *msg) {
    if (!log_enabled(level)) return false;
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    l->b = (buf){0};
    buf_printf(&l->b, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"msg\":",
               tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
               ts.tv_nsec / 1000000, NAMES[level]);
    buf_json_string(&l->b, msg, strlen(msg));
    return true;
}

static void key(log_line *l, const char *k) {
    buf_put(&l->b, ",", 1);
    buf_json_string(&l->b, k, strlen(k));
    buf_put(&l->b, ":", 1);
}

void log_strn(log_line *l, const char *k, const char *value, size_t len) {
    key(l, k);
    if (value)
        buf_json_string(&l->b, value, len);
    else
        buf_puts(&l->b, "null");
}

void log_str(log_line *l, const char *k, const char *value) {
    log_strn(l, k, value, value ? strlen(value) : 0);
}

void log_int(log_line *l, const char *k, long long value) {
    key(l, k);
    buf_printf(&l->b, "%lld", value);
}

void log_num(log_line *l, const char *k, double value) {
    key(l, k);
    if (isfinite(value))
        buf_printf(&l->b, "%.15g", value);
    else
        buf_puts(&l->b, "null");
}

void log_bool(log_line *l, const char *k, bool value) {
    key(l, k);
    buf_puts(&l->b, value ? "true" : "false");
}

void log_raw(log_line *l, const char *k, const char *json, size_t len) {
    key(l, k);
    buf_put(&l->b, json, len);
}

void log_end(log_line *l) {
    buf_put(&l->b, "}\n", 2);
    if (!l->b.failed) {
        pthread_mutex_lock(&out_lock);
        fwrite(l->b.data, 1, l->b.len, stderr);
        fflush(stderr);
        pthread_mutex_unlock(&out_lock);
    }
    buf_free(&l->b);
}

void log_msg(log_level level, const char *msg) {
    log_line l;
    if (log_begin(&l, level, msg)) log_end(&l);
}

void log_lua_error(log_line *l, const char *error) {
    const char *trace = host_traceback(error);
    if (trace) {
        log_strn(l, "error", error, (size_t)(trace - error));
        log_str(l, "traceback", trace + 1);
    } else {
        log_str(l, "error", error ? error : "(no message)");
    }
}

void log_error_msg(log_level level, const char *msg, const char *error) {
    log_line l;
    if (!log_begin(&l, level, msg)) return;
    log_str(&l, "error", error);
    log_end(&l);
}
