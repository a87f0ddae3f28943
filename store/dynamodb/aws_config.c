/*
 * aws_config.c - region, endpoint and credentials from the environment and
 * AWS's shared files (see aws_config.h). Provides aws_settings_load and the
 * INI reader. Uses libc only: stdio to read the files.
 */
#include "aws_config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FILE_MAX (1u << 20) /* shared files are a few lines; refuse a huge one */
#define REGION_MAX 64

/* ------------------------------------------------------------------ */
/* INI                                                                 */

static char *dup_range(const char *p, size_t n) {
    char *s = malloc(n + 1);
    if (s != NULL) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

/* Trims [*p, *p + *n) of spaces and tabs on both ends. */
static void trim(const char **p, size_t *n) {
    while (*n > 0 && (**p == ' ' || **p == '\t')) (*p)++, (*n)--;
    while (*n > 0 && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t' || (*p)[*n - 1] == '\r')) (*n)--;
}

void aws_ini_free(aws_ini *ini) {
    if (ini == NULL) return;
    for (size_t i = 0; i < ini->count; i++) {
        free(ini->entries[i].section);
        free(ini->entries[i].key);
        if (ini->entries[i].value != NULL) {
            /* values include secrets */
            memset(ini->entries[i].value, 0, strlen(ini->entries[i].value));
            free(ini->entries[i].value);
        }
    }
    for (size_t i = 0; i < ini->nsections; i++) free(ini->sections[i]);
    free(ini->entries);
    free(ini->sections);
    memset(ini, 0, sizeof *ini);
}

static bool grow(void **array, size_t count, size_t size) {
    /* Doubles at powers of two, so the array is always big enough. */
    if (count == 0 || (count & (count - 1)) == 0) {
        void *p = realloc(*array, (count == 0 ? 4 : count * 2) * size);
        if (p == NULL) return false;
        *array = p;
    }
    return true;
}

/* Lines are read the way botocore's configparser does for the files AWS
 * writes: a line that starts with whitespace continues the previous key
 * (nested blocks such as `s3 =` / `  addressing_style = path`), which no
 * setting used here needs, so it is skipped. */
store_status aws_ini_parse(const char *text, size_t len, aws_ini *ini, char **err) {
    const char *p = text, *end = text + len;
    char *section = NULL;
    memset(ini, 0, sizeof *ini);

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        const char *line = p;
        p = nl != NULL ? nl + 1 : end;
        bool indented = n > 0 && (line[0] == ' ' || line[0] == '\t');
        trim(&line, &n);
        if (n == 0 || line[0] == '#' || line[0] == ';' || indented) continue;
        if (line[0] == '[') {
            const char *close = memchr(line, ']', n);
            if (close == NULL) continue;
            const char *name = line + 1;
            size_t m = (size_t)(close - name);
            trim(&name, &m);
            free(section);
            if ((section = dup_range(name, m)) == NULL) goto nomem;
            char *copy = strdup(section);
            if (copy == NULL ||
                !grow((void **)&ini->sections, ini->nsections, sizeof *ini->sections)) {
                free(copy);
                goto nomem;
            }
            ini->sections[ini->nsections++] = copy;
            continue;
        }
        if (section == NULL) continue;
        size_t k = 0;
        while (k < n && line[k] != '=' && line[k] != ':') k++;
        if (k == n) continue;
        const char *key = line, *value = line + k + 1;
        size_t klen = k, vlen = n - k - 1;
        trim(&key, &klen);
        trim(&value, &vlen);
        if (klen == 0) continue;
        if (!grow((void **)&ini->entries, ini->count, sizeof *ini->entries)) goto nomem;
        aws_ini_entry *e = &ini->entries[ini->count];
        e->section = strdup(section);
        e->key = dup_range(key, klen);
        e->value = dup_range(value, vlen);
        if (e->section == NULL || e->key == NULL || e->value == NULL) {
            free(e->section);
            free(e->key);
            free(e->value);
            goto nomem;
        }
        for (char *c = e->key; *c != '\0'; c++) *c = (char)tolower((unsigned char)*c);
        ini->count++;
    }
    free(section);
    return STORE_OK;

nomem:
    free(section);
    aws_ini_free(ini);
    return store_fail(err, STORE_NOMEM, "out of memory reading an AWS shared file");
}

const char *aws_ini_get(const aws_ini *ini, const char *section, const char *key) {
    const char *found = NULL;
    for (size_t i = 0; i < ini->count; i++)
        if (strcmp(ini->entries[i].section, section) == 0 &&
            strcasecmp(ini->entries[i].key, key) == 0)
            found = ini->entries[i].value;
    return found;
}

bool aws_ini_has_section(const aws_ini *ini, const char *section) {
    for (size_t i = 0; i < ini->nsections; i++)
        if (strcmp(ini->sections[i], section) == 0) return true;
    return false;
}

/* ------------------------------------------------------------------ */
/* Settings                                                            */

static const char *process_getenv(void *ctx, const char *name) {
    (void)ctx;
    return getenv(name);
}

/* One shared file: where it is, whether it was there, what it holds. */
typedef struct shared_file {
    char *path;  /* resolved path, or NULL when there is no HOME to look in */
    bool found;  /* the file exists and was read */
    aws_ini ini; /* its contents */
} shared_file;

/* Reads `path` into f. A missing file is not an error: most machines using
 * only environment variables have none. */
static store_status read_shared(shared_file *f, char **err) {
    store_status status = STORE_NOMEM;
    char *text = NULL;
    FILE *fp = fopen(f->path, "rb");
    if (fp == NULL) {
        if (errno == ENOENT || errno == ENOTDIR) return STORE_OK;
        return store_fail(err, STORE_IO, "cannot read %s: %s", f->path, strerror(errno));
    }
    size_t len = 0, cap = 4096;
    if ((text = malloc(cap)) == NULL) goto fail;
    for (;;) {
        size_t got = fread(text + len, 1, cap - len, fp);
        len += got;
        if (got == 0) break;
        if (len == cap) {
            if (cap >= FILE_MAX) {
                status = store_fail(err, STORE_INVALID,
                                    "%s is over 1 MB: not an AWS "
                                    "shared file",
                                    f->path);
                goto done;
            }
            char *bigger = realloc(text, cap * 2);
            if (bigger == NULL) goto fail;
            text = bigger;
            cap *= 2;
        }
    }
    if (ferror(fp)) {
        status = store_fail(err, STORE_IO, "cannot read %s: %s", f->path, strerror(errno));
        goto done;
    }
    if ((status = aws_ini_parse(text, len, &f->ini, err)) != STORE_OK) goto done;
    f->found = true;
    goto done;
fail:
    status = store_fail(err, STORE_NOMEM, "out of memory reading %s", f->path);
done:
    if (text != NULL) {
        memset(text, 0, len);
        free(text);
    }
    fclose(fp);
    return status;
}

/* $VAR if set and non-empty, else HOME + "/.aws/" + name, else NULL. */
static store_status locate(aws_getenv_fn get, void *ctx, const char *var, const char *name,
                           shared_file *f, char **err) {
    const char *set = get(ctx, var), *home = get(ctx, "HOME");
    if (set != NULL && *set != '\0')
        f->path = strdup(set);
    else if (home != NULL && *home != '\0') {
        size_t n = strlen(home) + strlen(name) + 8;
        if ((f->path = malloc(n)) != NULL) snprintf(f->path, n, "%s/.aws/%s", home, name);
    } else
        return STORE_OK;
    if (f->path == NULL) return store_fail(err, STORE_NOMEM, "out of memory");
    return read_shared(f, err);
}

/* The value of `key` for `profile` in the config file: [profile NAME], and
 * for the default profile also [default]. */
static const char *config_get(const shared_file *config, const char *profile, const char *key) {
    if (!config->found) return NULL;
    char section[320];
    snprintf(section, sizeof section, "profile %s", profile);
    const char *v = aws_ini_get(&config->ini, section, key);
    if (v == NULL && strcmp(profile, "default") == 0) v = aws_ini_get(&config->ini, "default", key);
    return v != NULL && *v != '\0' ? v : NULL;
}

static bool config_has_profile(const shared_file *config, const char *profile) {
    char section[320];
    snprintf(section, sizeof section, "profile %s", profile);
    return config->found &&
           (aws_ini_has_section(&config->ini, section) ||
            (strcmp(profile, "default") == 0 && aws_ini_has_section(&config->ini, "default")));
}

static const char *creds_get(const shared_file *creds, const char *profile, const char *key) {
    const char *v = creds->found ? aws_ini_get(&creds->ini, profile, key) : NULL;
    return v != NULL && *v != '\0' ? v : NULL;
}

static char *describe_place(const char *profile, const char *path) {
    size_t n = strlen(profile) + strlen(path) + 32;
    char *s = malloc(n);
    if (s != NULL) snprintf(s, n, "profile %s in %s", profile, path);
    return s;
}

static bool region_ok(const char *r) {
    size_t n = strlen(r);
    if (n == 0 || n > REGION_MAX) return false;
    for (; *r != '\0'; r++)
        if (!islower((unsigned char)*r) && !isdigit((unsigned char)*r) && *r != '-') return false;
    return true;
}

/* The first of the settings that make a profile need more than static
 * keys, or NULL. */
static const char *unsupported(const shared_file *creds, const shared_file *config,
                               const char *profile) {
    static const char *const keys[] = {"role_arn",      "credential_process",      "sso_session",
                                       "sso_start_url", "web_identity_token_file", NULL};
    for (int i = 0; keys[i] != NULL; i++)
        if (creds_get(creds, profile, keys[i]) != NULL ||
            config_get(config, profile, keys[i]) != NULL)
            return keys[i];
    return NULL;
}

void aws_settings_free(aws_settings *s) {
    if (s == NULL) return;
    if (s->secret_key != NULL) memset(s->secret_key, 0, strlen(s->secret_key));
    if (s->session_token != NULL) memset(s->session_token, 0, strlen(s->session_token));
    free(s->region);
    free(s->endpoint);
    free(s->access_key);
    free(s->secret_key);
    free(s->session_token);
    free(s->profile);
    free(s->credentials_from);
    free(s->region_from);
    memset(s, 0, sizeof *s);
}

static const char *nonempty(const char *s) { return s != NULL && *s != '\0' ? s : NULL; }

/* What the stages of aws_settings_load share. Errors name every place
 * looked at, since the usual fix is to put the setting in one of them. */
typedef struct loading {
    aws_getenv_fn get;      /* the environment */
    void *ctx;              /* ... and its context */
    shared_file creds;      /* the credentials file */
    shared_file config;     /* the config file */
    const char *creds_path; /* their paths, for messages */
    const char *config_path;
    const char *profile; /* the profile in use (out->profile) */
    aws_settings *out;   /* what is being filled */
} loading;

static store_status settings_nomem(char **err) {
    return store_fail(err, STORE_NOMEM, "dynamodb: out of memory reading AWS settings");
}

/* " (no such file)" after a path that was not found. */
static const char *missing(const shared_file *f) { return f->found ? "" : " (no such file)"; }

/* The profile (AWS_PROFILE, AWS_DEFAULT_PROFILE, else "default") and the
 * two shared files. A profile asked for by name must exist; the default
 * one need not. */
static store_status load_profile(loading *ld, char **err) {
    const char *var = "AWS_PROFILE";
    const char *profile = nonempty(ld->get(ld->ctx, var));
    if (profile == NULL) profile = nonempty(ld->get(ld->ctx, var = "AWS_DEFAULT_PROFILE"));
    bool chosen = profile != NULL;
    if (profile == NULL) profile = "default";
    if (strlen(profile) > 256)
        return store_fail(err, STORE_INVALID, "AWS profile name is over 256 characters");
    if ((ld->out->profile = strdup(profile)) == NULL) return settings_nomem(err);
    ld->profile = ld->out->profile;

    store_status status;
    if ((status = locate(ld->get, ld->ctx, "AWS_SHARED_CREDENTIALS_FILE", "credentials", &ld->creds,
                         err)) != STORE_OK ||
        (status = locate(ld->get, ld->ctx, "AWS_CONFIG_FILE", "config", &ld->config, err)) !=
            STORE_OK)
        return status;
    ld->creds_path = ld->creds.path != NULL ? ld->creds.path : "~/.aws/credentials";
    ld->config_path = ld->config.path != NULL ? ld->config.path : "~/.aws/config";

    bool in_creds = ld->creds.found && aws_ini_has_section(&ld->creds.ini, profile);
    if (chosen && !in_creds && !config_has_profile(&ld->config, profile))
        return store_fail(err, STORE_INVALID,
                          "AWS profile '%s' (from %s) is in neither "
                          "%s%s nor %s%s",
                          profile, var, ld->creds_path, missing(&ld->creds), ld->config_path,
                          missing(&ld->config));
    return STORE_OK;
}

/* The region: aeon.open's option, AWS_REGION, AWS_DEFAULT_REGION, the
 * profile's config, in that order. */
static store_status load_region(loading *ld, const char *region, char **err) {
    const char *r = nonempty(region), *from = "aeon.open's region option";
    if (r == NULL && (r = nonempty(ld->get(ld->ctx, "AWS_REGION"))) != NULL) from = "AWS_REGION";
    if (r == NULL && (r = nonempty(ld->get(ld->ctx, "AWS_DEFAULT_REGION"))) != NULL)
        from = "AWS_DEFAULT_REGION";
    if (r == NULL && (r = config_get(&ld->config, ld->profile, "region")) != NULL) from = NULL;
    if (r == NULL)
        return store_fail(err, STORE_INVALID,
                          "dynamodb: no AWS region: give aeon.open "
                          "{region = ...}, set AWS_REGION or AWS_DEFAULT_REGION, or set "
                          "region for profile %s in %s%s",
                          ld->profile, ld->config_path, missing(&ld->config));
    if (!region_ok(r))
        return store_fail(err, STORE_INVALID,
                          "dynamodb: AWS region \"%s\" is not a region "
                          "name (lower-case letters, digits and '-')",
                          r);
    aws_settings *out = ld->out;
    out->region = strdup(r);
    out->region_from = from != NULL ? strdup(from) : describe_place(ld->profile, ld->config_path);
    if (out->region == NULL || out->region_from == NULL) return settings_nomem(err);
    return STORE_OK;
}

/* The endpoint. The default is the region's public one; China's regions
 * live under their own domain. */
static store_status load_endpoint(loading *ld, const char *endpoint, char **err) {
    aws_settings *out = ld->out;
    const char *e = nonempty(endpoint);
    if (e == NULL) e = nonempty(ld->get(ld->ctx, "AWS_ENDPOINT_URL_DYNAMODB"));
    if (e == NULL) e = nonempty(ld->get(ld->ctx, "AWS_ENDPOINT_URL"));
    if (e == NULL) e = config_get(&ld->config, ld->profile, "endpoint_url");
    if (e != NULL) {
        if ((out->endpoint = strdup(e)) == NULL) return settings_nomem(err);
        return STORE_OK;
    }
    size_t n = strlen(out->region) + 48;
    if ((out->endpoint = malloc(n)) == NULL) return settings_nomem(err);
    snprintf(out->endpoint, n, "https://dynamodb.%s.amazonaws.com%s", out->region,
             strncmp(out->region, "cn-", 3) == 0 ? ".cn" : "");
    return STORE_OK;
}

/* The keys found, where, and whether anything was. */
typedef struct found_keys {
    const char *id, *secret, *token; /* borrowed from the environment or a file */
    char *place;                     /* where they came from, malloc'd */
} found_keys;

static store_status keys_from_env(loading *ld, found_keys *k, char **err) {
    k->id = nonempty(ld->get(ld->ctx, "AWS_ACCESS_KEY_ID"));
    k->secret = nonempty(ld->get(ld->ctx, "AWS_SECRET_ACCESS_KEY"));
    if (k->id == NULL && k->secret == NULL) return STORE_OK;
    if (k->id == NULL || k->secret == NULL)
        return store_fail(err, STORE_INVALID, "dynamodb: %s is set but %s is not",
                          k->id != NULL ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                          k->id != NULL ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
    k->token = nonempty(ld->get(ld->ctx, "AWS_SESSION_TOKEN"));
    if ((k->place = strdup("environment")) == NULL) return settings_nomem(err);
    return STORE_OK;
}

/* The credentials file, then the config file (the AWS CLI reads keys from
 * either). */
static store_status keys_from_files(loading *ld, found_keys *k, char **err) {
    const shared_file *files[2] = {&ld->creds, &ld->config};
    for (int i = 0; i < 2 && k->id == NULL; i++) {
        const char *(*lookup)(const shared_file *, const char *, const char *) =
            i == 0 ? creds_get : config_get;
        const char *fid = lookup(files[i], ld->profile, "aws_access_key_id");
        const char *fsecret = lookup(files[i], ld->profile, "aws_secret_access_key");
        if (fid == NULL && fsecret == NULL) continue;
        if (fid == NULL || fsecret == NULL)
            return store_fail(err, STORE_INVALID,
                              "dynamodb: profile %s in %s has %s "
                              "but no %s",
                              ld->profile, files[i]->path,
                              fid != NULL ? "aws_access_key_id" : "aws_secret_access_key",
                              fid != NULL ? "aws_secret_access_key" : "aws_access_key_id");
        k->id = fid;
        k->secret = fsecret;
        k->token = lookup(files[i], ld->profile, "aws_session_token");
        if (k->token == NULL)
            k->token = lookup(files[i], ld->profile, "aws_security_token"); /* older name */
        if ((k->place = describe_place(ld->profile, files[i]->path)) == NULL)
            return settings_nomem(err);
    }
    return STORE_OK;
}

/* Why there are no keys: a profile that needs more than static keys, or
 * none anywhere. */
static store_status no_keys(loading *ld, char **err) {
    const char *needs = unsupported(&ld->creds, &ld->config, ld->profile);
    if (needs != NULL)
        return store_fail(err, STORE_INVALID,
                          "dynamodb: AWS profile %s uses %s, which "
                          "aeon-host cannot follow; export temporary credentials "
                          "instead (eval \"$(aws configure export-credentials "
                          "--profile %s --format env)\")",
                          ld->profile, needs, ld->profile);
    return store_fail(err, STORE_INVALID,
                      "dynamodb: no AWS credentials: set "
                      "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or put "
                      "aws_access_key_id and aws_secret_access_key for profile %s "
                      "in %s%s or %s%s",
                      ld->profile, ld->creds_path, missing(&ld->creds), ld->config_path,
                      missing(&ld->config));
}

/* Credentials: the environment, then the shared files. */
static store_status load_credentials(loading *ld, char **err) {
    found_keys k = {0};
    store_status status = keys_from_env(ld, &k, err);
    if (status == STORE_OK && k.id == NULL) status = keys_from_files(ld, &k, err);
    if (status == STORE_OK && k.id == NULL) status = no_keys(ld, err);
    ld->out->credentials_from = k.place;
    if (status != STORE_OK) return status;
    aws_settings *out = ld->out;
    if ((out->access_key = strdup(k.id)) == NULL || (out->secret_key = strdup(k.secret)) == NULL ||
        (k.token != NULL && (out->session_token = strdup(k.token)) == NULL))
        return settings_nomem(err);
    return STORE_OK;
}

store_status aws_settings_load(const char *region, const char *endpoint, aws_getenv_fn getenv_fn,
                               void *ctx, aws_settings *out, char **err) {
    loading ld = {.get = getenv_fn != NULL ? getenv_fn : process_getenv, .ctx = ctx, .out = out};
    memset(out, 0, sizeof *out);
    store_status status = load_profile(&ld, err);
    if (status == STORE_OK) status = load_region(&ld, region, err);
    if (status == STORE_OK) status = load_endpoint(&ld, endpoint, err);
    if (status == STORE_OK) status = load_credentials(&ld, err);
    if (status != STORE_OK) aws_settings_free(out);
    free(ld.creds.path);
    free(ld.config.path);
    aws_ini_free(&ld.creds.ini);
    aws_ini_free(&ld.config.ini);
    return status;
}
