/*
 * revision.c - revisions as ULIDs: 10 Crockford base32 characters of
 * millisecond time (48 bits, so the first character is 0-7) then 16 of
 * randomness (80 bits). Provides revision.h. Uses the store_env clock and
 * random source, and gmtime_r for timestamps.
 *
 * Treated as one 130-bit number written in base 32, a revision's string
 * order is its numeric order, so successor and predecessor are +1 and -1
 * with carry and borrow across all 26 characters.
 */
#include "revision.h"

#include <string.h>
#include <time.h>

#define TIME_CHARS 10
#define MAX_MS ((UINT64_C(1) << 48) - 1)
#define MAX_TIMESTAMP_MS UINT64_C(253402300799999) /* 9999-12-31T23:59:59.999Z */

static const char alphabet[33] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* The digit a character stands for, or -1. Only the canonical upper-case
 * spelling counts: revisions are compared as strings, so "01arz..." would
 * sort apart from "01ARZ...". */
static int digit(char c) {
    const char *p = c != '\0' ? memchr(alphabet, c, 32) : NULL;
    return p != NULL ? (int)(p - alphabet) : -1;
}

bool revision_valid(const char *s) {
    if (s == NULL || s[0] < '0' || s[0] > '7') return false;
    for (int i = 1; i < STORE_REVISION_LEN; i++)
        if (digit(s[i]) < 0) return false;
    return s[STORE_REVISION_LEN] == '\0';
}

bool revision_bound_valid(const char *s) {
    return s != NULL &&
           (strcmp(s, STORE_START) == 0 || strcmp(s, STORE_END) == 0 || revision_valid(s));
}

void revision_make(uint64_t ms, const uint8_t random[10], char out[STORE_REVISION_SIZE]) {
    if (ms > MAX_MS) ms = MAX_MS;
    for (int i = TIME_CHARS - 1; i >= 0; i--, ms >>= 5) out[i] = alphabet[ms & 31];

    /* 80 random bits are exactly 16 characters, read 5 bits at a time from
     * the most significant end. */
    uint32_t acc = 0;
    int bits = 0, pos = TIME_CHARS;
    for (int i = 0; i < 10; i++) {
        acc = (acc << 8) | random[i];
        bits += 8;
        while (bits >= 5) {
            bits -= 5;
            out[pos++] = alphabet[(acc >> bits) & 31];
        }
    }
    out[STORE_REVISION_LEN] = '\0';
}

uint64_t revision_time(const char *rev) {
    uint64_t ms = 0;
    for (int i = 0; i < TIME_CHARS; i++) ms = (ms << 5) | (uint64_t)digit(rev[i]);
    return ms;
}

bool revision_next(const char *rev, char out[STORE_REVISION_SIZE]) {
    char tmp[STORE_REVISION_SIZE];
    memcpy(tmp, rev, STORE_REVISION_SIZE);
    for (int i = STORE_REVISION_LEN - 1; i >= 0; i--) {
        int d = digit(tmp[i]) + 1;
        if (d < (i == 0 ? 8 : 32)) {
            tmp[i] = alphabet[d];
            memcpy(out, tmp, STORE_REVISION_SIZE);
            return true;
        }
        tmp[i] = '0';
    }
    return false;
}

bool revision_prev(const char *rev, char out[STORE_REVISION_SIZE]) {
    char tmp[STORE_REVISION_SIZE];
    memcpy(tmp, rev, STORE_REVISION_SIZE);
    for (int i = STORE_REVISION_LEN - 1; i >= 0; i--) {
        int d = digit(tmp[i]);
        if (d > 0) {
            tmp[i] = alphabet[d - 1];
            memcpy(out, tmp, STORE_REVISION_SIZE);
            return true;
        }
        tmp[i] = 'Z';
    }
    return false;
}

/* Taking last + 1 when the clock is not ahead keeps revisions increasing
 * through clock steps backwards and through bursts within one millisecond.
 * The only revision without a successor, 7ZZZZZZZZZZZZZZZZZZZZZZZZZ, lies in
 * the year 10889: it is returned unchanged. */
void revision_after(const char *last, const store_env *env, char out[STORE_REVISION_SIZE]) {
    if (env == NULL) env = &store_env_default;
    uint64_t now = env->now_ms(env->ctx);
    if (now > MAX_MS) now = MAX_MS;
    if (last == NULL || strcmp(last, STORE_START) == 0 || now > revision_time(last)) {
        uint8_t random[10];
        env->random(env->ctx, random, sizeof random);
        revision_make(now, random, out);
    } else if (!revision_next(last, out))
        memcpy(out, last, STORE_REVISION_SIZE);
}

static void put_digits(char *p, unsigned v, int n) {
    for (int i = n - 1; i >= 0; i--, v /= 10) p[i] = (char)('0' + v % 10);
}

void revision_timestamp(uint64_t ms, char out[STORE_TIMESTAMP_SIZE]) {
    if (ms > MAX_TIMESTAMP_MS) ms = MAX_TIMESTAMP_MS;
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    /* YYYY-MM-DDTHH:MM:SS.mmmZ, written by hand: snprintf's %04d cannot
     * promise the compiler four digits. */
    put_digits(out, (unsigned)(tm.tm_year + 1900), 4);
    out[4] = '-';
    put_digits(out + 5, (unsigned)(tm.tm_mon + 1), 2);
    out[7] = '-';
    put_digits(out + 8, (unsigned)tm.tm_mday, 2);
    out[10] = 'T';
    put_digits(out + 11, (unsigned)tm.tm_hour, 2);
    out[13] = ':';
    put_digits(out + 14, (unsigned)tm.tm_min, 2);
    out[16] = ':';
    put_digits(out + 17, (unsigned)tm.tm_sec, 2);
    out[19] = '.';
    put_digits(out + 20, (unsigned)(ms % 1000), 3);
    out[23] = 'Z';
    out[24] = '\0';
}
