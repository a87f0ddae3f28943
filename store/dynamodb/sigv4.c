/*
 * sigv4.c - AWS Signature Version 4 (see sigv4.h).
 *
 * Provides sigv4_sign and its two small helpers. Uses OpenSSL's SHA-256 and
 * HMAC and libc's open_memstream to build the strings.
 *
 * Why our own signer and not libcurl's CURLOPT_AWS_SIGV4: libcurl reads the
 * time from the system clock (only a debug build honours CURL_FORCETIME), so
 * its signatures cannot be checked against AWS's published vectors or a
 * request signed by botocore at a known time, and it signs inside
 * curl_easy_perform, where the canonical request cannot be seen. Here the
 * time comes from the caller (store_env), every intermediate string is
 * returned, and each retry is re-signed with a fresh X-Amz-Date while the
 * body stays byte-identical, which DynamoDB's ClientRequestToken requires.
 */
#include "sigv4.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define ALGORITHM "AWS4-HMAC-SHA256"
#define TERMINATOR "aws4_request"

/* One header as it goes into the canonical request. */
typedef struct canon_header {
    char *name;   /* lower case */
    char *value;  /* trimmed, inner whitespace collapsed */
    size_t order; /* position in the input, so equal names keep their order */
} canon_header;

/* One query parameter, both halves encoded. */
typedef struct canon_param {
    char *key;   /* percent-encoded */
    char *value; /* percent-encoded, "" when absent */
} canon_param;

static const char hex_digits[] = "0123456789abcdef";
static const char HEX_DIGITS[] = "0123456789ABCDEF";

static void to_hex(const unsigned char *in, size_t n, char *out) {
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex_digits[in[i] >> 4];
        out[2 * i + 1] = hex_digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void sigv4_sha256_hex(const void *data, size_t len, char out[SIGV4_HASH_SIZE]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(len ? data : "", len, md, &n, EVP_sha256(), NULL);
    to_hex(md, n, out);
}

void sigv4_amz_date(uint64_t now_ms, char out[SIGV4_DATE_SIZE]) {
    time_t t = (time_t)(now_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, SIGV4_DATE_SIZE, "%Y%m%dT%H%M%SZ", &tm);
}

static bool hmac(const void *key, size_t keylen, const char *msg, unsigned char out[32]) {
    unsigned int n = 0;
    return HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, strlen(msg), out, &n) !=
               NULL &&
           n == 32;
}

static bool unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Writes n bytes percent-encoded the SigV4 way: everything but the
 * unreserved characters, as %XX in upper case. */
static void put_encoded(FILE *f, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c))
            fputc(c, f);
        else
            fprintf(f, "%%%c%c", HEX_DIGITS[c >> 4], HEX_DIGITS[c & 15]);
    }
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes the valid %XX escapes of n bytes, then encodes the result, so a
 * query given raw or already encoded signs the same. NULL on no memory. */
static char *reencode(const char *s, size_t n) {
    char *out = NULL, *dec = malloc(n + 1);
    size_t len = 0, m = 0;
    FILE *f = NULL;
    if (!dec) return NULL;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hex_value(s[i + 1])) >= 0 &&
            (lo = hex_value(s[i + 2])) >= 0) {
            dec[m++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            dec[m++] = s[i];
        }
    }
    f = open_memstream(&out, &len);
    if (f) {
        put_encoded(f, dec, m);
        if (fclose(f) != 0) {
            free(out);
            out = NULL;
        }
    }
    free(dec);
    return out;
}

/* The canonical URI: "." and empty segments dropped, ".." removing the one
 * before, a trailing slash kept, each segment percent-encoded. For services
 * other than S3 the path on the wire is already encoded, so this encodes it a
 * second time, as AWS expects. */
static bool put_canonical_uri(FILE *f, const char *path) {
    size_t n = strlen(path), depth = 0, cap = n / 2 + 1;
    const char **seg = malloc(cap * sizeof *seg);
    size_t *seglen = malloc(cap * sizeof *seglen);
    const char *slash = strrchr(path, '/'), *tail = slash ? slash + 1 : path;
    /* A path ending in "/", "/." or "/.." names a directory: keep the slash. */
    bool trailing = !strcmp(tail, "") || !strcmp(tail, ".") || !strcmp(tail, "..");
    if (!seg || !seglen) {
        free(seg);
        free(seglen);
        return false;
    }
    for (size_t i = 0; i <= n;) {
        size_t j = i;
        while (j < n && path[j] != '/') j++;
        size_t len = j - i;
        if (len == 0 || (len == 1 && path[i] == '.')) {
            /* an empty or "." segment: nothing to keep */
        } else if (len == 2 && path[i] == '.' && path[i + 1] == '.') {
            if (depth > 0) depth--;
        } else {
            seg[depth] = path + i;
            seglen[depth++] = len;
        }
        i = j + 1;
    }
    fputc('/', f);
    for (size_t k = 0; k < depth; k++) {
        if (k) fputc('/', f);
        put_encoded(f, seg[k], seglen[k]);
    }
    if (depth > 0 && trailing) fputc('/', f);
    free(seg);
    free(seglen);
    return true;
}

