/*
 * pattern.c - matching subscription patterns and keeping copies of them
 * (see pattern.h). Uses libc and store.h.
 *
 * The matcher is the classic one for a single wildcard: walk both strings,
 * and on a mismatch go back to just after the last '*', letting that star
 * swallow one more character of the text. Only the last star matters,
 * because anything an earlier star could swallow instead the later one can
 * too, so it runs in O(pattern x text) at worst, linear in practice, with
 * no recursion for a hostile pattern to exploit.
 */
#include "pattern.h"

#include <stdlib.h>
#include <string.h>

bool pattern_match(const char *pattern, const char *text) {
    const char *p = pattern, *t = text;
    const char *star = NULL;   /* just after the last '*' seen */
    const char *resume = NULL; /* where the text restarts when we backtrack */

    while (*t != '\0') {
        if (*p == '*') {
            star = ++p;
            resume = t;
        } else if (*p == *t) {
            p++;
            t++;
        } else if (star != NULL) {
            p = star;
            t = ++resume;
        } else {
            return false;
        }
    }
    while (*p == '*') p++;
    return *p == '\0';
}

bool pattern_match_any(const char *const *patterns, size_t n, const char *text) {
    if (n == 0) return true;
    for (size_t i = 0; i < n; i++)
        if (pattern_match(patterns[i], text)) return true;
    return false;
}

bool pattern_is_exact(const char *pattern) { return strchr(pattern, '*') == NULL; }

store_status pattern_copy(const char *const *in, size_t n, const char *what, char ***out,
                          size_t *nout, char **err) {
    const char *why;
    *out = NULL;
    *nout = 0;
    if (n == 0) return STORE_OK;
    if (in == NULL) return store_fail(err, STORE_INVALID, "no %s patterns given", what);
    for (size_t i = 0; i < n; i++)
        if ((why = store_check_text(in[i], false)) != NULL)
            return store_fail(err, STORE_INVALID, "%s pattern %zu %s", what, i + 1, why);
    if ((*out = calloc(n, sizeof **out)) == NULL)
        return store_fail(err, STORE_NOMEM, "out of memory opening a subscription");
    for (; *nout < n; (*nout)++)
        if (((*out)[*nout] = strdup(in[*nout])) == NULL)
            return store_fail(err, STORE_NOMEM, "out of memory opening a subscription");
    return STORE_OK;
}

void pattern_free(char **patterns, size_t n) {
    for (size_t i = 0; patterns != NULL && i < n; i++) free(patterns[i]);
    free(patterns);
}
