/*
 * aws_config_test.c - the shared-file reader (sections, both separators,
 * comments, nested blocks, case, last-wins) and the order in which region,
 * endpoint and credentials are resolved: caller, environment, credentials
 * file, config file, with AWS_PROFILE, [profile x] sections, session tokens,
 * AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE, and the errors when nothing
 * is found. The environment is a fake table; files go to a temp directory.
 */
#include "aws_config.h"
#include "test.h"

#include <stdlib.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------ */
/* A fake environment                                                  */

typedef struct fake_env {
    const char *names[16];
    const char *values[16];
    int n;
} fake_env;

static const char *fake_get(void *ctx, const char *name) {
    fake_env *e = ctx;
    for (int i = 0; i < e->n; i++)
        if (strcmp(e->names[i], name) == 0) return e->values[i];
    return NULL;
}

static void set(fake_env *e, const char *name, const char *value) {
    e->names[e->n] = name;
    e->values[e->n++] = value;
}

static const char *write_file(const char *name, const char *text) {
    static char path[2][160];
    static int which;
    char *p = path[which++ % 2];
    snprintf(p, 160, "%s/%s", test_dir, name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
    return p;
}

/* ------------------------------------------------------------------ */

static void test_ini(void) {
    static const char text[] = "# a comment\n"
                               "; another\n"
                               "top = ignored, no section yet\n"
                               "[default]\n"
                               "aws_access_key_id = AKID\n"
                               "AWS_Secret_Access_Key=secret # not a comment\n"
                               "region: eu-west-1\r\n"
                               "s3 =\n"
                               "    addressing_style = path\n"
                               "\tregion = not-this-one\n"
                               "[ profile dev ]\n"
                               "region = us-east-2\n"
                               "region = ap-south-1\n"
                               "empty =\n"
                               "garbage line without separator\n"
                               "[unclosed\n"
                               "[empty-section]\n";
    aws_ini ini;
    CHECK(aws_ini_parse(text, sizeof text - 1, &ini, &err) == STORE_OK);
    CHECK_STR(aws_ini_get(&ini, "default", "aws_access_key_id"), "AKID");
    CHECK_STR(aws_ini_get(&ini, "default", "aws_secret_access_key"), "secret # not a comment");
    CHECK_STR(aws_ini_get(&ini, "default", "REGION"), "eu-west-1");
    CHECK_STR(aws_ini_get(&ini, "default", "s3"), "");
    CHECK(aws_ini_get(&ini, "default", "addressing_style") == NULL);
    CHECK_STR(aws_ini_get(&ini, "profile dev", "region"), "ap-south-1");
    CHECK_STR(aws_ini_get(&ini, "profile dev", "empty"), "");
    CHECK(aws_ini_get(&ini, "profile dev", "garbage line without separator") == NULL);
    CHECK(aws_ini_get(&ini, "default", "top") == NULL);
    CHECK(aws_ini_get(&ini, "dev", "region") == NULL);
    CHECK(aws_ini_has_section(&ini, "empty-section"));
    CHECK(aws_ini_has_section(&ini, "profile dev"));
    CHECK(!aws_ini_has_section(&ini, "unclosed"));
    aws_ini_free(&ini);
    aws_ini_free(&ini); /* twice is fine */

    CHECK(aws_ini_parse("", 0, &ini, &err) == STORE_OK);
    CHECK(ini.count == 0 && aws_ini_get(&ini, "default", "x") == NULL);
    aws_ini_free(&ini);
    /* no trailing newline, key with ':' in the value */
    static const char t2[] = "[default]\nendpoint_url = http://127.0.0.1:8000";
    CHECK(aws_ini_parse(t2, sizeof t2 - 1, &ini, &err) == STORE_OK);
    CHECK_STR(aws_ini_get(&ini, "default", "endpoint_url"), "http://127.0.0.1:8000");
    aws_ini_free(&ini);
}

/* Loads with env e; returns the status and leaves the settings in *s. */
static store_status load(fake_env *e, const char *region, const char *endpoint, aws_settings *s) {
    free(err);
    err = NULL;
    return aws_settings_load(region, endpoint, fake_get, e, s, &err);
}

static void test_environment(void) {
    aws_settings s;
    fake_env e = {0};
    set(&e, "HOME", "/nonexistent-home");
    set(&e, "AWS_REGION", "eu-west-1");
    set(&e, "AWS_DEFAULT_REGION", "us-west-2");
    set(&e, "AWS_ACCESS_KEY_ID", "AKIDENV");
    set(&e, "AWS_SECRET_ACCESS_KEY", "secretenv");
    set(&e, "AWS_SESSION_TOKEN", "tok");
    CHECK(load(&e, NULL, NULL, &s) == STORE_OK);
    CHECK_STR(s.region, "eu-west-1");
    CHECK_STR(s.region_from, "AWS_REGION");
    CHECK_STR(s.endpoint, "https://dynamodb.eu-west-1.amazonaws.com");
    CHECK_STR(s.access_key, "AKIDENV");
    CHECK_STR(s.secret_key, "secretenv");
    CHECK_STR(s.session_token, "tok");
    CHECK_STR(s.credentials_from, "environment");
    CHECK_STR(s.profile, "default");
    aws_settings_free(&s);

    /* The caller's region and endpoint win over everything. */
    set(&e, "AWS_ENDPOINT_URL", "http://127.0.0.1:1");
    CHECK(load(&e, "ap-northeast-1", "http://localhost:9", &s) == STORE_OK);
    CHECK_STR(s.region, "ap-northeast-1");
    CHECK_STR(s.endpoint, "http://localhost:9");
    aws_settings_free(&s);
    CHECK(load(&e, NULL, NULL, &s) == STORE_OK);
    CHECK_STR(s.endpoint, "http://127.0.0.1:1");
    aws_settings_free(&s);
    set(&e, "AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:2");
    CHECK(load(&e, NULL, NULL, &s) == STORE_OK);
    CHECK_STR(s.endpoint, "http://127.0.0.1:2");
    aws_settings_free(&s);

    /* AWS_DEFAULT_REGION when AWS_REGION is unset or empty; China's domain. */
    fake_env e2 = {0};
    set(&e2, "AWS_REGION", "");
    set(&e2, "AWS_DEFAULT_REGION", "cn-north-1");
    set(&e2, "AWS_ACCESS_KEY_ID", "A");
    set(&e2, "AWS_SECRET_ACCESS_KEY", "S");
    CHECK(load(&e2, NULL, NULL, &s) == STORE_OK);
    CHECK_STR(s.region, "cn-north-1");
    CHECK_STR(s.region_from, "AWS_DEFAULT_REGION");
    CHECK_STR(s.endpoint, "https://dynamodb.cn-north-1.amazonaws.com.cn");
    CHECK(s.session_token == NULL);
    aws_settings_free(&s);

    /* Half the keys is a mistake worth naming. */
    fake_env e3 = {0};
    set(&e3, "AWS_REGION", "eu-west-1");
    set(&e3, "AWS_ACCESS_KEY_ID", "A");
    CHECK(load(&e3, NULL, NULL, &s) == STORE_INVALID);
    CHECK(err != NULL && strstr(err, "AWS_SECRET_ACCESS_KEY is not") != NULL);

    /* A region that would change the URL is refused. */
    fake_env e4 = {0};
    set(&e4, "AWS_ACCESS_KEY_ID", "A");
    set(&e4, "AWS_SECRET_ACCESS_KEY", "S");
    CHECK(load(&e4, "evil.com/x", NULL, &s) == STORE_INVALID);
    CHECK(err != NULL && strstr(err, "not a region") != NULL);
}

static void test_nothing_found(void) {
    aws_settings s;
    fake_env e = {0};
    set(&e, "HOME", test_dir);
    CHECK(load(&e, NULL, NULL, &s) == STORE_INVALID);
    CHECK(err != NULL && strstr(err, "no AWS region") != NULL);
    CHECK(err != NULL && strstr(err, "AWS_REGION") != NULL);
    CHECK(s.region == NULL && s.access_key == NULL);

    set(&e, "AWS_REGION", "eu-west-1");
    CHECK(load(&e, NULL, NULL, &s) == STORE_INVALID);
    CHECK(err != NULL && strstr(err, "no AWS credentials") != NULL);
    CHECK(err != NULL && strstr(err, "/.aws/credentials (no such file)") != NULL);
    CHECK(err != NULL && strstr(err, "AWS_ACCESS_KEY_ID") != NULL);

    /* Without HOME the files are simply not looked for. */
    fake_env bare = {0};
    set(&bare, "AWS_REGION", "eu-west-1");
    CHECK(load(&bare, NULL, NULL, &s) == STORE_INVALID);
    CHECK(err != NULL && strstr(err, "~/.aws/credentials") != NULL);
}

static void test_files(void) {
    aws_settings s;
    char aws[96];
    snprintf(aws, sizeof aws, "%s/.aws", test_dir);
    CHECK(mkdir(aws, 0700) == 0);
    write_file(".aws/credentials", "[default]\n"
                                   "aws_access_key_id = AKIDDEFAULT\n"
                                   "aws_secret_access_key = secretdefault\n"
                                   "\n"
                                   "[dev]\n"
                                   "aws_access_key_id=AKIDDEV\n"
                                   "aws_secret_access_key=secretdev\n"
                                   "aws_session_token=tokendev\n"
                                   "[half]\n"
                                   "aws_access_key_id=AKIDHALF\n");
    write_file(".aws/config", "[default]\n"
                              "region = eu-central-1\n"
                              "[profile dev]\n"
                              "region = us-east-2\n"
                              "endpoint_url = http://127.0.0.1:8000\n"
                              "[profile cfgonly]\n"
                              "region = sa-east-1\n"
                              "aws_access_key_id = AKIDCFG\n"
                              "aws_secret_access_key = secretcfg\n"
                              "aws_security_token = oldtoken\n"
                              "[profile role]\n"
                              "role_arn = arn:aws:iam::123456789012:role/x\n"
                              "source_profile = default\n"
                              "[dev]\n"
                              "region = ignored-without-profile-prefix\n");

    fake_env e = {0};
    set(&e, "HOME", test_dir);
    CHECK(load(&e, NULL, NULL, &s) == STORE_OK);
    CHECK_STR(s.access_key, "AKIDDEFAULT");
    CHECK_STR(s.secret_key, "secretdefault");
    CHECK(s.session_token == NULL);
    CHECK_STR(s.region, "eu-central-1");
    CHECK(s.region_from != NULL && strstr(s.region_from, "profile default in") != NULL);
    CHECK(s.credentials_from != NULL && strstr(s.credentials_from, ".aws/credentials") != NULL);
    CHECK_STR(s.endpoint, "https://dynamodb.eu-central-1.amazonaws.com");
    aws_settings_free(&s);

    fake_env dev = {0};
    set(&dev, "HOME", test_dir);
    set(&dev, "AWS_PROFILE", "dev");
    CHECK(load(&dev, NULL, NULL, &s) == STORE_OK);
    CHECK_STR(s.profile, "dev");
    CHECK_STR(s.access_key, "AKIDDEV");
    CHECK_STR(s.session_token, "tokendev");
    CHECK_STR(s.region, "us-east-2");
    CHECK_STR(s.endpoint, "http://127.0.0.1:8000");
    aws_settings_free(&s);

    /* The environment's keys win over the profile's (as the AWS CLI does). */
    set(&dev, "AWS_ACCESS_KEY_ID", "AKIDENV");
    set(&dev, "AWS_SECRET_ACCESS_KEY", "secretenv");
    CHECK(load(&dev, NULL, NULL, &s) == STORE_OK);
    CHECK_STR(s.access_key, "AKIDENV");
    CHECK(s.session_token == NULL);
    CHECK_STR(s.region, "us-east-2");
    aws_settings_free(&s);

    /* AWS_DEFAULT_PROFILE when AWS_PROFILE is unset; keys in the config file. */
    fake_env cfg = {0};
    set(&cfg, "HOME", test_dir);
    set(&cfg, "AWS_DEFAULT_PROFILE", "cfgonly");
    CHECK(load(&cfg, NULL, NULL, &s) == STORE_OK);
    CHECK_STR(s.access_key, "AKIDCFG");
    CHECK_STR(s.session_token, "oldtoken");
    CHECK_STR(s.region, "sa-east-1");
    CHECK(s.credentials_from != NULL && strstr(s.credentials_from, ".aws/config") != NULL);
    aws_settings_free(&s);

    fake_env half = {0};
    set(&half, "HOME", test_dir);
    set(&half, "AWS_PROFILE", "half");
    set(&half, "AWS_REGION", "eu-west-1");
    CHECK(load(&half, NULL, NULL, &s) == STORE_INVALID);
    CHECK(err != NULL && strstr(err, "has aws_access_key_id but no aws_secret_access_key") != NULL);

    fake_env role = {0};
    set(&role, "HOME", test_dir);
    set(&role, "AWS_PROFILE", "role");
    set(&role, "AWS_REGION", "eu-west-1");
    CHECK(load(&role, NULL, NULL, &s) == STORE_INVALID);
    CHECK(err != NULL && strstr(err, "uses role_arn") != NULL);
    CHECK(err != NULL && strstr(err, "export-credentials --profile role") != NULL);

    fake_env missing = {0};
    set(&missing, "HOME", test_dir);
    set(&missing, "AWS_PROFILE", "nope");
    CHECK(load(&missing, NULL, NULL, &s) == STORE_INVALID);
    CHECK(err != NULL && strstr(err, "profile 'nope' (from AWS_PROFILE) is in neither") != NULL);

    /* A profile only in the credentials file: no region from the files. */
    fake_env noregion = {0};
    set(&noregion, "HOME", test_dir);
    set(&noregion, "AWS_PROFILE", "half");
    CHECK(load(&noregion, NULL, NULL, &s) == STORE_INVALID);
    CHECK(err != NULL && strstr(err, "no AWS region") != NULL);
    CHECK(err != NULL && strstr(err, "profile half") != NULL);

    /* Files named by the environment replace ~/.aws. */
    const char *c = write_file("other-credentials", "[default]\naws_access_key_id = AKIDOTHER\n"
                                                    "aws_secret_access_key = secretother\n");
    const char *g = write_file("other-config", "[profile default]\nregion = me-south-1\n");
    fake_env moved = {0};
    set(&moved, "HOME", test_dir);
    set(&moved, "AWS_SHARED_CREDENTIALS_FILE", c);
    set(&moved, "AWS_CONFIG_FILE", g);
    CHECK(load(&moved, NULL, NULL, &s) == STORE_OK);
    CHECK_STR(s.access_key, "AKIDOTHER");
    CHECK_STR(s.region, "me-south-1");
    aws_settings_free(&s);

    /* A file that exists but cannot be read is an error, not "no file"
     * (a directory opens, then reads as EISDIR, even for root). */
    fake_env locked = {0};
    set(&locked, "HOME", test_dir);
    set(&locked, "AWS_CONFIG_FILE", test_dir);
    CHECK(load(&locked, NULL, NULL, &s) == STORE_IO);
    CHECK(err != NULL && strstr(err, "cannot read") != NULL);
}

TEST_MAIN("awscfg", test_ini, test_environment, test_nothing_found, test_files)