static int param_cmp(const void *a, const void *b) {
    const canon_param *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->value, y->value);
}

/* The canonical query string: parameters sorted by encoded key, then by
 * encoded value, joined as k=v with '&'. */
static bool put_canonical_query(FILE *f, const char *query) {
    size_t n = query ? strlen(query) : 0, count = 0, cap = 1;
    canon_param *p = NULL;
    bool ok = false;
    for (size_t i = 0; i < n; i++) cap += query[i] == '&';
    p = calloc(cap, sizeof *p);
    if (!p) return false;
    for (size_t i = 0; i < n;) {
        size_t j = i, eq;
        while (j < n && query[j] != '&') j++;
        if (j > i) {
            for (eq = i; eq < j && query[eq] != '='; eq++)
                ;
            p[count].key = reencode(query + i, eq - i);
            p[count].value = eq < j ? reencode(query + eq + 1, j - eq - 1) : reencode("", 0);
            count++;
            if (!p[count - 1].key || !p[count - 1].value) goto done;
        }
        i = j + 1;
    }
    qsort(p, count, sizeof *p, param_cmp);
    for (size_t k = 0; k < count; k++) fprintf(f, "%s%s=%s", k ? "&" : "", p[k].key, p[k].value);
    ok = true;
done:
    for (size_t k = 0; k < count; k++) {
        free(p[k].key);
        free(p[k].value);
    }
    free(p);
    return ok;
}

static int header_cmp(const void *a, const void *b) {
    const canon_header *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->order > y->order) - (x->order < y->order);
}

