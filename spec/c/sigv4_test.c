/*
 * sigv4_test.c - checks store/sigv4.c against AWS's published Signature
 * Version 4 test suite (spec/fixtures/sigv4/NAME/: request, canonical
 * request, string to sign, signature) and against DynamoDB requests signed
 * by botocore (spec/fixtures/sigv4/botocore/, .http files recorded off the wire).
 * Uses jansson to read each vector's context.json.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "sigv4.h"
#include "test.h"

#define MAX_HEADERS 32

/* A request read from a fixture: request line, headers, body. */
typedef struct parsed {
    char *text;                        /* the file, cut up in place */
    char *method;                      /* "GET" */
    char *path;                        /* before '?' */
    char *query;                       /* after '?', or "" */
    sigv4_header headers[MAX_HEADERS]; /* in file order */
    size_t nheaders;                   /* entries used */
    char *body;                        /* after the blank line */
    size_t body_len;                   /* bytes in body */
} parsed;

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) *--e = '\0';
    return s;
}

/* Parses "METHOD TARGET HTTP/1.1" then "Name:value" lines then a blank line and the
 * body. Accepts LF or CRLF line ends. The target may contain spaces. */
static bool parse_request(char *text, size_t len, parsed *p) {
    memset(p, 0, sizeof *p);
    p->text = text;
    char *end = text + len, *line = text, *nl;
    nl = strchr(line, '\n');
    if (!nl) return false;
    *nl = '\0';
    trim(line);
    char *sp = strchr(line, ' '), *ver = strstr(line, " HTTP/");
    if (!sp || !ver) return false;
    *sp = '\0';
    *ver = '\0';
    p->method = line;
    p->path = sp + 1;
    char *q = strchr(p->path, '?');
    p->query = "";
    if (q) {
        *q = '\0';
        p->query = q + 1;
    }
    line = nl + 1;
    while (line < end) {
        nl = memchr(line, '\n', (size_t)(end - line));
        char *next = nl ? nl + 1 : end;
        if (nl) *nl = '\0';
        if (*line == '\r') line++;
        if (*line == '\0') { /* blank line: the body follows */
            p->body = next;
            p->body_len = (size_t)(end - next);
            return true;
        }
        char *colon = strchr(line, ':');
        if (*line == ' ' || *line == '\t' || !colon || p->nheaders == MAX_HEADERS)
            return false; /* folded lines are not needed by these fixtures */
        *colon = '\0';
        p->headers[p->nheaders].name = line;
        p->headers[p->nheaders].value = colon + 1;
        p->nheaders++;
        char *e = line + strlen(line);
        if (e > line && e[-1] == '\r') e[-1] = '\0';
        line = next;
    }
    p->body = end;
    return true;
}

static const char *find_header(const parsed *p, const char *name) {
    for (size_t i = 0; i < p->nheaders; i++)
        if (!strcasecmp(p->headers[i].name, name)) return trim((char *)p->headers[i].value);
    return NULL;
}

static char *read_fixture(const char *dir, const char *name, size_t *len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *s = test_read_file(path, len);
    if (!s) fprintf(stderr, "cannot read %s\n", path);
    return s;
}