static char *lower_dup(const char *s) {
    char *d = strdup(s);
    for (char *p = d; p && *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
    return d;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Trims the value and collapses each inner run of whitespace (folded lines
 * included) into one space, as the canonical headers require. */
static char *trim_dup(const char *s) {
    char *d = malloc(strlen(s) + 1), *o = d;
    bool gap = false;
    if (!d) return NULL;
    while (is_space(*s)) s++;
    for (; *s; s++) {
        if (is_space(*s)) {
            gap = true;
            continue;
        }
        if (gap) *o++ = ' ';
        gap = false;
        *o++ = *s;
    }
    *o = '\0';
    return d;
}

static bool reserved_header(const char *lname) {
    return !strcmp(lname, "x-amz-date") || !strcmp(lname, "x-amz-security-token") ||
           !strcmp(lname, "x-amz-content-sha256") || !strcmp(lname, "authorization");
}

/* Builds the sorted canonical header list, the signer's own headers
 * included. */
static store_status collect_headers(const sigv4_request *req, const char *amz_date,
                                    const char *token, const char *payload_hash, canon_header **out,
                                    size_t *count, char **err) {
    size_t n = 0, cap = req->nheaders + 3;
    canon_header *h = calloc(cap, sizeof *h);
    store_status st = STORE_NOMEM;
    bool host = false;
    if (!h) return store_fail(err, STORE_NOMEM, "sigv4: out of memory");
    for (size_t i = 0; i < req->nheaders; i++, n++) {
        if (!req->headers[i].name || !req->headers[i].value) {
            st = store_fail(err, STORE_INVALID, "sigv4: header %zu has no name or value", i);
            goto fail;
        }
        h[n].name = lower_dup(req->headers[i].name);
        h[n].value = trim_dup(req->headers[i].value);
        h[n].order = n;
        if (!h[n].name || !h[n].value) goto nomem;
        if (reserved_header(h[n].name)) {
            st = store_fail(err, STORE_INVALID, "sigv4: header %s is added by the signer",
                            req->headers[i].name);
            n++;
            goto fail;
        }
        host |= !strcmp(h[n].name, "host");
    }
    if (!host) {
        st = store_fail(err, STORE_INVALID, "sigv4: no Host header to sign");
        goto fail;
    }
    const char *extra[3][2] = {
        {"x-amz-date", amz_date},
        {"x-amz-security-token", token},
        {"x-amz-content-sha256", payload_hash},
    };
    for (size_t i = 0; i < 3; i++) {
        if (!extra[i][1]) continue;
        h[n].name = strdup(extra[i][0]);
        h[n].value = strdup(extra[i][1]);
        h[n].order = n;
        n++;
        if (!h[n - 1].name || !h[n - 1].value) goto nomem;
    }
    qsort(h, n, sizeof *h, header_cmp);
    *out = h;
    *count = n;
    return STORE_OK;
nomem:
    n++;
    st = store_fail(err, STORE_NOMEM, "sigv4: out of memory");
fail:
    for (size_t i = 0; i < n; i++) {
        free(h[i].name);
        free(h[i].value);
    }
    free(h);
    return st;
}

/* Writes the canonical headers block ("name:value\n" per distinct name, the
 * values of repeated names joined with ',') into f, and the signed header
 * list ("a;b;c") into g. */
static void put_headers(FILE *f, FILE *g, const canon_header *h, size_t n) {
    for (size_t i = 0; i < n; i++) {
        bool same = i > 0 && !strcmp(h[i].name, h[i - 1].name);
        if (same) {
            fprintf(f, ",%s", h[i].value);
            continue;
        }
        fprintf(f, "%s%s:%s", i ? "\n" : "", h[i].name, h[i].value);
        fprintf(g, "%s%s", i ? ";" : "", h[i].name);
    }
    if (n) fputc('\n', f);
}

static char *memstream_close(FILE *f, char **buf) {
    if (fclose(f) != 0) {
        free(*buf);
        *buf = NULL;
    }
    return *buf;
}

void sigv4_signed_free(sigv4_signed *s) {
    if (!s) return;
    free(s->authorization);
    free(s->canonical_request);
    free(s->string_to_sign);
    memset(s, 0, sizeof *s);
}

/* What the stages of sigv4_sign build, each from the ones before. */
typedef struct signing {
    const sigv4_request *req; /* what is signed */
    const sigv4_credentials *cred;
    const char *region, *service;
    const char *token;         /* the session token, or NULL */
    char date[9];              /* YYYYMMDD of the request's time */
    canon_header *h;           /* the canonical headers, sorted */
    size_t nh;                 /* ... how many */
    char *headers;             /* CanonicalHeaders */
    char *signed_headers;      /* SignedHeaders */
    char *uri;                 /* CanonicalURI */
    char *query;               /* CanonicalQueryString */
    char *creq;                /* the canonical request */
    char *sts;                 /* the string to sign */
    char sig[SIGV4_HASH_SIZE]; /* the signature, hex */
    char *authz;               /* the Authorization header's value */
} signing;

static store_status sign_nomem(char **err) {
    return store_fail(err, STORE_NOMEM, "sigv4: out of memory");
}

/* A malloc'd string printed from fmt; false on no memory. */
static bool print_to(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool print_to(char **out, const char *fmt, ...) {
    size_t len;
    FILE *f = open_memstream(out, &len);
    if (!f) return false;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    return memstream_close(f, out) != NULL;
}

/* What a request must have before anything is computed. */
static store_status check_signing(const signing *sg, char **err) {
    const sigv4_request *req = sg->req;
    const sigv4_credentials *cred = sg->cred;
    if (!req || !req->method || !*req->method || !req->path)
        return store_fail(err, STORE_INVALID, "sigv4: no method or path");
    if (!cred || !cred->access_key || !*cred->access_key || !cred->secret_key || !*cred->secret_key)
        return store_fail(err, STORE_INVALID, "sigv4: no access key or secret key");
    if (!sg->region || !*sg->region || !sg->service || !*sg->service)
        return store_fail(err, STORE_INVALID, "sigv4: no region or service");
    return STORE_OK;
}

/* The two header renderings, since both go into the request. */
static store_status render_headers(signing *sg, char **err) {
    size_t len;
    FILE *f = open_memstream(&sg->headers, &len), *g = NULL;
    if (!f || !(g = open_memstream(&sg->signed_headers, &len))) {
        if (f) memstream_close(f, &sg->headers);
        return sign_nomem(err);
    }
    put_headers(f, g, sg->h, sg->nh);
    memstream_close(f, &sg->headers);
    memstream_close(g, &sg->signed_headers);
    if (!sg->headers || !sg->signed_headers) return sign_nomem(err);
    return STORE_OK;
}

/* The path and the query, rendered on their own. */
static store_status render_target(signing *sg, char **err) {
    size_t len;
    FILE *f = open_memstream(&sg->uri, &len);
    if (!f) return sign_nomem(err);
    bool ok = put_canonical_uri(f, sg->req->path);
    if (!memstream_close(f, &sg->uri) || !ok) return sign_nomem(err);
    if (!(f = open_memstream(&sg->query, &len))) return sign_nomem(err);
    ok = put_canonical_query(f, sg->req->query);
    if (!memstream_close(f, &sg->query) || !ok) return sign_nomem(err);
    return STORE_OK;
}

static store_status canonical_request(signing *sg, const sigv4_signed *out, char **err) {
    if (!print_to(&sg->creq,
                  "%s\n" /* HTTPRequestMethod, as sent                            */
                  "%s\n" /* CanonicalURI: path normalised, segments encoded       */
                  "%s\n" /* CanonicalQueryString: k=v, by key then value, '&'     */
                  "%s\n" /* CanonicalHeaders: "name:value\n" per name, by name;   */
                         /* this '\n' after the block leaves an empty line       */
                  "%s\n" /* SignedHeaders: the same names, ';'-separated          */
                  "%s",  /* HashedPayload: hex SHA-256 of the body                */
                  sg->req->method, sg->uri, sg->query, sg->headers, sg->signed_headers,
                  out->payload_hash))
        return sign_nomem(err);
    return STORE_OK;
}

static store_status string_to_sign(signing *sg, const sigv4_signed *out, char **err) {
    char creq_hash[SIGV4_HASH_SIZE];
    sigv4_sha256_hex(sg->creq, strlen(sg->creq), creq_hash);
    if (!print_to(&sg->sts,
                  "%s\n"          /* Algorithm                                   */
                  "%s\n"          /* RequestDateTime, as sent in X-Amz-Date      */
                  "%s/%s/%s/%s\n" /* CredentialScope: date/region/service/term  */
                  "%s",           /* HashedCanonicalRequest                      */
                  ALGORITHM, out->amz_date, sg->date, sg->region, sg->service, TERMINATOR,
                  creq_hash))
        return sign_nomem(err);
    return STORE_OK;
}

/* The signing key: HMAC chained over date, region, service and the
 * terminator, starting from "AWS4" + secret; then the signature over the
 * string to sign. Both secrets are wiped before returning. */
static store_status signature(signing *sg, char **err) {
    store_status st = STORE_OK;
    unsigned char k[32];
    size_t slen = strlen(sg->cred->secret_key);
    char *secret = malloc(slen + 5);
    if (!secret) return sign_nomem(err);
    memcpy(secret, "AWS4", 4);
    memcpy(secret + 4, sg->cred->secret_key, slen + 1);
    if (!hmac(secret, slen + 4, sg->date, k) || !hmac(k, 32, sg->region, k) ||
        !hmac(k, 32, sg->service, k) || !hmac(k, 32, TERMINATOR, k) || !hmac(k, 32, sg->sts, k))
        st = store_fail(err, STORE_IO, "sigv4: HMAC-SHA256 failed");
    else
        to_hex(k, 32, sg->sig);
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(secret, slen + 4);
    free(secret);
    return st;
}

static store_status authorization(signing *sg, char **err) {
    if (!print_to(&sg->authz, "%s Credential=%s/%s/%s/%s/%s, SignedHeaders=%s, Signature=%s",
                  ALGORITHM, sg->cred->access_key, sg->date, sg->region, sg->service, TERMINATOR,
                  sg->signed_headers, sg->sig))
        return sign_nomem(err);
    return STORE_OK;
}

store_status sigv4_sign(const sigv4_request *req, const sigv4_credentials *cred, const char *region,
                        const char *service, uint64_t now_ms, sigv4_signed *out, char **err) {
    signing sg = {.req = req, .cred = cred, .region = region, .service = service};
    sg.token = cred && cred->session_token && *cred->session_token ? cred->session_token : NULL;
    memset(out, 0, sizeof *out);
    store_status st = check_signing(&sg, err);
    if (st != STORE_OK) return st;

    sigv4_amz_date(now_ms, out->amz_date);
    memcpy(sg.date, out->amz_date, 8);
    sg.date[8] = '\0';
    sigv4_sha256_hex(req->payload, req->payload_len, out->payload_hash);

    st = collect_headers(req, out->amz_date, sg.token,
                         req->sign_content_sha256 ? out->payload_hash : NULL, &sg.h, &sg.nh, err);
    if (st == STORE_OK) st = render_headers(&sg, err);
    if (st == STORE_OK) st = render_target(&sg, err);
    if (st == STORE_OK) st = canonical_request(&sg, out, err);
    if (st == STORE_OK) st = string_to_sign(&sg, out, err);
    if (st == STORE_OK) st = signature(&sg, err);
    if (st == STORE_OK) st = authorization(&sg, err);
    if (st == STORE_OK) {
        out->authorization = sg.authz;
        out->canonical_request = sg.creq;
        out->string_to_sign = sg.sts;
        sg.authz = sg.creq = sg.sts = NULL;
    } else {
        sigv4_signed_free(out);
    }

    for (size_t i = 0; i < sg.nh; i++) {
        free(sg.h[i].name);
        free(sg.h[i].value);
    }
    free(sg.h);
    free(sg.uri);
    free(sg.query);
    free(sg.headers);
    free(sg.signed_headers);
    free(sg.creq);
    free(sg.sts);
    free(sg.authz);
    return st;
}