static uint64_t parse_time(const char *iso) {
    struct tm tm = {0};
    if (sscanf(iso, "%4d-%2d-%2dT%2d:%2d:%2dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6 &&
        sscanf(iso, "%4d%2d%2dT%2d%2d%2dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (uint64_t)timegm(&tm) * 1000;
}

/* The Authorization line of a signed request fixture. */
static const char *signed_authorization(char *text, size_t len, parsed *p) {
    if (!parse_request(text, len, p)) return NULL;
    return find_header(p, "Authorization");
}

static void run_vector(const char *root, const char *name) {
    char dir[1024];
    size_t len = 0, slen = 0;
    parsed req, sreq;
    sigv4_signed out = {0};
    char *err = NULL;
    json_t *ctx = NULL;
    char *ctx_text = NULL, *req_text = NULL, *creq = NULL, *sts = NULL, *sig = NULL,
         *signed_text = NULL;

    snprintf(dir, sizeof dir, "%s/%s", root, name);
    ctx_text = read_fixture(dir, "context.json", NULL);
    req_text = read_fixture(dir, "request.txt", &len);
    creq = read_fixture(dir, "header-canonical-request.txt", NULL);
    sts = read_fixture(dir, "header-string-to-sign.txt", NULL);
    sig = read_fixture(dir, "header-signature.txt", NULL);
    signed_text = read_fixture(dir, "header-signed-request.txt", &slen);
    CHECK_MSG(ctx_text && req_text && creq && sts && sig && signed_text, "%s: fixture files", name);
    if (!ctx_text || !req_text || !creq || !sts || !sig || !signed_text) goto done;
    ctx = json_loads(ctx_text, 0, NULL);
    CHECK_MSG(ctx != NULL, "%s: context.json parses", name);
    CHECK_MSG(parse_request(req_text, len, &req), "%s: request.txt parses", name);
    if (!ctx) goto done;

    sigv4_credentials cred = {
        .access_key = json_string_value(
            json_object_get(json_object_get(ctx, "credentials"), "access_key_id")),
        .secret_key = json_string_value(
            json_object_get(json_object_get(ctx, "credentials"), "secret_access_key")),
        .session_token =
            json_string_value(json_object_get(json_object_get(ctx, "credentials"), "token")),
    };
    sigv4_request r = {
        .method = req.method,
        .path = req.path,
        .query = req.query,
        .headers = req.headers,
        .nheaders = req.nheaders,
        .payload = req.body,
        .payload_len = req.body_len,
        .sign_content_sha256 = json_is_true(json_object_get(ctx, "sign_body")),
    };
    uint64_t now = parse_time(json_string_value(json_object_get(ctx, "timestamp")));
    store_status st =
        sigv4_sign(&r, &cred, json_string_value(json_object_get(ctx, "region")),
                   json_string_value(json_object_get(ctx, "service")), now, &out, &err);
    CHECK_MSG(st == STORE_OK, "%s: sign: %s", name, err ? err : "?");
    if (st != STORE_OK) goto done;
    char what[1200];
    snprintf(what, sizeof what, "%s canonical request", name);
    CHECK_STR_AS(out.canonical_request, creq, what);
    snprintf(what, sizeof what, "%s string to sign", name);
    CHECK_STR_AS(out.string_to_sign, sts, what);
    const char *s = strstr(out.authorization, "Signature=");
    snprintf(what, sizeof what, "%s signature", name);
    CHECK_STR_AS(s ? s + 10 : NULL, trim(sig), what);
    snprintf(what, sizeof what, "%s Authorization", name);
    CHECK_STR_AS(out.authorization, signed_authorization(signed_text, slen, &sreq), what);
    snprintf(what, sizeof what, "%s X-Amz-Date", name);
    CHECK_STR_AS(out.amz_date, find_header(&sreq, "X-Amz-Date"), what);
done:
    sigv4_signed_free(&out);
    free(err);
    json_decref(ctx);
    free(ctx_text);
    free(req_text);
    free(creq);
    free(sts);
    free(sig);
    free(signed_text);
}

/* A request botocore signed: re-sign the headers it signed, at the time it
 * used, for the region and service in its credential scope, and compare. */
static void run_botocore(const char *dir, const char *file) {
    char path[1024], scope[256] = "", signed_names[512] = "", what[1200];
    size_t len = 0;
    parsed p;
    sigv4_header hs[MAX_HEADERS];
    size_t nh = 0;
    sigv4_signed out = {0};
    char *err = NULL;

    snprintf(path, sizeof path, "%s/%s", dir, file);
    char *text = test_read_file(path, &len);
    CHECK_MSG(text && parse_request(text, len, &p), "%s: parses", file);
    if (!text) return;
    const char *authz = find_header(&p, "Authorization");
    const char *date = find_header(&p, "X-Amz-Date");
    CHECK_MSG(authz && date, "%s: has Authorization and X-Amz-Date", file);
    if (!authz || !date) goto done;
    const char *c = strstr(authz, "Credential="), *sh = strstr(authz, "SignedHeaders=");
    CHECK_MSG(c && sh && sscanf(c, "Credential=%*[^/]/%255[^,]", scope) == 1 &&
                  sscanf(sh, "SignedHeaders=%511[^,]", signed_names) == 1,
              "%s: Authorization has a scope and signed headers", file);
    /* scope is date/region/service/aws4_request */
    char sdate[16], region[64], service[64];
    CHECK_MSG(sscanf(scope, "%15[^/]/%63[^/]/%63[^/]/", sdate, region, service) == 3,
              "%s: scope %s", file, scope);
    for (size_t i = 0; i < p.nheaders; i++) {
        char lname[128];
        snprintf(lname, sizeof lname, "%s", p.headers[i].name);
        for (char *q = lname; *q; q++) *q = (char)((*q >= 'A' && *q <= 'Z') ? *q + 32 : *q);
        if (!strcmp(lname, "x-amz-date") || !strcmp(lname, "x-amz-security-token"))
            continue; /* the signer adds these itself */
        char *hit = strstr(signed_names, lname);
        size_t n = strlen(lname);
        if (hit && (hit == signed_names || hit[-1] == ';') && (hit[n] == ';' || hit[n] == '\0'))
            hs[nh++] = p.headers[i];
    }
    sigv4_credentials cred = {
        .access_key = "AKIDEXAMPLE",
        .secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        .session_token = find_header(&p, "X-Amz-Security-Token"),
    };
    sigv4_request r = {
        .method = p.method,
        .path = p.path,
        .query = p.query,
        .headers = hs,
        .nheaders = nh,
        .payload = p.body,
        .payload_len = p.body_len,
    };
    store_status st = sigv4_sign(&r, &cred, region, service, parse_time(date), &out, &err);
    CHECK_MSG(st == STORE_OK, "%s: sign: %s", file, err ? err : "?");
    snprintf(what, sizeof what, "botocore %s Authorization", file);
    CHECK_STR_AS(out.authorization, authz, what);
done:
    sigv4_signed_free(&out);
    free(err);
    free(text);
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs fn on each entry of dir whose name passes want, in name order. */
static int each_entry(const char *dir, bool (*want)(const char *dir, const char *name),
                      void (*fn)(const char *dir, const char *name)) {
    DIR *d = opendir(dir);
    char *names[256];
    int n = 0;
    struct dirent *e;
    if (!d) return 0;
    while ((e = readdir(d)) && n < 256)
        if (e->d_name[0] != '.' && want(dir, e->d_name)) names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, name_cmp);
    for (int i = 0; i < n; i++) {
        fn(dir, names[i]);
        free(names[i]);
    }
    return n;
}

static bool is_vector(const char *dir, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/context.json", dir, name);
    FILE *f = fopen(path, "r");
    if (f) fclose(f);
    return f != NULL;
}

static bool is_http(const char *dir, const char *name) {
    (void)dir;
    size_t n = strlen(name);
    return n > 5 && !strcmp(name + n - 5, ".http");
}

/* Direct checks of the pieces, independent of any fixture. */
static void test_basics(void) {
    char h[SIGV4_HASH_SIZE], d[SIGV4_DATE_SIZE];
    sigv4_sha256_hex("", 0, h);
    CHECK_STR_AS(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                 "sha256('')");
    sigv4_sha256_hex("abc", 3, h);
    CHECK_STR_AS(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                 "sha256(abc)");
    sigv4_amz_date(1440938160000ULL + 999, d);
    CHECK_STR_AS(d, "20150830T123600Z", "amz date");

    /* The signer refuses what it cannot sign. */
    sigv4_credentials cred = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL};
    sigv4_header nohost[] = {{"Content-Type", "x"}};
    sigv4_request r = {.method = "POST", .path = "/", .headers = nohost, .nheaders = 1};
    sigv4_signed out = {0};
    char *err = NULL;
    CHECK_MSG(sigv4_sign(&r, &cred, "us-east-1", "dynamodb", 0, &out, &err) == STORE_INVALID &&
                  err && strstr(err, "Host"),
              "no Host header is refused: %s", err ? err : "");
    free(err);
    err = NULL;
    sigv4_header dated[] = {{"Host", "h"}, {"X-Amz-Date", "20150830T123600Z"}};
    r.headers = dated;
    r.nheaders = 2;
    CHECK_MSG(sigv4_sign(&r, &cred, "us-east-1", "dynamodb", 0, &out, &err) == STORE_INVALID,
              "a caller's X-Amz-Date is refused");
    free(err);
    err = NULL;
    sigv4_credentials nokey = {"AKIDEXAMPLE", "", NULL};
    r.nheaders = 1;
    CHECK_MSG(sigv4_sign(&r, &nokey, "us-east-1", "dynamodb", 0, &out, &err) == STORE_INVALID,
              "an empty secret is refused");
    free(err);
    err = NULL;

    /* An empty session token is no token. */
    sigv4_credentials empty_token = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
    CHECK_MSG(sigv4_sign(&r, &empty_token, "us-east-1", "service", 1440938160000ULL, &out, &err) ==
                      STORE_OK &&
                  strstr(out.authorization, "SignedHeaders=host;x-amz-date,"),
              "empty token not signed");
    sigv4_signed_free(&out);
    free(err);
}

int main(void) {
    char root[1024], boto[1024];
    snprintf(root, sizeof root, "%s/sigv4", test_fixtures());
    snprintf(boto, sizeof boto, "%s/sigv4/botocore", test_fixtures());

    test_basics();
    int nv = each_entry(root, is_vector, run_vector);
    CHECK_MSG(nv >= 20, "found %d AWS vectors in %s", nv, root);
    int nb = each_entry(boto, is_http, run_botocore);
    CHECK_MSG(nb >= 3, "found %d botocore requests in %s", nb, boto);
    return test_report();
}
